"""A notebook run's metric uncertainties as MLflow run tags, so a baseline on the default branch carries them.

One tag per metric, ``ds-pipelines.uncertainty.<metric>``, holding ``{"low", "high", "kind"}`` as JSON
(``ds_pipelines.results.uncertainty`` defines it; this layer keeps it a plain dict and does not import that one).
Tags rather than metrics: extra metrics would show as metrics of their own in every comparison.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

UNCERTAINTY_TAG_PREFIX = "ds-pipelines.uncertainty."


def uncertainty_tags(uncertainty: Mapping[str, Mapping[str, Any]]) -> dict[str, str]:
    return {UNCERTAINTY_TAG_PREFIX + metric: json.dumps(dict(interval), sort_keys=True) for metric, interval in uncertainty.items()}


def uncertainty_from_tags(tags: Mapping[str, str]) -> dict[str, dict[str, Any]]:
    """The intervals a run's tags hold; a tag that is not one (set by hand, cut short) is left out, so the
    comparison falls back to a plain delta for that metric."""
    found = {}
    for key, value in tags.items():
        if not key.startswith(UNCERTAINTY_TAG_PREFIX):
            continue
        try:
            interval = json.loads(value)
        except json.JSONDecodeError:
            continue
        if isinstance(interval, dict) and {"low", "high", "kind"} <= interval.keys():
            found[key.removeprefix(UNCERTAINTY_TAG_PREFIX)] = interval
    return found


def log_uncertainty(run_id: str, uncertainty: Mapping[str, Mapping[str, Any]], *, tracking_uri: str) -> None:
    """Set the uncertainty tags on MLflow run ``run_id`` (nothing when there are none)."""
    if not uncertainty:
        return
    from mlflow.entities import RunTag
    from mlflow.tracking import MlflowClient

    tags = [RunTag(key, value) for key, value in uncertainty_tags(uncertainty).items()]
    MlflowClient(tracking_uri=tracking_uri).log_batch(run_id, tags=tags)
