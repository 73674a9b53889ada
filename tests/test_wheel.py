"""The built package works outside this checkout: ``uv build`` gives a wheel and an sdist, and a fresh virtual
environment holding only that wheel (and its locked dependencies) runs ``--version``, ``init``, ``check`` and
``run --all`` in a repository that has no ds-pipelines source, on the embedded defaults."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tomllib
import zipfile
from pathlib import Path

import pytest
from required import require
from test_init import gitlab_example

REPO = Path(__file__).resolve().parent.parent
VERSION = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["version"]

pytestmark = pytest.mark.slow


def uv_command() -> list[str]:
    """uv as ./run-tests finds it: on PATH, else the module installed into the user's Python."""
    if found := shutil.which("uv"):
        return [found]
    python3 = shutil.which("python3")
    if python3 and subprocess.run([python3, "-m", "uv", "--version"], capture_output=True).returncode == 0:
        return [python3, "-m", "uv"]
    require("uv (./run-tests installs it into the user's Python)")
    raise AssertionError("unreachable")


def run(command: list[str], cwd: Path, env: dict[str, str] | None = None, timeout: float = 600):
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    assert done.returncode == 0, f"{command}\n{done.stdout}\n{done.stderr}"
    return done


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> tuple[Path, Path]:
    """The wheel and the sdist of this checkout."""
    out = tmp_path_factory.mktemp("dist")
    run([*uv_command(), "build", "--out-dir", str(out)], cwd=REPO)
    (wheel,) = out.glob("*.whl")
    (sdist,) = out.glob("*.tar.gz")
    return wheel, sdist


def test_the_wheel_and_the_sdist_hold_every_module_of_the_package(built):
    wheel, sdist = built
    modules = sorted(p.relative_to(REPO).as_posix() for p in (REPO / "ds_pipelines").rglob("*")
                     if p.is_file() and "__pycache__" not in p.parts)
    in_wheel = set(zipfile.ZipFile(wheel).namelist())
    assert [m for m in modules if m not in in_wheel] == []
    with tarfile.open(sdist) as archive:
        in_sdist = {name.split("/", 1)[1] for name in archive.getnames() if "/" in name}
    assert [m for m in modules if m not in in_sdist] == []
    assert {"pyproject.toml", "README.md"} <= in_sdist
    assert wheel.name == f"ds_pipelines-{VERSION}-py3-none-any.whl"


def test_a_fresh_environment_with_only_the_wheel_sets_up_checks_and_runs_a_repository(built, tmp_path):
    wheel, _ = built
    uv = uv_command()
    venv = tmp_path / "venv"
    run([*uv, "venv", "--quiet", "--python", sys.executable, str(venv)], cwd=tmp_path)
    # The lock's runtime pins (no test tools, not this checkout), so the install resolves as CI's did.
    requirements = tmp_path / "requirements.txt"
    run([*uv, "export", "--frozen", "--no-emit-project", "--no-hashes", "--quiet", "-o", str(requirements)], cwd=REPO)
    run([*uv, "pip", "install", "--quiet", "--python", str(venv / "bin/python"), "-r", str(requirements), str(wheel)],
        cwd=tmp_path, timeout=900)

    root = gitlab_example(tmp_path / "repo")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DAGSTER_", "MLFLOW_", "DS_PIPELINES_", "CI_", "VIRTUAL_ENV", "PYTHON"))}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["HOME"] = str(tmp_path / "home")  # no user-wide Jupyter or MLflow settings

    def cli(*args: str):
        return run([str(venv / "bin/ds-pipelines"), *args], cwd=root, env=env)

    where = run([str(venv / "bin/python"), "-c", "import ds_pipelines; print(ds_pipelines.__file__)"], cwd=root, env=env)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout
    assert VERSION in cli("--version").stdout
    cli("init")
    assert "notebooks/train.ipynb" in (root / "configs/notebooks.yaml").read_text()
    assert "1 notebook (train)" in cli("check").stdout
    cli("run", "--all")
    assert json.loads((root / "outputs/train.json").read_text()) == {"learning_rate": 0.1, "name": "gitlab-example"}
