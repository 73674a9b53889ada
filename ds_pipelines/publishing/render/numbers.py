"""How metric values, deltas, durations and commits are shown, the same way on every page."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

DEFAULT_KEY_METRICS = ("roc_auc", "accuracy", "f1", "precision", "recall", "log_loss", "rmse", "mae", "r2", "row_count")
"""Metrics shown first (and in wiki rows); a notebook's other metrics follow in name order."""
MAX_KEY_METRICS = 6


def format_value(value: float | None) -> str:
    if value is None:
        return "—"
    if math.isnan(value) or math.isinf(value):
        return str(value)
    return f"{value:.4g}"


def format_uncertain(value: float | None, half_width: float | None) -> str:
    """``0.9934 ± 0.0071`` (the interval's half width), or the plain value without one."""
    shown = format_value(value)
    return shown if value is None or half_width is None else f"{shown} ± {half_width:.2g}"


def format_delta(current: float, baseline: float) -> str:
    """``+0.0123`` / ``-0.004`` / ``0``; differences within float noise count as none."""
    if any(math.isnan(v) or math.isinf(v) for v in (current, baseline)):
        return "—"
    delta = current - baseline
    if abs(delta) <= 1e-12 * max(1.0, abs(current), abs(baseline)):
        return "0"
    return f"{delta:+.4g}"


def format_duration(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    if seconds < 60:
        return f"{seconds:.1f} s"
    minutes, secs = divmod(int(round(seconds)), 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours} h {minutes:02d} min" if hours else f"{minutes} min {secs:02d} s"


def short_sha(sha: str | None) -> str:
    return sha[:8] if sha else "—"


def ordered_metrics(names: Iterable[str], preferred: Iterable[str] = DEFAULT_KEY_METRICS) -> list[str]:
    """``names`` with the preferred metrics first (in that order), then the rest by name."""
    names = list(dict.fromkeys(names))
    first = [name for name in preferred if name in names]
    return first + sorted(name for name in names if name not in first)


def key_metrics(metrics: Mapping[str, float], preferred: Iterable[str] = DEFAULT_KEY_METRICS, limit: int = MAX_KEY_METRICS) -> dict[str, float]:
    """The few metrics worth a column: the preferred ones present, else the first by name."""
    preferred = list(preferred)
    chosen = [name for name in preferred if name in metrics] or sorted(metrics)
    return {name: metrics[name] for name in chosen[:limit]}


def format_time(timestamp: str | None) -> str:
    """An ISO timestamp as ``2024-05-01 14:03 UTC``; anything else unchanged."""
    if not timestamp:
        return "—"
    from datetime import datetime, timezone

    try:
        moment = datetime.fromisoformat(timestamp)
    except ValueError:
        return timestamp
    if moment.tzinfo is not None:
        moment = moment.astimezone(timezone.utc)
    return moment.strftime("%Y-%m-%d %H:%M") + (" UTC" if moment.tzinfo is not None else "")
