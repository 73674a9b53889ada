"""What the training notebook's uncertainty costs, side by side in one run, on the reference data
(569 rows, a quarter held out, as the notebook splits it):

- the seeded bootstrap (1,000 resamples, six held-out metrics) with ``uncx.BINARY_METRICS`` against the same
  bootstrap with scikit-learn's metric functions (what the fast metrics save);
- the bootstrap against one XGBoost fit (300 trees, depth 4) on the training part (what it adds
  to the notebook's evaluation).

The machine is shared and noisy: compare the ratios within one run.

    uv run python benchmarks/uncertainty_cost.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import statistics
import time

from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split
from xgboost import XGBClassifier

from ds_pipelines.examples import uncertainty as uncx

SKLEARN_METRICS = {
    "roc_auc": lambda y, p: skm.roc_auc_score(y, p),
    "accuracy": lambda y, p: skm.accuracy_score(y, p >= 0.5),
    "precision": lambda y, p: skm.precision_score(y, p >= 0.5, zero_division=0),
    "recall": lambda y, p: skm.recall_score(y, p >= 0.5, zero_division=0),
    "f1": lambda y, p: skm.f1_score(y, p >= 0.5, zero_division=0),
    "log_loss": lambda y, p: skm.log_loss(y, p, labels=[0, 1]),
}


def best_of(repeat: int, action) -> float:
    timings = []
    for _ in range(repeat):
        started = time.perf_counter()
        action()
        timings.append(time.perf_counter() - started)
    return statistics.median(timings)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=3)
    repeat = parser.parse_args().repeat
    data = load_breast_cancer()
    X_train, X_test, y_train, y_test = train_test_split(data.data, data.target, test_size=0.25, random_state=42, stratify=data.target)
    model = XGBClassifier(n_estimators=300, max_depth=4, learning_rate=0.1, n_jobs=-1, random_state=42)
    fit = best_of(repeat, lambda: model.fit(X_train, y_train))
    probability = model.predict_proba(X_test)[:, 1]
    fast = best_of(repeat, lambda: uncx.bootstrap_intervals(y_test, probability, uncx.BINARY_METRICS, seed=42))
    slow = best_of(max(1, repeat // 3), lambda: uncx.bootstrap_intervals(y_test, probability, SKLEARN_METRICS, seed=42))
    print(f"{'what':<46}{'seconds':>10}{'ratio':>10}")
    print(f"{'bootstrap, uncx.BINARY_METRICS':<46}{fast:>10.3f}{1:>10.2f}")
    print(f"{'bootstrap, scikit-learn metric functions':<46}{slow:>10.3f}{slow / fast:>10.2f}")
    print(f"{'one XGBoost fit (300 trees, depth 4)':<46}{fit:>10.3f}{fit / fast:>10.2f}")


if __name__ == "__main__":
    main()
