"""With nothing configured, Dagster and MLflow keep their state inside the project, git-ignored."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import yaml
from sandbox import REPO

from ds_pipelines.execution.instance import use_local_defaults
from ds_pipelines.project import PROJECT_DIR_ENV, STATE_DIR, Project
from ds_pipelines.tracking import tracking_uri


def test_mlflow_defaults_to_sqlite_in_the_project(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    assert tracking_uri(Project(tmp_path)) == f"sqlite:///{tmp_path / STATE_DIR / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:5999")
    assert tracking_uri(Project(tmp_path)) == "http://127.0.0.1:5999"


def test_dagster_defaults_to_an_instance_in_the_project(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(PROJECT_DIR_ENV, "restored-after-the-test")  # use_local_defaults sets it for kernels
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    home = use_local_defaults(Project(tmp_path))
    assert home == tmp_path / STATE_DIR / "dagster" and os.environ["DAGSTER_HOME"] == str(home)
    settings = yaml.safe_load((home / "dagster.yaml").read_text())
    assert settings["python_logs"]["managed_python_loggers"] == ["papermill"]
    assert settings["concurrency"]["pools"]["default_limit"] == 1


def test_a_configured_dagster_home_wins(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(PROJECT_DIR_ENV, "restored-after-the-test")
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "elsewhere"))
    assert use_local_defaults(Project(tmp_path)) == tmp_path / "elsewhere"
    assert not (tmp_path / STATE_DIR).exists()


def test_local_state_is_git_ignored():
    for path in (f"{STATE_DIR}/mlflow.db", f"{STATE_DIR}/dagster/dagster.yaml", "outputs/training/xgb_model.json", "results/results.json"):
        assert subprocess.run(["git", "check-ignore", "-q", path], cwd=REPO).returncode == 0, path
