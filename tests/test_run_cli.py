"""``ds-pipelines run``: the real notebooks through Dagster, and the results folder it leaves."""

from __future__ import annotations

import json
import re

import dagster as dg
import mlflow
import pandas as pd
import pytest
import xgboost
from mlflow.tracking import MlflowClient
from sklearn.metrics import roc_auc_score

pytestmark = pytest.mark.slow  # every test reads the session's `trained` run (notebooks through the CLI)


def test_training_then_inference_run_in_dependency_order(trained):
    box, result = trained
    summary = json.loads(result.stdout)
    assert [nb["notebook"] for nb in summary["notebooks"]] == [
        "notebooks/training_example.ipynb",
        "notebooks/inference_example.ipynb",
    ]
    assert summary["status"] == "success"
    assert "trial 4/4" in result.stderr and "best" in result.stderr  # Optuna progress
    assert "cell 3/" in result.stderr  # cells as they execute


def test_saved_model_loads_and_scores_well_on_the_held_out_set(trained):
    box, _ = trained
    model = xgboost.XGBClassifier()
    model.load_model(box.root / "out/training/xgb_model.json")
    holdout = pd.read_csv(box.root / "out/training/holdout.csv")
    features = holdout.drop(columns=["row_id", "target"])
    assert roc_auc_score(holdout["target"], model.predict_proba(features)[:, 1]) > 0.95


def test_inference_writes_one_row_per_input_row(trained):
    box, _ = trained
    holdout = pd.read_csv(box.root / "out/training/holdout.csv")
    scores = pd.read_csv(box.root / "out/inference/scores.csv")
    assert list(scores.columns) == ["id", "probability", "label"]
    assert len(scores) == len(holdout)  # scored in chunks of 40: no row lost or repeated
    assert sorted(scores["id"]) == sorted(holdout["row_id"])
    assert ((scores["probability"] >= 0.5).astype(int) == scores["label"]).all()
    metrics = json.loads((box.root / "out/inference/metrics.json").read_text())
    assert metrics["row_count"] == len(holdout) and metrics["roc_auc"] > 0.95


def test_mlflow_holds_the_training_run_with_params_and_metrics(trained):
    box, result = trained
    training = json.loads(result.stdout)["notebooks"][0]
    client = MlflowClient(tracking_uri=box.env["MLFLOW_TRACKING_URI"])
    run = client.get_run(training["mlflow_run_id"])
    assert run.data.metrics["roc_auc"] == training["metrics"]["roc_auc"]
    assert {"max_depth", "learning_rate", "n_trials"} <= set(run.data.params)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "notebook")}
    assert artifacts, "the executed notebook is logged to the run"
    assert client.get_registered_model("tests-xgb").name == "tests-xgb"
    mlflow.set_tracking_uri(box.env["MLFLOW_TRACKING_URI"])
    assert mlflow.xgboost.load_model(f"runs:/{run.info.run_id}/model") is not None


def test_results_folder_layout(trained):
    box, _ = trained
    results = box.root / "results"
    summary = json.loads((results / "results.json").read_text())
    assert summary["format"] == "ds-pipelines-results/1"
    training = summary["notebooks"][0]
    assert training["executed_notebook"] == "training_example/training_example.ipynb"
    assert json.loads((results / training["metrics_file"]).read_text()) == training["metrics"]
    assert (results / training["artifacts"]["model"]).stat().st_size > 1000
    assert (results / training["artifacts"]["roc_curve"]).read_bytes()[:4] == b"\x89PNG"
    executed = json.loads((results / training["executed_notebook"]).read_text())
    outputs = [o for cell in executed["cells"] for o in cell.get("outputs", [])]
    assert any("trial 1/4" in "".join(o.get("text", "")) for o in outputs)


def test_metrics_are_numeric_asset_metadata_in_dagster(trained):
    box, _ = trained
    with dg.DagsterInstance.from_config(box.env["DAGSTER_HOME"]) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("training_example"))
    metadata = event.asset_materialization.metadata
    assert isinstance(metadata["roc_auc"], dg.FloatMetadataValue) and metadata["roc_auc"].value > 0.95
    assert metadata["executed_notebook"].value.endswith(".ipynb")


def test_notebook_output_reaches_the_dagster_run_logs(trained):
    box, result = trained
    training = json.loads(result.stdout)["notebooks"][0]
    with dg.DagsterInstance.from_config(box.env["DAGSTER_HOME"]) as instance:
        messages = [entry.user_message for entry in instance.all_logs(training["dagster_run_id"])]
    assert any("trial 1/4" in message for message in messages)
    assert any("Executing Cell" in message for message in messages)


def test_inference_from_an_mlflow_model_uri_and_parquet(trained):
    box, result = trained
    client = MlflowClient(tracking_uri=box.env["MLFLOW_TRACKING_URI"])
    version = client.search_model_versions("name='tests-xgb'")[0].version
    client.set_registered_model_alias("tests-xgb", "champion", version)
    holdout = pd.read_csv(box.root / "out/training/holdout.csv")
    holdout.rename(columns={"mean radius": "radius_mean", "row_id": "patient"}).to_parquet(box.root / "input.parquet")
    config = box.inference_config(
        model={"uri": "models:/tests-xgb@champion"},
        input={"path": str(box.root / "input.parquet"), "chunk_size": 25},
        fields={"id_column": "patient", "features": {"mean radius": "radius_mean"}},
        output={"path": str(box.root / "uri/scores.parquet"), "metrics_path": str(box.root / "uri/metrics.json"),
                "columns": {"id": "patient_id", "probability": "p", "label": "y"}},
    )
    run = box.cli("run", "inference_example", "--config", f"inference_example={config}")
    assert run.returncode == 0, run.stderr[-3000:]
    # The summary names the run's MLflow run in clear: an id ds-pipelines wrote is no secret to mask.
    shown = re.search(r"^ +MLflow run: +(\S+)$", run.stdout, re.MULTILINE)
    assert shown and client.get_run(shown.group(1)).info.run_id == shown.group(1), run.stdout
    scores = pd.read_parquet(box.root / "uri/scores.parquet")
    assert list(scores.columns) == ["patient_id", "p", "y"] and len(scores) == len(holdout)
    metrics = json.loads((box.root / "uri/metrics.json").read_text())
    assert "roc_auc" not in metrics  # no outcome column mapped: no AUC, only the score distribution
    assert metrics["row_count"] == len(holdout)
