"""The deployment's run launcher: each run in a container of the Docker host, or on GitLab's runners.

``deploy/dagster.yaml`` names ``NotebookRunLauncher`` and chooses with ``execute_on``:

- ``docker`` (the default): ``NotebookDockerRunLauncher`` (``execution.docker_launcher``), a container of the
  project image per run, with the GPUs for a GPU notebook's run.
- ``gitlab``: every run becomes one GitLab pipeline whose ``dagster-run`` job executes it on the runner of its
  notebooks' device (``execution.gitlab_runs``). Terminate cancels the pipeline; run monitoring asks the job's
  state; the ``gitlab_runs`` sensor fails runs no runner took within ``gitlab.pending_timeout_s`` and cancels
  runs whose pipeline was canceled in GitLab. The GitLab project and token are read, by name, from the
  environment of the daemon and the webserver (``GITLAB_URL``, ``GITLAB_PROJECT_ID``, ``GITLAB_TOKEN``).

A run launcher, rather than Dagster Pipes, because the run then is the one Dagster run of the UI: the job
executes it against the shared Postgres instance, as CI's runs already do, so logs, materializations and
checks arrive as they happen, with nothing to translate back (ARCHITECTURE.md).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any

import dagster as dg

from ds_pipelines.execution import gitlab_runs
from ds_pipelines.execution.docker_launcher import CheckRunHealthResult, NotebookDockerRunLauncher, WorkerStatus
from ds_pipelines.gitlab import GitLabClient, GitLabError, GitLabSettings
from ds_pipelines.gitlab.pipelines import FINISHED
from ds_pipelines.project import PROJECT_DIR_ENV
from ds_pipelines.project.run_environment import hide_environment
from ds_pipelines.project.work_tree import ask_git

if TYPE_CHECKING:
    from collections.abc import Mapping

# The daemon and the webserver load this launcher: they hold the GitLab token and the database URL, and runs
# of commits may execute beside them as the same user (dagster dev): not through /proc.
hide_environment()

DOCKER, GITLAB = "docker", "gitlab"
COMMIT_ENV = "DS_PIPELINES_COMMIT"
"""The commit the code location serves, where its project folder is no git work tree (an image's copy)."""


class NotebookRunLauncher(NotebookDockerRunLauncher):
    """See the module's description; the Docker settings are ``NotebookDockerRunLauncher``'s."""

    def __init__(self, inst_data=None, execute_on: str = DOCKER, gitlab: Mapping[str, Any] | None = None, **docker):
        super().__init__(inst_data=inst_data, **docker)
        self.execute_on = execute_on
        settings = dict(gitlab or {})
        self.gitlab_ref: str | None = settings.get("ref")
        self.pending_timeout_s: int = settings.get("pending_timeout_s", gitlab_runs.PENDING_TIMEOUT_S)

    @classmethod
    def config_type(cls):
        return {
            **NotebookDockerRunLauncher.config_type(),
            "execute_on": dg.Field(dg.Enum("ExecuteOn", [dg.EnumValue(DOCKER), dg.EnumValue(GITLAB)]), default_value=DOCKER,
                                   description="docker: a container per run; gitlab: a GitLab pipeline per run."),
            "gitlab": dg.Field({
                "ref": dg.Field(str, is_required=False,
                                description="Protected branch of the pipelines (default: the project's default branch)."),
                "pending_timeout_s": dg.Field(int, default_value=gitlab_runs.PENDING_TIMEOUT_S,
                                              description="Seconds a job may wait for a runner."),
            }, is_required=False),
        }

    @property
    def on_gitlab(self) -> bool:
        return self.execute_on == GITLAB

    def gitlab_client(self) -> GitLabClient:
        return GitLabClient(GitLabSettings.from_env())

    def launch_run(self, context) -> None:
        if not self.on_gitlab:
            return super().launch_run(context)
        monitoring_limit = self._instance.run_monitoring_start_timeout_seconds
        if self._instance.run_monitoring_enabled and monitoring_limit < self.pending_timeout_s:
            # Run monitoring would fail the run while its job still may wait for a runner: say so now, not then.
            raise gitlab_runs.LaunchError(
                f"run {context.dagster_run.run_id} was not launched on GitLab: run_monitoring.start_timeout_seconds "
                f"({monitoring_limit}) is below the run launcher's gitlab.pending_timeout_s ({self.pending_timeout_s}) "
                "in the instance's dagster.yaml: a run is starting while its job waits for a runner, so monitoring "
                "would fail it first. Raise start_timeout_seconds to at least pending_timeout_s")
        try:
            client = self.gitlab_client()
        except GitLabError as exc:
            raise gitlab_runs.LaunchError(f"run {context.dagster_run.run_id} was not launched on GitLab: {exc}") from None
        gitlab_runs.launch(self._instance, context.dagster_run, client, ref=self.gitlab_ref, served_commit=_served_commit())
        return None

    def terminate(self, run_id: str) -> bool:
        run = self._instance.get_run_by_id(run_id)
        if run is None or not gitlab_runs.launched_on_gitlab(run):
            return super().terminate(run_id)
        if run.is_finished:
            return False
        gitlab_runs.cancel(self._instance, self.gitlab_client(), run)
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        if not gitlab_runs.launched_on_gitlab(run):
            return super().check_run_worker_health(run)
        try:
            job = gitlab_runs.current_job(self.gitlab_client(), run)
        except GitLabError as exc:
            return CheckRunHealthResult(WorkerStatus.UNKNOWN, msg=str(exc))
        if job is None or job.status not in FINISHED or job.status == "canceled":
            # Waiting, running, or canceled: the gitlab_runs sensor fails runs left waiting and cancels these.
            return CheckRunHealthResult(WorkerStatus.RUNNING, msg=f"GitLab job {job.status if job else 'not created yet'}")
        if job.status == "success":
            return CheckRunHealthResult(WorkerStatus.SUCCESS, msg=f"GitLab job {job.id} succeeded")
        return CheckRunHealthResult(WorkerStatus.FAILED, msg=f"GitLab job {job.id} {job.status}: {job.web_url}")

    def follow_gitlab_runs(self) -> list[str]:
        """For the ``gitlab_runs`` sensor (``execution.gitlab_runs.follow``)."""
        if not self.on_gitlab:
            return []
        return gitlab_runs.follow(self._instance, self.gitlab_client(), pending_timeout_s=self.pending_timeout_s)


def _served_commit() -> str | None:
    """The commit of the code location's project: its git HEAD, else ``DS_PIPELINES_COMMIT``."""
    root = os.environ.get(PROJECT_DIR_ENV)
    if root:
        answer = ask_git(Path(root), "rev-parse", "--verify", "HEAD")
        if answer is not None and answer.returncode == 0:
            return answer.stdout.strip()
    return os.environ.get(COMMIT_ENV) or None
