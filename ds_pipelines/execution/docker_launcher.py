"""The deployment's run launcher: every run in its own container of the project image, GPU notebooks' with the GPUs.

``deploy/dagster.yaml`` names ``NotebookDockerRunLauncher``. It is dagster-docker's ``DockerRunLauncher`` (image
from the code location, environment variables passed by name, container settings from the instance and the
code location's ``container_context``) with these differences:

- A run that materializes a ``device: gpu`` notebook gets a GPU device request, what ``docker run --gpus all``
  asks for; a CPU run gets none. The launcher reads this from the run itself: its execution plan snapshot
  (stored with the run, whoever launched it: the UI, a sensor, a schedule, GraphQL) lists the steps it
  executes with their op tags, and a GPU notebook's op carries ``DEVICE_TAG: gpu``; the commit sensor's and
  the schedule's runs carry that tag as a run tag, with the device of the notebook they run.
- An environment variable named in ``env_vars`` that the launcher's own environment does not set is left
  out, rather than failing every launch: the Slack or GitLab settings of a deployment without them.
- The container of a run that may execute a commit's code (``project.run_environment.runs_commit_code``: the
  commit sensor's and the schedule's jobs, whatever their tags) gets the allow-listed variables only
  (``commit_run_container_variables``): no GitLab or Slack token, which the commit's code could read from
  the container's other processes.
- A commit sensor's run also gets a volume of its commit's own at ``COMMIT_MOUNT`` (``COMMIT_DIR_ENV``): it
  copies the commit's files there from the sensor's checkout, which ``deploy/dagster.yaml`` mounts read-only,
  and its notebooks' outputs stay there for the commit's later runs. No run of another commit mounts it, so
  none can change the files or outputs a commit's notebooks read. The launcher keeps the
  ``COMMIT_VOLUMES_KEPT`` volumes created last and those of runs still to finish, and removes the others.
- A container that Docker creates but cannot start (a GPU run on a host without the NVIDIA runtime) fails
  the run at once with Docker's reason and what to check, instead of an unexplained launch error.
- Dagster's run monitoring (on in deploy/dagster.yaml) asks the launcher whether each running run's worker
  is alive. The runs of ``ds-pipelines run`` processes (GitLab CI jobs, tagged ``WORKER_TAG``) have no
  container: they are reported running, and judged by their heartbeat instead (the ``dead_runs`` sensor,
  ``execution.heartbeat``); dagster-docker alone would fail every CI run as "no container".
"""

from __future__ import annotations

import os
import re
from pathlib import PurePosixPath
from typing import Any

import dagster as dg
import docker
import docker.errors
from dagster_docker import DockerRunLauncher
from dagster_docker.container_context import DockerContainerContext
from dagster_docker.docker_run_launcher import DOCKER_CONTAINER_ID_TAG

# The health result types, as dagster-docker's launcher module imports them: Dagster does not export them at
# its top level (tests/test_docker_launcher.py fails loudly if an upgrade moves them).
from dagster_docker.docker_run_launcher import CheckRunHealthResult, WorkerStatus
from ds_pipelines.execution.heartbeat import WORKER_TAG
from ds_pipelines.execution.instance import DEVICE_TAG, GPU, GPU_POOL
from ds_pipelines.project.run_environment import (
    COMMIT_DIR_ENV,
    COMMIT_NOTEBOOK_JOB,
    commit_run_container_variables,
    runs_commit_code,
)

GPU_DEVICE_REQUESTS: list[dict[str, Any]] = [{"Driver": "nvidia", "Count": -1, "Capabilities": [["gpu"]]}]
"""All of the host's GPUs through the NVIDIA container runtime: ``docker run --gpus all``."""
COMMIT_MOUNT = "/app/commit"
"""Where a commit run's container mounts its commit's volume: a folder of the image owned by its user, which
an empty volume takes as its owner when first mounted."""
COMMIT_VOLUME_PREFIX = "ds-pipelines-commit-"
COMMIT_VOLUME_LABEL = "io.ds-pipelines.commit"
COMMIT_VOLUMES_KEPT = 20
"""As many as the commit sensor's checkouts by default (``triggers.keep_checkouts``)."""
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_UNFINISHED = [dg.DagsterRunStatus.QUEUED, dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING,
               dg.DagsterRunStatus.STARTED, dg.DagsterRunStatus.CANCELING]


def commit_of(run: dg.DagsterRun) -> str | None:
    """The commit a commit sensor's run executes: the name of the checkout its config names (a SHA)."""
    if run.job_name != COMMIT_NOTEBOOK_JOB:
        return None
    for op in ((run.run_config or {}).get("ops") or {}).values():
        name = PurePosixPath(str(((op or {}).get("config") or {}).get("project_dir", ""))).name
        if _SHA.fullmatch(name):
            return name
    return None


def runs_gpu_notebook(instance: dg.DagsterInstance, run: dg.DagsterRun) -> bool:
    """Whether ``run`` executes a GPU notebook: the run is tagged ``DEVICE_TAG: gpu`` (a commit sensor's or the
    schedule's run, whose one step runs the notebook with ``ds-pipelines run``), or a step of its execution plan
    snapshot is (a notebook asset's op)."""
    if run.tags.get(DEVICE_TAG) == GPU:
        return True
    if run.execution_plan_snapshot_id:
        plan = instance.get_execution_plan_snapshot(run.execution_plan_snapshot_id)
        selected = set(plan.step_keys_to_execute)
        return any(step.key in selected and (step.tags or {}).get(DEVICE_TAG) == GPU for step in plan.steps)
    # A run stored without its plan (none of the ways this deployment creates runs): the pools it claims.
    concurrency = run.run_op_concurrency
    return bool(concurrency and GPU_POOL in (concurrency.all_pools or ()))


def _with_volume(volumes: dict | list | None, name: str) -> dict | list:
    """The container's ``volumes`` (docker-py's mapping or ``name:bind:mode`` list) and the commit's volume."""
    if isinstance(volumes, list):
        return [*volumes, f"{name}:{COMMIT_MOUNT}:rw"]
    return {**(volumes or {}), name: {"bind": COMMIT_MOUNT, "mode": "rw"}}


class NotebookDockerRunLauncher(DockerRunLauncher):
    """``DockerRunLauncher`` with GPU device requests for GPU notebooks' runs (see the module's description)."""

    def get_container_context(self, dagster_run: dg.DagsterRun) -> DockerContainerContext:
        context = super().get_container_context(dagster_run)
        env_vars = [name for name in context.env_vars if "=" in name or name in os.environ]
        if runs_commit_code(dagster_run.job_name):
            env_vars = commit_run_container_variables(env_vars, os.environ)
        context = DockerContainerContext(
            registry=context.registry,
            env_vars=env_vars,
            networks=context.networks,
            container_kwargs=context.container_kwargs,
        )
        if runs_gpu_notebook(self._instance, dagster_run):
            context = context.merge(DockerContainerContext(container_kwargs={"device_requests": GPU_DEVICE_REQUESTS}))
        commit = commit_of(dagster_run)
        if commit:
            context = DockerContainerContext(
                registry=context.registry,
                env_vars=[*context.env_vars, f"{COMMIT_DIR_ENV}={COMMIT_MOUNT}"],
                networks=context.networks,
                container_kwargs={**context.container_kwargs,
                                  "volumes": _with_volume(context.container_kwargs.get("volumes"), COMMIT_VOLUME_PREFIX + commit)},
            )
        return context

    def launch_run(self, context) -> None:
        try:
            self._prepare_commit_volume(context.dagster_run)
            super().launch_run(context)
        except docker.errors.APIError as exc:
            raise RuntimeError(self._start_failure(context.dagster_run, exc)) from exc

    def resume_run(self, context) -> None:
        try:
            super().resume_run(context)
        except docker.errors.APIError as exc:
            raise RuntimeError(self._start_failure(context.dagster_run, exc)) from exc

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        if run.tags.get(WORKER_TAG) and not run.tags.get(DOCKER_CONTAINER_ID_TAG):
            return CheckRunHealthResult(WorkerStatus.RUNNING, msg=f"executed by {run.tags[WORKER_TAG]}, judged by its heartbeat")
        health = super().check_run_worker_health(run)
        if health.status == WorkerStatus.NOT_FOUND and run.tags.get(DOCKER_CONTAINER_ID_TAG):
            # deploy/dagster.yaml's auto_remove: the container exited without the run recording its end.
            return CheckRunHealthResult(WorkerStatus.FAILED, msg=(
                f"the container of run {run.run_id} ({run.tags[DOCKER_CONTAINER_ID_TAG][:12]}) exited before the run "
                "ended and was removed (auto_remove): it was killed (out of memory, docker kill) or crashed; what "
                "it printed is in the run's captured logs"))
        return health

    def _prepare_commit_volume(self, run: dg.DagsterRun) -> None:
        """Creates the volume of a commit run's commit (labelled, with the container's labels), then removes
        those beyond the ``COMMIT_VOLUMES_KEPT`` created last, except those of runs still to finish."""
        commit = commit_of(run)
        if not commit:
            return
        client = docker.from_env()
        name = COMMIT_VOLUME_PREFIX + commit
        try:
            client.volumes.get(name)
        except docker.errors.NotFound:
            labels = {**(self.get_container_context(run).container_kwargs.get("labels") or {}), COMMIT_VOLUME_LABEL: commit}
            client.volumes.create(name, labels=labels)
        in_use = {commit} | {sha for other in self._instance.get_runs(
            filters=dg.RunsFilter(job_name=COMMIT_NOTEBOOK_JOB, statuses=_UNFINISHED)) if (sha := commit_of(other))}
        volumes = sorted(client.volumes.list(filters={"label": COMMIT_VOLUME_LABEL}),
                         key=lambda volume: volume.attrs.get("CreatedAt", ""), reverse=True)
        for volume in volumes[COMMIT_VOLUMES_KEPT:]:
            if (volume.attrs.get("Labels") or {}).get(COMMIT_VOLUME_LABEL) not in in_use:
                try:
                    volume.remove()
                except docker.errors.APIError:  # mounted by a container still there: removed by a later launch
                    pass

    def _start_failure(self, run: dg.DagsterRun, exc: docker.errors.APIError) -> str:
        reason = exc.explanation or str(exc)
        message = f"Docker could not create or start the container of run {run.run_id}: {reason}."
        if runs_gpu_notebook(self._instance, run):
            message += (" The run executes a GPU notebook (device: gpu) and asks for all GPUs (docker run --gpus all):"
                        " the Docker host needs NVIDIA GPUs and the NVIDIA Container Toolkit.")
        stored = self._instance.get_run_by_id(run.run_id)
        # With auto_remove (deploy/dagster.yaml) Docker removes a container it could not start, too.
        if stored and stored.tags.get(DOCKER_CONTAINER_ID_TAG) and self._get_container(stored) is not None:
            message += f" The container is kept for inspection: {stored.tags[DOCKER_CONTAINER_ID_TAG]}."
        return message
