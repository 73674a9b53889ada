"""MLflow as a Dagster resource: where runs are tracked, used after a notebook ran."""

from __future__ import annotations

from pathlib import Path

import dagster as dg

from ds_pipelines.project import Project
from ds_pipelines.results.checks import BaselineValues
from ds_pipelines.tracking import tracking_uri


class MLflowResource(dg.ConfigurableResource):
    """The MLflow tracking server.

    ``tracking_uri`` defaults to ``MLFLOW_TRACKING_URI``, else the project's SQLite store. The token
    (``MLFLOW_TRACKING_TOKEN``) is read by MLflow from the environment and never enters Dagster config,
    which dagstermill copies into every executed notebook.
    """

    tracking_uri: str | None = None

    def resolved_uri(self) -> str:
        return self.tracking_uri or tracking_uri(Project())

    def log_executed_notebook(self, *, run_id: str, path: Path) -> None:
        """Attach the executed notebook to the notebook's own MLflow run, secrets masked: whatever a cell
        printed (a token included) would otherwise be readable by everyone with access to MLflow."""
        import tempfile

        from mlflow.tracking import MlflowClient

        from ds_pipelines.masking import mask_notebook

        with tempfile.TemporaryDirectory() as folder:
            masked = Path(folder) / path.name
            mask_notebook(path, masked)
            MlflowClient(tracking_uri=self.resolved_uri()).log_artifact(run_id, str(masked), artifact_path="notebook")

    def log_reproducibility(self, *, run_id: str, payload: dict) -> None:
        """The run's reproducibility record as tags, params and an artifact (``tracking.reproducibility``)."""
        from ds_pipelines.tracking.reproducibility import log_record

        log_record(run_id, payload, tracking_uri=self.resolved_uri())

    def log_uncertainty(self, *, run_id: str, uncertainty: dict) -> None:
        """The notebook's metric uncertainties as run tags, for later baselines (``tracking.uncertainty``)."""
        from ds_pipelines.tracking.uncertainty import log_uncertainty

        log_uncertainty(run_id, uncertainty, tracking_uri=self.resolved_uri())

    def baseline_values(self, run_id: str | None, default_branch: str) -> tuple[BaselineValues | None, str]:
        """The notebook's baseline on ``default_branch`` (``tracking.baselines.find_baseline``, as the
        merge-request comment finds it), or None and why there is none: no MLflow run, no run on that branch
        yet, or a lookup that failed (a quality check then has nothing to compare with)."""
        from mlflow.exceptions import MlflowException

        from ds_pipelines.errors import DsPipelinesError
        from ds_pipelines.tracking.baselines import find_baseline

        if not run_id:
            return None, "the notebook reported no MLflow run"
        try:
            found = find_baseline(run_id, default_branch, tracking_uri=self.resolved_uri())
        except (DsPipelinesError, MlflowException, OSError) as exc:
            return None, f"looking it up in MLflow failed: {str(exc).splitlines()[0][:200]}"
        if found is None:
            return None, f"no successful run on {default_branch} in the notebook's MLflow experiment yet"
        return BaselineValues.from_run(found.run_id, found.metrics, found.uncertainty), ""

    def tag_blocking_checks(self, *, run_id: str, passed: bool) -> None:
        """Whether the notebook's blocking quality checks passed, as a run tag: a run that failed them is never
        a baseline (``tracking.baselines``)."""
        from ds_pipelines.tracking.baselines import tag_blocking_checks

        tag_blocking_checks(run_id, passed, tracking_uri=self.resolved_uri())
