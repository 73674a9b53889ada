"""The project is found from where you stand: --project-dir, $DS_PIPELINES_PROJECT_DIR, then the nearest folder
at or above the current one holding configs/notebooks.yaml; an installed ds-pipelines runs any project."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from sandbox import CLI

from ds_pipelines.project import (
    PROJECT_DIR_ENV,
    ProjectNotFoundError,
    find_project_root,
)


def make_project(root: Path) -> Path:
    (root / "configs").mkdir(parents=True)
    (root / "notebooks" / "deep").mkdir(parents=True)
    (root / "configs" / "notebooks.yaml").write_text("notebooks: {}\n")
    return root


@pytest.fixture
def no_project_env(monkeypatch):
    monkeypatch.delenv(PROJECT_DIR_ENV, raising=False)


def test_the_nearest_folder_with_configs_notebooks_yaml_is_the_project(tmp_path: Path, no_project_env):
    project = make_project(tmp_path / "project")
    assert find_project_root(cwd=project / "notebooks" / "deep") == project.resolve()
    assert find_project_root(cwd=project) == project.resolve()


def test_the_environment_wins_over_the_current_folder_and_the_option_over_both(tmp_path: Path, monkeypatch):
    here, configured, given = (make_project(tmp_path / name) for name in ("here", "configured", "given"))
    monkeypatch.setenv(PROJECT_DIR_ENV, str(configured))
    assert find_project_root(cwd=here) == configured.resolve()
    assert find_project_root(given, cwd=here) == given.resolve()


def test_no_project_is_an_error_saying_how_to_name_one(tmp_path: Path, no_project_env):
    with pytest.raises(ProjectNotFoundError) as error:
        find_project_root(cwd=tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message and "configs/notebooks.yaml" in message
    assert "--project-dir" in message and PROJECT_DIR_ENV in message


@pytest.mark.parametrize("named_by", ["option", "environment"])
def test_a_named_project_folder_that_does_not_exist_is_named(tmp_path: Path, monkeypatch, named_by: str):
    missing = tmp_path / "nowhere"
    if named_by == "environment":
        monkeypatch.setenv(PROJECT_DIR_ENV, str(missing))
    with pytest.raises(ProjectNotFoundError, match="nowhere: .* is not a folder|nowhere is not a folder"):
        find_project_root(missing if named_by == "option" else None)


def test_the_cli_outside_any_project_exits_2_with_the_reason(tmp_path: Path):
    env = {key: value for key, value in os.environ.items() if key != PROJECT_DIR_ENV}
    done = subprocess.run([str(CLI), "run", "--all"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2, done.stderr
    assert "error: no ds-pipelines project at or above" in done.stderr and "Traceback" not in done.stderr


@pytest.mark.slow
def test_a_notebook_in_jupyter_reads_the_config_of_the_notebook_jupyter_says_is_running(tmp_path: Path, no_project_env):
    """Jupyter Server tells each kernel its notebook (JPY_SESSION_NAME): dsp.load_config() needs no path."""
    project = make_project(tmp_path / "project")
    (project / "configs" / "notebooks.yaml").write_text(
        "notebooks:\n  notebooks/deep/score.ipynb: {config: configs/score.yaml, schema: configs/schemas.py:Score}\n")
    (project / "configs" / "score.yaml").write_text("threshold: 0.25\n")
    (project / "configs" / "schemas.py").write_text("from pydantic import BaseModel\n\nclass Score(BaseModel):\n    threshold: float\n")
    notebook = project / "notebooks" / "deep" / "score.ipynb"
    code = "from ds_pipelines import notebook as dsp\ncfg = dsp.load_config()\nprint(type(cfg).__name__, cfg.threshold)"
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)],
                                            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}),
                   notebook)
    env = {**{k: v for k, v in os.environ.items() if k != PROJECT_DIR_ENV}, "JPY_SESSION_NAME": str(notebook)}
    out = tmp_path / "out.ipynb"
    papermill = Path(sys.executable).parent / "papermill"
    done = subprocess.run([str(papermill), str(notebook), str(out), "--cwd", str(notebook.parent)],
                          env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    outputs = json.loads(out.read_text())["cells"][0]["outputs"]
    printed = "".join("".join(output.get("text", [])) for output in outputs)
    assert printed.strip() == "Score 0.25"


@pytest.mark.slow
def test_an_installed_ds_pipelines_runs_the_notebooks_of_the_project_it_stands_in(tmp_path: Path):
    """No DS_PIPELINES_PROJECT_DIR: `ds-pipelines run` in a subfolder of another project runs that project's
    notebook, with a config model of that project's own (no change to ds-pipelines)."""
    project = make_project(tmp_path / "churn")
    (project / "configs" / "notebooks.yaml").write_text(
        "notebooks:\n  notebooks/churn.ipynb: {config: configs/churn.yaml, schema: configs/schemas.py:ChurnConfig}\n")
    (project / "configs" / "churn.yaml").write_text("window_days: 30\nsegments: [new, loyal]\n")
    (project / "configs" / "schemas.py").write_text(
        "from pydantic import BaseModel, ConfigDict\n\n"
        "class ChurnConfig(BaseModel):\n"
        "    model_config = ConfigDict(extra='forbid')\n"
        "    window_days: int\n"
        "    segments: list[str] = []\n"
    )
    code = ("from ds_pipelines import notebook as dsp\ncfg = dsp.load_config()\n"
            "dsp.report(metrics={'window_days': cfg.window_days, 'segments': len(cfg.segments)})")
    nbformat.write(nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(code)],
                                            metadata={"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}),
                   project / "notebooks" / "churn.ipynb")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DS_PIPELINES_", "DAGSTER_", "MLFLOW_", "CI_"))}
    done = subprocess.run([str(CLI), "run", "churn", "--json"], cwd=project / "notebooks" / "deep", env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    [result] = json.loads(done.stdout)["notebooks"]
    assert (result["notebook"], result["status"]) == ("notebooks/churn.ipynb", "success")
    assert result["metrics"] == {"window_days": 30.0, "segments": 2.0}
    # The project's own state folder holds the embedded Dagster instance: nothing went to ds-pipelines' checkout.
    assert (project / ".ds-pipelines" / "dagster" / "dagster.yaml").is_file()


def test_a_dependency_cycle_names_every_notebook_in_it(tmp_path: Path):
    from ds_pipelines.errors import ConfigError
    from ds_pipelines.project import Project

    project = make_project(tmp_path / "project")
    for name in ("a", "b", "c", "d"):
        nbformat.write(nbformat.v4.new_notebook(), project / "notebooks" / f"{name}.ipynb")
    (project / "configs" / "notebooks.yaml").write_text(
        "notebooks:\n"
        "  notebooks/a.ipynb: {after: [notebooks/b.ipynb]}\n"
        "  notebooks/b.ipynb: {after: [notebooks/c.ipynb]}\n"
        "  notebooks/c.ipynb: {after: [notebooks/a.ipynb, notebooks/d.ipynb]}\n"
    )
    with pytest.raises(ConfigError) as raised:
        Project(project).notebooks()
    assert str(raised.value) == (
        "configs/notebooks.yaml: notebooks.notebooks/a.ipynb.after: dependency cycle: notebooks/a.ipynb -> "
        "notebooks/b.ipynb -> notebooks/c.ipynb -> notebooks/a.ipynb (each needs the next to run first)"
    )
