"""A ``ds-pipelines run`` killed mid-run (a CI job timeout, the OOM killer) leaves a STARTED run holding its GPU
slot in the shared Postgres instance; the deployment's ``dead_runs`` sensor fails it once its heartbeat is
stale and frees the slot, so the next GPU notebook runs.

Everything is real: the CLI in its own process group (SIGKILLed with its kernel), the test's PostgreSQL server,
the sensor evaluated on that instance. Only time is short-cut: instead of waiting five minutes, the killed
process's last heartbeat is set back by that much, as if they had passed.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml
from gitrepo import notebook_json
from sandbox import CLI

from ds_pipelines.defs.runs.sensors import dead_runs
from ds_pipelines.execution.heartbeat import DEAD_AFTER_S, HEARTBEAT_INTERVAL_S, HEARTBEAT_TAG, WORKER_TAG
from ds_pipelines.execution.instance import GPU_POOL, INSTANCE_SETTINGS, POSTGRES_STORAGE, POSTGRES_URL_ENV

pytestmark = pytest.mark.slow  # notebooks through the CLI on Postgres

STARTED_TIMEOUT_S = 120


def gpu_project(root: Path) -> Path:
    (root / "notebooks").mkdir(parents=True)
    marker = root / "long.started"
    long_cell = f"import pathlib, time\npathlib.Path({str(marker)!r}).touch()\ntime.sleep(600)\n"
    (root / "notebooks" / "long.ipynb").write_text(notebook_json(long_cell))
    (root / "notebooks" / "quick.ipynb").write_text(notebook_json("print('quick')"))
    (root / "configs").mkdir()
    registry = {"notebooks": {f"notebooks/{name}.ipynb": {"device": "gpu"} for name in ("long", "quick")},
                "triggers": {"gpu_concurrency": 1}}
    (root / "configs" / "notebooks.yaml").write_text(yaml.safe_dump(registry))
    return marker


def test_a_killed_run_is_failed_and_frees_its_gpu_slot(sandbox, postgres, tmp_path: Path, monkeypatch):
    project = tmp_path / "project"
    marker = gpu_project(project)
    home = tmp_path / "dagster-home"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_SETTINGS + POSTGRES_STORAGE)
    url = postgres.url(postgres.new_database())
    sandbox.env.update(DAGSTER_HOME=str(home), **{POSTGRES_URL_ENV: url})
    monkeypatch.setenv(POSTGRES_URL_ENV, url)  # the instance's dagster.yaml reads it, here too

    killed = subprocess.Popen([str(CLI), "run", "long", "--project-dir", str(project)], env=sandbox.env, cwd=project,
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deadline = time.monotonic() + STARTED_TIMEOUT_S
        while not marker.exists():
            assert killed.poll() is None and time.monotonic() < deadline, killed.stdout.read() if killed.poll() is not None else "not started"
            time.sleep(0.2)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            [run] = instance.get_runs()
            assert run.tags[WORKER_TAG].split(":")[1] == str(killed.pid)
            assert instance.event_log_storage.get_concurrency_info(GPU_POOL).active_run_ids == {run.run_id}
            # The process beats on its run: the tag appears within one heartbeat interval, and moves on.
            deadline = time.monotonic() + HEARTBEAT_INTERVAL_S + 30
            while HEARTBEAT_TAG not in (beaten := instance.get_run_by_id(run.run_id)).tags:
                assert time.monotonic() < deadline, "no heartbeat on the run"
                time.sleep(1)
            assert abs(float(beaten.tags[HEARTBEAT_TAG]) - time.time()) < HEARTBEAT_INTERVAL_S + 30
            with dg.build_sensor_context(instance=instance) as context:
                alive = dead_runs(context)
            assert alive.skip_message == "no dead runs"  # beating: left alone
            assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
    finally:
        os.killpg(killed.pid, signal.SIGKILL)
        killed.communicate(timeout=60)

    with dg.DagsterInstance.from_config(str(home)) as instance:
        # What the kill leaves: a run that says it is running, holding the only GPU slot.
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.STARTED
        assert instance.event_log_storage.get_concurrency_info(GPU_POOL).active_run_ids == {run.run_id}
        # Five minutes pass without a beat.
        last = float(instance.get_run_by_id(run.run_id).tags[HEARTBEAT_TAG])
        instance.add_run_tags(run.run_id, {HEARTBEAT_TAG: repr(last - DEAD_AFTER_S)})

        with dg.build_sensor_context(instance=instance) as context:
            reaped = dead_runs(context)

        assert reaped.skip_message == "failed 1 dead runs, freeing their slots"
        assert instance.get_run_by_id(run.run_id).status == dg.DagsterRunStatus.FAILURE
        failure = instance.get_records_for_run(run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records[0]
        assert f"the process executing this run ({run.tags[WORKER_TAG]}) stopped: no heartbeat since" in failure.event_log_entry.message
        assert instance.event_log_storage.get_concurrency_info(GPU_POOL).active_run_ids == set()

    quick = subprocess.run([str(CLI), "run", "quick", "--project-dir", str(project)], env=sandbox.env, cwd=project,
                           capture_output=True, text=True, timeout=300)
    assert quick.returncode == 0, quick.stdout[-2000:] + quick.stderr[-2000:]
    assert "notebooks/quick.ipynb succeeded" in quick.stdout + quick.stderr
