"""detect-notebooks runs in a small image (the component's ``light-image``): git and four pinned packages.

A skipped plan then pulls no multi-GB image at all: detect is light, and its child pipeline's only job is too
(tests/test_child_pipeline.py). Checked here: ``ds-pipelines detect`` imports nothing beyond those packages
and what they depend on (by uv.lock), and the job installs exactly the versions uv.lock pins.
"""

from __future__ import annotations

import importlib.metadata
import os
import re
import subprocess
import sys
import tomllib

import yaml
from ci_helpers import COMPONENT, PROJECT
from gitrepo import INFERENCE, TRAINING, make_project

from ds_pipelines.project import defaults

LIGHT_PACKAGES = ("click", "pydantic", "pyyaml", "nbformat")

# Refuses every import of a module that is neither the standard library (its platform's sysconfig data and
# Cython's runtime module included), ds_pipelines, nor in ALLOWED; then runs the command as its console
# script does.
BLOCKER = """
import importlib.abc, sys
ALLOWED = set(sys.argv.pop(1).split(","))
class Refuse(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        top = name.partition(".")[0]
        if (top in sys.stdlib_module_names or top.startswith(("_sysconfigdata_", "_cython_"))
                or top == "ds_pipelines" or top in ALLOWED):
            return None
        raise ImportError(f"not in the light install: {name}")
sys.meta_path.insert(0, Refuse())
from ds_pipelines.cli import main
sys.argv[0] = "ds-pipelines"
main()
"""


def _normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def lock_closure(roots: tuple[str, ...]) -> dict[str, str]:
    """The packages ``roots`` need by uv.lock, themselves included: name -> locked version."""
    packages = {_normalized(p["name"]): p for p in tomllib.loads((PROJECT / "uv.lock").read_text())["package"]}
    found: dict[str, str] = {}
    todo = [_normalized(root) for root in roots]
    while todo:
        name = todo.pop()
        if name in found:
            continue
        found[name] = packages[name]["version"]
        todo += [_normalized(dep["name"]) for dep in packages[name].get("dependencies", [])]
    return found


def test_detect_imports_only_the_light_install(tmp_path):
    allowed_distributions = set(lock_closure(LIGHT_PACKAGES))
    modules = {module for module, distributions in importlib.metadata.packages_distributions().items()
               if any(_normalized(d) in allowed_distributions for d in distributions)}
    assert {"click", "pydantic", "yaml", "nbformat"} <= modules
    repo = make_project(tmp_path / "repo")
    child = tmp_path / "child.yml"

    result = subprocess.run(
        [sys.executable, "-c", BLOCKER, ",".join(sorted(modules)), "detect", "--dotenv", str(tmp_path / "plan.env"),
         "--child-pipeline", str(child), "--before", repo.head(), "--message", f"[run {INFERENCE}] [run {TRAINING}]"],
        cwd=repo.root, capture_output=True, text=True, timeout=120, check=False,
    )

    assert result.returncode == 0, result.stderr
    assert "2 notebook(s) to run" in result.stdout
    assert {"run-training_example", "run-inference_example"} <= set(yaml.safe_load(child.read_text()))
    # --explain too, even with GitLab's settings: the durations it cannot read are named, not a crash.
    explain = subprocess.run(
        [sys.executable, "-c", BLOCKER, ",".join(sorted(modules)), "detect", "--explain", "--before", repo.head(),
         "--message", f"[plan] [run {TRAINING}]"],
        cwd=repo.root, capture_output=True, text=True, timeout=120, check=False,
        env={**os.environ, "GITLAB_URL": "http://127.0.0.1:9", "GITLAB_PROJECT_ID": "7", "GITLAB_TOKEN": "x"},
    )
    assert explain.returncode == 0, explain.stderr
    assert f"  {TRAINING}  [would run]" in explain.stdout
    assert "Durations: not read, python-gitlab is not installed here (not in the light install: gitlab)" in explain.stdout
    # The blocker does refuse: a command that needs MLflow fails under it.
    publish = subprocess.run(
        [sys.executable, "-c", BLOCKER, ",".join(sorted(modules)), "publish", "wiki", "--strict", "--results", str(tmp_path)],
        cwd=repo.root, capture_output=True, text=True, timeout=120, check=False,
    )
    assert publish.returncode != 0 and "not in the light install" in publish.stdout + publish.stderr


def test_the_detect_job_installs_the_versions_uv_lock_pins():
    spec, jobs = COMPONENT.read_text().split("\n---\n", 1)
    # The component's light image is detect's default for the child pipeline's job of an empty plan.
    assert yaml.safe_load(spec)["spec"]["inputs"]["light-image"]["default"] == defaults.LIGHT_IMAGE
    detect = yaml.safe_load(jobs)["detect-notebooks"]
    assert detect["image"] == "$[[ inputs.light-image ]]"
    [install] = [line for line in detect["before_script"] if "pip install" in line]
    assert "--require-hashes" in install and "--no-deps" in install
    pinned = dict(re.findall(r"^([A-Za-z0-9_.-]+)==([0-9][^\s]*) --hash=", install, re.MULTILINE))
    # Every package detect needs, dependencies included, at uv.lock's version ...
    assert {_normalized(name): version for name, version in pinned.items()} == lock_closure(LIGHT_PACKAGES)
    # ... each with exactly uv.lock's hashes of the files Alpine's CPython 3.11 installs (pure Python wheels,
    # or musllinux wheels for x86_64 and aarch64).
    locked = {_normalized(p["name"]): p for p in tomllib.loads((PROJECT / "uv.lock").read_text())["package"]}
    for name in pinned:
        hashes = set(re.findall(rf"^{re.escape(name)}==\S+ (.*)$", install, re.MULTILINE)[0].replace("--hash=", "").split())
        wheels = {wheel["hash"] for wheel in locked[_normalized(name)].get("wheels", [])
                  if "-none-any." in wheel["url"]
                  or ("-cp311-cp311-musllinux_" in wheel["url"] and ("x86_64" in wheel["url"] or "aarch64" in wheel["url"]))}
        assert hashes == wheels, name
