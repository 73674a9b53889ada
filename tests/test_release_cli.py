"""``ds-pipelines release TAG`` through the real CLI: the model version promoted in a real MLflow registry
(a copy of the session's SQLite store) and the GitLab release written to FakeGitLab (real python-gitlab)."""

from __future__ import annotations

import json
import shutil

import pytest
import yaml
from fake_gitlab import FakeGitLab
from made_up import random_text
from mlflow.exceptions import MlflowException
from mlflow.tracking import MlflowClient
from mlflow_serve import AliaslessProxy, mlflow_server
from published import assert_clean_exit, cli_env, notebook_entry, run_cli
from sandbox import REPO, Sandbox

from ds_pipelines.publishing.render.numbers import format_value
from ds_pipelines.tracking.baselines import (
    BLOCKING_CHECKS_TAG,
    COMMIT_TAG,
    PIPELINE_SOURCE_TAG,
    PROJECT_ID_TAG,
    PROTECTED_REF_TAG,
    REPRODUCES_TAG,
    run_tags,
)
from ds_pipelines.tracking.registry import ALIAS_TAG, unsupported_endpoint

MODEL = "tests-xgb"  # what the session's training registered (Sandbox.training_config, tests/sandbox.py)
CONFIGURED = yaml.safe_load((REPO / "configs/training_config.yaml").read_text())["mlflow"]["registered_model_name"]
PINNED_IMAGE = f"registry.example.com/group/project:v1.2.3@sha256:{'0123456789abcdef' * 4}"


@pytest.fixture
def registry(trained, tmp_path):
    """A copy of the session's MLflow store (the original stays as other tests expect it) and its URI."""
    box, _ = trained
    source = box.env["MLFLOW_TRACKING_URI"].removeprefix("sqlite:///")
    shutil.copy(source, tmp_path / "mlflow.db")
    return f"sqlite:///{tmp_path / 'mlflow.db'}"


def training_version(trained, tracking_uri):
    """The model version the session's training run registered."""
    box, _ = trained
    run_id = notebook_entry(json.loads((box.root / "results" / "results.json").read_text()), "training_example")["mlflow_run_id"]
    [version] = MlflowClient(tracking_uri).search_model_versions(f"run_id = '{run_id}'")
    return version


def alias_version(tracking_uri, alias):
    try:
        return MlflowClient(tracking_uri).get_model_version_by_alias(MODEL, alias).version
    except MlflowException:
        return None


@pytest.mark.slow
def test_production_tag_promotes_the_trained_version_and_creates_then_updates_the_release(
    trained, registry, tmp_path, fake_gitlab,
):
    box, _ = trained
    env = cli_env(box, fake_gitlab, MLFLOW_TRACKING_URI=registry)
    version = training_version(trained, registry)
    first = run_cli(env, "release", "v1.2.3", "--results", str(box.root / "results"), cwd=tmp_path)
    assert_clean_exit(first)
    assert f"Model {MODEL} version {version.version}: alias 'production' set (models:/{MODEL}@production)" in first.stdout
    assert "GitLab release v1.2.3 created." in first.stdout
    assert alias_version(registry, "production") == version.version
    release = fake_gitlab.releases["v1.2.3"]
    assert release["name"] == "v1.2.3 (production release)"
    assert f"Model `{MODEL}` version **{version.version}** (aliases: `production`)" in release["description"]
    roc_auc = notebook_entry(json.loads((box.root / "results" / "results.json").read_text()), "training_example")["metrics"]["roc_auc"]
    assert f"| `roc_auc` | {format_value(roc_auc)} |" in release["description"]

    again = run_cli(env, "release", "v1.2.3", "--results", str(box.root / "results"), cwd=tmp_path)
    assert_clean_exit(again)
    assert "GitLab release v1.2.3 updated." in again.stdout
    assert list(fake_gitlab.releases) == ["v1.2.3"]
    assert alias_version(registry, "production") == version.version


@pytest.mark.slow
def test_development_tag_stages_the_model_and_releases_nothing(trained, registry, tmp_path, fake_gitlab):
    box, _ = trained
    env = cli_env(box, fake_gitlab, MLFLOW_TRACKING_URI=registry)
    result = run_cli(env, "release", "dev-1.2.3", "--results", str(box.root / "results"), cwd=tmp_path)
    assert_clean_exit(result)
    version = training_version(trained, registry)
    assert alias_version(registry, "staging") == version.version
    assert alias_version(registry, "production") is None
    assert "nothing is deployed and no GitLab release is made" in result.stdout
    assert fake_gitlab.releases == {} and fake_gitlab.requests == []


@pytest.mark.slow
def test_without_results_the_latest_version_is_released_with_its_runs_metrics(trained, registry, tmp_path, fake_gitlab):
    box, _ = trained
    env = cli_env(box, fake_gitlab, MLFLOW_TRACKING_URI=registry)
    result = run_cli(env, "release", "v2.0.0", "--model", MODEL, cwd=tmp_path)
    assert_clean_exit(result)
    client = MlflowClient(registry)
    latest = max(client.search_model_versions(f"name = '{MODEL}'"), key=lambda v: int(v.version))
    assert alias_version(registry, "production") == latest.version
    description = fake_gitlab.releases["v2.0.0"]["description"]
    roc_auc = client.get_run(latest.run_id).data.metrics["roc_auc"]
    assert f"| `roc_auc` | {format_value(roc_auc)} |" in description
    assert f"**Promoted:** model `{MODEL}` version **{latest.version}** is `production` (MLflow alias" in description


@pytest.mark.slow
def test_a_pre_release_tag_exits_2_naming_the_patterns_and_changes_nothing(trained, registry, tmp_path, fake_gitlab):
    box, _ = trained
    result = run_cli(cli_env(box, fake_gitlab, MLFLOW_TRACKING_URI=registry), "release", "v1.2.3-rc1",
                     "--results", str(box.root / "results"), cwd=tmp_path)
    assert_clean_exit(result, 2)
    assert "error: tag 'v1.2.3-rc1' is not a release" in result.stderr
    assert r"v[0-9]+\.[0-9]+\.[0-9]+" in result.stderr and r"dev-[0-9]+\.[0-9]+\.[0-9]+" in result.stderr
    assert alias_version(registry, "production") is None and fake_gitlab.requests == []


@pytest.mark.slow
def test_a_configured_model_without_versions_exits_2_naming_it(trained, registry, tmp_path):
    box, _ = trained
    # configs/training_config.yaml registers ds-pipelines-xgb, which the session's store has never seen.
    result = run_cli(cli_env(box, MLFLOW_TRACKING_URI=registry), "release", "dev-1.0.0", cwd=tmp_path)
    assert_clean_exit(result, 2)
    assert "registered model 'ds-pipelines-xgb' has no version in the MLflow registry" in result.stderr


@pytest.mark.slow
def test_gitlab_refusing_still_promotes_but_unconfigured_gitlab_under_strict_changes_nothing(trained, registry, tmp_path):
    box, _ = trained
    results = str(box.root / "results")
    strict = run_cli(cli_env(box, MLFLOW_TRACKING_URI=registry), "release", "v1.2.3", "--results", results, "--strict",
                     cwd=tmp_path)
    assert_clean_exit(strict, 2)
    assert "GitLab is not configured" in strict.stderr
    assert alias_version(registry, "production") is None  # checked before anything was promoted

    with FakeGitLab() as fake:
        env = cli_env(box, fake, MLFLOW_TRACKING_URI=registry, GITLAB_TOKEN="wrong-" + fake.token)
        refused = run_cli(env, "release", "v1.2.3", "--results", results, cwd=tmp_path)
        refused_strict = run_cli(env, "release", "v1.2.3", "--results", results, "--strict", cwd=tmp_path)
        assert fake.releases == {}
    assert_clean_exit(refused)
    assert "warning: GitLab release v1.2.3 not published: GitLab refused the token (401" in refused.stderr
    assert_clean_exit(refused_strict, 1)
    assert "error: GitLab release v1.2.3 not published: GitLab refused the token (401" in refused_strict.stderr
    for result in (refused, refused_strict):
        assert f"alias 'production' set (models:/{MODEL}@production)" in result.stdout  # and said so
        assert fake.token not in result.stdout + result.stderr
    assert alias_version(registry, "production") == training_version(trained, registry).version


def test_a_server_without_the_alias_endpoint_is_told_apart_from_a_refused_alias(tmp_path, fake_gitlab, monkeypatch):
    """The fallback to a model version tag hangs on this: GitLab's MLflow API answers an unknown endpoint
    with its own 404 (FakeGitLab answers like GitLab), a real registry refuses an unknown model with an
    MLflow error code."""
    monkeypatch.setenv("MLFLOW_TRACKING_TOKEN", fake_gitlab.token)
    gitlab_mlflow = MlflowClient(f"{fake_gitlab.url}/api/v4/projects/7/ml/mlflow")
    with pytest.raises(MlflowException) as missing_endpoint:
        gitlab_mlflow.set_registered_model_alias(MODEL, "production", "1")
    assert unsupported_endpoint(missing_endpoint.value)
    with pytest.raises(MlflowException) as unknown_model:
        MlflowClient(f"sqlite:///{tmp_path / 'empty.db'}").set_registered_model_alias("no-such-model", "production", "1")
    assert not unsupported_endpoint(unknown_model.value)


@pytest.mark.slow
def test_a_registry_without_aliases_gets_the_version_tagged_and_scoring_finds_it(trained, registry, tmp_path, fake_gitlab):
    """A real ``mlflow server`` behind a stand-in for GitLab's MLflow API, which lacks the alias endpoints:
    the release tags the version, and the inference notebook's ``models:/name@production`` loads it."""
    box, _ = trained
    version = training_version(trained, registry)
    scoring = tmp_path / "scoring.yaml"
    scoring.write_text(yaml.safe_dump({
        **yaml.safe_load((box.root / "inference.yaml").read_text()),  # what the session's inference used
        "model": {"uri": f"models:/{MODEL}@production"},
        "output": {"path": str(tmp_path / "scores.csv"), "metrics_path": str(tmp_path / "metrics.json")},
    }))
    with mlflow_server(tmp_path / "mlflow.db", tmp_path) as upstream:
        with AliaslessProxy(upstream) as proxy:
            proxy_env = cli_env(box, fake_gitlab, MLFLOW_TRACKING_URI=proxy.url)
            result = run_cli(proxy_env, "release", "v1.2.3", "--results", str(box.root / "results"), cwd=tmp_path)
            again = run_cli(proxy_env, "release", "v1.2.3", "--results", str(box.root / "results"), cwd=tmp_path)
            # A later release put a newer version in production (by the tag, as this server has no aliases).
            upstream_client = MlflowClient(upstream)
            later_run = upstream_client.create_run(upstream_client.get_run(version.run_id).info.experiment_id)
            newer = upstream_client.create_model_version(MODEL, f"runs:/{later_run.info.run_id}/model",
                                                         run_id=later_run.info.run_id).version
            upstream_client.set_model_version_tag(MODEL, newer, ALIAS_TAG, "production")
            upstream_client.delete_model_version_tag(MODEL, version.version, ALIAS_TAG)
            refused = run_cli(proxy_env, "release", "v1.2.3", "--results", str(box.root / "results"), cwd=tmp_path)
            rolled_back = run_cli(proxy_env, "release", "v1.2.3", "--results", str(box.root / "results"),
                                  "--rollback", cwd=tmp_path)
            scored = run_cli(proxy_env, "run", "inference_example", "--config", f"inference_example={scoring}", cwd=tmp_path)
    assert_clean_exit(result)
    assert_clean_exit(again)
    assert_clean_exit(refused, 2)
    assert (f"model {MODEL!r} version {version.version} is older than version {newer}, which is production now: "
            "nothing was promoted") in refused.stderr
    assert_clean_exit(rolled_back)
    assert_clean_exit(scored)
    assert f"models:/{MODEL}@production is version {version.version} ({ALIAS_TAG}=production" in scored.stderr
    assert json.loads((tmp_path / "metrics.json").read_text())["row_count"] > 0
    # Each production release read the current version (the rollback need not), then tried the alias first,
    # and so did scoring: all got GitLab's 404. The refused one stopped after reading.
    assert [request.split()[0] for request in proxy.refused] == ["GET", "POST", "GET", "POST", "GET", "POST", "GET"]
    assert f"Model {MODEL} version {version.version}: tagged {ALIAS_TAG}=production (this MLflow server has no aliases)" in result.stdout
    assert "GitLab release v1.2.3 updated." in again.stdout
    client = MlflowClient(registry)
    assert client.get_model_version(MODEL, version.version).tags[ALIAS_TAG] == "production"
    assert ALIAS_TAG not in client.get_model_version(MODEL, newer).tags  # the rollback moved the tag
    assert alias_version(registry, "production") is None  # the registry's own alias was never set
    description = fake_gitlab.releases["v1.2.3"]["description"]
    assert f"`{ALIAS_TAG}=production`: this MLflow server has no aliases" in description
    assert f"version **{version.version}**" in description


def made_up_sha() -> str:
    return random_text(40, "0123456789abcdef")


def trained_version(tracking_uri: str, *, commit: str, branch: str, roc_auc: float, status: str = "FINISHED",
                    tag: str = COMMIT_TAG, **extra_tags: str) -> str:
    """A version of the configured model, registered by a training run of ``commit``, tagged as a protected
    CI job of project 7 tags it (``extra_tags`` override)."""
    client = MlflowClient(tracking_uri)
    experiment = client.get_experiment_by_name("training") or client.get_experiment(client.create_experiment("training"))
    tags = run_tags(None, branch, None, None, None, pipeline_source="push", protected_ref="true", project_id="7")
    run = client.create_run(experiment.experiment_id, tags={**tags, tag: commit, **extra_tags})
    client.log_metric(run.info.run_id, "roc_auc", roc_auc)
    client.set_terminated(run.info.run_id, status=status)
    if not client.search_registered_models(f"name = '{CONFIGURED}'"):
        client.create_registered_model(CONFIGURED)
    return client.create_model_version(CONFIGURED, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id).version


@pytest.mark.slow
def test_commit_releases_the_version_trained_from_it_and_the_notes_name_the_image(sandbox: Sandbox, tmp_path, fake_gitlab):
    tracking_uri = sandbox.env["MLFLOW_TRACKING_URI"]
    tagged, feature = made_up_sha(), made_up_sha()
    # mlflow.source.git.commit, as MLflow sets it itself, counts when ds-pipelines' tag is absent.
    released = trained_version(tracking_uri, commit=tagged, branch="main", roc_auc=0.912, tag="mlflow.source.git.commit")
    newer = trained_version(tracking_uri, commit=feature, branch="feature", roc_auc=0.987)

    result = run_cli(cli_env(sandbox, fake_gitlab), "release", "v1.2.3", "--commit", tagged.upper(),
                     "--image", PINNED_IMAGE, cwd=tmp_path)

    assert_clean_exit(result)
    assert int(newer) > int(released)
    assert f"Model {CONFIGURED} version {released}: alias 'production' set" in result.stdout
    assert MlflowClient(tracking_uri).get_model_version_by_alias(CONFIGURED, "production").version == released
    notes = fake_gitlab.releases["v1.2.3"]["description"]
    assert f"\nImage: `{PINNED_IMAGE}`\n" in notes
    assert f"| `roc_auc` | {format_value(0.912)} |" in notes and format_value(0.987) not in notes
    assert f"version **{released}**" in notes and f"version **{newer}**" not in notes


@pytest.mark.slow
def test_no_version_trained_from_the_commit_exits_2_saying_how_to_get_one_and_promotes_nothing(
    sandbox: Sandbox, tmp_path, fake_gitlab,
):
    tracking_uri = sandbox.env["MLFLOW_TRACKING_URI"]
    tagged, feature = made_up_sha(), made_up_sha()
    failed = trained_version(tracking_uri, commit=tagged, branch="main", roc_auc=0.9, status="FAILED")
    newest = trained_version(tracking_uri, commit=feature, branch="feature", roc_auc=0.99)

    result = run_cli(cli_env(sandbox, fake_gitlab), "release", "v1.2.3", "--commit", tagged, cwd=tmp_path)

    assert_clean_exit(result, 2)
    assert (f"error: no version of registered model {CONFIGURED!r} was trained from commit {tagged} by a finished "
            "MLflow run") in result.stderr
    assert f"version {newest} from commit {feature[:12]} on branch feature" in result.stderr
    assert f"version {failed} from commit {tagged[:12]} on branch main, run FAILED" in result.stderr
    assert "Train on that commit: push it to a protected branch so that CI trains it, or run the training notebook" in result.stderr
    with pytest.raises(MlflowException):
        MlflowClient(tracking_uri).get_model_version_by_alias(CONFIGURED, "production")
    assert fake_gitlab.releases == {}


@pytest.mark.slow
@pytest.mark.parametrize(("passed_over", "why"), [
    ({BLOCKING_CHECKS_TAG: "failed"}, "its blocking quality checks failed"),
    ({REPRODUCES_TAG: "results/results.json"}, "a ds-pipelines reproduce rerun"),
    ({PROTECTED_REF_TAG: "false"}, "not trained on a protected ref"),
    ({PIPELINE_SOURCE_TAG: "merge_request_event"}, "trained in a merge-request pipeline"),
    ({PROJECT_ID_TAG: "8"}, "trained by project 8, not 7"),
])
def test_a_version_that_failed_its_checks_or_was_not_made_by_a_protected_job_here_is_never_promoted(
    sandbox: Sandbox, tmp_path, fake_gitlab, passed_over, why,
):
    tracking_uri = sandbox.env["MLFLOW_TRACKING_URI"]
    tagged = made_up_sha()
    gated = trained_version(tracking_uri, commit=tagged, branch="main", roc_auc=0.91)
    newer = trained_version(tracking_uri, commit=tagged, branch="main", roc_auc=0.99, **passed_over)
    env = cli_env(sandbox, fake_gitlab, CI_PROJECT_ID="7")

    result = run_cli(env, "release", "v1.2.3", "--commit", tagged, cwd=tmp_path)

    assert_clean_exit(result)
    assert int(newer) > int(gated)
    assert f"Model {CONFIGURED} version {gated}: alias 'production' set" in result.stdout
    # Alone, the passed-over version is no release at all; the message says why it was passed over.
    client = MlflowClient(tracking_uri)
    client.delete_model_version(CONFIGURED, gated)
    alone = run_cli(env, "release", "v1.2.4", "--commit", tagged, cwd=tmp_path)
    assert_clean_exit(alone, 2)
    assert f"version {newer} from commit {tagged[:12]} on branch main, {why}" in alone.stderr


@pytest.mark.slow
def test_an_older_version_than_production_is_refused_without_rollback(sandbox: Sandbox, tmp_path, fake_gitlab):
    tracking_uri = sandbox.env["MLFLOW_TRACKING_URI"]
    first, second = made_up_sha(), made_up_sha()
    older = trained_version(tracking_uri, commit=first, branch="main", roc_auc=0.91)
    newer = trained_version(tracking_uri, commit=second, branch="main", roc_auc=0.92)
    env = cli_env(sandbox, fake_gitlab)
    assert_clean_exit(run_cli(env, "release", "v1.3.0", "--commit", second, cwd=tmp_path))

    refused = run_cli(env, "release", "v1.2.9", "--commit", first, cwd=tmp_path)
    assert_clean_exit(refused, 2)
    assert (f"model {CONFIGURED!r} version {older} is older than version {newer}, which is production now: nothing "
            "was promoted. To go back to it on purpose, run the release again with --rollback") in refused.stderr
    client = MlflowClient(tracking_uri)
    assert client.get_model_version_by_alias(CONFIGURED, "production").version == newer
    assert "v1.2.9" not in fake_gitlab.releases

    rolled_back = run_cli(env, "release", "v1.2.9", "--commit", first, "--rollback", cwd=tmp_path)
    assert_clean_exit(rolled_back)
    assert client.get_model_version_by_alias(CONFIGURED, "production").version == older


@pytest.mark.parametrize(("args", "message"), [
    (["--commit", "v1.2.3"], "Invalid value for '--commit': 'v1.2.3' is not a full commit SHA"),
    (["--commit", "abc1234"], "'abc1234' is not a full commit SHA (40 or 64 hex digits"),
    (["--image", "registry.example.com/group/project:v1.2.3"],
     "Invalid value for '--image': 'registry.example.com/group/project:v1.2.3' is not an image pinned by digest"),
    (["--commit", "a" * 40, "--results", "results"], "--results and --commit both choose the model version"),
])
def test_bad_commit_image_or_both_choices_exit_2_naming_them(sandbox: Sandbox, tmp_path, args, message):
    (tmp_path / "results").mkdir()
    result = run_cli(cli_env(sandbox), "release", "v1.2.3", *args, cwd=tmp_path)
    assert_clean_exit(result, 2)
    assert message in result.stderr
