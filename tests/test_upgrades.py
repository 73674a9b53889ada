"""A project made by ``ds-pipelines init`` keeps working on later versions.

``tests/made_by_init/<version>/`` holds a repository as ``init`` of that version left it: GitLab's layout (a
config at the root that the notebook reads) and a papermill notebook with a ``parameters`` cell, plus the
files init wrote (``INIT_WRITES``). Every recorded version must still pass ``check`` and ``run --all``;
the folder of this version must be exactly what init writes today. So a release that changes what init
writes adds a folder, and none can break the projects that earlier versions made.

A key that a version renames or removes is reported by ``check`` with what to write instead (the table of
``project.upgrades``: tests/test_renamed_keys.py); any other unknown key with the keys taken and the one meant
when the name is close (``did you mean 'device'?``): tests/test_bad_input_catalogue.py.
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest
from sandbox import make_sandbox
from test_init import check, cli, git_repo

MADE_BY_INIT = Path(__file__).resolve().parent / "made_by_init"
VERSIONS = sorted(folder.name for folder in MADE_BY_INIT.iterdir() if folder.is_dir())
INIT_WRITES = {".gitignore", ".gitlab-ci.yml", "configs/notebooks.yaml", "configs/tune_model.yaml"}


def files(root: Path) -> dict[str, str]:
    return {p.relative_to(root).as_posix(): p.read_text() for p in sorted(root.rglob("*"))
            if p.is_file() and ".git" not in p.relative_to(root).parts}


def checkout(version: str, root: Path, *, without_init_files: bool = False) -> Path:
    """The recorded repository of ``version`` as a git repository in ``root``."""
    repo = git_repo(root)
    for path, text in files(MADE_BY_INIT / version).items():
        if not (without_init_files and path in INIT_WRITES):
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text)
    repo.commit("as recorded")
    return root


def test_this_version_has_a_recorded_project_and_init_still_writes_it(tmp_path):
    version = importlib.metadata.version("ds-pipelines")
    assert version in VERSIONS, f"record what init {version} writes in tests/made_by_init/{version}/"
    root = checkout(version, tmp_path / "repo", without_init_files=True)
    done = cli("init", str(root))
    assert done.returncode == 0, done.stderr
    assert files(root) == files(MADE_BY_INIT / version)


@pytest.mark.slow
@pytest.mark.parametrize("version", VERSIONS)
def test_a_project_an_earlier_init_made_is_checked_and_runs(tmp_path, version):
    root = checkout(version, tmp_path / "repo")
    checked = check(root)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    box = make_sandbox(tmp_path / "sandbox")
    ran = subprocess.run([sys.executable, "-m", "ds_pipelines", "run", "--all", "--project-dir", str(root)],
                         env={k: v for k, v in box.env.items() if k != "DS_PIPELINES_PROJECT_DIR"},
                         capture_output=True, text=True, timeout=600, cwd=root)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert json.loads((root / "outputs/train.json").read_text()) == 0.1
    assert json.loads((root / "outputs/tune.json").read_text()) == {"alpha": 0.5, "name": "x"}
    status = subprocess.run(["git", "-C", str(root), "status", "--porcelain"], capture_output=True, text=True, check=True)
    assert status.stdout == "", f"the run left files git offers to commit (init's .gitignore misses them):\n{status.stdout}"
