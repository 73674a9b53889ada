"""Where a test's runs keep their state (a Sandbox: Dagster instance, MLflow store, output folder) and how to call
the real CLI there; the ``sandbox`` and ``trained`` fixtures in conftest.py hand them out."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import yaml

from ds_pipelines.execution.instance import INSTANCE_SETTINGS

REPO = Path(__file__).resolve().parent.parent
CLI = Path(sys.executable).parent / "ds-pipelines"
SMALL_OPTUNA = {"n_trials": 4, "timeout": 120, "cv_folds": 3}


@dataclass
class Sandbox:
    """Where one test's runs keep their state, and how to call the real CLI there."""

    root: Path
    env: dict[str, str]

    def write_yaml(self, name: str, data: dict) -> Path:
        target = self.root / name
        target.write_text(yaml.safe_dump(data, sort_keys=False))
        return target

    def cli(self, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(CLI), *args], env=self.env, capture_output=True, text=True, timeout=timeout, cwd=self.root
        )

    def training_config(self, **changes) -> Path:
        config = {
            "outcome": "target",
            "optuna": dict(SMALL_OPTUNA),
            "model": {"device": "cpu"},
            "mlflow": {"experiment_name": "tests-training", "registered_model_name": "tests-xgb", "register_model": True},
            "outputs": {
                "model_path": str(self.root / "out/training/xgb_model.json"),
                "metrics_path": str(self.root / "out/training/metrics.json"),
                "holdout_path": str(self.root / "out/training/holdout.csv"),
                "plots_dir": str(self.root / "out/training/plots"),
            },
        }
        config.update(changes)
        return self.write_yaml("training.yaml", config)

    def inference_config(self, **changes) -> Path:
        config = {
            "model": {"path": str(self.root / "out/training/xgb_model.json")},
            "input": {"path": str(self.root / "out/training/holdout.csv"), "chunk_size": 40},
            "fields": {"id_column": "row_id", "outcome_column": "target"},
            "output": {"path": str(self.root / "out/inference/scores.csv"), "metrics_path": str(self.root / "out/inference/metrics.json")},
            "mlflow": {"experiment_name": "tests-inference"},
        }
        config.update(changes)
        return self.write_yaml("inference.yaml", config)


def make_sandbox(root: Path, tracking_uri: str | None = None) -> Sandbox:
    dagster_home = root / "dagster"
    dagster_home.mkdir(parents=True, exist_ok=True)
    (dagster_home / "dagster.yaml").write_text(INSTANCE_SETTINGS)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "DS_PIPELINES_", "CI_"))}
    env.update(
        DAGSTER_HOME=str(dagster_home),
        MLFLOW_TRACKING_URI=tracking_uri or f"sqlite:///{root / 'mlflow.db'}",
        DS_PIPELINES_PROJECT_DIR=str(REPO),
    )
    return Sandbox(root=root, env=env)
