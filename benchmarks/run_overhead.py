"""What Dagster costs on top of bare papermill, and what tuning costs, measured side by side in one run.

1. A trivial one-cell notebook, executed alternately by bare ``papermill`` and by ``ds-pipelines run``
   (Dagster + dagstermill, in-process executor), ROUNDS times each; prints medians and their ratio.
   The machine is shared and noisy: only the ratio within one run means something.
2. The training notebook at the default trial budget (configs/training_config.yaml): tuning wall time and
   best cross-validated AUC, as the notebook reports them.

    uv run python benchmarks/run_overhead.py [--rounds 3] [--skip-training]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import yaml

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def timed(command: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def trivial_project(root: Path) -> Path:
    (root / "project" / "notebooks").mkdir(parents=True)
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell("print(1 + 1)")]
    nbformat.write(notebook, root / "project" / "notebooks" / "trivial.ipynb")
    return root / "project"


def overhead(root: Path, rounds: int) -> None:
    project = trivial_project(root)
    (root / "dagster").mkdir()
    env = {**os.environ, "DAGSTER_HOME": str(root / "dagster"), "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    papermill = [str(BIN / "papermill"), "--no-progress-bar", str(project / "notebooks/trivial.ipynb"), str(root / "out.ipynb")]
    ours = [str(BIN / "ds-pipelines"), "run", "--project-dir", str(project), "trivial"]
    timed(ours, env)  # first run creates the instance's database: not what a user pays every time
    bare, dagster = [], []
    for round_number in range(1, rounds + 1):
        bare.append(timed(papermill, env))
        dagster.append(timed(ours, env))
        print(f"round {round_number}/{rounds}: papermill {bare[-1]:.1f} s, ds-pipelines run {dagster[-1]:.1f} s", flush=True)
    ratio = statistics.median(dagster) / statistics.median(bare)
    print(f"trivial notebook, median of {rounds}: papermill {statistics.median(bare):.1f} s, "
          f"ds-pipelines run {statistics.median(dagster):.1f} s, ratio {ratio:.1f}x")


def tuning(root: Path) -> None:
    config = yaml.safe_load((REPO / "configs/training_config.yaml").read_text())
    config["outputs"] = {key: str(root / "training" / Path(value).name) for key, value in config["outputs"].items()}
    (root / "training.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "DAGSTER_HOME": str(root / "dagster"), "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    result = subprocess.run(
        [str(BIN / "ds-pipelines"), "run", "training_example", "--config", f"training_example={root / 'training.yaml'}", "--json"],
        env=env, check=True, capture_output=True, text=True,
    )
    entry = json.loads(result.stdout)["notebooks"][0]
    metrics = entry["metrics"]
    print(f"training at the default budget ({config['optuna']['n_trials']} trials, {config['optuna']['cv_folds']}-fold CV): "
          f"tuning {metrics['tuning_seconds']:.1f} s, best CV {config['optuna']['metric']} {metrics['cv_' + config['optuna']['metric']]:.4f}, "
          f"held-out roc_auc {metrics['roc_auc']:.4f}, whole notebook {entry['duration_s']:.1f} s")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--skip-training", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="ds-pipelines-bench-") as scratch:
        root = Path(scratch)
        overhead(root, args.rounds)
        if not args.skip_training:
            tuning(root)


if __name__ == "__main__":
    main()
