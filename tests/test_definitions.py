"""The Dagster code location: one asset per notebook, lineage, descriptions, and ``dg check defs``."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import nbformat
import pytest
from sandbox import REPO

from ds_pipelines.definitions import defs
from ds_pipelines.defs.notebooks.definitions import NOTEBOOKS_JOB, build_definitions
from ds_pipelines.errors import ConfigError
from ds_pipelines.project import Project


def asset_specs(definitions: dg.Definitions) -> dict[str, dg.AssetSpec]:
    return {spec.key.to_user_string(): spec for spec in definitions.resolve_all_asset_specs()}


def test_one_asset_per_notebook():
    notebooks = sorted(p.stem for p in (REPO / "notebooks").glob("*.ipynb"))
    assert sorted(asset_specs(defs())) == notebooks
    assert defs().resolve_job_def(NOTEBOOKS_JOB) is not None


def test_training_feeds_inference_and_descriptions_are_not_paths():
    specs = asset_specs(defs())
    assert [dep.asset_key for dep in specs["inference_example"].deps] == [dg.AssetKey("training_example")]
    for spec in specs.values():
        assert spec.description and "/" not in spec.description.splitlines()[0]
    assert specs["training_example"].description.startswith("Training: XGBoost")
    assert "jupyter" in specs["training_example"].kinds


def test_config_defaults_come_from_the_yaml():
    job = defs().resolve_job_def(NOTEBOOKS_JOB)
    field = job.graph.node_named("training_example").definition.config_schema.as_field()
    assert field.default_value["optuna"]["n_trials"] == 30
    assert field.default_value["outcome"] == "target"


def test_notebook_without_config_gets_an_empty_one(tmp_path: Path):
    (tmp_path / "notebooks" / "sub").mkdir(parents=True)
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "notebooks" / "sub" / "explore-data.ipynb")
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "notebooks" / ".ipynb_checkpoints-x.ipynb")
    (tmp_path / "notebooks" / ".ipynb_checkpoints").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "notebooks" / ".ipynb_checkpoints" / "a-checkpoint.ipynb")
    specs = asset_specs(build_definitions(Project(tmp_path)))
    assert "explore_data" in specs and "a_checkpoint" not in specs
    job = build_definitions(Project(tmp_path)).resolve_job_def(NOTEBOOKS_JOB)
    assert job.graph.node_named("explore_data").definition.config_schema.as_field().default_value == {}


def test_the_notebooks_job_is_built_again_only_when_its_files_change(tmp_path: Path, monkeypatch):
    """Dagster asks for the job several times per run: it is reused until a notebook, the registry or a config changes."""
    from ds_pipelines.defs.notebooks.definitions import notebooks_job

    (tmp_path / "notebooks").mkdir()
    (tmp_path / "configs").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "notebooks" / "train.ipynb")
    (tmp_path / "configs" / "notebooks.yaml").write_text("notebooks:\n  notebooks/train.ipynb: {config: configs/t.yaml}\n")
    (tmp_path / "configs" / "t.yaml").write_text("rows: 10\n")
    monkeypatch.setenv("DS_PIPELINES_PROJECT_DIR", str(tmp_path))

    def config_default(job: dg.JobDefinition) -> int:
        return job.run_config_schema.config_type.fields["ops"].config_type.fields["train"].config_type.fields[
            "config"].default_value["rows"]

    first = notebooks_job()
    assert notebooks_job() is first and config_default(first) == 10
    (tmp_path / "configs" / "t.yaml").write_text("rows: 200\n")
    changed = notebooks_job()
    assert changed is not first and config_default(changed) == 200
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "notebooks" / "score.ipynb")
    assert sorted(key.to_user_string() for key in notebooks_job().asset_layer.executable_asset_keys) == ["score", "train"]


def test_gpu_notebooks_share_the_gpu_pool():
    assets = {a.key.to_user_string(): a for a in defs().resolve_asset_graph().assets_defs}
    assert assets["training_example"].op.pool == "gpu"
    assert assets["inference_example"].op.pool is None


def test_invalid_config_stops_the_definitions_from_loading(tmp_path: Path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "configs").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "notebooks" / "train.ipynb")
    (tmp_path / "configs" / "notebooks.yaml").write_text(
        "notebooks:\n  notebooks/train.ipynb: {config: configs/t.yaml, schema: training}\n"
    )
    (tmp_path / "configs" / "t.yaml").write_text("outcome: 3\n")
    with pytest.raises(ConfigError, match=r"configs/t.yaml: outcome: Input should be a valid string, got 3 \(and 1 more problem\)"):
        build_definitions(Project(tmp_path))


@pytest.mark.parametrize(
    ("registry", "expected"),
    [
        ("notebooks:\n  notebooks/train.ipynb: {confg: x.yaml}\n", "notebooks.notebooks/train.ipynb.confg: unknown key"),
        ("notebooks:\n  notebooks/other.ipynb: {}\n", "notebooks.notebooks/other.ipynb: lists a notebook that does not exist"),
        ("notebooks:\n  notebooks/train.ipynb: {device: tpu}\n", "device: expected one of ['cpu', 'gpu'], got 'tpu'"),
        ("notebook: {}\n", "notebook: unknown key (expected one of: notebooks, triggers); did you mean 'notebooks'?"),
        ("- notebooks\n", "expected the top-level keys 'notebooks'"),
        ("notebooks: {}\ntriggers: {branchs: [main]}\n", "triggers.branchs: unknown key (expected one of: branches, "),
        ("notebooks: {}\ntriggers: {gpu_concurency: 2}\n", "; did you mean 'gpu_concurrency'?"),
        ("notebooks: {}\ntriggers: {schedule: {cron: 'every day'}}\n", "triggers.schedule.cron: Value error, expected five fields, found 2"),
        ("notebooks: {}\ntriggers: {schedule: {cron: '61 6 * * *'}}\n", "triggers.schedule.cron: Value error, minute field '61': '61' is out of range 0-59"),
        ("notebooks: {}\ntriggers: {production_tag: 'v[0-9'}\n", "triggers.production_tag: Value error, expected a regular expression matching whole tags, got 'v[0-9'"),
        ("notebooks: {}\ntriggers: {gpu_concurrency: 0}\n", "triggers.gpu_concurrency: Input should be greater than or equal to 1"),
        ("notebooks: {}\ntriggers: {poll_interval_s: 1}\n", "triggers.poll_interval_s: Input should be greater than or equal to 5"),
    ],
)
def test_registry_errors_name_the_key(tmp_path: Path, registry: str, expected: str):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "configs").mkdir()
    nbformat.write(nbformat.v4.new_notebook(), tmp_path / "notebooks" / "train.ipynb")
    (tmp_path / "configs" / "notebooks.yaml").write_text(registry)
    project = Project(tmp_path)
    with pytest.raises(ConfigError) as error:
        project.notebooks()
        project.triggers
    assert expected in str(error.value) and "configs/notebooks.yaml" in str(error.value)


@pytest.mark.slow
def test_dg_check_defs_passes():
    dg_cli = Path(sys.executable).parent / "dg"
    result = subprocess.run([str(dg_cli), "check", "defs"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "All definitions loaded successfully." in result.stdout + result.stderr


@pytest.mark.slow
def test_what_dg_scaffold_defs_writes_is_loaded_with_the_notebooks(tmp_path: Path):
    """Definitions load the dg way (``dg.load_defs`` over ``ds_pipelines/defs``): an asset scaffolded by
    ``dg scaffold defs`` into a copy of this project is in the code location, beside the notebooks."""
    copy = tmp_path / "project"
    copy.mkdir()
    for name in ("pyproject.toml", "ds_pipelines", "configs", "notebooks"):
        source = REPO / name
        if source.is_dir():
            shutil.copytree(source, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy(source, copy / name)
    env = {key: value for key, value in os.environ.items() if not key.startswith(("DS_PIPELINES_", "DAGSTER_"))}
    dg_cli = Path(sys.executable).parent / "dg"
    scaffold = subprocess.run([str(dg_cli), "scaffold", "defs", "dagster.asset", "extra/probe.py"], cwd=copy, env=env,
                              capture_output=True, text=True, timeout=300)
    assert scaffold.returncode == 0, scaffold.stdout + scaffold.stderr
    assert (copy / "ds_pipelines" / "defs" / "extra" / "probe.py").is_file()
    listing = (
        "from ds_pipelines.definitions import defs\n"
        "print(sorted(key.to_user_string() for key in defs().resolve_asset_graph().get_all_asset_keys()))\n"
    )
    loaded = subprocess.run([sys.executable, "-c", listing], cwd=copy, env={**env, "PYTHONPATH": str(copy)},
                            capture_output=True, text=True, timeout=300)
    assert loaded.returncode == 0, loaded.stderr[-3000:]
    assert loaded.stdout.strip().splitlines()[-1] == "['inference_example', 'probe', 'training_example']"
