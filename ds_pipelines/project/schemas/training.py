"""Config of the training notebook (``configs/training_config.yaml``)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from ds_pipelines.project.schemas.base import MLflowSettings, StrictModel


class TrainingData(StrictModel):
    path: str | None = None
    """CSV or Parquet file (relative to the project root); None uses scikit-learn's breast-cancer data."""
    test_size: float = Field(0.2, gt=0, lt=1)
    random_state: int = 42


class Parameter(StrictModel):
    """One dimension of the Optuna search space."""

    type: Literal["int", "float"] = "float"
    low: float
    high: float
    log: bool = False

    @model_validator(mode="after")
    def _ordered(self) -> Parameter:
        if self.low >= self.high:
            raise ValueError(f"low ({self.low}) must be below high ({self.high})")
        if self.log and self.low <= 0:
            raise ValueError("a log-scaled range needs low > 0")
        return self


def _default_search_space() -> dict[str, Parameter]:
    return {
        "max_depth": Parameter(type="int", low=2, high=8),
        "learning_rate": Parameter(low=0.01, high=0.3, log=True),
        "n_estimators": Parameter(type="int", low=50, high=400),
        "subsample": Parameter(low=0.6, high=1.0),
        "colsample_bytree": Parameter(low=0.6, high=1.0),
        "min_child_weight": Parameter(low=1, high=10, log=True),
    }


class OptunaSettings(StrictModel):
    n_trials: int = Field(30, ge=1)
    timeout: float | None = Field(600, gt=0)
    """Seconds; tuning stops at whichever of ``n_trials`` and ``timeout`` comes first."""
    direction: Literal["maximize", "minimize"] = "maximize"
    metric: Literal["roc_auc", "accuracy", "f1", "precision", "recall", "neg_log_loss"] = "roc_auc"
    """scikit-learn scorer used in cross-validation."""
    cv_folds: int = Field(3, ge=2)
    sampler_seed: int | None = 42
    """Seeds Optuna's TPE sampler: the same seed gives the same trials and best trial on one machine."""
    pruner: Literal["median", "top_quarter", "top_tenth", "hyperband", "none"] = "top_tenth"
    """Stops trials that are clearly worse after a fold: ``median`` (worse than the median of the complete trials
    at that fold, after 5 complete trials), ``top_quarter`` or ``top_tenth`` (not in their top quarter or
    tenth), ``hyperband``, or ``none``."""
    early_stopping_rounds: int | None = Field(30, ge=1)
    """Each fold trains until its validation score has not improved for this many rounds, up to the trial's
    ``n_estimators``; the folds' mean round count becomes the final model's ``n_estimators``. ``null``: off."""
    search_space: dict[str, Parameter] = Field(default_factory=_default_search_space)


class ModelSettings(StrictModel):
    device: Literal["auto", "cpu", "cuda"] = "auto"
    """``auto`` trains on the GPU when XGBoost sees one and falls back to the CPU with a log line."""
    params: dict[str, float | int | str | bool] = Field(default_factory=dict)
    """Fixed XGBoost parameters applied to every trial."""


class TrainingMLflow(MLflowSettings):
    registered_model_name: str | None = None
    register_model: bool = False


class TrainingOutputs(StrictModel):
    model_path: str = "outputs/training/xgb_model.json"
    metrics_path: str = "outputs/training/metrics.json"
    holdout_path: str = "outputs/training/holdout.csv"
    """The held-out test set (with ``row_id`` and the outcome), scored by the inference notebook by default."""
    plots_dir: str = "outputs/training/plots"


class TrainingConfig(StrictModel):
    outcome: str
    """Name of the target column in the training data."""
    data: TrainingData = TrainingData()
    optuna: OptunaSettings = OptunaSettings()
    model: ModelSettings = ModelSettings()
    mlflow: TrainingMLflow
    outputs: TrainingOutputs = TrainingOutputs()

    @model_validator(mode="after")
    def _registration_needs_a_name(self) -> TrainingConfig:
        if self.mlflow.register_model and not self.mlflow.registered_model_name:
            raise ValueError("mlflow.register_model is true but mlflow.registered_model_name is not set")
        return self
