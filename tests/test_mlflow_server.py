"""Training tracked by a real ``mlflow server`` on 127.0.0.1 (SQLite backend), started and stopped here."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from conftest import make_sandbox

STARTUP_TIMEOUT_S = 180


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{root / 'server.db'}",
            "--artifacts-destination", str(root / "artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        cwd=root, env=env, stdout=open(root / "server.log", "w"), stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so teardown also stops the workers it forks
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not become healthy:\n{(root / 'server.log').read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


def test_training_is_tracked_by_a_real_mlflow_server(mlflow_server, tmp_path):
    box = make_sandbox(tmp_path, tracking_uri=mlflow_server)
    result = box.cli("run", "training_example", "--config", f"training_example={box.training_config()}", "--json")
    assert result.returncode == 0, result.stderr[-3000:]
    training = json.loads(result.stdout)["notebooks"][0]
    client = MlflowClient(tracking_uri=mlflow_server)
    run = client.get_run(training["mlflow_run_id"])
    assert run.data.metrics["roc_auc"] > 0.95
    assert run.data.params["outcome"] == "target"
    assert client.get_experiment(run.info.experiment_id).name == "tests-training"
    assert [a.path for a in client.list_artifacts(run.info.run_id, "notebook")]
    versions = client.search_model_versions("name='tests-xgb'")
    assert [v.run_id for v in versions] == [run.info.run_id]
