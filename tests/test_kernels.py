"""``ds-pipelines run`` starts each notebook's kernel early and warms it up; other runs start their own."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import dagster as dg
import nbformat
import pytest

pytestmark = pytest.mark.slow  # runs notebooks through the CLI and `dagster asset materialize`

# What the notebook reports about its kernel: names the warm-up must not leave in the notebook's namespace,
# and whether the warm-up ran there (it freezes what it loaded, so gc's permanent generation is not empty).
PROBE_CELLS = [
    "print('leaked names:', sorted({'dagster', 'dg', 'dagstermill', 'ds_pipelines', 'gc', 'notebooks_job'} & set(globals())))",
    "import gc\nprint('warmed up:', gc.get_freeze_count() > 0)",
]


def probe_project(root: Path) -> Path:
    project = root / "project"
    (project / "notebooks").mkdir(parents=True)
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(source) for source in PROBE_CELLS]
    nbformat.write(notebook, project / "notebooks" / "probe.ipynb")
    return project


def printed(executed: Path) -> str:
    cells = nbformat.read(executed, as_version=4).cells
    return "".join(output.get("text", "") for cell in cells for output in cell.get("outputs", []))


def test_run_uses_the_warmed_up_kernel_and_leaves_the_namespace_alone(sandbox):
    project = probe_project(sandbox.root)
    result = sandbox.cli("run", "probe", "--project-dir", str(project), "--output-dir", str(sandbox.root / "results"))
    assert result.returncode == 0, result.stderr[-3000:]
    output = printed(sandbox.root / "results" / "probe" / "probe.ipynb")
    assert "leaked names: []" in output
    assert "warmed up: True" in output
    assert "| warmed up: True" in result.stderr  # progress still shows what the notebook prints


def test_a_run_started_outside_ds_pipelines_run_starts_its_own_kernel(sandbox):
    project = probe_project(sandbox.root)
    dagster_cli = Path(sys.executable).parent / "dagster"
    result = subprocess.run(
        [str(dagster_cli), "asset", "materialize", "-m", "ds_pipelines.definitions", "--select", "probe"],
        env={**sandbox.env, "DS_PIPELINES_PROJECT_DIR": str(project)},
        cwd=sandbox.root, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    with dg.DagsterInstance.from_config(sandbox.env["DAGSTER_HOME"]) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("probe"))
    output = printed(Path(event.asset_materialization.metadata["executed_notebook"].value))
    assert "leaked names: []" in output
    assert "warmed up: False" in output
