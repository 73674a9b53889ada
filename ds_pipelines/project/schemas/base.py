from __future__ import annotations

from pathlib import PurePath
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict


class StrictModel(BaseModel):
    """Unknown keys are errors: a typo in a config must not silently fall back to a default."""

    model_config = ConfigDict(extra="forbid", frozen=True, use_attribute_docstrings=True)


class MLflowSettings(StrictModel):
    experiment_name: str
    """Created on first use. The tracking server comes from ``MLFLOW_TRACKING_URI`` (default: local SQLite)."""
    run_name: str | None = None


TABLE_FORMATS = (".csv", ".parquet")
"""The table files notebooks read and write through ``ds_pipelines.notebook``; the format follows the extension."""


def _table_file(path: str) -> str:
    if PurePath(path).suffix.lower() not in TABLE_FORMATS:
        raise ValueError(f"expected a file ending in {' or '.join(TABLE_FORMATS)} (the format follows the extension), got {path!r}")
    return path


TablePath = Annotated[str, AfterValidator(_table_file)]
"""A config value naming a CSV or Parquet file: any other extension is refused when the config is checked."""
