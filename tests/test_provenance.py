"""Runs started in GitLab CI carry their origin: as Dagster run tags and as MLflow run tags."""

from __future__ import annotations

import json
from pathlib import Path

import dagster as dg
import mlflow
import pytest
from gitrepo import notebook_json
from sandbox import Sandbox

from ds_pipelines.results.origin import RUN_TAGS_ENV

SHA = "c0ffee" + "0" * 34
CI = {
    "CI_COMMIT_SHA": SHA,
    "CI_COMMIT_BRANCH": "main",
    "CI_PROJECT_URL": "https://gitlab.example.com/group/project",
    "CI_PIPELINE_URL": "https://gitlab.example.com/group/project/-/pipelines/41",
    "CI_JOB_URL": "https://gitlab.example.com/group/project/-/jobs/42",
    "CI_PIPELINE_SOURCE": "push",
}


def tracked_project(root: Path) -> Path:
    cell = "import mlflow\nwith mlflow.start_run() as run:\n    print('MLFLOW_RUN', run.info.run_id)"
    (root / "notebooks").mkdir(parents=True)
    (root / "configs").mkdir()
    (root / "notebooks" / "tracked.ipynb").write_text(notebook_json(cell))
    return root


@pytest.mark.slow
def test_a_ci_run_tags_its_dagster_run_and_its_mlflow_run(sandbox: Sandbox):
    project = tracked_project(sandbox.root / "project")
    sandbox.env.update(CI)

    result = sandbox.cli("run", "tracked", "--project-dir", str(project), "--json")

    assert result.returncode == 0, result.stderr[-3000:]
    entry = json.loads(result.stdout)["notebooks"][0]
    run = dg.DagsterInstance.from_config(sandbox.env["DAGSTER_HOME"]).get_run_by_id(entry["dagster_run_id"])
    assert run.tags["ds-pipelines/commit"] == SHA and run.tags["ds-pipelines/branch"] == "main"
    assert run.tags["ds-pipelines/pipeline-url"] == CI["CI_PIPELINE_URL"]
    assert run.tags["ds-pipelines/commit-url"] == f"{CI['CI_PROJECT_URL']}/-/commit/{SHA}"
    mlflow_run_id = result.stderr.split("MLFLOW_RUN ")[1].split()[0]
    tags = mlflow.MlflowClient(sandbox.env["MLFLOW_TRACKING_URI"]).get_run(mlflow_run_id).data.tags
    assert tags["ds-pipelines.branch"] == "main" and tags["ds-pipelines.commit"] == SHA
    assert tags["ds-pipelines.job_url"] == CI["CI_JOB_URL"]


@pytest.mark.slow
def test_tags_handed_on_by_a_sensor_run_win_over_ci(sandbox: Sandbox):
    project = tracked_project(sandbox.root / "project")
    sandbox.env.update(CI)
    sandbox.env[RUN_TAGS_ENV] = json.dumps({"ds-pipelines/branch": "feature", "ds-pipelines/merge-request": "7"})

    result = sandbox.cli("run", "tracked", "--project-dir", str(project), "--json")

    assert result.returncode == 0, result.stderr[-3000:]
    run_id = json.loads(result.stdout)["notebooks"][0]["dagster_run_id"]
    tags = dg.DagsterInstance.from_config(sandbox.env["DAGSTER_HOME"]).get_run_by_id(run_id).tags
    assert tags["ds-pipelines/branch"] == "feature" and tags["ds-pipelines/merge-request"] == "7"


def test_malformed_handed_on_tags_are_bad_input(sandbox: Sandbox):
    project = tracked_project(sandbox.root / "project")
    sandbox.env[RUN_TAGS_ENV] = "not json"
    result = sandbox.cli("run", "tracked", "--project-dir", str(project))
    assert result.returncode == 2
    assert f"{RUN_TAGS_ENV} is not a JSON object of run tags: 'not json'" in result.stderr
