"""The built-in config models of the reference notebooks (``schema: training`` and ``schema: inference``).

A project adds its own without changing ds-pipelines: ``schema: configs/schemas.py:ChurnConfig`` in
``configs/notebooks.yaml`` names a pydantic model in the project (``ds_pipelines.project.config``).
"""

from ds_pipelines.project.schemas.base import MLflowSettings, StrictModel
from ds_pipelines.project.schemas.inference import InferenceConfig
from ds_pipelines.project.schemas.training import TrainingConfig

__all__ = ["InferenceConfig", "MLflowSettings", "StrictModel", "TrainingConfig"]
