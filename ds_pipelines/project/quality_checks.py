"""Quality checks a notebook's entry in ``configs/notebooks.yaml`` lists under ``checks:``. Standard library only.

Each check is on one metric the notebook reports (``dsp.report(metrics=...)``) and has at least one condition:
``min`` and/or ``max`` (bounds, inclusive), and/or ``no_worse_than_baseline: true`` (not worse beyond noise than
the notebook's latest run on the default branch). ``blocking`` (default true) says what a failure does: a
blocking check fails the run, a non-blocking one is a warning. ``ds_pipelines.results.checks`` evaluates them.

Whether a metric name is one the notebook reports is only known once it ran: here the name's form is checked; a
metric the notebook did not report fails its check, naming the metrics it did report.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

from ds_pipelines.errors import ConfigError, shown, unknown_key

CHECK_KEYS = ("metric", "min", "max", "no_worse_than_baseline", "blocking")
_METRIC_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.\-/]*")
"""What MLflow accepts as a metric name, spaces left out (a YAML key with spaces is easy to get wrong)."""


@dataclass(frozen=True)
class QualityCheck:
    """One check on a notebook's metric; every condition given must hold."""

    metric: str
    min: float | None = None
    max: float | None = None
    no_worse_than_baseline: bool = False
    blocking: bool = True

    @property
    def name(self) -> str:
        """The Dagster asset check's name: ``<metric>_min`` / ``_max`` / ``_range``, then ``_vs_baseline``."""
        bounds = {(True, False): "_min", (False, True): "_max", (True, True): "_range"}.get(
            (self.min is not None, self.max is not None), "")
        return re.sub(r"[^A-Za-z0-9_]", "_", self.metric) + bounds + ("_vs_baseline" if self.no_worse_than_baseline else "")

    def describe(self) -> str:
        """The conditions in words: ``roc_auc ≥ 0.95``, ``roc_auc not worse than the baseline beyond noise``."""
        parts = []
        if self.min is not None and self.max is not None:
            parts.append(f"{self.min:g} ≤ {self.metric} ≤ {self.max:g}")
        elif self.min is not None:
            parts.append(f"{self.metric} ≥ {self.min:g}")
        elif self.max is not None:
            parts.append(f"{self.metric} ≤ {self.max:g}")
        if self.no_worse_than_baseline:
            parts.append(f"{self.metric} not worse than the default branch's baseline beyond noise")
        return " and ".join(parts) + ("" if self.blocking else " (non-blocking)")


def check_problems(file: str, key: str, value: Any) -> list[ConfigError]:
    """What is wrong with a notebook's ``checks:`` list (``key`` is its key in ``file``), every problem."""
    if not isinstance(value, list):
        return [ConfigError(file, key, f"expected a list of checks such as {{metric: roc_auc, min: 0.9}}, got {shown(value)}")]
    problems: list[ConfigError] = []
    names: dict[str, int] = {}
    for index, entry in enumerate(value):
        where = f"{key}[{index}]"
        found = _entry_problems(file, where, entry)
        problems += found
        if not found:
            name = parse_check(entry).name
            if name in names:
                problems.append(ConfigError(file, where, f"the same check as {key}[{names[name]}] (both are {name!r}): "
                                                         "put the conditions on one metric in one check"))
            names.setdefault(name, index)
    return problems


def _entry_problems(file: str, where: str, entry: Any) -> list[ConfigError]:
    if not isinstance(entry, dict):
        return [ConfigError(file, where, f"expected a mapping with keys {list(CHECK_KEYS)}, got {shown(entry)}")]
    problems = [ConfigError(file, f"{where}.{unknown}", unknown_key(unknown, CHECK_KEYS))
                for unknown in sorted(set(entry) - set(CHECK_KEYS), key=str)]
    metric = entry.get("metric")
    if not isinstance(metric, str) or not _METRIC_NAME.fullmatch(metric):
        problems.append(ConfigError(file, f"{where}.metric", "expected the name of a metric the notebook reports "
                                    f"(letters, digits, _ . - /), got {shown(metric)}"))
    for bound in ("min", "max"):
        if bound in entry and not _is_finite_number(entry[bound]):
            problems.append(ConfigError(file, f"{where}.{bound}", f"expected a number, got {shown(entry[bound])}"))
    if _is_finite_number(entry.get("min")) and _is_finite_number(entry.get("max")) and entry["min"] > entry["max"]:
        problems.append(ConfigError(file, f"{where}.min", f"min {shown(entry['min'])} is above max {shown(entry['max'])}: no value can pass"))
    for flag in ("no_worse_than_baseline", "blocking"):
        if flag in entry and not isinstance(entry[flag], bool):
            problems.append(ConfigError(file, f"{where}.{flag}", f"expected true or false, got {shown(entry[flag])}"))
    if not any(entry.get(condition) not in (None, False) for condition in ("min", "max", "no_worse_than_baseline")):
        problems.append(ConfigError(file, where, "a check needs a condition: min, max or no_worse_than_baseline: true"))
    return problems


def parse_check(entry: dict[str, Any]) -> QualityCheck:
    """A check from an entry ``check_problems`` found nothing wrong with."""
    return QualityCheck(
        metric=entry["metric"],
        min=None if entry.get("min") is None else float(entry["min"]),
        max=None if entry.get("max") is None else float(entry["max"]),
        no_worse_than_baseline=entry.get("no_worse_than_baseline", False),
        blocking=entry.get("blocking", True),
    )


def _is_finite_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
