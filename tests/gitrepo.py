"""Real git repositories in temporary folders, holding a small ds-pipelines project."""

from __future__ import annotations

import itertools
import json
import os
import shutil
import subprocess
from pathlib import Path

PROJECT = Path(__file__).resolve().parent.parent
TRAINING = "notebooks/training_example.ipynb"
INFERENCE = "notebooks/inference_example.ipynb"
TRAINING_CONFIG = "configs/training_config.yaml"
INFERENCE_CONFIG = "configs/inference_config.yaml"
REGISTRY = "configs/notebooks.yaml"

# Isolated from the user's and the system's git config (signing, hooks, default branch...).
_ENV = {
    **os.environ,
    "GIT_CONFIG_GLOBAL": os.devnull,
    "GIT_CONFIG_NOSYSTEM": "1",
    "GIT_AUTHOR_NAME": "Test",
    "GIT_AUTHOR_EMAIL": "test@example.com",
    "GIT_COMMITTER_NAME": "Test",
    "GIT_COMMITTER_EMAIL": "test@example.com",
}
_edits = itertools.count()


def notebook_json(text: str = "print(1)") -> str:
    """A minimal valid nbformat 4 notebook with one code cell."""
    cell = {"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": [text]}
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    return json.dumps({"cells": [cell], "metadata": meta, "nbformat": 4, "nbformat_minor": 5}, indent=1)


class GitRepo:
    def __init__(self, root: Path):
        self.root = root

    def git(self, *args: str | bytes) -> str:
        out = subprocess.run(["git", "-C", str(self.root), *args], env=_ENV, capture_output=True, check=True)
        return out.stdout.decode(errors="replace").strip()

    def write(self, path: str | bytes, text: str = "") -> None:
        file = os.path.join(os.fsencode(self.root), os.fsencode(path))
        os.makedirs(os.path.dirname(file), exist_ok=True)
        with open(file, "w", encoding="utf-8") as handle:
            handle.write(text or notebook_json(str(path)))

    def touch(self, path: str) -> None:
        """Change a file's content (a notebook stays valid JSON)."""
        edit = next(_edits)
        if path.endswith(".ipynb"):
            self.write(path, notebook_json(f"edit {edit}"))
        else:
            self.write(path, (self.root / path).read_text() + f"# edit {edit}\n")

    def commit(self, message: str = "change") -> str:
        self.git("add", "-A")
        self.git("commit", "-q", "--allow-empty", "-m", message)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD")

    def diverge_feature_branch(self) -> str:
        """Branch ``feature`` changes the training config while main changes inference; returns the merge base."""
        self.git("checkout", "-q", "-b", "feature")
        self.touch(TRAINING_CONFIG)
        self.commit()
        self.git("checkout", "-q", "main")
        self.touch(INFERENCE)
        self.commit("main moved on")
        return self.git("merge-base", "main", "feature")


def make_project(root: Path, *extra_notebooks: str) -> GitRepo:
    """A repository on branch main with the example notebooks, their configs and the registry, committed."""
    repo = GitRepo(root)
    root.mkdir(parents=True, exist_ok=True)
    repo.git("init", "-q", "-b", "main")
    for config in (REGISTRY, TRAINING_CONFIG, INFERENCE_CONFIG):
        (root / "configs").mkdir(exist_ok=True)
        shutil.copy(PROJECT / config, root / config)
    # Tests replace these notebooks with stubs that report no metrics, which the example's quality checks would
    # fail; tests of the checks declare their own (tests/test_quality_checks_run.py).
    (root / REGISTRY).write_text(_without_quality_checks((root / REGISTRY).read_text()))
    for notebook in (TRAINING, INFERENCE, *extra_notebooks):
        repo.write(notebook)
    repo.write("README.md", "# test project\n")
    repo.commit("initial")
    return repo


def _without_quality_checks(registry: str) -> str:
    """The registry's text without its notebooks' ``checks:`` blocks, comments and other keys kept as written."""
    kept, in_checks = [], False
    for line in registry.splitlines(keepends=True):
        if line.startswith("    checks:"):
            in_checks = True
            continue
        if in_checks and line.startswith("      "):
            continue
        in_checks = False
        kept.append(line)
    return "".join(kept)
