"""Dagster runs executed on GitLab's runners: one pipeline per run, followed until it ends.

The deployment's run launcher (``execution.run_launcher``, ``execute_on: gitlab``) calls ``launch`` for every
run, whoever started it (the UI, GraphQL, a re-execution, a sensor, a schedule, a backfill). ``launch`` creates
one pipeline of the project's ``.gitlab-ci.yml`` whose variables name the run (``RUN_ID_VARIABLE``), its
notebooks and their device; ``templates/notebooks.yml``'s ``dagster-run`` job runs on ``$GPU_RUNNER`` or
``$CPU_RUNNER`` by that device and executes the stored run with ``ds-pipelines execute-run``
(``execution.run_worker``) against the shared Postgres instance: its events, materializations and checks reach
the UI as the job writes them. No secret travels in the variables or tags: the job reads the database URL from
its own masked, protected CI/CD variable.

``follow`` (the ``gitlab_runs`` sensor, every 30 s) keeps the run in step with its job: a job no runner took
within the pending limit is canceled and fails the run naming its runner tag; a pipeline canceled in GitLab
cancels the run; a job that ended while its run had not fails the run with the end of its log; each job's
state change and the end of its log are engine events of the run.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

import dagster as dg

from ds_pipelines.execution.docker_launcher import runs_gpu_notebook
from ds_pipelines.gitlab import GitLabClient, GitLabError
from ds_pipelines.gitlab.pipelines import (
    FINISHED,
    WAITING,
    Job,
    Pipeline,
    cancel_pipeline,
    create_pipeline_once,
    job_trace_tail,
    pipeline_jobs,
)
from ds_pipelines.gitlab.repository import branch_protected
from ds_pipelines.masking import Masker
from ds_pipelines.results.origin import Provenance

RUN_ID_VARIABLE = "DSP_DAGSTER_RUN_ID"
"""The pipeline variable naming the Dagster run: ``.gitlab-ci.yml`` runs only ``dagster-run`` when it is set."""
NOTEBOOKS_VARIABLE = "DSP_DAGSTER_NOTEBOOKS"
"""The run's notebooks (asset names, comma-separated), for people reading the pipeline."""
DEVICE_VARIABLE = "DSP_DAGSTER_DEVICE"
"""``gpu`` when the run executes a ``device: gpu`` notebook, else ``cpu``: the job's runner follows it."""
COMMIT_VARIABLE = "DSP_DAGSTER_COMMIT"
"""The commit the run executes (the run's commit tag, else the commit the code location serves); the job
checks it out only when the pipeline's ref contains it."""

JOB_RESULTS_DIR_ENV = "DS_PIPELINES_JOB_RESULTS_DIR"
"""Set by ``ds-pipelines execute-run`` in the job: the folder the job keeps as its artifacts."""

PIPELINE_TAG = "ds-pipelines/gitlab-pipeline"
PIPELINE_URL_TAG = "ds-pipelines/gitlab-pipeline-url"
CREATED_AT_TAG = "ds-pipelines/gitlab-created-at"
"""When the pipeline was created (epoch seconds): its job's wait for a runner counts from here."""
JOB_URL_TAG = "ds-pipelines/gitlab-job-url"
JOB_STATUS_TAG = "ds-pipelines/gitlab-job-status"
"""The job's state as last seen; ``follow`` reports each change once."""
LOG_REPORTED = "log-reported"
"""``JOB_STATUS_TAG`` once the finished job's log was reported: the run is no longer followed."""
CANCEL_SENT_TAG = "ds-pipelines/gitlab-cancel-sent"
"""The job whose pipeline ``follow`` canceled for a run canceled in Dagster: asked once."""

PENDING_TIMEOUT_S = 1800
"""How long a job may wait for a runner before the run fails and the pipeline is canceled."""
FOLLOW_WINDOW_S = 3600
"""Finished runs are read back this long after they ended, for the end of their job's log."""
TRACE_TAIL_CHARS = 4000
_UNFINISHED = [dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]
_ENDED = [dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED]


class LaunchError(RuntimeError):
    """A run that could not be launched on GitLab, with what to do; Dagster fails the run with this message."""


@dataclass(frozen=True)
class Launch:
    ref: str
    variables: dict[str, str]
    on_tag: bool = False
    """``ref`` is a git tag (a tag sensor's run): protected by the tag rules, not the branch's."""


def launch_of(instance: dg.DagsterInstance, run: dg.DagsterRun, *, ref: str, served_commit: str | None) -> Launch:
    """The pipeline a run needs: on the run's git tag or branch (a sensor's run of a commit) else ``ref``."""
    notebooks = sorted(run_notebooks(instance, run))
    origin = Provenance.from_run_tags(run.tags)
    commit = origin.commit or served_commit
    variables = {
        RUN_ID_VARIABLE: run.run_id,
        NOTEBOOKS_VARIABLE: ",".join(notebooks),
        DEVICE_VARIABLE: "gpu" if runs_gpu_notebook(instance, run) else "cpu",
        **({COMMIT_VARIABLE: commit} if commit else {}),
        # The commit was scanned by its own push pipeline: this one runs the Dagster run's job only.
        "SECRET_DETECTION_DISABLED": "true",
    }
    return Launch(ref=origin.tag or origin.branch or ref, variables=variables, on_tag=bool(origin.tag))


def launch(instance: dg.DagsterInstance, run: dg.DagsterRun, client: GitLabClient, *, ref: str | None,
           served_commit: str | None) -> Pipeline:
    """Create the run's pipeline (once, whatever GitLab's replies) and keep it on the run's tags."""
    try:
        default_ref = ref or client.project_attributes()["default_branch"]
        planned = launch_of(instance, run, ref=default_ref, served_commit=served_commit)
        if not planned.on_tag and not branch_protected(client, branch=planned.ref):
            raise LaunchError(
                f"branch {planned.ref!r} of GitLab project {client.settings.project_id!r} is not protected: its "
                "pipelines do not get the protected CI/CD variables (DAGSTER_POSTGRES_URL) and may be run with code "
                "anyone with push access wrote. Protect it, or set the launcher's gitlab.ref to a protected branch")
        pipeline = create_pipeline_once(client, ref=planned.ref, variables=planned.variables, key=RUN_ID_VARIABLE)
    except GitLabError as exc:
        raise LaunchError(f"run {run.run_id} was not launched on GitLab: {exc}") from None
    instance.add_run_tags(run.run_id, {PIPELINE_TAG: str(pipeline.id), PIPELINE_URL_TAG: pipeline.web_url,
                                       CREATED_AT_TAG: f"{time.time():.0f}", JOB_STATUS_TAG: "created"})
    instance.report_engine_event(
        f"GitLab pipeline {pipeline.id} created on {planned.ref} for notebooks "
        f"{planned.variables[NOTEBOOKS_VARIABLE] or '(none)'} on the {planned.variables[DEVICE_VARIABLE]} runner: "
        f"{pipeline.web_url}", run)
    return pipeline


def launched_on_gitlab(run: dg.DagsterRun) -> bool:
    return PIPELINE_TAG in run.tags


def current_job(client: GitLabClient, run: dg.DagsterRun) -> Job | None:
    """The newest job of the run's pipeline (a job retried in GitLab replaces the one before)."""
    jobs = pipeline_jobs(client, int(run.tags[PIPELINE_TAG]))
    return jobs[-1] if jobs else None


def cancel(instance: dg.DagsterInstance, client: GitLabClient, run: dg.DagsterRun) -> None:
    """Terminate from the UI (a started run): the run is canceling until its job stops (``follow`` then marks
    it canceled, or run monitoring after its cancel timeout)."""
    instance.report_run_canceling(run, message=f"Canceling GitLab pipeline {run.tags[PIPELINE_TAG]}.")
    cancel_pipeline(client, int(run.tags[PIPELINE_TAG]))


def follow(instance: dg.DagsterInstance, client: GitLabClient, *, pending_timeout_s: float = PENDING_TIMEOUT_S,
           now: Callable[[], float] = time.time, masker: Masker | None = None) -> list[str]:
    """Bring each GitLab-launched run in step with its job; what was done, one line each."""
    masker = masker or Masker.from_env()
    done = []
    followed = [*instance.get_runs(filters=dg.RunsFilter(statuses=_UNFINISHED)),
                *instance.get_runs(filters=dg.RunsFilter(statuses=_ENDED, updated_after=datetime.fromtimestamp(now() - FOLLOW_WINDOW_S, tz=timezone.utc)))]
    for run in followed:
        if not launched_on_gitlab(run) or run.tags.get(JOB_STATUS_TAG) == LOG_REPORTED:
            continue
        try:
            line = _follow_run(instance, client, run, pending_timeout_s=pending_timeout_s, now=now, masker=masker)
        except GitLabError as exc:
            line = f"run {run.run_id}: {exc}"  # GitLab unreachable for now: the next tick asks again
        if line:
            done.append(line)
    return done


def _follow_run(instance: dg.DagsterInstance, client: GitLabClient, run: dg.DagsterRun, *, pending_timeout_s: float,
                now: Callable[[], float], masker: Masker) -> str | None:
    job = current_job(client, run)
    if job is None:
        return None  # GitLab has not made the pipeline's jobs yet
    if run.tags.get(JOB_URL_TAG) != job.web_url:
        instance.add_run_tags(run.run_id, {JOB_URL_TAG: job.web_url})
    if run.tags.get(JOB_STATUS_TAG) != job.status:
        instance.add_run_tags(run.run_id, {JOB_STATUS_TAG: job.status})
        runner = f" on runner {job.runner}" if job.runner else ""
        instance.report_engine_event(f"GitLab job {job.id} ({job.name}) is {job.status}{runner}: {job.web_url}", run)
    if run.status in _ENDED:
        if job.status in FINISHED:
            _report_log(instance, client, run, job, masker)
            return f"run {run.run_id}: job {job.id} {job.status}, its log reported"
        if run.status == dg.DagsterRunStatus.CANCELED and run.tags.get(CANCEL_SENT_TAG) != str(job.id):
            # Marked canceled in the UI while its job waited ("force termination" of a starting run, which Dagster
            # does without asking the launcher): the pipeline must not take a runner for nothing.
            cancel_pipeline(client, int(run.tags[PIPELINE_TAG]))
            instance.add_run_tags(run.run_id, {CANCEL_SENT_TAG: str(job.id)})
            return f"run {run.run_id}: canceled in Dagster, pipeline {run.tags[PIPELINE_TAG]} canceled"
        return None
    if job.status in WAITING:
        if now() - float(run.tags.get(CREATED_AT_TAG) or now()) < pending_timeout_s:
            return None
        cancel_pipeline(client, int(run.tags[PIPELINE_TAG]))
        tags = ", ".join(f"`{tag}`" for tag in job.tags) or "(none: any untagged runner)"
        instance.report_run_failed(run, f"no runner with tag {tags} picked up job {job.id} in "
                                        f"{pending_timeout_s / 60:g} min: pipeline {run.tags[PIPELINE_TAG]} canceled")
        return f"run {run.run_id}: job {job.id} waited past {pending_timeout_s:g} s, pipeline canceled"
    if job.status == "canceled" or job.status == "skipped":
        instance.report_run_canceled(run, f"GitLab pipeline {run.tags[PIPELINE_TAG]} was canceled (job {job.id}).")
        _report_log(instance, client, run, job, masker)
        return f"run {run.run_id}: canceled in GitLab"
    if job.status in FINISHED:
        # The job's process has exited and its run still is not over: it ended before the run could say so.
        latest = instance.get_run_by_id(run.run_id)
        if latest is not None and latest.status in _UNFINISHED:
            tail = masker.mask(job_trace_tail(client, job.id, max_chars=TRACE_TAIL_CHARS))
            instance.report_run_failed(latest, f"GitLab job {job.id} {job.status} before the run ended ({job.web_url}); "
                                               f"its log ends:\n{_last_lines(tail)}")
            _mark_log_reported(instance, run)
            return f"run {run.run_id}: job {job.id} ended first, run failed"
    return None


def _report_log(instance: dg.DagsterInstance, client: GitLabClient, run: dg.DagsterRun, job: Job, masker: Masker) -> None:
    tail = masker.mask(job_trace_tail(client, job.id, max_chars=TRACE_TAIL_CHARS))
    instance.report_engine_event(f"GitLab job {job.id} {job.status}: {job.web_url}\nIts log ends:\n{_last_lines(tail)}", run)
    _mark_log_reported(instance, run)


def _mark_log_reported(instance: dg.DagsterInstance, run: dg.DagsterRun) -> None:
    instance.add_run_tags(run.run_id, {JOB_STATUS_TAG: LOG_REPORTED})


def _last_lines(text: str, count: int = 40) -> str:
    return "\n".join(text.rstrip().splitlines()[-count:])


def run_notebooks(instance: dg.DagsterInstance, run: dg.DagsterRun) -> set[str]:
    """The steps the run executes: its notebooks' asset names."""
    if run.execution_plan_snapshot_id:
        return set(instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id).step_keys_to_execute)
    return {key.to_user_string() for key in run.asset_selection or ()}

