"""Typed config models for the notebooks, and the YAML loader that validates them before any run."""

from ds_pipelines.config.inference import InferenceConfig
from ds_pipelines.config.loader import SCHEMAS, load_config, read_yaml
from ds_pipelines.config.training import TrainingConfig

__all__ = ["SCHEMAS", "InferenceConfig", "TrainingConfig", "load_config", "read_yaml"]
