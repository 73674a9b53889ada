"""The commit sensor: new commits on watched branches and merge requests run their changed notebooks.

Decisions come from ``ds_pipelines.triggers.watch`` (the same trigger rules as GitLab CI's detect job); this module
only talks to Dagster. Each run executes its commit's own files (see ``notebook_runs``).
"""

# No "from __future__ import annotations": Dagster reads the config and resource annotations at runtime.
import dagster as dg

from ds_pipelines.defs.triggers.notebook_runs import (
    NotebookRunConfig,
    commit_notebook_job,
)
from ds_pipelines.defs.triggers.resources import (
    GitLabResource,
    left_to_gitlab_ci,
    not_configured,
)
from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.execution.instance import DEVICE_TAG
from ds_pipelines.gitlab.repository import repository_url, set_commit_status
from ds_pipelines.project import Project
from ds_pipelines.results.origin import TAG_PREFIX
from ds_pipelines.triggers.checkout import CHECKOUTS_DIR, checkout, evict
from ds_pipelines.triggers.watch import evaluate, parse_cursor

COMMIT_STATUS = "ds-pipelines: commit sensor"
"""The name of the commit status that says why the sensor did not run a commit."""
_UNFINISHED = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def commit_sensor(project: Project) -> dg.SensorDefinition:
    """The sensor ``gitlab_commits``, polling GitLab every ``triggers.poll_interval_s`` seconds."""

    @dg.sensor(
        name="gitlab_commits",
        target=commit_notebook_job,
        minimum_interval_seconds=project.triggers.poll_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Runs the notebooks that new commits change, on the branches in configs/notebooks.yaml "
        "(triggers.branches) and in open merge requests, each from a checkout of its commit.",
    )
    def gitlab_commits(context: dg.SensorEvaluationContext, gitlab: GitLabResource) -> dg.SensorResult | dg.SkipReason:
        # Before GitLab's settings: a deployment that leaves commits to CI need not be able to read GitLab.
        skip = left_to_gitlab_ci(project) or not_configured(gitlab)
        if skip:
            return skip
        try:
            client = gitlab.client()
            url = repository_url(client)
            evaluation = evaluate(
                client, project.triggers, parse_cursor(context.cursor),
                lambda sha, merge_request=None: checkout(repository_url=url, sha=sha, cache_dir=project.state_dir / CHECKOUTS_DIR,
                                                         token=gitlab.token, merge_request=merge_request),
            )
        except DsPipelinesError as exc:
            # GitLab down or refusing the token: say why; the cursor is kept, so the next tick catches up.
            return dg.SkipReason(f"cannot read GitLab: {exc}")
        for message in evaluation.messages:
            context.log.info(message)
        masker = gitlab.masker() if evaluation.not_run else None
        for not_run in evaluation.not_run:
            try:
                # Members of the project read it: masked as everything ds-pipelines publishes.
                set_commit_status(client, sha=not_run.sha, state="failed", name=COMMIT_STATUS,
                                  description=masker.mask(f"not run by the Dagster deployment: {not_run.reason}"))
            except DsPipelinesError as exc:  # the sensor's log has the reason already; the cursor moves on
                context.log.warning(f"could not record on commit {not_run.sha[:12]} why it was not run: {exc}")
        in_use = {run.checkout.name for run in evaluation.runs} | _checkouts_of_unfinished_runs(context.instance)
        removed = evict(project.state_dir / CHECKOUTS_DIR, keep=project.triggers.keep_checkouts, in_use=in_use)
        if removed:
            context.log.info(f"removed {len(removed)} old checkouts (triggers.keep_checkouts: {project.triggers.keep_checkouts})")
        requests = [
            dg.RunRequest(
                run_key=run.run_key,
                run_config=dg.RunConfig(ops={"run_commit_notebook": NotebookRunConfig(notebook=run.notebook, project_dir=str(run.checkout))}),
                tags={**run.provenance.run_tags(), f"{TAG_PREFIX}notebook": run.notebook, f"{TAG_PREFIX}reason": run.reason,
                      DEVICE_TAG: run.device},
            )
            for run in evaluation.runs
        ]
        return dg.SensorResult(
            run_requests=requests,
            cursor=evaluation.cursor.dumps(),
            skip_reason=None if requests else "; ".join(evaluation.messages) or "no new commits",
        )

    return gitlab_commits


def _checkouts_of_unfinished_runs(instance: dg.DagsterInstance) -> set[str]:
    """The checkouts (named by commit) that queued and running commit runs still execute in."""
    runs = instance.get_runs(filters=dg.RunsFilter(job_name=commit_notebook_job.name, statuses=_UNFINISHED))
    return {run.tags[f"{TAG_PREFIX}commit"] for run in runs if f"{TAG_PREFIX}commit" in run.tags}
