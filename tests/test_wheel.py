"""The built package works outside this checkout: ``uv build`` gives a wheel and an sdist, and the README's
"Bring your repository" steps, run as written, install that wheel (and its locked dependencies) into a fresh
virtual environment, which then runs ``--version``, ``init``, ``check`` and ``run --all`` in a repository that
has no ds-pipelines source, on the embedded defaults."""

from __future__ import annotations

import json
import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import textwrap
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


def readme_steps() -> tuple[str, list[str]]:
    """The README's "Bring your repository": the install commands of step 1 (its bash block), and the
    ds-pipelines commands that steps 2 to 4 name, in order."""
    text = (REPO / "README.md").read_text()
    section = text[text.index("## Bring your repository"):]
    section = section[:section.index("\n## ", 1)]
    install = re.search(r"```bash\n(.*?)```", section, re.DOTALL).group(1)
    steps = re.findall(r"^\d\. \*\*`(ds-pipelines [^`]+)`\*\*", section, re.MULTILINE)
    return textwrap.dedent(install), steps


def test_the_readmes_steps_word_for_word_set_up_check_and_run_a_repository_in_a_fresh_environment(tmp_path):
    """Steps 1 to 4 of the README, as written: step 1's commands in a copy of this checkout (its tracked files,
    as a clone has them) and a repository laid out like GitLab's example, in a fresh virtual environment that
    is active (VIRTUAL_ENV) and holds nothing else; then the commands steps 2 to 4 name."""
    install, steps = readme_steps()
    assert steps == ["ds-pipelines init", "ds-pipelines check", "ds-pipelines run --all"], steps
    uv = uv_command()
    checkout = tmp_path / "ds-pipelines"
    tracked = subprocess.run(["git", "-C", str(REPO), "ls-files", "-z"], capture_output=True, check=True).stdout
    for name in filter(None, tracked.decode().split("\0")):
        if (REPO / name).is_file():
            (checkout / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(REPO / name, checkout / name)
    venv = tmp_path / "venv"
    run([*uv, "venv", "--quiet", "--python", sys.executable, str(venv)], cwd=tmp_path)
    root = gitlab_example(tmp_path / "repo")
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(("DAGSTER_", "MLFLOW_", "DS_PIPELINES_", "CI_", "VIRTUAL_ENV", "PYTHON"))}
    # The environment is active, and uv is on PATH (./run-tests installs it; the README's step 1 uses it).
    uv_folder = Path(uv[0]).parent if len(uv) == 1 else tmp_path / "uv-bin"
    if len(uv) > 1:
        uv_folder.mkdir()
        (uv_folder / "uv").write_text(f'#!/bin/sh\nexec {" ".join(uv)} "$@"\n')
        (uv_folder / "uv").chmod(0o755)
    env.update(VIRTUAL_ENV=str(venv), PATH=os.pathsep.join([str(venv / "bin"), str(uv_folder), env.get("PATH", "")]),
               HOME=str(tmp_path / "home"))  # no user-wide Jupyter or MLflow settings
    script = (install.replace("/path/to/ds-pipelines", str(checkout)).replace("/path/to/your-repository", str(root))
              .replace("ds_pipelines-0.1.0-py3-none-any.whl", f"ds_pipelines-{VERSION}-py3-none-any.whl"))
    run(["bash", "-euo", "pipefail", "-c", script], cwd=tmp_path, env=env, timeout=900)

    where = run([str(venv / "bin/python"), "-c", "import ds_pipelines; print(ds_pipelines.__file__)"], cwd=root, env=env)
    assert Path(where.stdout.strip()).is_relative_to(venv), where.stdout
    assert VERSION in run(["ds-pipelines", "--version"], cwd=root, env=env).stdout
    done = [run(shlex.split(step), cwd=root, env=env) for step in steps]
    assert "notebooks/train.ipynb" in (root / "configs/notebooks.yaml").read_text()
    assert "1 notebook (train)" in done[1].stdout
    assert json.loads((root / "outputs/train.json").read_text()) == {"learning_rate": 0.1, "name": "gitlab-example"}
