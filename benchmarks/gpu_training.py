"""The training notebook on CUDA and on the CPU, beside raw XGBoost on the same data, in one run.

For each size, ``make_classification`` data (ROWS x 50 features) goes to a Parquet file. Raw XGBoost
(``XGBClassifier(n_estimators=300, max_depth=8).fit`` on the notebook's training split, the matrix built in
the timing) and the training notebook (``ds-pipelines run training_example`` with that file, the same
fixed parameters, one tuning trial of 2-fold CV without early stopping) each train on ``cuda`` and on
``cpu``. Printed per size: raw and notebook seconds and CUDA speed-ups, and the fraction of raw XGBoost's
speed-up the notebook keeps, for its final fit (the same rows, rounds and depth as raw) and for its tuning.
The notebook's kernel start, data loading and MLflow logging are printed too but are not training.

    uv run python benchmarks/gpu_training.py                       # 1M and 5M rows (a GPU machine)
    uv run python benchmarks/gpu_training.py --rows 20000 --devices cpu      # the CPU side, small
    uv run python benchmarks/gpu_training.py --raw-only --rows 1000000       # raw XGBoost only
    uv run python benchmarks/gpu_training.py --container ds-pipelines:cpu    # raw XGBoost inside that image

Without a GPU that XGBoost can use, it says so and runs only the CPU side.

``--container IMAGE`` answers "does the image need the CUDA runtime base?": it runs ``--raw-only`` inside
IMAGE (e.g. built with ``--build-arg BASE_IMAGE=ubuntu:22.04``) with ``docker run --gpus all``, so the
container sees the GPU and the driver's ``libcuda.so.1`` (mounted by the NVIDIA container toolkit) and
nothing else of CUDA, and prints the device XGBoost really trained on there and its speed-up beside the
host's. The xgboost wheel links the CUDA runtime statically and loads only ``libcuda.so.1`` from the system.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import yaml
from sklearn.datasets import make_classification
from sklearn.model_selection import train_test_split
from xgboost import XGBClassifier

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FEATURES = 50
ROUNDS = 300
DEPTH = 8
SEED = 42
TEST_SIZE = 0.2


def gpu_visible() -> bool:
    """Whether XGBoost trains on a GPU here (the notebook's own probe, which says why not)."""
    from ds_pipelines.examples.xgboost import xgboost_device

    return xgboost_device("auto") == "cuda"


def generated(rows: int) -> pd.DataFrame:
    X, y = make_classification(n_samples=rows, n_features=FEATURES, n_informative=20, n_redundant=10,
                               random_state=SEED)
    frame = pd.DataFrame(X.astype(np.float32), columns=[f"f{i}" for i in range(FEATURES)])
    frame["target"] = y
    return frame


def raw_fit_seconds(frame: pd.DataFrame, device: str) -> tuple[float, str]:
    """Seconds raw XGBoost takes on the notebook's training split, and the device it really used."""
    features = frame.drop(columns=["target"])
    X_train, _, y_train, _ = train_test_split(features, frame["target"], test_size=TEST_SIZE, random_state=SEED,
                                              stratify=frame["target"])
    X_train, y_train = X_train.to_numpy(), y_train.to_numpy()
    model = XGBClassifier(n_estimators=ROUNDS, max_depth=DEPTH, tree_method="hist", device=device, random_state=SEED)
    started = time.perf_counter()
    model.fit(X_train, y_train)
    seconds = time.perf_counter() - started
    used = json.loads(model.get_booster().save_config())["learner"]["generic_param"]["device"]
    return seconds, used


def notebook_run(data_file: Path, device: str, scratch: Path) -> dict[str, float]:
    """The training notebook through ``ds-pipelines run`` on ``data_file``: its metrics and its duration."""
    out = scratch / f"out-{device}"
    config = {
        "outcome": "target",
        "data": {"path": str(data_file), "test_size": TEST_SIZE, "random_state": SEED},
        "optuna": {"n_trials": 1, "timeout": None, "cv_folds": 2, "pruner": "none", "early_stopping_rounds": None,
                   # one dimension, so that every trial trains the fixed model below
                   "search_space": {"learning_rate": {"low": 0.29, "high": 0.3}}},
        "model": {"device": device, "params": {"n_estimators": ROUNDS, "max_depth": DEPTH}},
        "mlflow": {"experiment_name": "gpu-benchmark", "register_model": False},
        "outputs": {"model_path": str(out / "model.json"), "metrics_path": str(out / "metrics.json"),
                    "holdout_path": str(out / "holdout.parquet"), "plots_dir": str(out / "plots")},
    }
    config_file = scratch / f"training-{device}.yaml"
    config_file.write_text(yaml.safe_dump(config))
    env = {**os.environ, "DAGSTER_HOME": str(scratch / "dagster"), "MLFLOW_TRACKING_URI": f"sqlite:///{scratch / 'mlflow.db'}"}
    (scratch / "dagster").mkdir(exist_ok=True)
    result = subprocess.run(
        [str(BIN / "ds-pipelines"), "run", "training_example", "--project-dir", str(REPO),
         "--config", f"training_example={config_file}", "--output-dir", str(scratch / f"results-{device}"), "--json"],
        env=env, capture_output=True, text=True,
    )
    if result.returncode != 0:
        sys.exit(f"the training notebook failed on {device}:\n{result.stderr[-3000:]}")
    entry = json.loads(result.stdout)["notebooks"][0]
    return {**entry["metrics"], "duration_s": entry["duration_s"]}


def ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.1f}x"


def compare(rows: int, devices: list[str], raw_only: bool, scratch: Path) -> None:
    frame = generated(rows)
    data_file = scratch / f"data-{rows}.parquet"
    frame.to_parquet(data_file)
    raw, notebook = {}, {}
    for device in devices:
        seconds, used = raw_fit_seconds(frame, device)
        raw[device] = seconds
        print(f"{rows} rows, raw XGBoost on {device} (trained on {used}): {seconds:.1f} s", flush=True)
        if not raw_only:
            notebook[device] = notebook_run(data_file, device, scratch)
            m = notebook[device]
            print(f"{rows} rows, training notebook on {device}: final fit {m['fit_seconds']:.1f} s, tuning "
                  f"{m['tuning_seconds']:.1f} s, whole notebook {m['duration_s']:.1f} s", flush=True)
    if set(devices) != {"cuda", "cpu"}:
        return
    raw_speedup = raw["cpu"] / raw["cuda"]
    print(f"{rows} rows: raw XGBoost CUDA speed-up {raw_speedup:.1f}x", flush=True)
    if raw_only:
        return
    for part, key in (("final fit", "fit_seconds"), ("tuning", "tuning_seconds"), ("whole notebook", "duration_s")):
        speedup = notebook["cpu"][key] / notebook["cuda"][key]
        kept = speedup / raw_speedup
        print(f"{rows} rows: notebook {part} CUDA speed-up {speedup:.1f}x, {kept:.0%} of raw XGBoost's", flush=True)


def in_container(image: str, rows: int) -> None:
    """``--raw-only`` inside ``image`` with the GPUs: which device XGBoost trains on there, and how fast."""
    command = [
        "docker", "run", "--rm", "--gpus", "all", "--network", "none",
        "-v", f"{Path(__file__).resolve()}:/bench/gpu_training.py:ro", image,
        "python", "/bench/gpu_training.py", "--raw-only", "--rows", str(rows),
    ]
    print("$ " + " ".join(command), flush=True)
    sys.exit(subprocess.run(command).returncode)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, nargs="+", default=[1_000_000, 5_000_000])
    parser.add_argument("--devices", nargs="+", choices=["cuda", "cpu"], default=["cuda", "cpu"])
    parser.add_argument("--raw-only", action="store_true", help="raw XGBoost only, no notebook runs")
    parser.add_argument("--container", metavar="IMAGE", help="run --raw-only inside IMAGE with docker --gpus all")
    args = parser.parse_args()
    if args.container:
        in_container(args.container, args.rows[0])
    import xgboost

    print(f"xgboost {xgboost.__version__}, built with CUDA {xgboost.build_info().get('CUDA_VERSION')}; "
          f"{os.cpu_count()} CPU cores", flush=True)
    devices = args.devices
    if "cuda" in devices and not gpu_visible():
        print("NO GPU VISIBLE to XGBoost: the CUDA side is skipped, no speed-up is measured", flush=True)
        devices = [device for device in devices if device != "cuda"]
    with tempfile.TemporaryDirectory(prefix="ds-pipelines-gpu-bench-") as scratch:
        for rows in args.rows:
            compare(rows, devices, args.raw_only, Path(scratch))


if __name__ == "__main__":
    main()
