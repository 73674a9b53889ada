"""The deployment's run launcher asks Docker for the GPUs only for runs that execute a ``device: gpu`` notebook.

Unit level: runs are created in a test instance from the project's notebooks job, as the webserver or the daemon
creates them (with their execution plan snapshot), and the launcher's container settings are read without
Docker. tests/test_docker_deployment.py launches real containers.
"""

from __future__ import annotations

import time
import uuid
from pathlib import Path

import dagster as dg
import docker
import pytest
import yaml
from dagster_docker.docker_run_launcher import DOCKER_CONTAINER_ID_TAG
from gitrepo import notebook_json
from images import run as run_command
from required import require

from ds_pipelines.defs.notebooks.definitions import NOTEBOOKS_JOB, build_definitions
from ds_pipelines.defs.triggers.notebook_runs import commit_notebook_job, scheduled_notebook_job
from ds_pipelines.execution.docker_launcher import (
    COMMIT_MOUNT,
    COMMIT_VOLUME_LABEL,
    COMMIT_VOLUME_PREFIX,
    COMMIT_VOLUMES_KEPT,
    GPU_DEVICE_REQUESTS,
    NotebookDockerRunLauncher,
    WorkerStatus,
)
from ds_pipelines.execution.heartbeat import WORKER_TAG
from ds_pipelines.execution.instance import DEVICE_TAG
from ds_pipelines.project.run_environment import COMMIT_DIR_ENV
from ds_pipelines.project import Project

LAUNCHER = {
    "module": "ds_pipelines.execution.docker_launcher",
    "class": "NotebookDockerRunLauncher",
    "config": {
        "image": "ds-pipelines:test",
        "env_vars": ["DAGSTER_POSTGRES_URL", "SLACK_WEBHOOK_URL", "FIXED=value", "GITLAB_TOKEN", "MLFLOW_TRACKING_URI",
                     "DS_PIPELINES_PROJECT_DIR=/project"],
        "container_kwargs": {"network_mode": "host"},
    },
}


def device_project(root: Path) -> Project:
    (root / "notebooks").mkdir(parents=True)
    for name in ("cpu_note", "gpu_note"):
        (root / "notebooks" / f"{name}.ipynb").write_text(notebook_json(f"print('{name}')"))
    (root / "configs").mkdir()
    registry = {"notebooks": {"notebooks/gpu_note.ipynb": {"device": "gpu"},
                              "notebooks/cpu_note.ipynb": {"after": ["notebooks/gpu_note.ipynb"]}}}
    (root / "configs" / "notebooks.yaml").write_text(yaml.safe_dump(registry))
    return Project(root)


@pytest.fixture
def launched(tmp_path, monkeypatch):
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", "postgresql://u:p@127.0.0.1:5432/dagster")
    monkeypatch.delenv("SLACK_WEBHOOK_URL", raising=False)
    monkeypatch.setenv("GITLAB_TOKEN", "glpat-held-by-the-daemon")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    job = build_definitions(device_project(tmp_path / "project")).resolve_job_def(NOTEBOOKS_JOB)
    with dg.instance_for_test(overrides={"run_launcher": LAUNCHER}) as instance:
        launcher = instance.run_launcher
        assert isinstance(launcher, NotebookDockerRunLauncher)

        def context(*assets: str, tags: dict[str, str] | None = None):
            run = instance.create_run_for_job(job, asset_selection={dg.AssetKey(a) for a in assets} if assets else None,
                                              tags=tags)
            return launcher.get_container_context(run)

        yield context


def test_a_cpu_run_gets_no_device_request(launched):
    context = launched("cpu_note")
    assert "device_requests" not in context.container_kwargs
    assert context.container_kwargs == {"network_mode": "host"}


def test_a_run_with_a_gpu_notebook_gets_all_gpus(launched):
    for selection in [("gpu_note",), ("gpu_note", "cpu_note"), ()]:
        context = launched(*selection)
        assert context.container_kwargs["device_requests"] == GPU_DEVICE_REQUESTS, selection
        assert context.container_kwargs["network_mode"] == "host"


def test_a_run_tagged_with_the_gpu_device_gets_all_gpus(launched):
    # The commit sensor's and the schedule's runs: one op that runs the notebook with `ds-pipelines run`,
    # tagged with that notebook's device.
    assert launched("cpu_note", tags={DEVICE_TAG: "gpu"}).container_kwargs["device_requests"] == GPU_DEVICE_REQUESTS
    assert "device_requests" not in launched("cpu_note", tags={DEVICE_TAG: "cpu"}).container_kwargs


def test_names_of_unset_variables_are_left_out(launched):
    # Passed by name from the launcher's environment; an unset one (no Slack here) would fail every launch.
    assert launched("cpu_note").env_vars == ["DAGSTER_POSTGRES_URL", "FIXED=value", "GITLAB_TOKEN", "MLFLOW_TRACKING_URI",
                                             "DS_PIPELINES_PROJECT_DIR=/project"]


def test_every_run_of_the_folder_run_jobs_gets_the_allow_listed_variables_only(tmp_path, monkeypatch):
    """Its init and Dagster's log capture hold the container's environment, readable by the commit's code. A
    commit's code holds the instance's Postgres URL, so it can create a run in the instance's database, with any
    tags: the job decides."""
    monkeypatch.setenv("DAGSTER_POSTGRES_URL", "postgresql://u:p@127.0.0.1:5432/dagster")
    monkeypatch.setenv("GITLAB_TOKEN", "glpat-held-by-the-daemon")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5000")
    folder = {"notebook": "notebooks/x.ipynb", "project_dir": str(tmp_path / "checkouts" / ("a" * 40))}
    with dg.instance_for_test(overrides={"run_launcher": LAUNCHER}) as instance:
        for job, op, commit_dir in [(commit_notebook_job, "run_commit_notebook", [f"{COMMIT_DIR_ENV}={COMMIT_MOUNT}"]),
                                    (scheduled_notebook_job, "run_scheduled_notebook", [])]:
            run = instance.create_run_for_job(job, run_config={"ops": {op: {"config": folder}}})
            assert instance.run_launcher.get_container_context(run).env_vars == [
                "DAGSTER_POSTGRES_URL", "MLFLOW_TRACKING_URI", "DS_PIPELINES_PROJECT_DIR=/project", *commit_dir], job.name


def commit_run(instance: dg.DagsterInstance, sha: str) -> dg.DagsterRun:
    config = {"notebook": "notebooks/x.ipynb", "project_dir": f"/app/.ds-pipelines/checkouts/{sha}"}
    return instance.create_run_for_job(commit_notebook_job, run_config={"ops": {"run_commit_notebook": {"config": config}}})


def test_a_commit_run_mounts_a_volume_of_its_commits_own_and_no_other(tmp_path):
    launcher = {**LAUNCHER, "config": {**LAUNCHER["config"], "container_kwargs": {"volumes": {
        "ds-pipelines-storage": {"bind": "/app/.ds-pipelines", "mode": "rw"},
        "ds-pipelines-checkouts": {"bind": "/app/.ds-pipelines/checkouts", "mode": "ro"}}}}}
    with dg.instance_for_test(overrides={"run_launcher": launcher}) as instance:
        first, second = (instance.run_launcher.get_container_context(commit_run(instance, sha)).container_kwargs["volumes"]
                         for sha in ("1" * 40, "2" * 40))
        notebooks = instance.run_launcher.get_container_context(instance.create_run_for_job(
            build_definitions(device_project(tmp_path / "project")).resolve_job_def(NOTEBOOKS_JOB))).container_kwargs
    assert first == {"ds-pipelines-storage": {"bind": "/app/.ds-pipelines", "mode": "rw"},
                     "ds-pipelines-checkouts": {"bind": "/app/.ds-pipelines/checkouts", "mode": "ro"},
                     COMMIT_VOLUME_PREFIX + "1" * 40: {"bind": COMMIT_MOUNT, "mode": "rw"}}
    assert COMMIT_VOLUME_PREFIX + "2" * 40 in second and COMMIT_VOLUME_PREFIX + "1" * 40 not in second
    assert not any(name.startswith(COMMIT_VOLUME_PREFIX) for name in notebooks["volumes"])


def test_the_launcher_creates_commit_volumes_and_keeps_the_newest_and_those_of_unfinished_runs(tmp_path):
    """Against the real Docker daemon: the volumes carry the containers' labels, so this test removes its own."""
    if run_command("docker", "info", timeout=60).returncode != 0:
        require("no Docker daemon answers `docker info`: apt-get install docker.io, then start dockerd")
    client = docker.from_env()
    label = f"ds-pipelines-test-launcher={uuid.uuid4().hex[:10]}"
    launcher = {**LAUNCHER, "config": {**LAUNCHER["config"], "container_kwargs": {"labels": dict([label.split("=")])}}}
    try:
        with dg.instance_for_test(overrides={"run_launcher": launcher}) as instance:
            unfinished = uuid.uuid4().hex + "0" * 8
            # Its volume is the oldest, and its run has not started.
            instance.run_launcher._prepare_commit_volume(commit_run(instance, unfinished))
            time.sleep(1.1)  # Docker's creation times are in seconds
            olds = [uuid.uuid4().hex + f"{n:08x}" for n in range(COMMIT_VOLUMES_KEPT)]
            for sha in olds:
                client.volumes.create(COMMIT_VOLUME_PREFIX + sha, labels={COMMIT_VOLUME_LABEL: sha, **dict([label.split("=")])})
            time.sleep(1.1)  # Docker's creation times are in seconds
            newest = uuid.uuid4().hex + "f" * 8
            instance.run_launcher._prepare_commit_volume(commit_run(instance, newest))
            # The unfinished run's volume stays; so does the newest, and the rest of COMMIT_VOLUMES_KEPT.
            kept = {volume.attrs["Labels"][COMMIT_VOLUME_LABEL]: volume for volume in client.volumes.list(filters={"label": label})}
        assert unfinished in kept and newest in kept and len(kept) == COMMIT_VOLUMES_KEPT + 1
        assert kept[newest].attrs["Labels"] == {COMMIT_VOLUME_LABEL: newest, **dict([label.split("=")])}
        assert kept[newest].name == COMMIT_VOLUME_PREFIX + newest
    finally:
        for volume in client.volumes.list(filters={"label": label}):
            volume.remove(force=True)


def test_every_notebook_op_carries_its_device(tmp_path):
    defs = build_definitions(device_project(tmp_path / "project"))
    tags = {node.name: node.definition.tags[DEVICE_TAG] for node in defs.resolve_job_def(NOTEBOOKS_JOB).nodes}
    assert tags == {"gpu_note": "gpu", "cpu_note": "cpu"}


def test_run_monitoring_judges_ci_runs_by_heartbeat_and_launched_runs_by_their_container(tmp_path):
    """Dagster's run monitoring asks the launcher about every running run. A ``ds-pipelines run`` process's run
    (a CI job) has no container: reported running (the dead_runs sensor watches its heartbeat), never failed
    as "no container"; a run this launcher started and whose container is gone is not running."""
    job = build_definitions(device_project(tmp_path / "project")).resolve_job_def(NOTEBOOKS_JOB)
    with dg.instance_for_test(overrides={"run_launcher": LAUNCHER}) as instance:
        ci_run = instance.create_run_for_job(job, tags={WORKER_TAG: "runner-7:4242:abcd1234"})
        launched_run = instance.create_run_for_job(job)

        ci_health = instance.run_launcher.check_run_worker_health(ci_run)
        launched_health = instance.run_launcher.check_run_worker_health(launched_run)

    assert ci_health.status == WorkerStatus.RUNNING and "runner-7:4242:abcd1234" in ci_health.msg
    assert launched_health.status == WorkerStatus.NOT_FOUND


def test_a_run_whose_removed_container_exited_before_it_ended_fails_saying_why(tmp_path):
    """deploy/dagster.yaml removes a container when it exits (auto_remove): one gone while its run is still
    running was killed or crashed, which run monitoring is told in words (Docker itself is asked, for real)."""
    if run_command("docker", "info", timeout=60).returncode != 0:
        require("no Docker daemon answers `docker info`: apt-get install docker.io, then start dockerd")
    deployed = yaml.safe_load((Path(__file__).resolve().parent.parent / "deploy/dagster.yaml").read_text())
    assert deployed["run_launcher"]["config"]["container_kwargs"]["auto_remove"] is True
    job = build_definitions(device_project(tmp_path / "project")).resolve_job_def(NOTEBOOKS_JOB)
    with dg.instance_for_test(overrides={"run_launcher": LAUNCHER}) as instance:
        gone = instance.create_run_for_job(job, tags={DOCKER_CONTAINER_ID_TAG: "0123456789ab" * 5 + "cdef"})
        health = instance.run_launcher.check_run_worker_health(gone)
    assert health.status == WorkerStatus.FAILED
    assert f"the container of run {gone.run_id} (0123456789ab) exited before the run ended" in health.msg
    assert "killed (out of memory, docker kill) or crashed" in health.msg
