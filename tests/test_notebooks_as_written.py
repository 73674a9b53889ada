"""Notebooks as people write them: a papermill-style parameters cell, plain YAML without a schema, relative
paths, a laptop's kernel name, and the notebooks that cannot run (another language, an unknown kernel)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import dagster as dg
import nbformat
import pytest

# A papermill-style notebook importing nothing from ds-pipelines: defaults in a cell tagged `parameters`,
# a file read and one written by paths relative to the project root.
PARAMETERS = "is_local_development = True\nalpha = 0.1\nname = 'default'"
WORK = """\
import json
from pathlib import Path

words = Path("data/words.txt").read_text().split()
mode = "local" if is_local_development else "deployed"
Path("outputs").mkdir(exist_ok=True)
found = {{"alpha": alpha, "name": name, "mode": mode, "words": words, "cwd": str(Path.cwd()), "when": globals().get("when")}}
Path("outputs/{stem}.json").write_text(json.dumps(found))
print(f"alpha={{alpha}} name={{name}} mode={{mode}}")"""


def write_notebook(project: Path, stem: str, *, kernelspec: dict, cells: list | None = None) -> None:
    nb = nbformat.v4.new_notebook()
    nb.metadata["kernelspec"] = kernelspec
    if cells is None:
        parameters = nbformat.v4.new_code_cell(PARAMETERS)
        parameters.metadata["tags"] = ["parameters"]
        cells = [nbformat.v4.new_markdown_cell(f"# {stem}"), parameters, nbformat.v4.new_code_cell(WORK.format(stem=stem))]
    nb.cells = cells
    (project / "notebooks").mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, project / "notebooks" / f"{stem}.ipynb")


def papermill_project(root: Path, registry: str = "") -> Path:
    """``a_seed`` (plain YAML config) and ``b_defaults`` (none), both saved on a laptop with its own kernel."""
    project = root / "project"
    write_notebook(project, "a_seed", kernelspec={"name": "conda-env-ml-py", "display_name": "Python [conda env:ml]", "language": "python"})
    write_notebook(project, "b_defaults", kernelspec={"name": "venv", "display_name": "Python 3 (ipykernel)", "language": "python"})
    (project / "data").mkdir()
    (project / "data" / "words.txt").write_text("read from the project root\n")
    (project / "configs").mkdir()
    (project / "configs" / "a_seed.yaml").write_text("alpha: 0.5\nname: from-yaml\nwhen: 2024-01-02\n")
    (project / "configs" / "notebooks.yaml").write_text(
        "notebooks:\n  notebooks/a_seed.ipynb: {config: configs/a_seed.yaml}\n" + registry)
    return project


def written(project: Path, stem: str) -> dict:
    return json.loads((project / "outputs" / f"{stem}.json").read_text())


@pytest.mark.slow
def test_papermill_notebooks_run_with_their_defaults_and_their_yaml_values(sandbox):
    project = papermill_project(sandbox.root, "  notebooks/b_defaults.ipynb: {kernel: python3}\n")
    # Started from another folder: the notebooks' relative paths still resolve from the project root.
    result = sandbox.cli("run", "--all", "--project-dir", str(project), "--output-dir", str(sandbox.root / "results"))
    assert result.returncode == 0, result.stderr[-3000:]
    seed, defaults = written(project, "a_seed"), written(project, "b_defaults")
    # The YAML's keys override the defaults they name; the defaults of the others still ran.
    assert seed == {"alpha": 0.5, "name": "from-yaml", "mode": "local", "words": ["read", "from", "the", "project", "root"],
                    "cwd": str(project), "when": "2024-01-02"}
    assert defaults == {**seed, "alpha": 0.1, "name": "default", "when": None}
    assert "| alpha=0.5 name=from-yaml mode=local" in result.stderr
    # Progress counts the author's code cells: the parameters cell is 1 of 2, the injected cells are not shown.
    assert "cell 1/2: is_local_development = True" in result.stderr and "cell 2/2: import json" in result.stderr
    executed = nbformat.read(sandbox.root / "results" / "a_seed" / "a_seed.ipynb", as_version=4)
    assert [cell.source for cell in executed.cells if cell.cell_type == "code"][2] == (
        "# Parameters\nalpha = 0.5\nname = \"from-yaml\"\nwhen = \"2024-01-02\"\n")


@pytest.mark.slow
def test_a_deployment_run_also_starts_the_kernel_in_the_project_root_with_the_yaml_values(sandbox):
    project = papermill_project(sandbox.root)
    dagster_cli = Path(sys.executable).parent / "dagster"
    result = subprocess.run(
        [str(dagster_cli), "asset", "materialize", "-m", "ds_pipelines.definitions", "--select", "a_seed"],
        env={**sandbox.env, "DS_PIPELINES_PROJECT_DIR": str(project)},
        cwd=sandbox.root, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    seed = written(project, "a_seed")
    assert (seed["name"], seed["mode"], seed["cwd"]) == ("from-yaml", "local", str(project))


def assert_refused(result: subprocess.CompletedProcess, sandbox, *expected: str) -> None:
    assert result.returncode == 2, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    for text in expected:
        assert text in result.stderr
    assert not (sandbox.root / "results").exists()  # refused before anything ran


def run_all(sandbox, project: Path) -> subprocess.CompletedProcess:
    return sandbox.cli("run", "--all", "--project-dir", str(project), "--output-dir", str(sandbox.root / "results"))


def test_a_plain_yaml_config_must_be_a_mapping(sandbox):
    project = papermill_project(sandbox.root)
    (project / "configs" / "a_seed.yaml").write_text("- alpha\n- 0.5\n")
    assert_refused(run_all(sandbox, project), sandbox, "error: configs/a_seed.yaml: expected a mapping of keys to values, got list")
    assert not (project / "outputs").exists()


def test_a_config_key_that_cannot_be_a_parameter_is_refused(sandbox):
    project = papermill_project(sandbox.root)
    (project / "configs" / "a_seed.yaml").write_text("alpha: 0.5\nlearning-rate: 0.1\n")
    assert_refused(run_all(sandbox, project), sandbox,
                   "error: configs/a_seed.yaml: learning-rate: not a Python name, so it cannot be a parameter of notebooks/a_seed.ipynb")


def test_an_r_notebook_is_refused_naming_its_kernel(sandbox):
    project = papermill_project(sandbox.root)
    write_notebook(project, "c_report", kernelspec={"name": "ir", "display_name": "R", "language": "R"},
                   cells=[nbformat.v4.new_code_cell("summary(cars)")])
    assert_refused(run_all(sandbox, project), sandbox,
                   "error: notebooks/c_report.ipynb is written in R for the kernel 'ir': ds-pipelines runs Python notebooks only")
    assert not (project / "outputs").exists()  # not even the Python notebooks before it ran


def test_a_kernel_override_naming_no_installed_kernel_is_refused(sandbox):
    project = papermill_project(sandbox.root, "  notebooks/b_defaults.ipynb: {kernel: py-laptop}\n")
    assert_refused(run_all(sandbox, project), sandbox,
                   "error: configs/notebooks.yaml: notebooks.notebooks/b_defaults.ipynb.kernel: no Jupyter kernel 'py-laptop' "
                   "is installed (installed: python3")


def test_a_deployment_run_of_an_r_notebook_fails_with_the_same_message(tmp_path):
    project = papermill_project(tmp_path)
    write_notebook(project, "c_report", kernelspec={"name": "ir", "display_name": "R", "language": "R"},
                   cells=[nbformat.v4.new_code_cell("summary(cars)")])
    from ds_pipelines.defs.notebooks.definitions import build_definitions
    from ds_pipelines.project import Project

    asset = next(a for a in build_definitions(Project(project)).assets if a.key == dg.AssetKey("c_report"))
    with pytest.raises(dg.Failure, match="notebooks/c_report.ipynb is written in R for the kernel 'ir'"):
        dg.materialize([asset], resources={"mlflow": _unused_mlflow()}, raise_on_error=True)


def _unused_mlflow():
    from ds_pipelines.defs.notebooks.resources import MLflowResource

    return MLflowResource()
