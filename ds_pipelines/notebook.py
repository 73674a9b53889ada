"""Helpers for the code inside notebooks: config, paths, MLflow set-up, progress and results.

Imported by the notebook kernel, so it stays light (no Dagster import). The same notebook runs under
``ds-pipelines run`` / Dagster and in plain Jupyter: under Dagster the config comes from the run (the
validated YAML, or whatever the run overrode); in Jupyter it is read from the YAML that
``configs/notebooks.yaml`` maps to the notebook.
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from ds_pipelines.errors import NotebookInputError
from ds_pipelines.project import Project
from ds_pipelines.tracking import tracking_uri

Config = TypeVar("Config", bound=BaseModel)
project = Project()


def load_config(notebook: str, model: type[Config]) -> Config:
    """The config of ``notebook`` (its path relative to the project root), validated by ``model``."""
    run_config = _dagstermill_op_config()
    if run_config is not None:
        return model.model_validate(run_config)
    spec = project.find(notebook)
    return model.model_validate(project.config_for(spec))


def _dagstermill_op_config() -> dict[str, Any] | None:
    # dagstermill's injected first cell imports dagstermill; in plain Jupyter it is absent and importing
    # it would cost seconds for nothing.
    if "dagstermill" not in sys.modules:
        return None
    import dagstermill

    context = dagstermill.get_context()
    return context.op_config if context.job_name != "ephemeral_dagstermill_pipeline" else None


def path(relative: str) -> Path:
    """A path from a config file, resolved against the project root."""
    return project.resolve(relative)


def progress(message: str) -> None:
    """A progress line: shows in the notebook, in ``ds-pipelines run`` and in the Dagster run logs."""
    print(message, flush=True)


def setup_mlflow(experiment_name: str):
    """Point MLflow at ``MLFLOW_TRACKING_URI`` (default: the project's SQLite store) and pick the experiment."""
    import mlflow

    uri = tracking_uri(project)
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment_name) is None and uri.startswith("sqlite:///"):
        # Keep local artifacts beside the database instead of in ./mlruns of whatever the kernel's cwd is.
        artifacts = Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts" / experiment_name
        mlflow.create_experiment(experiment_name, artifact_location=artifacts.as_uri())
    return mlflow.set_experiment(experiment_name)


def require_columns(frame_columns: Iterable[str], required: dict[str, str], *, source: str) -> None:
    """Fail with a message naming each missing column and the config key that asked for it."""
    present = set(frame_columns)
    missing = {key: column for key, column in required.items() if column not in present}
    if missing:
        listing = ", ".join(f"{column!r} (from {key})" for key, column in missing.items())
        raise NotebookInputError(f"{source} is missing column(s) {listing}; it has: {', '.join(sorted(present)[:20])}")


# What the notebooks call, in one namespace (``from ds_pipelines import notebook as dsp``).
from ds_pipelines.files import write_atomically, write_json  # noqa: E402
from ds_pipelines.handover import report  # noqa: E402
from ds_pipelines.modeling import ScoreSummary, load_xgboost_model, optuna_progress, training_plots, xgboost_device  # noqa: E402
from ds_pipelines.tables import read_chunks, read_table, write_table  # noqa: E402

__all__ = [
    "NotebookInputError", "ScoreSummary", "load_config", "load_xgboost_model", "optuna_progress", "path",
    "progress", "read_chunks", "read_table", "report", "require_columns", "setup_mlflow", "training_plots",
    "write_atomically", "write_json", "write_table", "xgboost_device",
]
