"""Every bad input gets a clear error naming the file, key or value, a non-zero exit, and no result."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
from sklearn.datasets import load_breast_cancer
from xgboost import XGBClassifier


def run_training(box, config: Path):
    return box.cli("run", "training_example", "--config", f"training_example={config}", "--output-dir", str(box.root / "results"))


@pytest.mark.parametrize(
    ("yaml_text", "expected"),
    [
        ("outcome: target\nmlflow: {experiment_name: x\n", "malformed YAML at line 3"),
        ("outcome: target\nmlflow: {experiment_name: x}\noptuna: {n_trails: 5}\n", "optuna.n_trails: unknown key (expected one of: cv_folds, direction"),
        ("outcome: target\nmlflow: {experiment_name: x}\noptuna: {n_trials: many}\n", "optuna.n_trials: Input should be a valid integer"),
        ("mlflow: {experiment_name: x}\n", "outcome: required key is missing"),
        ("- just\n- a list\n", "expected a mapping of keys to values, got list"),
        ("outcome: target\nmlflow: {experiment_name: x, register_model: true}\n", "registered_model_name is not set"),
    ],
    ids=["malformed", "unknown-key", "wrong-type", "missing-key", "not-a-mapping", "inconsistent"],
)
def test_invalid_config_is_rejected_before_anything_runs(sandbox, yaml_text, expected):
    config = sandbox.root / "bad.yaml"
    config.write_text(yaml_text)
    result = run_training(sandbox, config)
    assert result.returncode == 2
    assert f"error: {config}:" in result.stderr and expected in result.stderr
    assert "Traceback" not in result.stderr
    assert not (sandbox.root / "results").exists()
    assert not any((sandbox.root / "dagster").glob("history/runs/*")), "no Dagster run was started"


def test_missing_config_file_is_named(sandbox):
    result = run_training(sandbox, sandbox.root / "nowhere.yaml")
    assert result.returncode == 2
    assert "nowhere.yaml: file does not exist" in result.stderr


def test_notebook_that_does_not_exist(sandbox):
    result = sandbox.cli("run", "notebooks/nope.ipynb")
    assert result.returncode == 2
    assert "notebook 'notebooks/nope.ipynb' does not exist" in result.stderr
    assert "notebooks/training_example.ipynb" in result.stderr  # lists what exists
    assert "Traceback" not in result.stderr


def test_bad_config_override_syntax(sandbox):
    result = sandbox.cli("run", "training_example", "--config", "training_example")
    assert result.returncode == 2
    assert "expected NOTEBOOK=FILE" in result.stderr


def failing_project(root: Path) -> Path:
    """A project whose only notebook raises in its second code cell."""
    project = root / "project"
    (project / "notebooks").mkdir(parents=True)
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [
        nbformat.v4.new_markdown_cell("# Fails on purpose"),
        nbformat.v4.new_code_cell("print('before the failure')"),
        nbformat.v4.new_code_cell("values = {}\nvalues['missing_key']"),
        nbformat.v4.new_code_cell("print('never reached')"),
    ]
    nbformat.write(notebook, project / "notebooks" / "fails.ipynb")
    return project


@pytest.mark.slow
def test_notebook_that_raises_keeps_the_executed_notebook_and_names_the_cell(sandbox):
    project = failing_project(sandbox.root)
    result = sandbox.cli("run", "notebooks/fails.ipynb", "--project-dir", str(project), "--output-dir", str(sandbox.root / "results"))
    assert result.returncode == 1
    assert "notebooks/fails.ipynb failed in code cell 2 ('values = {}'): KeyError: 'missing_key'" in result.stderr
    kept = Path(result.stderr.split("executed notebook kept at ")[1].split()[0])
    executed = nbformat.read(kept, as_version=4)
    printed = [o.get("text", "") for cell in executed.cells for o in cell.get("outputs", [])]
    assert "before the failure\n" in printed and "never reached\n" not in printed
    summary = json.loads((sandbox.root / "results" / "results.json").read_text())
    entry = summary["notebooks"][0]
    assert (summary["status"], entry["status"], entry["failed_cell"]) == ("failed", "failed", 2)
    assert entry["metrics_file"] is None and not (sandbox.root / "results/fails/metrics.json").exists()
    assert (sandbox.root / "results" / entry["executed_notebook"]).exists()


@pytest.mark.slow
def test_first_failure_stops_the_run(sandbox):
    config = sandbox.training_config(outcome="diagnosis")
    result = sandbox.cli(
        "run", "training_example", "inference_example",
        "--config", f"training_example={config}", "--config", f"inference_example={sandbox.inference_config()}",
        "--output-dir", str(sandbox.root / "results"),
    )
    assert result.returncode == 1
    assert "is missing column(s) 'diagnosis' (from outcome)" in result.stderr
    summary = json.loads((sandbox.root / "results" / "results.json").read_text())
    assert [nb["status"] for nb in summary["notebooks"]] == ["failed", "not-run"]
    assert not (sandbox.root / "out/training/xgb_model.json").exists()


def run_inference(box, **changes):
    config = box.inference_config(**changes)
    return box.cli("run", "inference_example", "--config", f"inference_example={config}")


@pytest.fixture
def model_box(sandbox):
    """A sandbox holding a small trained model and the held-out rows it scores, as training leaves them."""
    data = load_breast_cancer(as_frame=True).frame
    (sandbox.root / "data").mkdir()
    model = XGBClassifier(n_estimators=5, max_depth=2).fit(data.drop(columns=["target"]), data["target"])
    model.save_model(sandbox.root / "data/xgb_model.json")
    data.head(30).rename_axis("row_id").reset_index().to_csv(sandbox.root / "data/holdout.csv", index=False)
    return sandbox


@pytest.mark.slow
def test_model_file_missing_for_inference(model_box):
    result = run_inference(model_box, model={"path": str(model_box.root / "absent.json")})
    assert result.returncode == 1
    assert f"model.path: model file {model_box.root / 'absent.json'} does not exist" in result.stderr
    assert not (model_box.root / "out/inference/scores.csv").exists()


@pytest.mark.slow
def test_input_missing_a_mapped_column(model_box):
    result = run_inference(
        model_box,
        model={"path": str(model_box.root / "data/xgb_model.json")},
        input={"path": str(model_box.root / "data/holdout.csv")},
        fields={"id_column": "row_id", "features": {"mean radius": "radius_mean"}},
    )
    assert result.returncode == 1
    assert "is missing column(s) 'radius_mean' (from fields.features.mean radius)" in result.stderr
    assert not (model_box.root / "out/inference/scores.csv").exists()


@pytest.mark.slow
def test_empty_input_data(model_box):
    empty = model_box.root / "empty.csv"
    empty.write_text((model_box.root / "data/holdout.csv").read_text().splitlines()[0] + "\n")
    result = run_inference(model_box, model={"path": str(model_box.root / "data/xgb_model.json")}, input={"path": str(empty)})
    assert result.returncode == 1
    assert f"input data {empty} (input.path) has no rows to score" in result.stderr
    assert not (model_box.root / "out/inference/metrics.json").exists()
