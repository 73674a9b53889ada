"""A project brings its own config models: ``schema:`` names a pydantic model in a file or module of the project,
with no change to ds-pipelines, and the Dagster launchpad shows and checks that model's fields."""

from __future__ import annotations

import sys
from pathlib import Path

import dagster as dg
import nbformat
import pytest

from ds_pipelines.defs.notebooks.definitions import NOTEBOOKS_JOB, build_definitions
from ds_pipelines.errors import ConfigError
from ds_pipelines.project import Project

SCHEMAS = '''
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class Window(BaseModel):
    model_config = ConfigDict(extra="forbid")
    days: int = Field(30, ge=1, description="How far back to look.")
    weekends: bool = True


class ChurnConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    target: str
    window: Window = Window()
    segments: list[str] = []
    weights: dict[str, float] = {}
    model: Literal["logistic", "xgboost"] = "xgboost"
    note: str | None = None
'''


def churn_project(root: Path, schema: str = "configs/schemas.py:ChurnConfig", config: str = "target: churned\nwindow: {days: 14}\n") -> Project:
    (root / "notebooks").mkdir(parents=True)
    (root / "configs").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), root / "notebooks" / "churn.ipynb")
    (root / "configs" / "schemas.py").write_text(SCHEMAS)
    (root / "configs" / "churn.yaml").write_text(config)
    (root / "configs" / "notebooks.yaml").write_text(
        f"notebooks:\n  notebooks/churn.ipynb: {{config: configs/churn.yaml, schema: '{schema}'}}\n")
    return Project(root)


def test_a_schema_in_a_project_file_validates_its_config(tmp_path: Path):
    project = churn_project(tmp_path)
    [spec] = project.notebooks()
    assert project.schema_model(spec).__name__ == "ChurnConfig"
    config = project.config_for(spec)
    assert config["target"] == "churned" and config["window"] == {"days": 14, "weekends": True}


def test_a_schema_in_a_module_of_the_project(tmp_path: Path):
    project = churn_project(tmp_path, schema="churn_schemas:ChurnConfig")
    (tmp_path / "churn_schemas.py").write_text(SCHEMAS)
    [spec] = project.notebooks()
    assert project.config_for(spec)["model"] == "xgboost"


@pytest.mark.parametrize(("config", "expected"), [
    ("target: churned\nwindow: {days: 0}\n", "configs/churn.yaml: window.days: Input should be greater than or equal to 1"),
    ("target: churned\nwindw: {}\n", "configs/churn.yaml: windw: unknown key (expected one of: model, note, segments, target, weights, window)"),
    ("window: {days: 3}\n", "configs/churn.yaml: target: required key is missing"),
    ("target: churned\nmodel: forest\n", "configs/churn.yaml: model: Input should be 'logistic' or 'xgboost'"),
])
def test_the_projects_schema_rejects_bad_configs_naming_file_and_key(tmp_path: Path, config: str, expected: str):
    project = churn_project(tmp_path, config=config)
    with pytest.raises(ConfigError) as error:
        project.config_for(project.notebooks()[0])
    assert expected in str(error.value)


@pytest.mark.parametrize(("schema", "expected"), [
    ("configs/missing.py:ChurnConfig", "configs/missing.py cannot be imported: FileNotFoundError"),
    ("configs/schemas.py:Nope", "configs/schemas.py has no pydantic model 'Nope' (found nothing)"),
    ("configs/schemas.py:Literal", "configs/schemas.py has no pydantic model 'Literal'"),
    ("no_such_module:ChurnConfig", "no_such_module cannot be imported: ModuleNotFoundError"),
    ("churn", "unknown schema 'churn': expected a built-in name (training, inference), FILE.py:Class or package.module:Class"),
])
def test_a_schema_that_names_no_model_is_an_error_naming_the_registry_key(tmp_path: Path, schema: str, expected: str):
    project = churn_project(tmp_path, schema=schema)
    with pytest.raises(ConfigError) as error:
        project.config_for(project.notebooks()[0])
    message = str(error.value)
    assert message.startswith("configs/notebooks.yaml: notebooks.notebooks/churn.ipynb.schema: ") and expected in message


@pytest.mark.parametrize(("schema", "expected"), [
    ("/etc/schemas.py:ChurnConfig", "'/etc/schemas.py' is outside the project: expected a path relative to the project root"),
    ("../outside/schemas.py:ChurnConfig", "'../outside/schemas.py' is outside the project"),
    ("configs/../../outside/schemas.py:ChurnConfig", "'configs/../../outside/schemas.py' is outside the project"),
    ("..outside.schemas:ChurnConfig", "'..outside.schemas' is not a module name: expected package.module"),
])
def test_a_schema_outside_the_project_is_refused_and_never_executed(tmp_path: Path, schema: str, expected: str):
    outside = tmp_path / "outside"
    outside.mkdir()
    ran = tmp_path / "ran"
    (outside / "schemas.py").write_text(f"open({str(ran)!r}, 'w').close()\n" + SCHEMAS)
    project = churn_project(tmp_path / "project", schema=schema)
    with pytest.raises(ConfigError) as error:
        project.config_for(project.notebooks()[0])
    prefix = f"configs/notebooks.yaml: notebooks.notebooks/churn.ipynb.schema: schema {schema!r}: "
    assert str(error.value).startswith(prefix) and expected in str(error.value)
    assert not ran.exists()


def test_each_commit_is_validated_against_its_own_schema_module(tmp_path: Path):
    path_before = list(sys.path)
    strict = SCHEMAS.replace("window: Window = Window()", "window: Window")  # the later commit requires window
    models = []
    for commit, schemas in (("first", SCHEMAS), ("second", strict)):
        project = churn_project(tmp_path / commit, schema="churn_schemas:ChurnConfig", config="target: churned\n")
        (tmp_path / commit / "churn_schemas.py").write_text(schemas)
        models.append(project.schema_model(project.notebooks()[0]))
    assert models[0] is not models[1]
    assert models[0].model_validate({"target": "x"}).window.days >= 1
    with pytest.raises(ConfigError, match="window: required key is missing"):
        project.config_for(project.notebooks()[0])
    assert sys.path == path_before and "churn_schemas" not in sys.modules


def test_the_launchpad_shows_the_models_fields_with_the_yaml_as_defaults(tmp_path: Path):
    job = build_definitions(churn_project(tmp_path)).resolve_job_def(NOTEBOOKS_JOB)
    field = job.graph.node_named("churn").definition.config_schema.as_field()
    fields = field.config_type.fields
    assert sorted(fields) == ["model", "note", "segments", "target", "weights", "window"]
    assert fields["target"].default_value == "churned"
    assert fields["window"].config_type.fields["days"].default_value == 14
    assert fields["window"].config_type.fields["days"].description == "How far back to look."
    assert {value.config_value for value in fields["model"].config_type.enum_values} == {"logistic", "xgboost"}


def test_the_launchpad_checks_a_runs_config_against_the_model(tmp_path: Path):
    job = build_definitions(churn_project(tmp_path)).resolve_job_def(NOTEBOOKS_JOB)

    def check(config: dict) -> None:
        dg.validate_run_config(job, {"ops": {"churn": {"config": config}}})

    check({"window": {"days": 7}})  # the other keys keep their YAML values
    for wrong in ({"window": {"days": "a week"}}, {"windw": {}}, {"model": "forest"}, {"segments": "new"}):
        with pytest.raises(dg.DagsterInvalidConfigError):
            check(wrong)


def test_a_config_without_a_schema_is_plain_yaml_as_json_data(tmp_path: Path):
    project = churn_project(tmp_path, config="target: churned\nsince: 2024-01-02\n7: days\n")
    (tmp_path / "configs" / "notebooks.yaml").write_text("notebooks:\n  notebooks/churn.ipynb: {config: configs/churn.yaml}\n")
    [spec] = project.notebooks()
    assert project.schema_model(spec) is None
    assert project.config_for(spec) == {"target": "churned", "since": "2024-01-02", "7": "days"}


@pytest.mark.parametrize("config", ["- churned\n", "just text\n"])
def test_a_config_without_a_schema_must_be_a_mapping(tmp_path: Path, config: str):
    project = churn_project(tmp_path, config=config)
    (tmp_path / "configs" / "notebooks.yaml").write_text("notebooks:\n  notebooks/churn.ipynb: {config: configs/churn.yaml}\n")
    with pytest.raises(ConfigError, match="^configs/churn.yaml: expected a mapping of keys to values, got (list|str)$"):
        project.config_for(project.notebooks()[0])
