"""Uncertainty of the reference training notebook's metrics: a seeded bootstrap interval of held-out metrics,
and the spread of cross-validation fold scores, each as the ``dsp.Interval`` that ``dsp.report(uncertainty=...)``
takes. No Dagster, no model library: any notebook may use them.

``from ds_pipelines.examples import uncertainty as uncx``
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence

import numpy as np

from ds_pipelines.results.uncertainty import Interval, UncertaintyError

RESAMPLES = 1000
LEVEL = 0.95
FOLD_SPREAD = "CV fold ±1 sd"
THRESHOLD = 0.5


def roc_auc(y_true: np.ndarray, score: np.ndarray) -> float:
    """ROC AUC as the Mann-Whitney statistic (ties count half), as scikit-learn's ``roc_auc_score``."""
    from scipy.stats import rankdata

    positive = y_true == 1
    n_positive, n_negative = int(positive.sum()), int((~positive).sum())
    if not n_positive or not n_negative:
        raise ValueError("ROC AUC is undefined with one class only")
    return float((rankdata(score)[positive].sum() - n_positive * (n_positive + 1) / 2) / (n_positive * n_negative))


def _confusion(y_true: np.ndarray, score: np.ndarray) -> tuple[int, int, int, int]:
    predicted, actual = score >= THRESHOLD, y_true == 1
    return int((predicted & actual).sum()), int((predicted & ~actual).sum()), int((~predicted & actual).sum()), len(y_true)


def accuracy(y_true: np.ndarray, score: np.ndarray) -> float:
    return float(np.mean((score >= THRESHOLD) == (y_true == 1)))


def precision(y_true: np.ndarray, score: np.ndarray) -> float:
    tp, fp, _, _ = _confusion(y_true, score)
    return tp / (tp + fp) if tp + fp else 0.0


def recall(y_true: np.ndarray, score: np.ndarray) -> float:
    tp, _, fn, _ = _confusion(y_true, score)
    return tp / (tp + fn) if tp + fn else 0.0


def f1(y_true: np.ndarray, score: np.ndarray) -> float:
    tp, fp, fn, _ = _confusion(y_true, score)
    return 2 * tp / (2 * tp + fp + fn) if tp else 0.0


def log_loss(y_true: np.ndarray, score: np.ndarray) -> float:
    eps = np.finfo(score.dtype).eps if np.issubdtype(score.dtype, np.floating) else np.finfo(float).eps
    p = np.clip(score, eps, 1 - eps)
    return float(-np.mean(np.where(y_true == 1, np.log(p), np.log(1 - p))))


BINARY_METRICS = {"roc_auc": roc_auc, "accuracy": accuracy, "precision": precision, "recall": recall, "f1": f1, "log_loss": log_loss}
"""The training notebook's held-out metrics of a binary classifier's probability (threshold 0.5), equal to
scikit-learn's (zero_division=0) but some 60 times faster (``benchmarks/uncertainty_cost.py``): the bootstrap
computes each 1,000 times."""


def bootstrap_intervals(
    y_true: Sequence, y_score: Sequence, metrics: Mapping[str, Callable[[np.ndarray, np.ndarray], float]], *,
    seed: int, resamples: int = RESAMPLES, level: float = LEVEL,
) -> dict[str, Interval]:
    """Percentile bootstrap interval of each metric (``metric(y_true, y_score)``) over the held-out rows.

    The same row resamples serve every metric, drawn from ``numpy.random.default_rng(seed)``: the same seed
    gives the same intervals. A resample on which a metric is undefined (one class only, for ROC AUC) is
    skipped for that metric."""
    y_true, y_score = np.asarray(y_true), np.asarray(y_score)
    if len(y_true) != len(y_score) or len(y_true) < 2:
        raise UncertaintyError(f"bootstrap needs matching labels and scores of at least 2 rows, got {len(y_true)} and {len(y_score)}")
    if not 0 < level < 1:
        raise UncertaintyError(f"bootstrap level must be between 0 and 1, got {level!r}")
    rng = np.random.default_rng(seed)
    samples = rng.integers(0, len(y_true), size=(resamples, len(y_true)))
    values: dict[str, list[float]] = {name: [] for name in metrics}
    for rows in samples:
        truth, score = y_true[rows], y_score[rows]
        for name, metric in metrics.items():
            try:
                values[name].append(float(metric(truth, score)))
            except ValueError:  # undefined on this resample (e.g. a single class)
                continue
    kind = f"bootstrap {level:.0%}"
    tail = (1 - level) / 2 * 100
    intervals = {}
    for name, found in values.items():
        if not found:
            raise UncertaintyError(f"bootstrap: metric {name!r} is undefined on every resample of the held-out rows")
        low, high = np.percentile(found, [tail, 100 - tail])
        intervals[name] = Interval(float(low), float(high), kind)
    return intervals


def fold_spread(scores: Sequence[float]) -> Interval:
    """Mean ± one sample standard deviation of the cross-validation fold scores."""
    scores = np.asarray(scores, dtype=float)
    if len(scores) < 2:
        raise UncertaintyError(f"the fold spread needs at least 2 fold scores, got {len(scores)}")
    mean, sd = float(scores.mean()), float(scores.std(ddof=1))
    return Interval(mean - sd, mean + sd, FOLD_SPREAD)
