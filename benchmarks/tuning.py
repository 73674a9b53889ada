"""The training notebook's tuning (``ds_pipelines.examples.tuning``) against a plain sequential Optuna loop over
``cross_val_score(XGBClassifier(...))``, side by side in one run, on ``make_classification`` data.

Both get the same data, folds (StratifiedKFold, shuffled, same seed), metric (ROC AUC), search space (the
training config's default), trial budget and TPE sampler seed; the tuner's early stopping may end a fold
before the sampled ``n_estimators``. Printed: wall and CPU seconds, best CV AUC, trials pruned, and the tuner's
best parameters scored again by ``cross_val_score`` with its ``n_estimators`` fixed (early stopping picks
each fold's best round on that fold, which flatters its own CV score a little; the rescore does not).

    uv run python benchmarks/tuning.py                      # 100k rows x 30 features, 50 trials, 5-fold
    uv run python benchmarks/tuning.py --rows 20000 --trials 20 --folds 3     # a quick run
    uv run python benchmarks/tuning.py --parallel-trials 2  # also: the plain loop with 2 parallel 1-thread trials
    uv run python benchmarks/tuning.py --pruner top_tenth top_quarter     # each pruner against one plain loop
"""

from __future__ import annotations

import argparse
import resource
import time
from dataclasses import dataclass
from typing import get_args

import numpy as np
import optuna
from sklearn.datasets import make_classification
from sklearn.model_selection import StratifiedKFold, cross_val_score
from xgboost import XGBClassifier

from ds_pipelines.examples.tuning import suggest, tune_xgboost
from ds_pipelines.project.schemas.training import OptunaSettings


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def plain_loop(X, y, settings: OptunaSettings, seed: int, parallel_trials: int = 1) -> tuple[float, dict, int]:
    """The notebook's tuning before: every trial a ``cross_val_score`` over freshly built XGBClassifiers."""
    folds = StratifiedKFold(n_splits=settings.cv_folds, shuffle=True, random_state=seed)
    threads = -1 if parallel_trials == 1 else 1

    def objective(trial):
        model = XGBClassifier(**suggest(trial, settings.search_space), n_jobs=threads, random_state=seed)
        return cross_val_score(model, X, y, cv=folds, scoring=settings.metric).mean()

    study = optuna.create_study(direction="maximize", sampler=optuna.samplers.TPESampler(seed=settings.sampler_seed))
    study.optimize(objective, n_trials=settings.n_trials, n_jobs=parallel_trials)
    return study.best_value, study.best_params, study.best_trial.number


def timed(label: str, run):
    wall, cpu = time.perf_counter(), cpu_seconds()
    result = run()
    wall, cpu = time.perf_counter() - wall, cpu_seconds() - cpu
    print(f"{label}: {wall:.1f} s wall, {cpu:.1f} s CPU", flush=True)
    return result, wall, cpu


@dataclass(frozen=True)
class TunerResult:
    pruner: str
    value: float
    rescored: float
    wall: float
    cpu: float


def run_tuner(X, y, settings: OptunaSettings, seed: int) -> TunerResult:
    tuned, wall, cpu = timed(f"tuner, pruner {settings.pruner}", lambda: tune_xgboost(
        X, y, settings, fixed_params={}, device="cpu", random_state=seed))
    print(f"  best CV AUC {tuned.value:.5f} (trial {tuned.best_trial + 1}), {tuned.completed} complete, "
          f"{tuned.pruned} pruned; {tuned.params}", flush=True)
    folds = StratifiedKFold(n_splits=settings.cv_folds, shuffle=True, random_state=seed)
    rescored = cross_val_score(XGBClassifier(**tuned.params, random_state=seed), X, y, cv=folds,
                               scoring="roc_auc").mean()
    print(f"  its best parameters rescored by cross_val_score: {rescored:.5f}", flush=True)
    return TunerResult(settings.pruner, tuned.value, rescored, wall, cpu)


def main() -> None:
    pruners = get_args(OptunaSettings.model_fields["pruner"].annotation)
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--features", type=int, default=30)
    parser.add_argument("--trials", type=int, default=50)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--seed", type=int, default=42, help="data, folds and sampler seed")
    parser.add_argument("--pruner", nargs="+", default=[OptunaSettings().pruner], choices=pruners,
                        help="time the tuner with each of these pruners (default: the config's default)")
    parser.add_argument("--early-stopping-rounds", type=int, default=30)
    parser.add_argument("--parallel-trials", type=int, default=1,
                        help="also time the plain loop with this many parallel single-threaded trials")
    args = parser.parse_args()
    optuna.logging.set_verbosity(optuna.logging.WARNING)

    X, y = make_classification(n_samples=args.rows, n_features=args.features, n_informative=10, n_redundant=5,
                               flip_y=0.05, random_state=args.seed)
    X = X.astype(np.float32)
    settings = OptunaSettings(n_trials=args.trials, timeout=None, cv_folds=args.folds, sampler_seed=args.seed,
                              early_stopping_rounds=args.early_stopping_rounds)
    print(f"make_classification: {args.rows} rows x {args.features} features, seed {args.seed}; {args.trials} "
          f"trials, {args.folds}-fold CV, ROC AUC; tuner: early stopping {args.early_stopping_rounds} rounds",
          flush=True)

    tuners = [run_tuner(X, y, settings.model_copy(update={"pruner": pruner}), args.seed) for pruner in args.pruner]

    (plain_value, plain_params, plain_best), plain_wall, plain_cpu = timed(
        "plain loop", lambda: plain_loop(X, y, settings, args.seed))
    print(f"  best CV AUC {plain_value:.5f} (trial {plain_best + 1}); {plain_params}", flush=True)
    if args.parallel_trials > 1:
        (parallel_value, _, _), parallel_wall, _ = timed(
            f"plain loop, {args.parallel_trials} parallel 1-thread trials",
            lambda: plain_loop(X, y, settings, args.seed, args.parallel_trials))
        print(f"  best CV AUC {parallel_value:.5f}; wall {parallel_wall / plain_wall:.2f}x the sequential loop's", flush=True)

    print("\ngoal: best CV AUC within 0.001 of the plain loop's (the rescored figure), at most 1/3 of its wall time")
    for tuner in tuners:
        # Within 0.001 means no worse by more than 0.001.
        goal_met = tuner.wall <= plain_wall / 3 and tuner.rescored >= plain_value - 0.001
        print(f"tuner ({tuner.pruner}) vs plain loop: wall {tuner.wall / plain_wall:.3f}x "
              f"({plain_wall / tuner.wall:.1f}x faster), CPU {tuner.cpu / plain_cpu:.3f}x; best CV AUC "
              f"{tuner.value - plain_value:+.5f} (rescored {tuner.rescored - plain_value:+.5f}): "
              f"goal {'met' if goal_met else 'NOT met'}")


if __name__ == "__main__":
    main()
