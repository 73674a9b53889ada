"""One XGBoost fit on every core against single-threaded fits side by side, one per core, at several sizes:
the tuner (``ds_pipelines.examples.tuning``) trains a trial's folds one after another on every core, and this
is what that costs per fit. Best of ``--repeats`` each, on ``make_classification`` data.

    uv run python benchmarks/fold_threads.py
    uv run python benchmarks/fold_threads.py --rows 4000 80000 --rounds 100
"""

from __future__ import annotations

import argparse
import os
import threading
import time

import numpy as np
import xgboost
from sklearn.datasets import make_classification

PARAMS = {"objective": "binary:logistic", "max_depth": 6, "learning_rate": 0.1, "subsample": 0.8,
          "colsample_bytree": 0.8, "tree_method": "hist"}


def best_seconds(run, repeats: int) -> float:
    best = float("inf")
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[4000, 8000, 16000, 24000, 40000, 80000],
                        help="training rows of each size measured")
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    X, y = make_classification(n_samples=max(args.rows), n_features=args.features, n_informative=10,
                               n_redundant=5, flip_y=0.05, random_state=42)
    X, y = X.astype(np.float32), y.astype(np.float32)
    print(f"{cores} cores; {args.rounds} rounds of depth {PARAMS['max_depth']}, {args.features} features", flush=True)
    for rows in args.rows:
        data = xgboost.QuantileDMatrix(X[:rows], y[:rows])

        def fit(threads: int) -> None:
            xgboost.train({**PARAMS, "nthread": threads}, data, args.rounds)

        def side_by_side() -> None:
            fits = [threading.Thread(target=fit, args=(1,)) for _ in range(cores)]
            for each in fits:
                each.start()
            for each in fits:
                each.join()

        all_cores = best_seconds(lambda: fit(cores), args.repeats)
        per_fit = best_seconds(side_by_side, args.repeats) / cores
        print(f"{rows:>8} rows: one fit on {cores} threads {all_cores:.2f} s; per fit, {cores} 1-thread fits "
              f"side by side {per_fit:.2f} s; ratio {all_cores / per_fit:.2f}", flush=True)


if __name__ == "__main__":
    main()
