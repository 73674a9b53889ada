"""A run's metrics as GitLab's metrics report (``artifacts:reports:metrics``): OpenMetrics text. Standard library only.

GitLab's merge-request widget compares each ``name value`` line with the target branch's report. One gauge per
notebook metric, ``<notebook>_<metric>``, and one per quality check, ``<notebook>_check_<check>_passed`` (1 or 0),
names made OpenMetrics names (``[a-zA-Z_:][a-zA-Z0-9_:]*``: other characters become ``_``), ending in ``# EOF``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping

from ds_pipelines.results.checks import CheckOutcome

METRICS_REPORT_FILE = "metrics.txt"


def metric_name(*parts: str) -> str:
    """``parts`` joined with ``_`` as an OpenMetrics name (``nb_`` in front of a leading digit)."""
    name = re.sub(r"[^a-zA-Z0-9_:]", "_", "_".join(parts))
    return f"nb_{name}" if name[:1].isdigit() or not name else name


def metrics_report(notebooks: Iterable[tuple[str, Mapping[str, float], list[CheckOutcome]]]) -> str:
    """The report of ``(notebook name, metrics, check outcomes)``; two names made alike by the sanitizing keep
    both, the later one suffixed ``_2``, ``_3``..."""
    lines: list[str] = []
    seen: set[str] = set()

    def gauge(name: str, value: float) -> None:
        unique, count = name, 1
        while unique in seen:
            count += 1
            unique = f"{name}_{count}"
        seen.add(unique)
        lines.extend([f"# TYPE {unique} gauge", f"{unique} {_number(value)}"])

    for notebook, metrics, checks in notebooks:
        for metric, value in metrics.items():
            gauge(metric_name(notebook, metric), value)
        for outcome in checks:
            gauge(metric_name(notebook, "check", outcome.name, "passed"), 1.0 if outcome.passed else 0.0)
    return "\n".join([*lines, "# EOF"]) + "\n"


def _number(value: float) -> str:
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "+Inf" if value > 0 else "-Inf"
    return repr(float(value))
