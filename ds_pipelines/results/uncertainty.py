"""A metric's uncertainty, and the rule that tells a real change from noise. Standard library only.

A notebook reports an uncertainty as an ``Interval(low, high, kind)`` per metric (``dsp.report(uncertainty=...)``),
``kind`` saying what the interval is (``"bootstrap 95%"``, ``"CV fold ±1 sd"``). It travels with the metric:
in results.json (``{"low", "high", "kind"}`` under the notebook's ``uncertainty``) and as the MLflow run tag
``ds-pipelines.uncertainty.<metric>`` (``tracking.uncertainty``), so a baseline on the default branch has it too.

The noise rule (``classify``, stated in ``RULE``): when both sides have an interval, a delta is **better** or
**worse** only when the two intervals do not overlap, in the direction the metric improves in; overlapping
intervals are **≈ within noise**. Without an interval on either side, or for a metric whose direction is
unknown, the delta stays a plain number (``None``).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, NamedTuple

from ds_pipelines.errors import DsPipelinesError

BETTER = "better"
WORSE = "worse"
WITHIN_NOISE = "≈ within noise"
RULE = (
    "a delta is better or worse only when the two intervals do not overlap, ≈ within noise when they do; "
    "a plain delta where either side has no interval or the metric's better direction is unknown"
)
HIGHER_IS_BETTER = frozenset({"roc_auc", "pr_auc", "average_precision", "accuracy", "balanced_accuracy", "f1", "precision",
                              "recall", "r2"})
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "rmse", "mse", "mae"})
_CV_PREFIX = "cv_"


class UncertaintyError(DsPipelinesError):
    """An uncertainty that is not an interval around a reported metric."""


class Interval(NamedTuple):
    """A metric's uncertainty: ``[low, high]``, and what kind of interval it is."""

    low: float
    high: float
    kind: str

    @property
    def half_width(self) -> float:
        return (self.high - self.low) / 2

    def to_dict(self) -> dict[str, Any]:
        return {"low": self.low, "high": self.high, "kind": self.kind}


def checked(uncertainty: Mapping[str, Any], metrics: Mapping[str, float], where: str) -> dict[str, Interval]:
    """``uncertainty`` (metric name to ``(low, high, kind)``) as Intervals, each for a metric in ``metrics``;
    otherwise an error naming ``where``, the metric and what was expected."""
    intervals = {}
    for name, value in uncertainty.items():
        key = f"{where}: uncertainty[{name!r}]"
        if name not in metrics:
            raise UncertaintyError(f"{key}: no metric {name!r} is reported (metrics: {', '.join(sorted(metrics)) or 'none'})")
        if isinstance(value, Mapping):
            value = (value.get("low"), value.get("high"), value.get("kind"))
        if not isinstance(value, (tuple, list)) or len(value) != 3:
            raise UncertaintyError(f"{key}: expected (low, high, kind), as in (0.91, 0.95, 'bootstrap 95%'), got {value!r}")
        low, high, kind = value
        if not all(_is_number(bound) for bound in (low, high)) or not math.isfinite(low) or not math.isfinite(high):
            raise UncertaintyError(f"{key}: expected finite numbers for low and high, got {low!r} and {high!r}")
        if low > high:
            raise UncertaintyError(f"{key}: low {low!r} is above high {high!r}")
        if not isinstance(kind, str) or not kind.strip():
            raise UncertaintyError(f"{key}: expected a kind naming the interval (e.g. 'bootstrap 95%'), got {kind!r}")
        intervals[name] = Interval(float(low), float(high), kind.strip())
    return intervals


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def better_direction(metric: str) -> int:
    """+1 if a higher value is better, -1 if lower, 0 if unknown (``cv_<metric>`` as ``<metric>``)."""
    base = metric.removeprefix(_CV_PREFIX)
    return 1 if base in HIGHER_IS_BETTER else -1 if base in LOWER_IS_BETTER else 0


def classify(metric: str, current: Interval | None, baseline: Interval | None) -> str | None:
    """``BETTER``, ``WORSE`` or ``WITHIN_NOISE`` by ``RULE``; None for a plain delta (an interval missing,
    or the metric's better direction unknown)."""
    if current is None or baseline is None:
        return None
    if current.low <= baseline.high and baseline.low <= current.high:
        return WITHIN_NOISE
    direction = better_direction(metric)
    if direction == 0:
        return None
    higher = current.low > baseline.high
    return BETTER if higher == (direction > 0) else WORSE
