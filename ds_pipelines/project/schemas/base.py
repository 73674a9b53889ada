from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo in a config must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class MLflowSettings(StrictModel):
    experiment_name: str
    """Created on first use. The tracking server comes from ``MLFLOW_TRACKING_URI`` (default: local SQLite)."""
    run_name: str | None = None
