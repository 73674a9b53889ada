"""The scoring schedule: cron, time zone and notebook come from configs/notebooks.yaml; each tick runs the
scoring notebook and logs the run on its wiki page."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest
import yaml
from fake_gitlab import FakeGitLab
from gitrepo import INFERENCE, PROJECT, REGISTRY, notebook_json
from sandbox import Sandbox
from sensor_ticks import sensor_tick

from ds_pipelines.defs.triggers.published import publish_succeeded_notebook_runs
from ds_pipelines.defs.triggers.resources import GitLabResource
from ds_pipelines.defs.triggers.schedules import scoring_schedule
from ds_pipelines.errors import ConfigError
from ds_pipelines.execution.instance import DEVICE_TAG
from ds_pipelines.project import PROJECT_DIR_ENV, Project


def project_with_triggers(root: Path, **triggers) -> Project:
    shutil.copytree(PROJECT / "notebooks", root / "notebooks")
    shutil.copytree(PROJECT / "configs", root / "configs")
    registry = yaml.safe_load((root / REGISTRY).read_text())
    registry["triggers"] = {"orchestrator": "dagster", **triggers}
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
    assert request.tags[DEVICE_TAG] == "cpu", "the scoring notebook's device: its container or runner follows it"


def test_a_gpu_scoring_notebook_is_tagged_for_the_gpus(tmp_path: Path):
    project = project_with_triggers(tmp_path, schedule={"notebook": "notebooks/training_example.ipynb"})
    with dg.build_schedule_context(scheduled_execution_time=None) as context:
        request = scoring_schedule(project).evaluate_tick(context).run_requests[0]
    assert request.tags[DEVICE_TAG] == "gpu"


def test_a_disabled_schedule_starts_stopped(tmp_path: Path):
    project = project_with_triggers(tmp_path, schedule={"enabled": False})
    assert scoring_schedule(project).default_status == dg.DefaultScheduleStatus.STOPPED


def test_the_deployment_schedule_runs_its_scoring_notebook_from_its_project_folder(tmp_path: Path, monkeypatch):
    from ds_pipelines.definitions import defs

    project = project_with_triggers(tmp_path)
    monkeypatch.setenv(PROJECT_DIR_ENV, str(project.root))
    definitions = defs()
    schedule = definitions.resolve_schedule_def("scoring")
    with dg.build_schedule_context(scheduled_execution_time=None) as context:
        request = schedule.evaluate_tick(context).run_requests[0]
    assert definitions.resolve_job_def(schedule.job_name).name == "scheduled_notebook"
    config = request.run_config["ops"]["run_scheduled_notebook"]["config"]
    assert config == {"notebook": INFERENCE, "project_dir": str(project.root)}


def test_this_project_leaves_scoring_to_gitlab_ci_and_its_ticks_say_so():
    from ds_pipelines.definitions import defs

    schedule = defs().resolve_schedule_def("scoring")
    with dg.build_schedule_context(scheduled_execution_time=None) as context:
        tick = schedule.evaluate_tick(context)
    assert tick.run_requests == []
    assert "triggers.orchestrator is gitlab-ci in configs/notebooks.yaml" in tick.skip_message
    assert "set it to dagster" in tick.skip_message


@pytest.mark.slow
def test_a_tick_scores_and_logs_the_run_on_the_wiki(sandbox: Sandbox, tmp_path: Path, monkeypatch):
    project = project_with_triggers(tmp_path / "deployment", schedule={"notebook": "notebooks/scoring.ipynb"})
    (project.root / "notebooks" / "scoring.ipynb").write_text(notebook_json("print('scored on schedule')"))
    for key, value in {**sandbox.env, PROJECT_DIR_ENV: str(project.root)}.items():
        monkeypatch.setenv(key, value)  # the deployment's project, instance and MLflow store
    schedule = scoring_schedule(project)
    with dg.build_schedule_context(scheduled_execution_time=None) as context:
        request = schedule.evaluate_tick(context).run_requests[0]
    instance = dg.DagsterInstance.get()

    with FakeGitLab() as fake:
        gitlab = GitLabResource(url=fake.url, project_id=str(fake.project_id), token=fake.token)
        result = schedule.job.execute_in_process(
            run_config=request.run_config, tags=request.tags, instance=instance, resources={"gitlab": gitlab})
        assert result.success
        # Published by the code location's sensor once the run has ended.
        assert sensor_tick(publish_succeeded_notebook_runs, instance, result.run_id, gitlab) is None
        wiki = dict(fake.wiki)

    executed = json.loads((Path(result.output_for_node("run_scheduled_notebook")) / "scoring" / "scoring.ipynb").read_text())
    assert "scored on schedule" in json.dumps([cell.get("outputs", []) for cell in executed["cells"]])
    inner_run = instance.get_run_by_id(instance.fetch_materializations(dg.AssetKey("scoring"), limit=1).records[0].run_id)
    assert inner_run.tags["ds-pipelines/trigger"] == "schedule"
    page = wiki["model-runs/scoring"]["content"]
    assert "| schedule |" in page and fake.token not in page


def test_a_scheduled_run_naming_another_folder_than_the_deployments_is_refused(sandbox: Sandbox, tmp_path: Path, monkeypatch):
    """A run's config is whatever its creator wrote: a commit's code can create runs in the instance."""
    project = project_with_triggers(tmp_path / "deployment", schedule={"notebook": "notebooks/scoring.ipynb"})
    (project.root / "notebooks" / "scoring.ipynb").write_text(notebook_json("print('the deployment scores')"))
    elsewhere = project_with_triggers(tmp_path / "elsewhere", schedule={"notebook": "notebooks/scoring.ipynb"})
    (elsewhere.root / "notebooks" / "scoring.ipynb").write_text(notebook_json("open('ran', 'w').write('ran')"))
    for key, value in {**sandbox.env, PROJECT_DIR_ENV: str(project.root)}.items():
        monkeypatch.setenv(key, value)
    schedule = scoring_schedule(project)

    result = schedule.job.execute_in_process(
        run_config={"ops": {"run_scheduled_notebook": {"config": {"notebook": "notebooks/scoring.ipynb",
                                                                  "project_dir": str(elsewhere.root)}}}},
        instance=dg.DagsterInstance.get(), raise_on_error=False, resources={"gitlab": GitLabResource()})

    assert not result.success
    description = result.failure_data_for_node("run_scheduled_notebook").user_failure_data.description
    assert f"runs in the deployment's project folder {project.root}, not in {elsewhere.root}" in description
    assert not (elsewhere.root / "ran").exists()


def test_a_project_without_a_scoring_notebook_has_no_schedule(tmp_path: Path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks" / "probe.ipynb").write_text(notebook_json())
    assert scoring_schedule(Project(tmp_path)) is None


def test_a_configured_scoring_notebook_that_does_not_exist_is_named(tmp_path: Path):
    project = project_with_triggers(tmp_path, schedule={"notebook": "notebooks/scoring.ipynb"})
    with pytest.raises(ConfigError, match=r"configs/notebooks.yaml: triggers.schedule.notebook: notebook 'notebooks/scoring.ipynb' does not exist"):
        scoring_schedule(project)
