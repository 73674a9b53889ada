"""Helpers for the code inside notebooks: config, paths, MLflow set-up, progress, tables and results.

``from ds_pipelines import notebook as dsp``. Imported by the notebook kernel, so it stays light (no Dagster
import). The same notebook runs under ``ds-pipelines run`` / Dagster and in plain Jupyter: under Dagster the
config comes from the run (the validated YAML, or whatever the run overrode); in Jupyter it is read from the
YAML that ``configs/notebooks.yaml`` maps to the running notebook.

Model helpers for the reference notebooks (XGBoost, Optuna) are not part of this API: they are in
``ds_pipelines.examples`` (``xgboost``, ``scoring``).
"""

from __future__ import annotations

import os
import sys
from functools import cache
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel

from ds_pipelines.errors import DsPipelinesError, NotebookInputError
from ds_pipelines.files import write_atomically, write_json
from ds_pipelines.notebook.recorded import (
    record_data,
    record_device,
    recorded_device,
    recorded_inputs,
)
from ds_pipelines.notebook.tables import (
    read_batches,
    read_table,
    require_columns,
    table_writer,
    write_table,
)
from ds_pipelines.project import Project, find_project_root
from ds_pipelines.results import handover
from ds_pipelines.results.reproducibility import for_handover
from ds_pipelines.results.uncertainty import Interval, checked
from ds_pipelines.tracking import tracking_uri
from ds_pipelines.tracking.uri import require_reachable

Config = TypeVar("Config", bound=BaseModel)
NOTEBOOK_PATH_ENV = "JPY_SESSION_NAME"
"""Set by Jupyter Server (2.x) in each kernel's environment: the path of the notebook the kernel runs."""
_VSCODE_NOTEBOOK_PATH = "__vsc_ipynb_file__"
"""Set by VS Code in the notebook's namespace."""

__all__ = [
    "Interval", "NotebookInputError", "load_config", "path", "progress", "project", "read_batches", "read_table",
    "record_data", "record_device", "report", "require_columns", "setup_mlflow", "table_writer", "write_atomically",
    "write_json", "write_table",
]


@cache
def project() -> Project:
    """The project the running notebook belongs to (see ``ds_pipelines.project.find_project_root``)."""
    notebook = _running_notebook()
    return Project(find_project_root(cwd=notebook.parent if notebook else None))


def load_config(model: type[Config] | str | None = None, legacy_model: type[Config] | None = None, /, *,
                notebook: str | None = None) -> Any:
    """The running notebook's config, validated by ``model`` (default: the ``schema:`` that
    ``configs/notebooks.yaml`` names for it); a plain dict for a notebook without a schema.

    Under Dagster it is the run's config; in Jupyter the notebook's YAML file. Which notebook is running is
    known under Dagster and in Jupyter and VS Code; elsewhere pass ``notebook="notebooks/x.ipynb"``. The
    earlier form ``load_config("notebooks/x.ipynb", Model)`` still works.
    """
    if isinstance(model, str):
        notebook, model = model, legacy_model
    context = _dagstermill_context()
    if context is not None:
        spec = project().find(context.op_def.name)
        data = context.op_config
    else:
        spec = project().find(notebook or _notebook_path_or_fail())
        data = project().config_for(spec)
    model = model or project().schema_model(spec)
    return model.model_validate(data) if model is not None else data


def _dagstermill_context():
    # dagstermill's injected first cell imports dagstermill; in plain Jupyter it is absent and importing
    # it would cost seconds for nothing.
    if "dagstermill" not in sys.modules:
        return None
    import dagstermill

    context = dagstermill.get_context()
    return context if context.job_name != "ephemeral_dagstermill_pipeline" else None


def _running_notebook() -> Path | None:
    """The running notebook's path, when Jupyter or VS Code says it."""
    found = os.environ.get(NOTEBOOK_PATH_ENV)
    if not found:
        try:
            from IPython import get_ipython

            shell = get_ipython()
        except ImportError:
            shell = None
        found = shell.user_ns.get(_VSCODE_NOTEBOOK_PATH) if shell is not None else None
    return Path(found).resolve() if found else None


def _notebook_path_or_fail() -> str:
    notebook = _running_notebook()
    if notebook is None or notebook.suffix != ".ipynb":
        raise DsPipelinesError(
            f"cannot tell which notebook is running (neither Jupyter's {NOTEBOOK_PATH_ENV} nor VS Code says): "
            "pass it, as in dsp.load_config(notebook='notebooks/x.ipynb')"
        )
    return str(notebook)


def report(*, metrics: dict[str, float], mlflow_run_id: str | None = None, artifacts: dict[str, Path] | None = None,
           device: str | None = None, uncertainty: dict[str, tuple[float, float, str]] | None = None) -> None:
    """Hand the notebook's results back (metrics, its MLflow run, artifact files), with what it read (the
    table readers' and ``record_data``'s inputs) and its device (``device=``, else ``record_device``'s).

    ``uncertainty``: for any metric, its interval as ``(low, high, kind)`` (``dsp.Interval`` is one), e.g.
    ``{"roc_auc": (0.97, 0.99, "bootstrap 95%"), "cv_roc_auc": (0.985, 0.995, "CV fold ±1 sd")}``. The
    merge-request comment then tells a delta within noise from a real one (``ds_pipelines.results.uncertainty``).
    """
    intervals = checked(uncertainty or {}, metrics, "dsp.report")
    if device is not None:
        record_device(device)
    handover.report(metrics=metrics, mlflow_run_id=mlflow_run_id, artifacts=artifacts, data=for_handover(recorded_inputs()),
                    device=recorded_device(), uncertainty={name: interval.to_dict() for name, interval in intervals.items()})


def path(relative: str) -> Path:
    """A path from a config file, resolved against the project root."""
    return project().resolve(relative)


def progress(message: str) -> None:
    """A progress line: shows in the notebook, in ``ds-pipelines run`` and in the Dagster run logs."""
    print(message, flush=True)


def setup_mlflow(experiment_name: str):
    """Point MLflow at ``MLFLOW_TRACKING_URI`` (default: the project's SQLite store) and pick the experiment."""
    import mlflow

    uri = tracking_uri(project())
    require_reachable(uri, NotebookInputError)
    mlflow.set_tracking_uri(uri)
    if mlflow.get_experiment_by_name(experiment_name) is None and uri.startswith("sqlite:///"):
        # Keep local artifacts beside the database instead of in ./mlruns of whatever the kernel's cwd is.
        artifacts = Path(uri.removeprefix("sqlite:///")).parent / "mlartifacts" / experiment_name
        mlflow.create_experiment(experiment_name, artifact_location=artifacts.as_uri())
    return mlflow.set_experiment(experiment_name)
