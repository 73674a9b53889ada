"""The package's shape: layers that point one way, no import cycles, Dagster's private modules never used,
every package documented in ARCHITECTURE.md."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest
from sandbox import REPO

PACKAGE = REPO / "ds_pipelines"


def test_import_contracts_hold():
    lint = subprocess.run([str(Path(sys.executable).parent / "lint-imports")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert lint.returncode == 0, lint.stdout + lint.stderr
    kept = re.findall(r"^(.+) KEPT", lint.stdout, flags=re.MULTILINE)
    assert [name.strip() for name in kept] == [
        "Layers point one way",
        "No import cycles between the modules or packages of any package",
        "Logic shared by the CLI, sensors and notebooks is free of Dagster",
    ], lint.stdout
    assert "0 broken" in lint.stdout


@pytest.mark.slow
def test_an_upward_import_breaks_the_layers(tmp_path: Path):
    """The contracts catch what they are there for: a lazy import of the CLI from the project layer."""
    copy = tmp_path / "repo"
    copy.mkdir()
    (copy / "pyproject.toml").write_text((REPO / "pyproject.toml").read_text())
    subprocess.run(["cp", "-r", str(PACKAGE), str(copy / "ds_pipelines")], check=True)
    upward = copy / "ds_pipelines" / "project" / "upward.py"
    upward.write_text("def helper():\n    from ds_pipelines.cli import cli\n    return cli\n")
    lint = subprocess.run([str(Path(sys.executable).parent / "lint-imports")], cwd=copy, capture_output=True, text=True,
                          timeout=300, env={"PYTHONPATH": str(copy), "PATH": "/usr/bin:/bin"})
    assert lint.returncode == 1, lint.stdout + lint.stderr
    assert "Layers point one way BROKEN" in lint.stdout
    assert "ds_pipelines.project.upward -> ds_pipelines.cli" in lint.stdout


# Executing a run that exists already (the GitLab job's half of a run launched on GitLab) has no public API: its
# two internals are imported in this one module, pinned by tests/test_gitlab_runs.py.
PRIVATE_IMPORTS_ALLOWED = {
    "ds_pipelines/execution/run_worker.py: dagster._core.definitions.reconstruct",
    "ds_pipelines/execution/run_worker.py: dagster._core.execution.api",
}


def test_no_module_imports_dagsters_private_modules():
    private = []
    for file in PACKAGE.rglob("*.py"):
        for node in ast.walk(ast.parse(file.read_text(), filename=str(file))):
            names = [alias.name for alias in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            private += [f"{file.relative_to(REPO)}: {name}" for name in names if re.match(r"dagster[a-z_]*\._", name)]
    assert sorted(private) == sorted(PRIVATE_IMPORTS_ALLOWED)


def test_architecture_names_every_package():
    architecture = (REPO / "ARCHITECTURE.md").read_text()
    packages = sorted(
        folder.relative_to(REPO).as_posix() for folder in PACKAGE.rglob("*")
        if folder.is_dir() and (folder / "__init__.py").exists()
    )
    modules = sorted(file.relative_to(REPO).as_posix() for file in PACKAGE.glob("*.py") if file.name != "__init__.py")
    missing = [name for name in packages + modules if f"`{name.removesuffix('.py')}" not in architecture]
    assert missing == [], f"not in ARCHITECTURE.md: {missing}"
