"""XGBoost and Optuna helpers of the reference notebooks (``notebooks/training_example.ipynb`` and
``notebooks/inference_example.ipynb``): an example of what a project's own notebooks may share, not part of
the notebook API (``ds_pipelines.notebook``).

``from ds_pipelines.examples import xgboost as xgbx``
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import numpy as np

from ds_pipelines import notebook as dsp
from ds_pipelines.errors import NotebookInputError
from ds_pipelines.files import write_atomically
from ds_pipelines.tracking import tracking_uri
from ds_pipelines.tracking.registry import (
    ALIAS_TAG,
    alias_uri_parts,
    unsupported_endpoint,
    version_tagged_with_alias,
)


def xgboost_device(requested: str) -> str:
    """``cuda`` when asked for (or ``auto``) and XGBoost can train on a GPU here, else ``cpu`` with a log line."""
    if requested == "cpu":
        dsp.record_device("cpu")
        return "cpu"
    import xgboost

    reason = None
    if not xgboost.build_info().get("USE_CUDA"):
        reason = "this XGBoost build has no CUDA support"
    else:
        # XGBoost silently falls back to the CPU when it sees no GPU: train one round and read back the device.
        probe = xgboost.DMatrix(np.zeros((2, 1)), label=[0, 1])
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            try:
                booster = xgboost.train({"device": "cuda", "tree_method": "hist"}, probe, num_boost_round=1)
                used = json.loads(booster.save_config())["learner"]["generic_param"]["device"]
            except xgboost.core.XGBoostError as exc:
                used = f"error: {str(exc).splitlines()[0]}"
        if not used.startswith("cuda"):
            reason = "no GPU is visible" if used == "cpu" else f"the GPU is not usable ({used})"
    if reason is None:
        print("training on the GPU (device=cuda)", flush=True)
        dsp.record_device("cuda")
        return "cuda"
    if requested == "cuda":
        raise NotebookInputError(f"model.device is 'cuda' but {reason}")
    print(f"training on the CPU: {reason}", flush=True)
    dsp.record_device("cpu")
    return "cpu"


def optuna_progress(n_trials: int, metric: str):
    """An Optuna callback printing one line per trial with the best score so far."""

    def callback(study, trial) -> None:
        # A pruned trial's value is its last report, not a result: say where it stopped instead.
        if trial.state.name == "PRUNED":
            value = f"pruned after step {len(trial.intermediate_values)}"
        else:
            value = "failed" if trial.value is None else f"{trial.value:.4f}"
        print(
            f"trial {trial.number + 1}/{n_trials}: {metric}={value} (best {study.best_value:.4f} at trial {study.best_trial.number + 1})",
            flush=True,
        )

    return callback


def load_xgboost_model(source) -> Any:
    """The classifier named by the inference config's ``model`` section (MLflow URI first, then file)."""
    from xgboost import XGBClassifier

    if source.uri:
        import mlflow.xgboost

        mlflow.set_tracking_uri(tracking_uri(dsp.project()))
        try:
            resolved = _resolve_alias(source.uri)
            model = mlflow.xgboost.load_model(resolved)
        except NotebookInputError:
            raise
        except Exception as exc:  # MLflow raises several types for a bad URI; all mean the same to the user
            raise NotebookInputError(f"model.uri: cannot load {source.uri!r}: {str(exc).splitlines()[0]}") from exc
        dsp.record_data(source=source.uri, version=resolved)  # the registry version an alias pointed to
        return model
    model_file = dsp.path(source.path)
    if not model_file.is_file():
        raise NotebookInputError(f"model.path: model file {model_file} does not exist (run the training notebook first)")
    model = XGBClassifier()
    model.load_model(model_file)
    dsp.record_data(model_file)
    return model


def _resolve_alias(uri: str) -> str:
    """``models:/name@alias`` as is where the registry has aliases; on a server without them (GitLab's
    MLflow API), the newest version that ``ds-pipelines release`` tagged with the alias."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient


    parts = alias_uri_parts(uri)
    if parts is None:
        return uri
    name, alias = parts
    client = MlflowClient()
    try:
        return f"models:/{name}/{client.get_model_version_by_alias(name, alias).version}"
    except MlflowException as exc:
        if not unsupported_endpoint(exc):
            raise
    version = version_tagged_with_alias(client, name, alias)
    if version is None:
        raise NotebookInputError(
            f"model.uri: {uri!r}: this MLflow server has no aliases, and no version of {name!r} is tagged "
            f"{ALIAS_TAG}={alias} (ds-pipelines release tags the version it promotes)"
        )
    print(f"{uri} is version {version} ({ALIAS_TAG}={alias}: this MLflow server has no aliases)", flush=True)
    return f"models:/{name}/{version}"


def training_plots(model, truth, probability, folder: Path) -> dict[str, Path]:
    """ROC curve, feature importance and score histogram as PNGs (for MLflow and merge-request comments)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from sklearn.metrics import RocCurveDisplay

    folder.mkdir(parents=True, exist_ok=True)
    plots: dict[str, Path] = {}

    def save(name: str, figure) -> None:
        target = folder / f"{name}.png"
        write_atomically(target, lambda tmp: figure.savefig(tmp, format="png", dpi=100, bbox_inches="tight"))
        plt.close(figure)
        plots[name] = target

    figure, axes = plt.subplots(figsize=(5, 4))
    RocCurveDisplay.from_predictions(truth, probability, ax=axes)
    axes.set_title("ROC curve (held-out set)")
    save("roc_curve", figure)

    importance = model.get_booster().get_score(importance_type="gain")
    top = sorted(importance.items(), key=lambda item: item[1])[-15:]
    figure, axes = plt.subplots(figsize=(6, 5))
    axes.barh([name for name, _ in top], [value for _, value in top])
    axes.set_title("Feature importance (gain)")
    save("feature_importance", figure)

    figure, axes = plt.subplots(figsize=(5, 4))
    axes.hist(probability, bins=20, range=(0, 1))
    axes.set_title("Score histogram (held-out set)")
    axes.set_xlabel("predicted probability")
    save("score_histogram", figure)
    return plots
