"""Publishing the commit and scheduled runs' results from the code location, once each run has ended.

A commit run executes a commit's code, and that code can read what every process of its container holds
(``/proc/<pid>/environ``: the container's init and Dagster's log capture run no ds-pipelines code that could
hide it). So the container of such a run gets no GitLab token (``execution.docker_launcher``), and these two
sensors, which run in the code location with the deployment's token, publish its results folder instead: the
merge-request comment and the notebook's wiki page, masked, as GitLab CI's notify jobs do. Scheduled runs are
published the same way, for one path. A run executed on GitLab's runners was published by its job (its results
are in the job's artifacts).
"""

# No "from __future__ import annotations": Dagster reads the sensors' resource annotations at runtime.
import dagster as dg

from ds_pipelines.defs.triggers.notebook_runs import (
    commit_notebook_job,
    publish_to_gitlab,
    results_folder_of,
    scheduled_notebook_job,
)
from ds_pipelines.defs.triggers.resources import GitLabResource
from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.execution import gitlab_runs
from ds_pipelines.results.folder import RESULTS_FILE, load_results

SUCCEEDED_SENSOR = "publish_succeeded_notebook_runs"
FAILED_SENSOR = "publish_failed_notebook_runs"
_MONITORED = [commit_notebook_job, scheduled_notebook_job]


def publish_ended_run(context: dg.RunStatusSensorContext, gitlab: GitLabResource) -> dg.SkipReason | None:
    """Publish the results folder of the run that ended; a skip saying why when there is nothing to publish."""
    run = context.dagster_run
    if gitlab_runs.launched_on_gitlab(run):
        return dg.SkipReason(f"run {run.run_id} executed on GitLab: its job published it")
    folder = results_folder_of(run)
    if folder is None or not (folder / RESULTS_FILE).is_file():
        return dg.SkipReason(f"run {run.run_id} left no results folder to publish")
    try:
        # Written by the commit's code: read back as strictly as any results folder (paths stay inside it).
        results = load_results(folder)
    except DsPipelinesError as exc:
        return dg.SkipReason(f"run {run.run_id} not published: {gitlab.masker().mask(str(exc))}")
    publish_to_gitlab(context.log, gitlab, results, run.tags)
    return None


@dg.run_status_sensor(
    name=SUCCEEDED_SENSOR, run_status=dg.DagsterRunStatus.SUCCESS, monitored_jobs=_MONITORED,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Publishes each succeeded commit or scheduled run to GitLab: the merge-request comment and the wiki.",
)
def publish_succeeded_notebook_runs(context: dg.RunStatusSensorContext, gitlab: GitLabResource):
    return publish_ended_run(context, gitlab)


@dg.run_status_sensor(
    name=FAILED_SENSOR, run_status=dg.DagsterRunStatus.FAILURE, monitored_jobs=_MONITORED,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Publishes each failed commit or scheduled run to GitLab: the merge-request comment and the wiki.",
)
def publish_failed_notebook_runs(context: dg.RunStatusSensorContext, gitlab: GitLabResource):
    return publish_ended_run(context, gitlab)
