"""How long ``ds-pipelines detect`` takes to plan a big push.

A synthetic repository with 2,000 notebooks (500 with a config, 500 after an upstream notebook) gets one
push that changes 500 files: notebooks edited, configs edited, notebooks renamed, other files.
Prints the best of several runs for the git diff, the plan, and both; then what ``detect --explain`` adds:
the plan explained over every notebook, with runners and expected durations (5 earlier runs each, given, as
GitLab's API would answer), against the plan alone.

    uv run python benchmarks/plan_bench.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ds_pipelines.project import Project
from ds_pipelines.triggers.child_pipeline import Runners, job_name
from ds_pipelines.triggers.explain import explain
from ds_pipelines.triggers.git_changes import changed_files
from ds_pipelines.triggers.rules import plan

NOTEBOOKS, CONFIGS, REPEAT = 2_000, 500, 5
ENV = {**os.environ, "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1", "GIT_AUTHOR_NAME": "b",
       "GIT_AUTHOR_EMAIL": "b@example.com", "GIT_COMMITTER_NAME": "b", "GIT_COMMITTER_EMAIL": "b@example.com"}


def git(root: Path, *args: str) -> str:
    out = subprocess.run(["git", "-C", str(root), *args], env=ENV, check=True, capture_output=True, text=True)
    return out.stdout.strip()


def notebook(i: int, version: int = 0) -> str:
    source = [f"x = {i} + {version}\n"]
    cell = {"cell_type": "code", "metadata": {}, "outputs": [], "execution_count": None, "source": source}
    return json.dumps({"cells": [cell], "metadata": {}, "nbformat": 4, "nbformat_minor": 5})


def path(i: int) -> str:
    return f"notebooks/team_{i % 20:02}/nb_{i:04}.ipynb"


def build(root: Path) -> tuple[str, str]:
    """The repository, and the (before, after) commits of a push changing 500 files."""
    git(root, "init", "-q", "-b", "main")
    registry = {}
    for i in range(NOTEBOOKS):
        (root / path(i)).parent.mkdir(parents=True, exist_ok=True)
        (root / path(i)).write_text(notebook(i))
        entry = {"after": [path(i - 1)]} if i % 4 == 1 else {}
        if i < CONFIGS:
            entry["config"] = f"configs/nb_{i:04}.yaml"
            (root / "configs").mkdir(exist_ok=True)
            (root / entry["config"]).write_text(f"seed: {i}\n")
        if entry:
            registry[path(i)] = entry
    (root / "configs/notebooks.yaml").write_text(json.dumps({"notebooks": registry}))  # JSON is YAML
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "initial")
    before = git(root, "rev-parse", "HEAD")

    for i in range(CONFIGS, CONFIGS + 250):  # 250 notebooks edited
        (root / path(i)).write_text(notebook(i, 1))
    for i in range(150):  # 150 configs edited
        (root / f"configs/nb_{i:04}.yaml").write_text(f"seed: {i + 1}\n")
    for i in range(NOTEBOOKS - 200 + 3, NOTEBOOKS, 4):  # 50 notebooks renamed, none listed in the registry
        git(root, "mv", path(i), path(i).replace("nb_", "renamed_"))
    (root / "data").mkdir()
    for i in range(50):  # 50 other files
        (root / f"data/file_{i}.csv").write_text(f"a,b\n{i},{i}\n")
    git(root, "add", "-A")
    git(root, "commit", "-q", "-m", "big push")
    return before, git(root, "rev-parse", "HEAD")


def best(function, repeat: int = REPEAT) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        start = time.perf_counter()
        result = function()
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        root = Path(folder)
        start = time.perf_counter()
        before, after = build(root)
        print(f"built {NOTEBOOKS} notebooks and a 500-file push in {time.perf_counter() - start:.1f} s")

        diff_s, changes = best(lambda: changed_files(root, before, after))
        plan_s, result = best(lambda: plan(Project(root=root), changes))  # a fresh Project: registry read each time
        total_s, _ = best(lambda: plan(Project(root=root), changed_files(root, before, after)))
        print(f"changed files: {len(changes)}, planned notebooks: {len(result.notebooks)}")
        print(f"git diff  {diff_s * 1000:7.1f} ms")
        print(f"plan      {plan_s * 1000:7.1f} ms")
        print(f"total     {total_s * 1000:7.1f} ms  (best of {REPEAT})")
        durations = {job_name(spec): [60.0 + run for run in range(5)] for spec in Project(root=root).notebooks()}
        explain_s, _ = best(lambda: explain(result, Project(root=root).notebooks(), Runners(gpu="gpu"), durations).to_text())
        print(f"explain   {explain_s * 1000:7.1f} ms  ({explain_s / plan_s:.2f}x the plan; {NOTEBOOKS} notebooks explained)")
        if total_s > 1:
            sys.exit("slower than the one-second goal")


if __name__ == "__main__":
    main()
