"""A notebook that a GitLab CI job runs is a run of the deployment's Dagster instance, seen in its UI.

The real ``.gitlab-ci.yml`` runs through gitlab-ci-local with ``DAGSTER_POSTGRES_URL`` set as a (masked) CI
variable: the child pipeline's notebook job's ``ds-pipelines run`` records its run, GitLab tags and materialization in a real
PostgreSQL database. A ``dagster-webserver`` on the same database, as the deployment runs it, then serves them
over GraphQL, with the executed notebook's link into the job's artifacts (the job's own disk is gone by then).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from ci_helpers import OFFLINE, CiProject, missing_tools
from dagster_webserver import dagster_webserver, graphql
from gitrepo import TRAINING
from postgres import SUPERUSER_PASSWORD
from required import require

from ds_pipelines.execution.instance import (
    INSTANCE_SETTINGS,
    POSTGRES_STORAGE,
    POSTGRES_URL_ENV,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # a CI pipeline that trains, then a webserver

RUNS_QUERY = "{ runsOrError { ... on Runs { results { runId status jobName tags { key value } } } } }"
MATERIALIZATIONS_QUERY = """{ assetOrError(assetKey: {path: ["training_example"]}) { ... on Asset {
  assetMaterializations(limit: 5) { runId metadataEntries { label __typename
    ... on UrlMetadataEntry { url } ... on FloatMetadataEntry { floatValue } } } } } }"""


def test_a_ci_run_is_a_run_of_the_shared_instance(tmp_path: Path, postgres):
    require("; ".join(missing_tools()))
    project = CiProject.create(tmp_path)
    project.edit_notebook(TRAINING, {"cell_type": "markdown", "metadata": {}, "source": ["Retrain."]})
    pushed = project.push("Retrain the model")
    url = postgres.url(postgres.new_database())
    variables = {**OFFLINE, **pushed, POSTGRES_URL_ENV: url}

    # The whole pipeline: gitlab-ci-local hands a job name given here on to the child pipeline, which has none.
    result = project.gitlab_ci_local(variables=variables)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert re.search(r"PASS\s+\[run-notebooks\] -> run-training_example", output), output[-3000:]
    assert SUPERUSER_PASSWORD not in output, "the database password stays out of the job log"

    ui_home = tmp_path / "deployment-home"
    ui_home.mkdir()
    (ui_home / "dagster.yaml").write_text(INSTANCE_SETTINGS + POSTGRES_STORAGE)
    env = {**os.environ, "DAGSTER_HOME": str(ui_home), POSTGRES_URL_ENV: url, "DS_PIPELINES_PROJECT_DIR": str(project.root)}
    with dagster_webserver(project.root, env, tmp_path / "webserver.log") as port:
        runs = graphql(port, RUNS_QUERY)["runsOrError"]["results"]
        materializations = graphql(port, MATERIALIZATIONS_QUERY)["assetOrError"]["assetMaterializations"]

    [run] = runs
    assert run["status"] == "SUCCESS"
    tags = {tag["key"]: tag["value"] for tag in run["tags"]}
    assert tags["ds-pipelines/commit"] == pushed["CI_COMMIT_SHA"]
    assert tags["ds-pipelines/trigger"] == "push"
    job_url = tags["ds-pipelines/job-url"]
    assert "/-/jobs/" in job_url and tags["ds-pipelines/pipeline-url"]
    [materialization] = materializations
    assert materialization["runId"] == run["runId"]
    entries = {entry["label"]: entry for entry in materialization["metadataEntries"]}
    notebook_url = f"{job_url}/artifacts/file/results/training_example/training_example/training_example.ipynb"
    assert entries["executed_notebook_url"] == {"label": "executed_notebook_url", "__typename": "UrlMetadataEntry", "url": notebook_url}
    assert 0.9 < entries["roc_auc"]["floatValue"] <= 1.0  # the asset's metric history mixes CI and Dagster runs
    # The link points at the file the job keeps as artifacts.
    assert (project.child_results("training_example") / "training_example/training_example.ipynb").is_file()
