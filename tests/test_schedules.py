"""The scoring schedule: cron, time zone and notebook come from configs/notebooks.yaml."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml
from gitrepo import INFERENCE, PROJECT, REGISTRY, notebook_json

from ds_pipelines.defs.triggers.schedules import scoring_schedule
from ds_pipelines.errors import ConfigError
from ds_pipelines.project import Project


def project_with_triggers(root: Path, **triggers) -> Project:
    shutil.copytree(PROJECT / "notebooks", root / "notebooks")
    shutil.copytree(PROJECT / "configs", root / "configs")
    registry = yaml.safe_load((root / REGISTRY).read_text())
    registry["triggers"] = triggers
    (root / REGISTRY).write_text(yaml.safe_dump(registry))
    return Project(root)


def test_the_schedule_scores_with_the_configured_notebook_at_the_configured_time(tmp_path: Path):
    project = project_with_triggers(tmp_path, schedule={"cron": "30 2 * * 1-5", "timezone": "Europe/Berlin"})
    schedule = scoring_schedule(project)

    assert schedule.cron_schedule == "30 2 * * 1-5" and schedule.execution_timezone == "Europe/Berlin"
    assert schedule.default_status == dg.DefaultScheduleStatus.RUNNING
    with dg.build_schedule_context(scheduled_execution_time=None) as context:
        request = schedule.evaluate_tick(context).run_requests[0]
    assert request.tags["ds-pipelines/notebook"] == INFERENCE
    assert request.tags["ds-pipelines/reason"] == "scheduled"


def test_a_disabled_schedule_starts_stopped(tmp_path: Path):
    project = project_with_triggers(tmp_path, schedule={"enabled": False})
    assert scoring_schedule(project).default_status == dg.DefaultScheduleStatus.STOPPED


def test_the_deployment_schedules_only_the_scoring_asset():
    from ds_pipelines.definitions import defs

    definitions = defs()
    job = definitions.resolve_job_def(definitions.resolve_schedule_def("scoring").job_name)
    assert job.asset_layer.executable_asset_keys == {dg.AssetKey("inference_example")}


def test_a_project_without_a_scoring_notebook_has_no_schedule(tmp_path: Path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "probe.ipynb").write_text(notebook_json())
    assert scoring_schedule(Project(tmp_path)) is None


def test_a_configured_scoring_notebook_that_does_not_exist_is_named(tmp_path: Path):
    project = project_with_triggers(tmp_path, schedule={"notebook": "notebooks/scoring.ipynb"})
    with pytest.raises(ConfigError, match=r"configs/notebooks.yaml: triggers.schedule.notebook: notebook 'notebooks/scoring.ipynb' does not exist"):
        scoring_schedule(project)
