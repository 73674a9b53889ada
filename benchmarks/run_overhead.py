"""What Dagster costs on top of bare papermill, and what tuning costs, measured side by side in one run.

1. A trivial one-cell notebook, executed alternately by bare ``papermill`` and by ``ds-pipelines run``
   (Dagster + dagstermill, in-process executor), ROUNDS times each; prints medians and their ratio,
   wall clock and CPU seconds (the command and its children, the kernel included). The machine is shared
   and noisy: only the ratio within one run means something, and CPU seconds are the steadier figure.
   The Dagster instance has the settings ``ds-pipelines run`` gives the project's own (telemetry off).
   Without cached bytecode (``PYTHONDONTWRITEBYTECODE`` and no ``uv sync --compile-bytecode``) every
   process compiles what it imports again: the benchmark says when that is the case, naming how many modules.
   Masking (issue 12: it must not slow a normal run noticeably): what masking the executed notebook costs a
   fresh process, detect-secrets' import included, printed beside the run it is part of.
2. The training notebook at the default trial budget (configs/training_config.yaml): tuning wall time and
   best cross-validated AUC, as the notebook reports them.

    uv run python benchmarks/run_overhead.py [--rounds 3] [--skip-training]
"""

from __future__ import annotations

import argparse
import json
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

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


def timed(command: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds of ``command``, its children (the notebook's kernel) included."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    wall = time.perf_counter() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime


# What a run and its kernel import. Python's -v reports each module's code as read from its cached bytecode
# ("code object from '.../__pycache__/x.cpython-311.pyc'") or compiled from its source ("... from '.../x.py'").
RUN_IMPORTS = "import dagster, dagstermill, papermill, sqlalchemy, alembic, ipykernel.kernelapp, ds_pipelines.defs.notebooks.definitions"


def bytecode_note() -> str:
    imported = subprocess.run([sys.executable, "-v", "-c", RUN_IMPORTS], check=True, capture_output=True, text=True)
    compiled = [line for line in imported.stderr.splitlines() if line.startswith("# code object from") and line.rstrip("'").endswith(".py")]
    if not compiled:
        return "bytecode cached for every module a run imports"
    if not sys.flags.dont_write_bytecode:
        return f"bytecode written now for {len(compiled)} of the modules a run imports: the runs below read it"
    return (f"bytecode NOT cached for {len(compiled)} of the modules a run imports (PYTHONDONTWRITEBYTECODE, venv "
            "not compiled): every process compiles them again, which inflates both figures")


def instance_home(root: Path) -> Path:
    """A Dagster instance set up as ``ds-pipelines run`` sets up the project's own."""
    home = root / "dagster"
    home.mkdir(exist_ok=True)
    (home / "dagster.yaml").write_text(INSTANCE_SETTINGS)
    return home


def trivial_project(root: Path) -> Path:
    (root / "project" / "notebooks").mkdir(parents=True)
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell("print(1 + 1)")]
    nbformat.write(notebook, root / "project" / "notebooks" / "trivial.ipynb")
    return root / "project"


def overhead(root: Path, rounds: int) -> None:
    project = trivial_project(root)
    env = {**os.environ, "DAGSTER_HOME": str(instance_home(root)), "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
    papermill = [str(BIN / "papermill"), "--no-progress-bar", str(project / "notebooks/trivial.ipynb"), str(root / "out.ipynb")]
    ours = [str(BIN / "ds-pipelines"), "run", "--project-dir", str(project), "trivial"]
    print(bytecode_note(), flush=True)
    timed(ours, env)  # first run creates the instance's database: not what a user pays every time
    bare, dagster = [], []
    for round_number in range(1, rounds + 1):
        bare.append(timed(papermill, env))
        dagster.append(timed(ours, env))
        print(f"round {round_number}/{rounds}: papermill {bare[-1][0]:.1f} s ({bare[-1][1]:.1f} s CPU), "
              f"ds-pipelines run {dagster[-1][0]:.1f} s ({dagster[-1][1]:.1f} s CPU)", flush=True)
    wall = [statistics.median(w for w, _ in runs) for runs in (bare, dagster)]
    cpu = [statistics.median(c for _, c in runs) for runs in (bare, dagster)]
    print(f"trivial notebook, median of {rounds}: papermill {wall[0]:.2f} s, ds-pipelines run {wall[1]:.2f} s, "
          f"ratio {wall[1] / wall[0]:.2f}x (CPU {cpu[0]:.2f} s vs {cpu[1]:.2f} s, {cpu[1] / cpu[0]:.2f}x)")
    masking(root, wall[1], rounds)


MASKING_COST = """
import sys, time
started = time.perf_counter()
from pathlib import Path
from ds_pipelines.masking import mask_notebook
mask_notebook(Path(sys.argv[1]), Path(sys.argv[2]))
print(time.perf_counter() - started)
"""


def masking(root: Path, run_seconds: float, rounds: int) -> None:
    """Masking the executed trivial notebook in a fresh process, as ``ds-pipelines run`` first does."""
    executed, masked = root / "out.ipynb", root / "masked.ipynb"
    costs = [float(subprocess.run([sys.executable, "-c", MASKING_COST, str(executed), str(masked)], check=True,
                                  capture_output=True, text=True).stdout) for _ in range(rounds)]
    cost = statistics.median(costs)
    print(f"masking the executed notebook in a fresh process (detect-secrets' import included), median of {rounds}: "
          f"{cost:.2f} s, {cost / run_seconds:.0%} of ds-pipelines run's {run_seconds:.1f} s")


def tuning(root: Path) -> None:
    config = yaml.safe_load((REPO / "configs/training_config.yaml").read_text())
    config["outputs"] = {key: str(root / "training" / Path(value).name) for key, value in config["outputs"].items()}
    (root / "training.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "DAGSTER_HOME": str(instance_home(root)), "MLFLOW_TRACKING_URI": f"sqlite:///{root / 'mlflow.db'}"}
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
