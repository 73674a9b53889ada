"""Evaluating a notebook's quality checks (``project.quality_checks``) on the metrics it reported. Standard library only.

The same evaluation serves the asset (its Dagster asset checks), ``ds-pipelines run`` (results.json, the exit
status) and the merge-request comment, which read the outcomes back (``CheckOutcome``).

- ``min`` / ``max``: the metric's value within the bounds (inclusive). A metric the notebook did not report
  fails, naming the metrics it did report.
- ``no_worse_than_baseline``: the value against the notebook's latest run on the default branch (as the
  merge-request comment finds it). With an interval on both sides, the noise rule of ``results.uncertainty``
  decides: it fails only when the value is **worse** beyond noise. Without intervals on both sides any move in
  the worse direction fails (nothing tells it from noise). It fails when the metric's better direction is
  unknown (a name outside ``HIGHER_IS_BETTER`` / ``LOWER_IS_BETTER``, ``cv_`` prefix allowed). With no baseline
  (a first run, MLflow unreachable, the baseline without that metric) it passes, and its message says so.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.project.quality_checks import QualityCheck
from ds_pipelines.results.uncertainty import (
    HIGHER_IS_BETTER,
    LOWER_IS_BETTER,
    WORSE,
    Interval,
    UncertaintyError,
    better_direction,
    checked,
    classify,
)

CHECKS_METADATA_KEY = "ds-pipelines/checks"
"""The notebook asset's materialization metadata holding every check's outcome (``CheckOutcome.to_dict``):
``ds-pipelines run`` reads them there, also when a blocking one then failed the run."""


class CheckOutcomeError(DsPipelinesError):
    """A check outcome read back (results.json) that is not one."""


@dataclass(frozen=True)
class BaselineValues:
    """What a check compares with: the baseline run's metrics and their intervals."""

    run_id: str
    metrics: Mapping[str, float]
    uncertainty: Mapping[str, Interval] = field(default_factory=dict)

    @classmethod
    def from_run(cls, run_id: str, metrics: Mapping[str, float], uncertainty: Mapping[str, Any]) -> BaselineValues:
        """``uncertainty`` as a run's tags hold it; an interval that is not one is left out (a plain comparison)."""
        intervals = {}
        for name, value in uncertainty.items():
            try:
                intervals.update(checked({name: value}, metrics, f"baseline run {run_id}"))
            except UncertaintyError:
                continue
        return cls(run_id=run_id, metrics=dict(metrics), uncertainty=intervals)


@dataclass(frozen=True)
class CheckOutcome:
    """One check's result, as results.json, the asset check's metadata and the comment show it."""

    name: str
    metric: str
    passed: bool
    blocking: bool
    value: float | None
    min: float | None
    max: float | None
    baseline: float | None
    """The baseline's value of the metric; None when there was none (or no baseline condition)."""
    baseline_run_id: str | None
    message: str

    @property
    def status(self) -> str:
        """``passed``, ``failed`` (a blocking check) or ``warning`` (a non-blocking one)."""
        return "passed" if self.passed else "failed" if self.blocking else "warning"

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Any, where: str) -> CheckOutcome:
        """An outcome read back; a CheckOutcomeError naming ``where`` and the key otherwise."""
        if not isinstance(data, dict):
            raise CheckOutcomeError(f"{where}: expected an object, got {data!r}")
        missing = sorted(set(cls.__dataclass_fields__) - set(data))
        if missing:
            raise CheckOutcomeError(f"{where}: required key {missing[0]!r} is missing (expected {sorted(cls.__dataclass_fields__)})")
        for key in ("name", "metric", "message"):
            if not isinstance(data[key], str):
                raise CheckOutcomeError(f"{where}.{key}: expected text, got {data[key]!r}")
        for key in ("passed", "blocking"):
            if not isinstance(data[key], bool):
                raise CheckOutcomeError(f"{where}.{key}: expected true or false, got {data[key]!r}")
        for key in ("value", "min", "max", "baseline"):
            if data[key] is not None and (isinstance(data[key], bool) or not isinstance(data[key], (int, float))):
                raise CheckOutcomeError(f"{where}.{key}: expected null or a number, got {data[key]!r}")
        if data["baseline_run_id"] is not None and not isinstance(data["baseline_run_id"], str):
            raise CheckOutcomeError(f"{where}.baseline_run_id: expected null or text, got {data['baseline_run_id']!r}")
        return cls(**{key: data[key] for key in cls.__dataclass_fields__})


def evaluate(
    check: QualityCheck,
    metrics: Mapping[str, float],
    uncertainty: Mapping[str, Interval],
    baseline: BaselineValues | None,
    *,
    no_baseline: str = "none was looked up",
) -> CheckOutcome:
    """``check`` on the notebook's ``metrics`` (and their ``uncertainty``), against ``baseline`` when it has a
    baseline condition; ``no_baseline`` says why there is none when ``baseline`` is None."""
    value = metrics.get(check.metric)
    outcome = {"name": check.name, "metric": check.metric, "blocking": check.blocking, "min": check.min, "max": check.max,
               "value": value, "baseline": None, "baseline_run_id": None}
    if value is None:
        reported = ", ".join(sorted(metrics)) or "none"
        return CheckOutcome(**outcome, passed=False,
                            message=f"{check.metric} was not reported by the notebook (it reported: {reported})")
    problems, notes = [], []
    if math.isnan(value):
        problems.append(f"{check.metric} is NaN")
    if check.min is not None and value < check.min:
        problems.append(f"{check.metric} {value:.6g} is below min {check.min:g}")
    if check.max is not None and value > check.max:
        problems.append(f"{check.metric} {value:.6g} is above max {check.max:g}")
    if (check.min is not None or check.max is not None) and not problems:
        notes.append(f"{check.metric} {value:.6g} is within " + _bounds(check))
    if check.no_worse_than_baseline:
        base_value = baseline.metrics.get(check.metric) if baseline else None
        if baseline is not None:
            outcome.update(baseline=base_value, baseline_run_id=baseline.run_id)
        problem, note = _against_baseline(check.metric, value, uncertainty.get(check.metric), baseline, base_value, no_baseline)
        problems += [problem] if problem else []
        notes += [note] if note else []
    return CheckOutcome(**outcome, passed=not problems, message="; ".join(problems or notes))


def _bounds(check: QualityCheck) -> str:
    low = "-∞" if check.min is None else f"{check.min:g}"
    high = "∞" if check.max is None else f"{check.max:g}"
    return f"[{low}, {high}]"


def _against_baseline(metric: str, value: float, interval: Interval | None, baseline: BaselineValues | None,
                      base_value: float | None, no_baseline: str) -> tuple[str | None, str | None]:
    """(a problem, or None; a note when it passes)."""
    if baseline is None:
        return None, f"no baseline ({no_baseline}): nothing to compare with, passes"
    if base_value is None:
        return None, f"baseline run {baseline.run_id} has no {metric}: nothing to compare with, passes"
    direction = better_direction(metric)
    if direction == 0:
        known = ", ".join(sorted(HIGHER_IS_BETTER | LOWER_IS_BETTER))
        return (f"cannot tell whether {metric} got worse: its better direction is unknown "
                f"(known: {known}, optionally with the cv_ prefix)"), None
    compared = f"{metric} {_shown(value, interval)} against baseline {_shown(base_value, baseline.uncertainty.get(metric))}"
    base_interval = baseline.uncertainty.get(metric)
    if interval is not None and base_interval is not None:
        verdict = classify(metric, interval, base_interval)
        if verdict == WORSE:
            return f"{compared}: worse beyond noise (the intervals do not overlap)", None
        return None, f"{compared}: {verdict}"
    if (value - base_value) * direction < 0:
        return f"{compared}: worse (no interval on both sides, so any drop counts)", None
    return None, f"{compared}: not worse (no interval on both sides: compared plainly)"


def _shown(value: float, interval: Interval | None) -> str:
    return f"{value:.6g}" + (f" [{interval.low:.6g}, {interval.high:.6g}]" if interval else "")


def blocking_failures(outcomes: list[CheckOutcome]) -> list[CheckOutcome]:
    return [outcome for outcome in outcomes if outcome.status == "failed"]


def failure_summary(outcomes: list[CheckOutcome]) -> str:
    """The error of a notebook whose blocking checks failed: each check's name and values."""
    failed = blocking_failures(outcomes)
    return "blocking check" + ("s" if len(failed) > 1 else "") + " failed: " + "; ".join(
        f"{outcome.name} ({outcome.message})" for outcome in failed)
