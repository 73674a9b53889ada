"""The release job the tag sensor starts: GitLab release and MLflow alias, as CI's auto-release does."""

from __future__ import annotations

import dagster as dg
import mlflow
import pytest
import yaml
from fake_gitlab import FakeGitLab
from sandbox import REPO, Sandbox

from ds_pipelines.defs.triggers.releases import ReleaseConfig, release_job
from ds_pipelines.defs.triggers.resources import GitLabResource
from ds_pipelines.results.origin import TAG_PREFIX
from ds_pipelines.tracking.baselines import run_tags

pytestmark = pytest.mark.slow  # Dagster jobs against a fresh MLflow store: 10-20 s each


def registered_model(tracking_uri: str, commit: str) -> tuple[str, str]:
    """The model configs/training_config.yaml registers, with a new version from a finished run of ``commit``
    by a protected job of project 7 (FakeGitLab's)."""
    name = yaml.safe_load((REPO / "configs/training_config.yaml").read_text())["mlflow"]["registered_model_name"]
    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("training")
    run = client.create_run(experiment.experiment_id if experiment else client.create_experiment("training"),
                            tags=run_tags(commit, "main", None, None, None, pipeline_source="push",
                                          protected_ref="true", project_id="7"))
    client.log_metric(run.info.run_id, "roc_auc", 0.987)
    client.set_terminated(run.info.run_id)
    if not client.search_registered_models(f"name = '{name}'"):
        client.create_registered_model(name)
    return name, client.create_model_version(name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id).version


def test_a_release_launched_by_hand_needs_the_commit(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch):
    for key, value in sandbox.env.items():
        monkeypatch.setenv(key, value)
    tagged = "3" * 40
    name, version = registered_model(sandbox.env["MLFLOW_TRACKING_URI"], tagged)
    registered_model(sandbox.env["MLFLOW_TRACKING_URI"], "4" * 40)  # newer, of another commit

    with FakeGitLab() as fake:
        resources = {"gitlab": GitLabResource(url=fake.url, project_id=str(fake.project_id), token=fake.token)}
        # As from the UI's launchpad: no run tags, no commit.
        refused = release_job.execute_in_process(
            run_config=dg.RunConfig(ops={"release_tag": ReleaseConfig(tag="v1.2.3")}),
            instance=dg.DagsterInstance.ephemeral(), resources=resources, raise_on_error=False,
        )
        assert fake.releases == {}
        named = release_job.execute_in_process(
            run_config=dg.RunConfig(ops={"release_tag": ReleaseConfig(tag="v1.2.3", commit=tagged)}),
            instance=dg.DagsterInstance.ephemeral(), resources=resources,
        )
        release = fake.releases.get("v1.2.3")

    assert not refused.success
    assert "release of v1.2.3 refused: no commit to release" in refused.failure_data_for_node("release_tag").user_failure_data.description
    assert named.success
    assert release is not None and name in release["description"]
    assert mlflow.MlflowClient(sandbox.env["MLFLOW_TRACKING_URI"]).get_model_version_by_alias(name, "production").version == version


def test_the_sensors_release_run_promotes_the_version_trained_from_the_tags_commit(sandbox: Sandbox, monkeypatch):
    for key, value in sandbox.env.items():
        monkeypatch.setenv(key, value)
    tagged, feature = "1" * 40, "2" * 40
    name, released = registered_model(sandbox.env["MLFLOW_TRACKING_URI"], tagged)
    _, newer = registered_model(sandbox.env["MLFLOW_TRACKING_URI"], feature)

    with FakeGitLab() as fake:
        result = release_job.execute_in_process(
            run_config=dg.RunConfig(ops={"release_tag": ReleaseConfig(tag="v1.2.3")}),
            instance=dg.DagsterInstance.ephemeral(),
            resources={"gitlab": GitLabResource(url=fake.url, project_id=str(fake.project_id), token=fake.token)},
            tags={f"{TAG_PREFIX}tag": "v1.2.3", f"{TAG_PREFIX}commit": tagged},  # as the tag sensor tags its runs
        )

    assert result.success and int(newer) > int(released)
    assert mlflow.MlflowClient(sandbox.env["MLFLOW_TRACKING_URI"]).get_model_version_by_alias(name, "production").version == released


def test_the_release_job_fails_without_gitlab_settings(sandbox: Sandbox, monkeypatch: pytest.MonkeyPatch):
    for key, value in sandbox.env.items():
        monkeypatch.setenv(key, value)
    name, _ = registered_model(sandbox.env["MLFLOW_TRACKING_URI"], "5" * 40)

    result = release_job.execute_in_process(
        run_config=dg.RunConfig(ops={"release_tag": ReleaseConfig(tag="v1.2.3", commit="5" * 40)}),
        instance=dg.DagsterInstance.ephemeral(), resources={"gitlab": GitLabResource()}, raise_on_error=False,
    )

    assert not result.success
    assert "release of v1.2.3 not started: GitLab is not configured: set CI_SERVER_URL" in result.failure_data_for_node("release_tag").user_failure_data.description
    with pytest.raises(mlflow.exceptions.MlflowException):  # nothing promoted when it cannot be released
        mlflow.MlflowClient(sandbox.env["MLFLOW_TRACKING_URI"]).get_model_version_by_alias(name, "production")
