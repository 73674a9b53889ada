"""The jobs the commit sensor and the scoring schedule launch: one notebook, run by ``ds-pipelines run``.

A commit run executes a checkout of its commit: the deployment's own files may be at any other commit, so
the run does not materialize the deployment's asset but runs ``ds-pipelines run`` in the checkout, against
this same Dagster instance and MLflow store. That inner run materializes the notebook's asset, tagged with
the commit, so the asset's history in the UI shows every commit's result. Commit runs share the pool
``commit_runs`` (limit 1), so the notebooks of a push run one after another, in the order the sensor asked.

A scheduled run does the same in the deployment's project folder, outside that pool.

In the deployment's containers (the run launcher sets ``COMMIT_DIR_ENV``), a commit run reads its checkout
from a volume it cannot write, and runs in a folder of its commit's own instead: a volume only that commit's
runs mount, where its notebooks' outputs stay for its later notebooks. Either way its results folder is in
the deployment's state folder (``results_dir``), where the code location's sensors read it.

Afterwards, as GitLab CI's notify jobs do, the results go to the merge request (runs of a merge request)
and the notebook's wiki page: published by the code location's sensors once the run has ended
(``published``), as the run's container holds no GitLab token. Launched on GitLab's runners
(``execute_on: gitlab``), the run executes in the ``dagster-run`` job's checkout of its commit instead, keeps
its results folder, masked, with the job's artifacts, and publishes from the job.
"""

# No "from __future__ import annotations": Dagster reads the config and resource annotations at runtime.
import json
import logging
import os
import subprocess
import sys
import tempfile
from collections.abc import Mapping
from pathlib import Path

import dagster as dg

from ds_pipelines.defs.triggers.resources import GitLabResource
from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.execution import gitlab_runs
from ds_pipelines.execution.instance import (
    COMMIT_RUNS_POOL,
    DAGSTER_HOME_ENV,
    POSTGRES_URL_ENV,
    home_for_processes_of,
    shared_lock,
    reads_postgres_url,
)
from ds_pipelines.gitlab.repository import repository_url
from ds_pipelines.project import Project
from ds_pipelines.project.run_environment import (
    COMMIT_DIR_ENV,
    COMMIT_NOTEBOOK_JOB,
    FOLDER_RUN_JOBS,
    SCHEDULED_NOTEBOOK_JOB,
    hide_environment,
    notebook_run_environment,
)
from ds_pipelines.publishing.artifacts import keep_masked_copy
from ds_pipelines.publishing.merge_request import publish_merge_request_comment
from ds_pipelines.publishing.wiki import publish_wiki_pages, wiki_lock_name
from ds_pipelines.results.folder import RESULTS_FILE, RunResults, load_results
from ds_pipelines.results.origin import RUN_TAGS_ENV, TAG_PREFIX, Provenance
from ds_pipelines.tracking import TRACKING_URI_ENV, tracking_uri
from ds_pipelines.triggers.checkout import CHECKOUTS_DIR, CheckoutError, checkout, copy_commit_files, intact

RESULTS_DIR = "results"
"""Where, in the deployment's state folder, commit and scheduled runs keep their results folders (one per run)."""


class NotebookRunConfig(dg.Config):
    notebook: str
    """Path of the notebook inside ``project_dir``."""
    project_dir: str
    """The project folder to run in: a checkout of the commit (``ds_pipelines.triggers.checkout``), or the deployment's."""


def run_notebook_in_project(context: dg.OpExecutionContext, config: NotebookRunConfig, gitlab: GitLabResource,
                            project_dir: Path | None = None) -> dg.Output[str]:
    """Run the notebook with ``ds-pipelines run`` in ``project_dir`` (default ``config.project_dir``); on
    GitLab's runners, in the job's checkout, and publish its results from there (elsewhere the code location's
    sensors publish them)."""
    on_gitlab = gitlab_runs.launched_on_gitlab(context.run)
    # On GitLab's runners (the launcher's execute_on: gitlab) the job's checkout is the run's commit (the
    # dagster-run job checked it out): config.project_dir names a folder of the deployment the runner lacks.
    project_dir = Project().root if on_gitlab else (project_dir or Path(config.project_dir))
    output_dir = results_dir(context.run_id)
    # The commit's code runs in this process and its kernels: it gets the allow-listed environment only
    # (project.run_environment), no GitLab or Slack token, and the Postgres URL only if the instance needs it;
    # nor can it read this process's environment through /proc.
    hide_environment()
    deployment = Project()
    home = home_for_processes_of(context.instance, deployment)
    env = {
        **notebook_run_environment(os.environ, postgres=reads_postgres_url(home)),
        RUN_TAGS_ENV: json.dumps({k: v for k, v in context.run.tags.items() if k.startswith(TAG_PREFIX)}),
        # The deployment's MLflow store, not one inside a checkout.
        TRACKING_URI_ENV: tracking_uri(deployment),
        DAGSTER_HOME_ENV: str(home),
    }
    # The deployment's ds_pipelines, never a ds_pipelines/ folder of the checkout: -I keeps the working folder
    # off sys.path, and that folder is an empty one, as Dagster puts it on the kernel's sys.path to load the job.
    command = [sys.executable, "-I", "-m", "ds_pipelines", "run", config.notebook,
               "--project-dir", str(project_dir), "--output-dir", str(output_dir)]
    context.log.info(f"running {config.notebook} in {project_dir}")
    with (tempfile.TemporaryDirectory(prefix="ds-pipelines-run-") as working_dir,
          subprocess.Popen(command, env=env, cwd=working_dir, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) as process):
        for line in process.stdout:
            context.log.info(line.rstrip())
    results = load_results(output_dir) if (output_dir / RESULTS_FILE).exists() else None
    if results is not None and on_gitlab:
        # Its results stay in the job (its artifacts), and the job holds the project's token: published here.
        keep_in_job_artifacts(context, output_dir, Path(config.notebook).stem)
        publish_to_gitlab(context.log, gitlab, results, context.run.tags)
    elif results is not None:
        context.log.info("its results go to GitLab once the run has ended: the code location's publish_*_notebook_runs sensors")
    if process.returncode != 0:
        failed = results.notebooks[-1] if results and results.notebooks else None
        raise dg.Failure(
            description=f"{config.notebook} failed (exit {process.returncode}): {(failed and failed.error) or 'see the run log'}",
            metadata={"results": dg.MetadataValue.path(str(output_dir)), "failed_cell": str(failed and failed.failed_cell)},
        )
    metrics = results.notebooks[0].metrics if results and results.notebooks else {}
    return dg.Output(
        str(output_dir),
        metadata={"results": dg.MetadataValue.path(str(output_dir)), **{name: float(value) for name, value in metrics.items()}},
    )


def keep_in_job_artifacts(context: dg.OpExecutionContext, output_dir: Path, name: str) -> None:
    """The results folder, masked, where the GitLab job keeps its artifacts (``ds-pipelines execute-run``'s
    output folder), as a notebook job of CI's child pipeline keeps it."""
    kept_in = os.environ.get(gitlab_runs.JOB_RESULTS_DIR_ENV)
    if not kept_in:
        return
    target = Path(kept_in) / name
    masked = keep_masked_copy(output_dir, target)
    for file, why in masked.left_out.items():
        context.log.warning(f"{file.relative_to(target)} is not kept with the job's artifacts: {why}")
    context.log.info(f"results kept with the GitLab job's artifacts in {target}")


def results_dir(run_id: str) -> Path:
    """The results folder of the commit or scheduled run ``run_id``, in the deployment's state folder."""
    return Project().state_dir / RESULTS_DIR / run_id


def results_folder_of(run: dg.DagsterRun) -> Path | None:
    """Where a commit or scheduled run left its results folder; None for a run of another job."""
    return results_dir(run.run_id) if run.job_name in FOLDER_RUN_JOBS else None


def publish_to_gitlab(log: logging.Logger | dg.DagsterLogManager, gitlab: GitLabResource, results: RunResults,
                      run_tags: Mapping[str, str]) -> None:
    """As GitLab CI's notify jobs do, best effort: the merge-request comment (runs of a merge request) and the
    notebook's wiki page, masked and escaped like there. A GitLab problem is a warning, never a failed run."""
    if gitlab.missing():
        log.info(f"not published to GitLab: set {', '.join(gitlab.missing())}")
        return
    origin = Provenance.from_run_tags(run_tags)
    client = gitlab.client()
    masker = gitlab.masker().trusting(results.own_identifiers())
    tracking = tracking_uri(Project())

    def warn(message: str) -> None:
        # Warnings quote notebook text (a plot's name) and errors (a URL): masked before the event log keeps them.
        log.warning(masker.mask(message))

    steps = [("wiki pages", lambda: publish_wiki_pages(
        results, client=client, masker=masker, origin=origin, tracking_uri=tracking, artifacts=None, warn=warn,
        lock=shared_lock(wiki_lock_name(client), os.environ.get(POSTGRES_URL_ENV))))]
    if origin.merge_request:
        steps.insert(0, ("merge-request comment", lambda: publish_merge_request_comment(
            results, mr_iid=int(origin.merge_request), client=client, masker=masker, origin=origin,
            tracking_uri=tracking, default_branch=Project().triggers.branches[0], artifacts=None, warn=warn)))
    for what, publish in steps:
        try:
            publish()
            log.info(f"published the {what}")
        except DsPipelinesError as exc:
            log.warning(f"{what} not published: {masker.mask(str(exc))}")


def run_notebook_in_checkout(context: dg.OpExecutionContext, config: NotebookRunConfig, gitlab: GitLabResource) -> dg.Output[str]:
    """``run_notebook_in_project`` in the sensor's checkout, checked again first: it waited in the queue, and
    without the deployment's containers a run of another commit (same user) may have changed its files since
    the sensor extracted them. In those containers, in a copy of it in the commit's own folder."""
    if gitlab_runs.launched_on_gitlab(context.run):
        return run_notebook_in_project(context, config, gitlab)
    folder = Path(config.project_dir)
    checkouts = Project().state_dir / CHECKOUTS_DIR
    # A run's config is whatever its creator wrote (a commit's code can create runs in the instance): it names
    # one of the sensor's checkouts, or the run fails, as would a copy of any other folder into a commit's own.
    if folder.parent.resolve() != checkouts.resolve() or folder.is_symlink():
        raise dg.Failure(description=f"{folder} is not one of the commit sensor's checkouts (in {checkouts}): not run")
    if not intact(folder, folder.name):
        context.log.warning(f"the checkout {folder} changed after the commit sensor extracted it: extracted again")
        # From the sensor's mirror, which holds the commit and whose objects are checked against their ids: a
        # commit run's container has no GitLab token (defs/triggers/published) and needs none.
        url = repository_url(gitlab.client()) if not gitlab.missing() else None
        origin = Provenance.from_run_tags(context.run.tags)
        # A trusted fork's commit is only in its merge request's head (triggers.watch names its branch fork-<id>/...).
        fork_merge_request = int(origin.merge_request) if origin.merge_request and (origin.branch or "").startswith("fork-") else None
        try:
            checkout(repository_url=url, sha=folder.name, cache_dir=folder.parent, token=gitlab.token,
                     merge_request=fork_merge_request)
        except (DsPipelinesError, OSError) as exc:
            raise dg.Failure(description=f"the checkout {folder} changed and cannot be extracted again: {exc}") from None
    commit_dir = os.environ.get(COMMIT_DIR_ENV)
    if not commit_dir:
        return run_notebook_in_project(context, config, gitlab)
    try:
        copy_commit_files(folder, folder.name, Path(commit_dir))
    except (CheckoutError, OSError) as exc:
        raise dg.Failure(description=f"the commit's files cannot be copied from {folder} to {commit_dir}: {exc}") from None
    context.log.info(f"the commit's files copied from {folder} into its own folder {commit_dir}")
    return run_notebook_in_project(context, config, gitlab, project_dir=Path(commit_dir))


def run_notebook_in_deployment(context: dg.OpExecutionContext, config: NotebookRunConfig, gitlab: GitLabResource) -> dg.Output[str]:
    """``run_notebook_in_project`` in the deployment's project folder, the only one a scheduled run may name
    (its config could name a commit's checkout, were the run created by a commit's code)."""
    deployment = Project().root
    if not gitlab_runs.launched_on_gitlab(context.run) and Path(config.project_dir).resolve() != deployment.resolve():
        raise dg.Failure(description=f"a scheduled run runs in the deployment's project folder {deployment}, "
                                     f"not in {config.project_dir}: not run")
    return run_notebook_in_project(context, config, gitlab)


run_commit_notebook = dg.op(
    name="run_commit_notebook", pool=COMMIT_RUNS_POOL, description="Run one notebook from a checkout of the commit that changed it.",
)(run_notebook_in_checkout)
run_scheduled_notebook = dg.op(
    name="run_scheduled_notebook", description="Run the scoring notebook from the deployment's project folder.",
)(run_notebook_in_deployment)


@dg.job(name=COMMIT_NOTEBOOK_JOB, description="Run a notebook at the commit the commit sensor found.")
def commit_notebook_job() -> None:
    run_commit_notebook()


@dg.job(name=SCHEDULED_NOTEBOOK_JOB, description="Run the scoring notebook on the schedule and log it to the wiki.")
def scheduled_notebook_job() -> None:
    run_scheduled_notebook()
