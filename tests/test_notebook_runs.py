"""A commit run executes its commit's notebook from the checkout, in this Dagster instance."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import dagster as dg
import pytest
from fake_gitlab import FakeGitLab
from gitrepo import TRAINING, make_project, notebook_json
from made_up import random_text
from sandbox import Sandbox, make_sandbox
from sensor_ticks import sensor_tick

from ds_pipelines.defs.triggers.notebook_runs import (
    NotebookRunConfig,
    commit_notebook_job,
    publish_to_gitlab,
    results_dir,
)
from ds_pipelines.defs.triggers.published import publish_failed_notebook_runs, publish_succeeded_notebook_runs
from ds_pipelines.defs.triggers.resources import GitLabResource
from ds_pipelines.masking import MASK
from ds_pipelines.project import PROJECT_DIR_ENV, STATE_DIR
from ds_pipelines.project.run_environment import COMMIT_DIR_ENV
from ds_pipelines.results.folder import NotebookResult, RunResults
from ds_pipelines.triggers.checkout import CHECKOUTS_DIR, MIRROR_DIR, checkout, intact

pytestmark = pytest.mark.slow  # runs notebooks through Dagster

CHECKOUTS = Path("deployment") / STATE_DIR / CHECKOUTS_DIR
"""Where, under each test's folder, the deployment's commit sensor keeps its checkouts."""


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    """The deployment is a project of its own, whose state folder holds the sensor's checkouts."""
    box = make_sandbox(tmp_path)
    box.env[PROJECT_DIR_ENV] = str(make_project(tmp_path / "deployment").root)
    return box


@pytest.fixture
def commit_checkout(tmp_path: Path) -> tuple[str, Path]:
    repo = make_project(tmp_path / "repo")
    repo.write(TRAINING, notebook_json("print('written at the commit that the sensor found')"))
    sha = repo.commit("retrain")
    repo.write(TRAINING, notebook_json("print('a later version')"))
    repo.commit("later")
    return sha, checkout(repository_url=str(repo.root), sha=sha, cache_dir=tmp_path / CHECKOUTS)


def test_the_run_executes_that_commits_notebook_and_records_it(sandbox: Sandbox, commit_checkout, monkeypatch):
    sha, folder = commit_checkout
    for key, value in sandbox.env.items():
        monkeypatch.setenv(key, value)  # the deployment's instance and MLflow store
    instance = dg.DagsterInstance.get()
    tags = {"ds-pipelines/commit": sha, "ds-pipelines/branch": "main", "ds-pipelines/notebook": TRAINING}

    result = commit_notebook_job.execute_in_process(
        run_config=dg.RunConfig(ops={"run_commit_notebook": NotebookRunConfig(notebook=TRAINING, project_dir=str(folder))}),
        instance=instance, tags=tags, resources={"gitlab": GitLabResource()},
    )

    assert result.success
    results_dir = Path(result.output_for_node("run_commit_notebook"))
    executed = json.loads((results_dir / "training_example" / "training_example.ipynb").read_text())
    printed = json.dumps([cell.get("outputs", []) for cell in executed["cells"]])
    assert "written at the commit that the sensor found" in printed and "later version" not in printed
    # The inner run materialized the notebook's asset in the same instance, tagged with the commit.
    materializations = instance.fetch_materializations(dg.AssetKey("training_example"), limit=1).records
    assert materializations, "the notebook's asset was not materialized in the deployment's instance"
    inner_run = instance.get_run_by_id(materializations[0].run_id)
    assert inner_run.tags["ds-pipelines/commit"] == sha and inner_run.tags["ds-pipelines/branch"] == "main"
    assert PROJECT_DIR_ENV not in inner_run.tags


def test_a_checkout_changed_while_its_run_waited_is_extracted_again(sandbox: Sandbox, commit_checkout, monkeypatch):
    """Commit runs wait in the queue after the sensor's checkout: a run of another commit may change it. The
    sensor's mirror holds the commit, so no GitLab token is needed (a commit run's container has none)."""
    sha, folder = commit_checkout
    for key, value in sandbox.env.items():
        monkeypatch.setenv(key, value)
    (folder / TRAINING).write_text(notebook_json("print('planted by another run')"))
    run_config = dg.RunConfig(ops={"run_commit_notebook": NotebookRunConfig(notebook=TRAINING, project_dir=str(folder))})

    result = commit_notebook_job.execute_in_process(
        run_config=run_config, instance=dg.DagsterInstance.get(), tags={"ds-pipelines/commit": sha},
        resources={"gitlab": GitLabResource()})

    assert result.success
    executed = (Path(result.output_for_node("run_commit_notebook")) / "training_example" / "training_example.ipynb").read_text()
    assert "written at the commit that the sensor found" in executed and "planted" not in executed

    # Without the mirror, and without GitLab, it cannot: the run fails saying why.
    (folder / TRAINING).write_text(notebook_json("print('planted again')"))
    shutil.rmtree(folder.parent / MIRROR_DIR)
    failed = commit_notebook_job.execute_in_process(
        run_config=run_config, instance=dg.DagsterInstance.get(), raise_on_error=False, resources={"gitlab": GitLabResource()})
    assert not failed.success
    description = failed.failure_data_for_node("run_commit_notebook").user_failure_data.description
    assert "changed and cannot be extracted again" in description and "no repository to fetch it from" in description


def test_a_failing_notebook_fails_the_run_with_its_error(sandbox: Sandbox, tmp_path: Path, monkeypatch):
    repo = make_project(tmp_path / "repo")
    repo.write(TRAINING, notebook_json("raise ValueError('broken at this commit')"))
    sha = repo.commit("break it")
    folder = checkout(repository_url=str(repo.root), sha=sha, cache_dir=tmp_path / CHECKOUTS)
    for key, value in sandbox.env.items():
        monkeypatch.setenv(key, value)

    result = commit_notebook_job.execute_in_process(
        run_config=dg.RunConfig(ops={"run_commit_notebook": NotebookRunConfig(notebook=TRAINING, project_dir=str(folder))}),
        instance=dg.DagsterInstance.get(), raise_on_error=False, resources={"gitlab": GitLabResource()},
    )

    assert not result.success
    failure = result.failure_data_for_node("run_commit_notebook")
    assert "broken at this commit" in failure.user_failure_data.description


def test_a_merge_request_run_publishes_its_comment_and_wiki_page(sandbox: Sandbox, commit_checkout, monkeypatch):
    sha, folder = commit_checkout
    for key, value in sandbox.env.items():
        monkeypatch.setenv(key, value)
    tags = {"ds-pipelines/commit": sha, "ds-pipelines/branch": "feature", "ds-pipelines/merge-request": "3",
            "ds-pipelines/trigger": "merge_request_event"}

    instance = dg.DagsterInstance.get()
    with FakeGitLab() as fake:
        gitlab = GitLabResource(url=fake.url, project_id=str(fake.project_id), token=fake.token)
        result = commit_notebook_job.execute_in_process(
            run_config=dg.RunConfig(ops={"run_commit_notebook": NotebookRunConfig(notebook=TRAINING, project_dir=str(folder))}),
            instance=instance, tags=tags, resources={"gitlab": gitlab},
        )
        assert result.success
        assert not fake.wiki, "the run itself publishes nothing: its container holds no GitLab token"
        # The code location's sensor publishes the run once it has ended.
        assert sensor_tick(publish_succeeded_notebook_runs, instance, result.run_id, gitlab) is None
        notes = fake.marked_notes(3, "<!-- ds-pipelines:metrics -->")
        wiki = dict(fake.wiki)

    assert len(notes) == 1 and "training" in notes[0]["body"] and fake.token not in notes[0]["body"]
    assert "model-runs/training_example" in wiki and sha[:7] in wiki["model-runs/training_example"]["content"]


# What a deployment holds that a commit's code must never see (the notebook runs with the allow-list only).
DEPLOYMENT_SECRETS = {
    "GITLAB_TOKEN": "glpat-planted-deployment-token-1",
    "REPO_TOKEN": "planted-repo-token-2",
    "SLACK_BOT_TOKEN": "xoxb-planted-slack-token-3",
    "DAGSTER_POSTGRES_URL": "postgresql://dagster:planted-db-password-4@127.0.0.1:1/dagster",
    "CI_JOB_TOKEN": "planted-job-token-5",
}
ENV_DUMP = "seen-environment.json"
TRAPPED = "booby-trap-fired"


def test_a_commits_notebook_sees_none_of_the_deployments_secrets_nor_runs_its_own_ds_pipelines(
        sandbox: Sandbox, tmp_path: Path, monkeypatch):
    repo = make_project(tmp_path / "repo")
    # The commit brings a ds_pipelines package of its own: imported instead of the deployment's, it would run
    # the commit's code in the deployment's ds-pipelines process (and its kernels).
    trap = tmp_path / TRAPPED
    repo.write("ds_pipelines/__init__.py", f"import sys, traceback, os\nopen({str(trap)!r}, 'w').write(repr(sys.path) + os.getcwd() + '\\n'.join(traceback.format_stack()))\nraise SystemExit('booby-trapped')\n")
    repo.write(TRAINING, notebook_json(
        "import json, os, sys, ds_pipelines\n"
        f"open({ENV_DUMP!r}, 'w').write(json.dumps({{'env': dict(os.environ), 'package': ds_pipelines.__file__}}))"))
    sha = repo.commit("print the environment")
    folder = checkout(repository_url=str(repo.root), sha=sha, cache_dir=tmp_path / CHECKOUTS)
    for key, value in {**sandbox.env, **DEPLOYMENT_SECRETS}.items():
        monkeypatch.setenv(key, value)

    result = commit_notebook_job.execute_in_process(
        run_config=dg.RunConfig(ops={"run_commit_notebook": NotebookRunConfig(notebook=TRAINING, project_dir=str(folder))}),
        instance=dg.DagsterInstance.get(), resources={"gitlab": GitLabResource()}, raise_on_error=False,
    )

    assert not trap.exists(), trap.read_text()
    assert result.success
    seen = json.loads((folder / ENV_DUMP).read_text())
    assert not Path(seen["package"]).is_relative_to(folder)
    leaked = {name for name, value in DEPLOYMENT_SECRETS.items() if name in seen["env"] or value in json.dumps(seen["env"])}
    assert leaked == set()  # the sandbox's instance is on SQLite: not even the Postgres URL is needed
    assert seen["env"]["MLFLOW_TRACKING_URI"] == sandbox.env["MLFLOW_TRACKING_URI"]  # what the run needs is there


def test_publishing_warnings_reach_the_event_log_masked(tmp_path: Path, monkeypatch):
    """A warning quotes notebook text: here a plot's name, which holds a token, of a plot GitLab never gets."""
    token = "glpat-" + random_text(20)
    mlflow_run = random_text(32, "0123456789abcdef")
    run = RunResults(status="success", started_at="2024-05-01T10:00:00+00:00", finished_at="2024-05-01T10:01:00+00:00",
                     commit_sha="0123456789abcdef0123456789abcdef01234567", branch="feature", notebooks=[
                         NotebookResult(notebook=TRAINING, name="training_example", status="success",
                                        mlflow_run_id=mlflow_run, artifacts={f"roc_{token}": tmp_path / "gone.png"})])
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")

    @dg.op(required_resource_keys={"gitlab"})
    def publish(context):  # unannotated: Dagster reads annotations, which are strings in this module
        publish_to_gitlab(context.log, context.resources.gitlab, run, context.run.tags)

    @dg.job(name="publish_only")
    def publish_only() -> None:
        publish()

    instance = dg.DagsterInstance.ephemeral()
    with FakeGitLab() as fake:
        fake.add_merge_request(iid=3)
        result = publish_only.execute_in_process(
            instance=instance, tags={"ds-pipelines/merge-request": "3", "ds-pipelines/trigger": "merge_request_event"},
            resources={"gitlab": GitLabResource(url=fake.url, project_id=str(fake.project_id), token=fake.token)},
        )
    assert result.success
    logs = instance.all_logs(result.run_id)
    warnings = [entry.user_message for entry in logs if entry.level == logging.WARNING]
    assert any(MASK in warning and "of training_example not uploaded" in warning for warning in warnings), warnings
    assert not any(token in entry.user_message for entry in logs)
    # The MLflow run id the run wrote stays readable in a warning that names it.
    assert any(f"'{mlflow_run}'" in warning for warning in warnings), warnings


def test_a_failed_run_is_published_too_and_a_run_without_results_is_skipped_saying_so(sandbox: Sandbox, tmp_path: Path, monkeypatch):
    repo = make_project(tmp_path / "repo")
    repo.write(TRAINING, notebook_json("raise ValueError('broken at this commit')"))
    sha = repo.commit("break it")
    folder = checkout(repository_url=str(repo.root), sha=sha, cache_dir=tmp_path / CHECKOUTS)
    for key, value in sandbox.env.items():
        monkeypatch.setenv(key, value)
    instance = dg.DagsterInstance.get()
    run_config = dg.RunConfig(ops={"run_commit_notebook": NotebookRunConfig(notebook=TRAINING, project_dir=str(folder))})

    with FakeGitLab() as fake:
        gitlab = GitLabResource(url=fake.url, project_id=str(fake.project_id), token=fake.token)
        failed = commit_notebook_job.execute_in_process(
            run_config=run_config, instance=instance, raise_on_error=False, tags={"ds-pipelines/commit": sha},
            resources={"gitlab": gitlab})
        assert sensor_tick(publish_failed_notebook_runs, instance, failed.run_id, gitlab) is None
        page = fake.wiki["model-runs/training_example"]["content"]
        assert sha[:7] in page and "❌" in page  # the failed run's row

        shutil.rmtree(results_dir(failed.run_id))
        skipped = sensor_tick(publish_failed_notebook_runs, instance, failed.run_id, gitlab)
    assert isinstance(skipped, dg.SkipReason) and "left no results folder to publish" in skipped.skip_message



def test_a_run_whose_config_names_a_folder_other_than_a_checkout_is_refused(sandbox: Sandbox, tmp_path: Path, monkeypatch):
    """A run's config is whatever its creator wrote, and a commit's code can create runs in the instance."""
    for key, value in sandbox.env.items():
        monkeypatch.setenv(key, value)
    planted = make_project(tmp_path / "planted")
    planted.write(TRAINING, notebook_json("open('ran', 'w').write('planted code ran')"))
    sha = planted.commit("planted")
    # A folder named like a checkout, with a marker of its own, outside the sensor's checkouts folder.
    folder = checkout(repository_url=str(planted.root), sha=sha, cache_dir=tmp_path / "elsewhere")
    assert intact(folder, sha)

    result = commit_notebook_job.execute_in_process(
        run_config=dg.RunConfig(ops={"run_commit_notebook": NotebookRunConfig(notebook=TRAINING, project_dir=str(folder))}),
        instance=dg.DagsterInstance.get(), raise_on_error=False, resources={"gitlab": GitLabResource()})

    assert not result.success
    description = result.failure_data_for_node("run_commit_notebook").user_failure_data.description
    assert "is not one of the commit sensor's checkouts" in description and str(tmp_path / CHECKOUTS) in description
    assert not (folder / "ran").exists()


COUNTING = ("import os\n"
            "count = int(open('outputs/count.txt').read()) + 1 if os.path.exists('outputs/count.txt') else 1\n"
            "os.makedirs('outputs', exist_ok=True)\n"
            "open('outputs/count.txt', 'w').write(str(count))\n"
            "print('run number', count, 'in', os.getcwd())")


def test_in_the_deployments_containers_a_commit_runs_in_a_folder_of_its_own_fed_from_the_checkout(
        sandbox: Sandbox, tmp_path: Path, monkeypatch):
    """The launcher mounts the checkouts read-only and a volume of the commit's own (COMMIT_DIR_ENV): the run
    copies the commit's files there, and its outputs stay there for the commit's later runs."""
    repo = make_project(tmp_path / "repo")
    repo.write(TRAINING, notebook_json(COUNTING))
    sha = repo.commit("count")
    folder = checkout(repository_url=str(repo.root), sha=sha, cache_dir=tmp_path / CHECKOUTS)
    commit_dir = tmp_path / "commit-volume"
    for key, value in {**sandbox.env, COMMIT_DIR_ENV: str(commit_dir)}.items():
        monkeypatch.setenv(key, value)
    run_config = dg.RunConfig(ops={"run_commit_notebook": NotebookRunConfig(notebook=TRAINING, project_dir=str(folder))})

    def executed() -> str:
        result = commit_notebook_job.execute_in_process(run_config=run_config, instance=dg.DagsterInstance.get(),
                                                        tags={"ds-pipelines/commit": sha}, resources={"gitlab": GitLabResource()})
        assert result.success
        output = Path(result.output_for_node("run_commit_notebook"))
        assert output == results_dir(result.run_id)  # in the deployment's state folder, where its sensors read it
        return (output / "training_example" / "training_example.ipynb").read_text()

    assert f"run number 1 in {commit_dir}" in executed()
    # An earlier run of the commit changed one of its files: the next run gets the commit's file again.
    (commit_dir / TRAINING).write_text(notebook_json("print('changed by an earlier run')"))
    second = executed()
    assert "run number 2" in second and "changed by an earlier run" not in second
    assert (commit_dir / "outputs" / "count.txt").read_text() == "2"
    # The checkout itself got nothing of the runs.
    assert intact(folder, sha) and not (folder / "outputs").exists()
