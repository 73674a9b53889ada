"""Optuna tuning of an XGBoost classifier for the training notebook (``notebooks/training_example.ipynb``).

What makes it faster than an Optuna loop over ``cross_val_score(XGBClassifier(...))`` at the same trial
budget, with the same folds, metric and search space:

- Each fold's data is quantized once (``xgboost.QuantileDMatrix``) and reused by every trial, instead of
  every fit building its own matrix again.
- With ``early_stopping_rounds``, each fold trains until its validation score stops improving, up to the
  trial's sampled ``n_estimators``; the folds' mean number of rounds becomes the final model's
  ``n_estimators``. So a trial never trains more rounds than the plain loop's trial would. The score is
  checked every ``EVALUATION_INTERVAL`` rounds, not after each one.
- After each fold the trial reports its mean score so far; the pruner stops trials that are clearly worse
  than the complete ones at the same fold. Per-round reports (optuna-integration's ``XGBoostPruningCallback``)
  would compare trials at equal round numbers, where a small learning rate always looks worse early on.

Trials run one after another and so do their folds, each fit on every core XGBoost sees, so that a trial the
pruner stops after its first fold has cost one fit. On two quiet cores a 2-thread fit took 1.07-1.14x the
time per fit of two single-threaded fits side by side (4k to 80k rows, ``benchmarks/fold_threads.py``);
parallel folds would lose more than that to folds trained past a prune and, with 5 folds on 2 cores, to the
odd fold out. Parallel trials would give the seeded sampler results in a timing-dependent order. So a fixed
``sampler_seed`` gives the same trials and the same best trial on one machine (XGBoost's ``hist`` training
is deterministic for a given thread count).

``from ds_pipelines.examples import tuning``
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import optuna
import xgboost
from sklearn import metrics as skm
from sklearn.model_selection import StratifiedKFold

from ds_pipelines.errors import NotebookInputError

STUDY_NAME = "training"
"""Fixed, so that the Hyperband pruner (which assigns trials to brackets by study name) is deterministic."""

XGBOOST_DEFAULT_ROUNDS = 100

EVALUATION_INTERVAL = 5
"""Rounds between two checks of a fold's validation score by early stopping; the best round is one of them."""


@dataclass(frozen=True)
class Tuned:
    """What tuning found: the best parameters (``n_estimators`` included) and how it went."""

    params: dict[str, Any]
    value: float
    fold_scores: list[float]
    """The best trial's score on each fold (its ``value`` is their mean): the spread of the CV metric."""
    best_trial: int
    completed: int
    pruned: int
    seconds: float
    study: Any  # optuna.Study


@dataclass(frozen=True)
class _Fold:
    train: Any  # xgboost.QuantileDMatrix
    valid: Any
    y_valid: np.ndarray


def _score(metric: str, truth: np.ndarray, probability: np.ndarray) -> float:
    """The scikit-learn scorer ``metric`` (as ``cross_val_score`` computes it) on one fold's predictions."""
    if metric == "roc_auc":
        return float(skm.roc_auc_score(truth, probability))
    if metric == "neg_log_loss":
        return -float(skm.log_loss(truth, probability, labels=[0, 1]))
    predicted = (probability >= 0.5).astype(int)
    if metric == "accuracy":
        return float(skm.accuracy_score(truth, predicted))
    scorer = {"f1": skm.f1_score, "precision": skm.precision_score, "recall": skm.recall_score}[metric]
    return float(scorer(truth, predicted, zero_division=0))


def _stopping_metric(metric: str) -> str:
    """XGBoost's own metric that early stopping watches: AUC for ROC AUC, else log loss (smooth, unlike the
    thresholded metrics, so it does not stop on a plateau of equal accuracy)."""
    return "auc" if metric == "roc_auc" else "logloss"


def _binary_labels(y) -> np.ndarray:
    labels = np.asarray(y)
    if not np.isin(np.unique(labels), (0, 1)).all():
        found = ", ".join(repr(value) for value in np.unique(labels)[:5].tolist())
        raise NotebookInputError(f"the outcome must be 0/1 for this binary classifier, found values {found}")
    return labels.astype(np.float32)


def _folds(X, y: np.ndarray, n_folds: int, seed: int, max_bin: int) -> list[_Fold]:
    """The stratified folds ``cross_val_score`` would use (same splitter, same seed), quantized once."""
    features = np.asarray(X, dtype=np.float32)
    splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=seed)
    folds = []
    for train_rows, valid_rows in splitter.split(features, y):
        train = xgboost.QuantileDMatrix(features[train_rows], y[train_rows], max_bin=max_bin)
        valid = xgboost.QuantileDMatrix(features[valid_rows], y[valid_rows], ref=train)
        folds.append(_Fold(train, valid, y[valid_rows]))
    return folds


def _cores() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


class _EarlyStopping(xgboost.callback.TrainingCallback):
    """Ends a fold's training once its validation score has not improved for ``patience`` rounds, checking it
    every ``EVALUATION_INTERVAL`` rounds. XGBoost's own early stopping evaluates after every round, which cost
    a fifth of each fit at 100k rows."""

    def __init__(self, valid, patience: int, maximize: bool):
        super().__init__()
        self._valid, self._patience, self._maximize = valid, patience, maximize
        self._best_score: float | None = None
        self.best_round = -1

    def score(self, model, epoch: int) -> None:
        """Evaluate the model after round ``epoch`` (0-based) and keep it if it is the best so far."""
        score = float(model.eval_set([(self._valid, "valid")], epoch).rsplit(":", 1)[1])  # "[12]\tvalid-auc:0.97"
        if self._best_score is None or (score > self._best_score if self._maximize else score < self._best_score):
            self._best_score, self.best_round = score, epoch

    def after_iteration(self, model, epoch: int, evals_log) -> bool:
        if (epoch + 1) % EVALUATION_INTERVAL:
            return False
        self.score(model, epoch)
        return epoch - self.best_round >= self._patience


def _train_fold(params: dict, fold: _Fold, rounds_cap: int, early_stopping: int | None):
    """One fold's validation predictions at its best round, and that round count."""
    if not early_stopping:
        booster = xgboost.train(params, fold.train, num_boost_round=rounds_cap)
        return booster.predict(fold.valid), rounds_cap
    watch = _EarlyStopping(fold.valid, early_stopping, maximize=params["eval_metric"] == "auc")
    booster = xgboost.train(params, fold.train, num_boost_round=rounds_cap, callbacks=[watch])
    watch.score(booster, booster.num_boosted_rounds() - 1)  # the last round, when it fell between two checks
    used = watch.best_round + 1
    return booster.predict(fold.valid, iteration_range=(0, used)), used


def make_pruner(name: str, n_folds: int):
    """The Optuna pruner the config names; a trial's steps are its folds."""
    pruners = {
        # Five complete trials before any pruning: the median of fewer is noise.
        "median": lambda: optuna.pruners.MedianPruner(n_startup_trials=5, n_warmup_steps=0),
        # Optuna's percentile is the share kept: a trial goes on only while in the top quarter (tenth).
        "top_quarter": lambda: optuna.pruners.PercentilePruner(25.0, n_startup_trials=5, n_warmup_steps=0),
        "top_tenth": lambda: optuna.pruners.PercentilePruner(10.0, n_startup_trials=5, n_warmup_steps=0),
        "hyperband": lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=n_folds, reduction_factor=3),
        "none": optuna.pruners.NopPruner,
    }
    return pruners[name]()


def suggest(trial, search_space: Mapping[str, Any]) -> dict[str, Any]:
    """One value per search-space dimension (``type``, ``low``, ``high``, ``log`` as in the config)."""
    params: dict[str, Any] = {}
    for name, space in search_space.items():
        if space.type == "int":
            params[name] = trial.suggest_int(name, int(space.low), int(space.high), log=space.log)
        else:
            params[name] = trial.suggest_float(name, space.low, space.high, log=space.log)
    return params


def tune_xgboost(
    X,
    y,
    settings,
    *,
    fixed_params: Mapping[str, Any],
    device: str,
    random_state: int,
    callbacks: Sequence[Callable] = (),
) -> Tuned:
    """Tune an ``XGBClassifier`` by k-fold CV under the notebook config's ``optuna`` section (``settings``:
    ``n_trials``, ``timeout``, ``direction``, ``metric``, ``cv_folds``, ``sampler_seed``, ``search_space``,
    ``pruner``, ``early_stopping_rounds``); ``fixed_params`` (``model.params``) apply to every trial."""
    started = time.monotonic()
    labels = _binary_labels(y)
    folds = _folds(X, labels, settings.cv_folds, random_state, int(fixed_params.get("max_bin", 256)))
    early_stopping = settings.early_stopping_rounds
    space = settings.search_space
    default_rounds = int(fixed_params.get("n_estimators", XGBOOST_DEFAULT_ROUNDS))

    def objective(trial) -> float:
        sampled = suggest(trial, space)
        # The sampled n_estimators caps the rounds; early stopping may end a fold sooner, so a trial never
        # trains more than the plain cross_val_score trial with the same parameters would.
        rounds_cap = int(sampled.get("n_estimators", default_rounds))
        # The sklearn wrapper's own translation (n_jobs -> nthread, random_state -> seed, objective), so a
        # trial trains exactly what the final XGBClassifier will.
        model = xgboost.XGBClassifier(**{**fixed_params, **sampled}, device=device, random_state=random_state)
        params = {**model.get_xgb_params(), "nthread": _cores(), "eval_metric": _stopping_metric(settings.metric)}
        scores, rounds = [], []
        for step, fold in enumerate(folds):
            probability, used = _train_fold(params, fold, rounds_cap, early_stopping)
            scores.append(_score(settings.metric, fold.y_valid, probability))
            rounds.append(used)
            trial.report(float(np.mean(scores)), step)
            # After the last fold the work is done: a result is worth more than a prune.
            if step < len(folds) - 1 and trial.should_prune():
                raise optuna.TrialPruned()
        trial.set_user_attr("n_estimators", int(round(np.mean(rounds))))
        trial.set_user_attr("fold_rounds", rounds)
        trial.set_user_attr("fold_scores", scores)
        return float(np.mean(scores))

    study = optuna.create_study(
        study_name=STUDY_NAME,
        direction=settings.direction,
        sampler=optuna.samplers.TPESampler(seed=settings.sampler_seed),
        pruner=make_pruner(settings.pruner, settings.cv_folds),
    )
    study.optimize(objective, n_trials=settings.n_trials, timeout=settings.timeout, callbacks=list(callbacks))
    states = [trial.state for trial in study.trials]
    if optuna.trial.TrialState.COMPLETE not in states:
        raise NotebookInputError(f"no tuning trial completed within optuna.timeout ({settings.timeout} s)")
    best = study.best_trial
    return Tuned(
        params={**best.params, "n_estimators": best.user_attrs["n_estimators"]},
        value=float(best.value),
        fold_scores=list(best.user_attrs["fold_scores"]),
        best_trial=best.number,
        completed=states.count(optuna.trial.TrialState.COMPLETE),
        pruned=states.count(optuna.trial.TrialState.PRUNED),
        seconds=time.monotonic() - started,
        study=study,
    )
