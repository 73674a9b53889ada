"""Training tracked by a real ``mlflow server`` on 127.0.0.1 (SQLite backend), started and stopped here."""

from __future__ import annotations

import json

import pytest
from mlflow.tracking import MlflowClient
from mlflow_serve import mlflow_server as serve
from sandbox import make_sandbox

pytestmark = pytest.mark.slow  # starts `mlflow server` and trains through the CLI


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory):
    root = tmp_path_factory.mktemp("mlflow-server")
    with serve(root / "server.db", root) as url:
        yield url


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
