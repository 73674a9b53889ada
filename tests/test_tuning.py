"""The training notebook's tuning (``ds_pipelines.examples.tuning``): the pruner and early stopping come from the
validated config, and a fixed sampler seed gives the same best trial twice."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import optuna
import pytest
import yaml
from sklearn.datasets import load_breast_cancer

from ds_pipelines.errors import ConfigError, NotebookInputError
from ds_pipelines.examples.tuning import EVALUATION_INTERVAL, tune_xgboost
from ds_pipelines.project.config import validate
from ds_pipelines.project.schemas.training import (
    OptunaSettings,
    Parameter,
    TrainingConfig,
)

REPO = Path(__file__).resolve().parent.parent
CONFIG = "configs/training_config.yaml"


@pytest.fixture(scope="module")
def data():
    frame = load_breast_cancer(as_frame=True).frame.sample(n=240, random_state=0)
    return frame.drop(columns=["target"]), frame["target"]


FOLDS = 3
# Small, so that a test's tuning takes a second or two.
SEARCH_SPACE = {
    "max_depth": Parameter(type="int", low=2, high=4),
    "learning_rate": Parameter(low=0.01, high=0.3, log=True),
    "n_estimators": Parameter(type="int", low=10, high=60),
    "subsample": Parameter(low=0.6, high=1.0),
}


def tune(data, **settings):
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    X, y = data
    options = {"n_trials": 8, "timeout": None, "cv_folds": FOLDS, "sampler_seed": 7, "search_space": SEARCH_SPACE, **settings}
    return tune_xgboost(X, y, OptunaSettings(**options), fixed_params={}, device="cpu", random_state=42)


def test_a_fixed_seed_gives_the_same_best_trial_twice(data):
    first, second = tune(data), tune(data)
    assert (first.best_trial, first.params, first.value) == (second.best_trial, second.params, second.value)
    assert [t.params for t in first.study.trials] == [t.params for t in second.study.trials]


def test_the_best_value_is_the_mean_of_its_fold_scores(data):
    """The fold scores give the CV metric's spread (uncertainty) in the training notebook."""
    tuned = tune(data, n_trials=3)
    assert len(tuned.fold_scores) == FOLDS and len(set(tuned.fold_scores)) > 1
    assert tuned.value == pytest.approx(sum(tuned.fold_scores) / FOLDS)


def test_another_seed_samples_other_trials(data):
    assert [t.params for t in tune(data, n_trials=3).study.trials] != [t.params for t in tune(data, n_trials=3, sampler_seed=8).study.trials]


def test_early_stopping_ends_folds_before_the_trials_n_estimators(data):
    tuned = tune(data, early_stopping_rounds=3, pruner="none")
    trials = tuned.study.trials
    assert all(t.user_attrs["n_estimators"] <= t.params["n_estimators"] for t in trials)
    assert any(t.user_attrs["n_estimators"] < t.params["n_estimators"] for t in trials), "early stopping never stopped"
    assert tuned.params["n_estimators"] == tuned.study.best_trial.user_attrs["n_estimators"]


def test_early_stopping_checks_the_score_every_few_rounds_and_after_the_last(data):
    """A fold's best round is one where early stopping looked: every EVALUATION_INTERVAL rounds, or the last."""
    trials = tune(data, early_stopping_rounds=5, pruner="none").study.trials
    fold_rounds = [(rounds, t.params["n_estimators"]) for t in trials for rounds in t.user_attrs["fold_rounds"]]
    assert all(rounds % EVALUATION_INTERVAL == 0 or rounds == cap for rounds, cap in fold_rounds)
    assert any(rounds < cap for rounds, cap in fold_rounds), "early stopping never stopped"


def test_without_early_stopping_each_fold_trains_the_sampled_rounds(data):
    tuned = tune(data, early_stopping_rounds=None, pruner="none")
    assert all(t.user_attrs["n_estimators"] == t.params["n_estimators"] for t in tuned.study.trials)
    assert all(10 <= t.params["n_estimators"] <= 60 for t in tuned.study.trials)


@pytest.mark.parametrize(("pruner", "share_kept"), [("median", 0.5), ("top_quarter", 0.25), ("top_tenth", 0.1)])
def test_a_trial_goes_on_only_while_in_the_kept_share_of_the_complete_trials(data, pruner, share_kept):
    """After 5 complete trials, a trial stops after a fold (not the last) once its best mean score so far is
    below that share of the earlier complete trials' scores at that fold, and only then."""
    trials = tune(data, n_trials=16, pruner=pruner).study.trials
    assert any(t.state.name == "PRUNED" for t in trials)
    for trial in trials:
        last_step = max(trial.intermediate_values)
        for step in range(last_step + 1):
            earlier = [t.intermediate_values[step] for t in trials[: trial.number] if t.state.name == "COMPLETE"]
            best_so_far = max(trial.intermediate_values[s] for s in range(step + 1))
            kept = len(earlier) < 5 or step == FOLDS - 1 or best_so_far >= np.quantile(earlier, 1 - share_kept)
            assert kept == (trial.state.name == "COMPLETE" or step < last_step), (trial.number, step)


def test_without_a_pruner_every_trial_completes(data):
    unpruned = tune(data, n_trials=16, pruner="none")
    assert unpruned.pruned == 0 and unpruned.completed == 16


def test_hyperband_runs_and_is_deterministic(data):
    first, second = tune(data, n_trials=10, pruner="hyperband"), tune(data, n_trials=10, pruner="hyperband")
    assert [t.state for t in first.study.trials] == [t.state for t in second.study.trials]
    assert first.params == second.params


def test_a_non_binary_outcome_is_named(data):
    X, y = data
    with pytest.raises(NotebookInputError, match="the outcome must be 0/1 for this binary classifier, found values 1, 2"):
        tune_xgboost(X, y + 1, OptunaSettings(n_trials=1), fixed_params={}, device="cpu", random_state=0)


def config_with(**optuna_settings) -> dict:
    config = yaml.safe_load((REPO / CONFIG).read_text())
    config["optuna"].update(optuna_settings)
    return config


def test_the_shipped_config_names_the_pruner_and_early_stopping():
    settings = validate(TrainingConfig, config_with(), display=CONFIG).optuna
    assert (settings.pruner, settings.early_stopping_rounds) == ("top_tenth", 30)
    assert validate(TrainingConfig, config_with(pruner="none", early_stopping_rounds=None), display=CONFIG).optuna.early_stopping_rounds is None


@pytest.mark.parametrize(("settings", "expected"), [
    ({"pruner": "percentile"}, "optuna.pruner: Input should be 'median', 'top_quarter', 'top_tenth', 'hyperband' or 'none', got 'percentile'"),
    ({"pruner": None}, "optuna.pruner: Input should be 'median', 'top_quarter', 'top_tenth', 'hyperband' or 'none', got None"),
    ({"early_stopping_rounds": 0}, "optuna.early_stopping_rounds: Input should be greater than or equal to 1, got 0"),
    ({"early_stopping_rounds": -5}, "optuna.early_stopping_rounds: Input should be greater than or equal to 1, got -5"),
    ({"early_stopping_rounds": "ten"}, "optuna.early_stopping_rounds: Input should be a valid integer"),
    ({"early_stopping_rounds": 2.5}, "optuna.early_stopping_rounds: Input should be a valid integer"),
])
def test_bad_pruner_and_early_stopping_values_are_rejected(settings, expected):
    with pytest.raises(ConfigError) as error:
        validate(TrainingConfig, config_with(**settings), display=CONFIG)
    assert f"{CONFIG}: {expected}" in str(error.value)
