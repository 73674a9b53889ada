"""``ds-pipelines check`` validates the whole project and reports every problem at once; ``run`` refuses to start
on the same problems."""

from __future__ import annotations

import shutil
from pathlib import Path

import nbformat
import pytest
from click.testing import CliRunner
from sandbox import REPO

from ds_pipelines.cli import cli
from ds_pipelines.errors import (
    AssetNameCollisionError,
    ConfigError,
    ProjectProblemsError,
)
from ds_pipelines.project import STATE_DIR


def copy_of_this_project(root: Path) -> Path:
    shutil.copytree(REPO / "configs", root / "configs")
    shutil.copytree(REPO / "notebooks", root / "notebooks", ignore=shutil.ignore_patterns(".ipynb_checkpoints"))
    return root


def broken(project: Path) -> Path:
    """Four problems at once: a cron Dagster refuses, a misspelt training key, a notebook cut short, two notebooks
    with one asset name."""
    registry = project / "configs" / "notebooks.yaml"
    registry.write_text(registry.read_text().replace('cron: "0 6 * * *"', 'cron: "61 6 * * *"'))
    training = project / "configs" / "training_config.yaml"
    training.write_text(training.read_text() + "\noptuna_trials: 5\n")
    (project / "notebooks" / "cut.ipynb").write_text('{"cells": [\n  {"cell_type": "code"\n')
    for name in ("a b.ipynb", "a-b.ipynb"):
        nbformat.write(nbformat.v4.new_notebook(), project / "notebooks" / name)
    return project


def invoke(*args: str):
    return CliRunner().invoke(cli, list(args), catch_exceptions=True)


def test_check_passes_on_this_repository():
    result = invoke("check", "--project-dir", str(REPO))
    assert result.exit_code == 0, result.output
    assert "2 notebooks (training_example, inference_example)" in result.output
    assert "the Dagster definitions are valid" in result.output


def test_check_reports_every_problem_at_once(tmp_path: Path):
    project = broken(copy_of_this_project(tmp_path))
    result = invoke("check", "--project-dir", str(project))
    assert isinstance(result.exception, ProjectProblemsError), result.output
    assert "4 problems in the project" in result.output
    problems = sorted(str(problem) for problem in result.exception.problems)
    assert len(problems) == 4, problems
    assert problems[0].startswith("configs/notebooks.yaml: triggers.schedule.cron: Value error, minute field '61': "
                                  "'61' is out of range 0-59, got '61 6 * * *': expected a cron expression of five fields")
    assert problems[1].startswith("configs/training_config.yaml: optuna_trials: unknown key (expected one of: ")
    assert problems[2] == str(AssetNameCollisionError("a_b", ["notebooks/a b.ipynb", "notebooks/a-b.ipynb"]))
    assert problems[3] == "notebooks/cut.ipynb: not valid JSON at line 3, column 1: Expecting ',' delimiter (a notebook is a JSON file)"


def test_every_setting_of_a_notebook_and_every_pydantic_error_is_its_own_problem(tmp_path: Path):
    project = copy_of_this_project(tmp_path)
    (project / "configs" / "notebooks.yaml").write_text(
        "notebooks:\n"
        "  notebooks/training_example.ipynb: {config: configs/training_config.yaml, schema: training, devise: gpu, after: [notebooks/gone.ipynb]}\n"
        "  notebooks/inference_example.ipynb: {config: configs/inference_config.yaml, schema: inference}\n"
        "  notebooks/missing.ipynb: {}\n"
        "triggers: {gpu_concurrency: 0, orchestrator: jenkins, schedule: {timezone: Mars/Olympus, notebook: notebooks/nope.ipynb}}\n"
    )
    (project / "configs" / "inference_config.yaml").write_text("model: {path: 3}\nextra: 1\n")
    result = invoke("check", "--project-dir", str(project))
    problems = [str(problem) for problem in result.exception.problems]
    expected = [
        "configs/notebooks.yaml: notebooks.notebooks/training_example.ipynb.devise: unknown key",
        "configs/notebooks.yaml: notebooks.notebooks/training_example.ipynb.after: 'notebooks/gone.ipynb' is not a notebook of this project",
        "configs/notebooks.yaml: notebooks.notebooks/missing.ipynb: lists a notebook that does not exist",
        "configs/notebooks.yaml: triggers.orchestrator: Input should be 'gitlab-ci' or 'dagster', got 'jenkins'",
        "configs/notebooks.yaml: triggers.gpu_concurrency: Input should be greater than or equal to 1, got 0",
        "configs/notebooks.yaml: triggers.schedule.timezone: Value error, expected an IANA time zone",
        "configs/inference_config.yaml: extra: unknown key",
        "configs/inference_config.yaml: model.path: Input should be a valid string, got 3",
    ]
    for message in expected:
        assert any(problem.startswith(message) for problem in problems), (message, problems)
    assert len(problems) == len(expected) + 1  # and the inference config's missing required keys: input
    assert not any("training_config.yaml" in problem for problem in problems)


def test_a_schedule_notebook_that_does_not_exist_is_named(tmp_path: Path):
    project = copy_of_this_project(tmp_path)
    registry = project / "configs" / "notebooks.yaml"
    registry.write_text(registry.read_text().replace("notebook: notebooks/inference_example.ipynb", "notebook: notebooks/scoring.ipynb"))
    result = invoke("check", "--project-dir", str(project))
    [problem] = result.exception.problems
    assert str(problem).startswith("configs/notebooks.yaml: triggers.schedule.notebook: notebook 'notebooks/scoring.ipynb' does not exist")


def test_definitions_that_do_not_load_are_a_problem_not_a_traceback(tmp_path: Path):
    """A config key Dagster's config cannot hold ("my value", a pydantic alias) passes the model and the checks
    of the project's files; only building the definitions finds it."""
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "configs").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "notebooks" / "x.ipynb")
    (tmp_path / "configs" / "schemas.py").write_text(
        "from pydantic import BaseModel, Field\n\nclass Spaced(BaseModel):\n    value: int = Field(alias='my value')\n"
    )
    (tmp_path / "configs" / "notebooks.yaml").write_text(
        "notebooks:\n  notebooks/x.ipynb: {config: configs/x.yaml, schema: 'configs/schemas.py:Spaced'}\n"
    )
    (tmp_path / "configs" / "x.yaml").write_text("my value: 3\n")
    result = invoke("check", "--project-dir", str(tmp_path))
    [problem] = result.exception.problems
    assert str(problem).startswith(
        "the Dagster definitions (ds_pipelines/definitions.py) do not load: Error while building definitions for "
        "notebooks/definitions.py: DagsterInvalidConfigError: Invalid default_value for Field."
    )


def test_run_refuses_a_bad_cron_before_any_run(tmp_path: Path, monkeypatch):
    project = copy_of_this_project(tmp_path / "project")
    registry = project / "configs" / "notebooks.yaml"
    registry.write_text(registry.read_text().replace('cron: "0 6 * * *"', 'cron: "61 6 * * *"'))
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    result = invoke("run", "training_example", "--project-dir", str(project), "--output-dir", str(tmp_path / "results"))
    assert isinstance(result.exception, ProjectProblemsError), result.output
    [problem] = result.exception.problems
    assert isinstance(problem, ConfigError) and problem.key == "triggers.schedule.cron"
    assert not (project / STATE_DIR).exists(), "no Dagster instance was opened"
    assert not (tmp_path / "results").exists()


@pytest.mark.slow
def test_check_and_run_exit_2_listing_every_problem(sandbox):
    project = broken(copy_of_this_project(sandbox.root / "project"))
    checked = sandbox.cli("check", "--project-dir", str(project))
    assert checked.returncode == 2
    lines = checked.stderr.splitlines()
    assert "4 problems in the project" in checked.stderr
    assert sum(line.startswith("error: ") for line in lines) == 4
    assert "error: notebooks/a b.ipynb and notebooks/a-b.ipynb both become the Dagster asset 'a_b'" in checked.stderr
    assert "Traceback" not in checked.stderr
    ran = sandbox.cli("run", "training_example", "--project-dir", str(project), "--output-dir", str(sandbox.root / "results"))
    assert ran.returncode == 2
    assert "error: configs/notebooks.yaml: triggers.schedule.cron: Value error, minute field '61'" in ran.stderr
    assert "error: configs/training_config.yaml: optuna_trials: unknown key" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert not (sandbox.root / "results").exists()
    assert not any((sandbox.root / "dagster").glob("history/runs/*")), "no Dagster run was started"
