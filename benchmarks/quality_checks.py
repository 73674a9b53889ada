"""What quality checks cost a run, measured side by side in one run.

A one-cell notebook that logs ``roc_auc`` to MLflow (SQLite store) runs through ``ds-pipelines run``, alternately
without checks and with three (a bound, a non-blocking bound, and ``no_worse_than_baseline``, whose baseline is
looked up in MLflow), ROUNDS times each, on branch main so every run after the first has a baseline. Prints the
medians of wall-clock and CPU seconds (the command and its children, the kernel included) and their ratios. The
machine is shared and noisy: only the ratios within one run mean something.

    uv run python benchmarks/quality_checks.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import nbformat
import yaml

from ds_pipelines.execution.instance import INSTANCE_SETTINGS

BIN = Path(sys.executable).parent
CELL = """\
import mlflow
from ds_pipelines import notebook as dsp
dsp.setup_mlflow("quality-checks-benchmark")
with mlflow.start_run() as run:
    mlflow.log_metric("roc_auc", 0.9)
dsp.report(metrics={"roc_auc": 0.9}, mlflow_run_id=run.info.run_id)
"""
CHECKS = [
    {"metric": "roc_auc", "min": 0.5},
    {"metric": "roc_auc", "max": 0.99, "blocking": False},
    {"metric": "roc_auc", "no_worse_than_baseline": True, "blocking": False},
]


def timed(command: list[str], env: dict[str, str], cwd: Path) -> tuple[float, float]:
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


def project(root: Path) -> Path:
    (root / "notebooks").mkdir(parents=True)
    (root / "configs").mkdir()
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL)])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    nbformat.write(notebook, root / "notebooks/scored.ipynb")
    return root


def registry(root: Path, checks: list[dict]) -> None:
    entry = {"checks": checks} if checks else {}
    (root / "configs/notebooks.yaml").write_text(yaml.safe_dump({"notebooks": {"notebooks/scored.ipynb": entry}}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="dsp-checks-bench-") as scratch:
        root = project(Path(scratch) / "project")
        home = Path(scratch) / "dagster"
        home.mkdir()
        (home / "dagster.yaml").write_text(INSTANCE_SETTINGS)
        env = {**{k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DS_PIPELINES_", "CI_"))},
               "DAGSTER_HOME": str(home), "DS_PIPELINES_PROJECT_DIR": str(root), "CI_COMMIT_SHA": "0" * 40,
               "CI_COMMIT_BRANCH": "main", "CI_DEFAULT_BRANCH": "main",
               "MLFLOW_TRACKING_URI": f"sqlite:///{Path(scratch) / 'mlflow.db'}"}
        command = [str(BIN / "ds-pipelines"), "run", "scored"]
        registry(root, [])
        timed(command, env, root)  # warm-up: the MLflow store's tables, the first baseline
        figures: dict[str, list[tuple[float, float]]] = {"without checks": [], "with 3 checks": []}
        for _ in range(args.rounds):
            for label, checks in (("without checks", []), ("with 3 checks", CHECKS)):
                registry(root, checks)
                figures[label].append(timed(command, env, root))
    medians = {label: (statistics.median(w for w, _ in runs), statistics.median(c for _, c in runs))
               for label, runs in figures.items()}
    for label, (wall, cpu) in medians.items():
        print(f"{label:<16} wall {wall:6.2f} s   CPU {cpu:6.2f} s   (median of {args.rounds})")
    (base_wall, base_cpu), (wall, cpu) = medians["without checks"], medians["with 3 checks"]
    print(f"ratio            wall {wall / base_wall:6.3f}x   CPU {cpu / base_cpu:6.3f}x")


if __name__ == "__main__":
    main()
