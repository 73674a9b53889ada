"""``dagster dev -w workspace.yaml`` serves the UI with one asset per notebook, the sensors and the schedule."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from dagster_webserver import graphql, stop_process_group
from mlflow_serve import free_port
from sandbox import REPO

pytestmark = pytest.mark.slow  # starts `dagster dev`

STARTUP_TIMEOUT_S = 180
ASSETS_QUERY = "{ assetNodes { assetKey { path } description } }"
TRIGGERS_QUERY = ("{ repositoriesOrError { ... on RepositoryConnection { nodes { "
                  "sensors { name } schedules { name cronSchedule } } } } }")


def test_dagster_dev_serves_the_notebook_assets_sensors_and_schedule(tmp_path: Path):
    port = free_port()
    env = {**{k: v for k, v in os.environ.items() if k != "DS_PIPELINES_PROJECT_DIR"}, "DAGSTER_HOME": str(tmp_path)}
    (tmp_path / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml", "--host", "127.0.0.1", "--port", str(port)],
        cwd=REPO, env=env, stdout=open(tmp_path / "dev.log", "w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                nodes = graphql(port, ASSETS_QUERY)["assetNodes"]
                if nodes:
                    repository = graphql(port, TRIGGERS_QUERY)["repositoriesOrError"]["nodes"][0]
                    break
            except (OSError, KeyError, TypeError):
                pass
            assert server.poll() is None and time.monotonic() < deadline, (tmp_path / "dev.log").read_text()[-3000:]
            time.sleep(1)
    finally:
        stop_process_group(server)
    keys = sorted(node["assetKey"]["path"][0] for node in nodes)
    assert keys == ["inference_example", "training_example"]
    assert all(not node["description"].startswith("/") for node in nodes)
    assert sorted(sensor["name"] for sensor in repository["sensors"]) == [
        "dead_runs", "gitlab_commits", "gitlab_runs", "gitlab_tags", "publish_failed_notebook_runs",
        "publish_succeeded_notebook_runs", "slack_on_run_failure"]
    assert repository["schedules"] == [{"name": "scoring", "cronSchedule": "0 6 * * *"}]
