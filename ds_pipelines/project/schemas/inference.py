"""Config of the inference notebook (``configs/inference_config.yaml``)."""

from __future__ import annotations

from pydantic import Field, model_validator

from ds_pipelines.project.schemas.base import MLflowSettings, StrictModel, TablePath


class ModelSource(StrictModel):
    path: str | None = None
    """An ``xgb_model.json`` written by training (relative to the project root)."""
    uri: str | None = None
    """An MLflow model URI such as ``models:/ds-pipelines-xgb@production``; wins over ``path``."""

    @model_validator(mode="after")
    def _one_source(self) -> ModelSource:
        if not self.path and not self.uri:
            raise ValueError("set model.path or model.uri")
        return self


class InputData(StrictModel):
    path: TablePath = "outputs/training/holdout.csv"
    """CSV or Parquet file to score, relative to the project root."""
    chunk_size: int = Field(50_000, ge=1)
    """Rows scored at a time: memory depends on it, not on the input's row count."""


class FieldMapping(StrictModel):
    id_column: str
    """Input column copied to the output to identify each row."""
    features: dict[str, str] = Field(default_factory=dict)
    """Model feature name -> input column name; features not listed are read from a column of the same name."""
    outcome_column: str | None = None
    """When this column is in the input, the notebook also reports AUC, accuracy and friends."""


class OutputColumns(StrictModel):
    id: str = "id"
    probability: str = "probability"
    label: str = "label"


class ScoredOutput(StrictModel):
    path: TablePath = "outputs/inference/scores.csv"
    """Where the scores go (CSV or Parquet by extension), relative to the project root."""
    metrics_path: str = "outputs/inference/metrics.json"
    columns: OutputColumns = OutputColumns()


class InferenceConfig(StrictModel):
    model: ModelSource
    input: InputData = InputData()
    fields: FieldMapping
    threshold: float = Field(0.5, ge=0, le=1)
    """Probability at or above which a row is labelled 1."""
    output: ScoredOutput = ScoredOutput()
    mlflow: MLflowSettings | None = None
    """When set, the scoring run is logged to this experiment."""
