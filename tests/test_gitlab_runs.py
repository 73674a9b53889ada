"""Runs launched on GitLab (run_launcher execute_on: gitlab): one pipeline per run, followed until it ends.

The launcher of deploy/dagster.yaml in a test instance, runs created from the project's notebooks job as the
webserver creates them, and the real python-gitlab client against the GitLab API of tests/fake_gitlab.py. The
runner's part (gitlab-ci-local executing the pipeline's job) and the deployment's processes are in
tests/test_gitlab_execution.py.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster_docker.docker_run_launcher import LaunchRunContext
from fake_gitlab import LOSE_REPLY
from gitrepo import GitRepo, notebook_json

from ds_pipelines.defs.notebooks.definitions import NOTEBOOKS_JOB, build_definitions
from ds_pipelines.execution import gitlab_runs, run_worker
from ds_pipelines.execution.docker_launcher import WorkerStatus
from ds_pipelines.execution.run_launcher import NotebookRunLauncher
from ds_pipelines.project import Project

REPO = Path(__file__).resolve().parent.parent
PENDING_TIMEOUT_S = 120


def deployed_launcher() -> dict:
    """deploy/dagster.yaml's run launcher, turned to GitLab as its comment says."""
    launcher = yaml.safe_load((REPO / "deploy/dagster.yaml").read_text())["run_launcher"]
    launcher["config"].update(execute_on="gitlab", gitlab={"pending_timeout_s": PENDING_TIMEOUT_S})
    return launcher


def device_repo(root: Path) -> GitRepo:
    repo = GitRepo(root)
    root.mkdir(parents=True)
    repo.git("init", "-q", "-b", "main")
    for name in ("cpu_note", "gpu_note"):
        repo.write(f"notebooks/{name}.ipynb", notebook_json(f"print('{name}')"))
    repo.write("configs/notebooks.yaml", yaml.safe_dump({"notebooks": {"notebooks/gpu_note.ipynb": {"device": "gpu"}}}))
    repo.commit("initial")
    return repo


class Deployment:
    def __init__(self, instance: dg.DagsterInstance, job: dg.JobDefinition, gitlab):
        self.instance, self.job, self.gitlab = instance, job, gitlab
        self.launcher: NotebookRunLauncher = instance.run_launcher

    def launch(self, asset: str, **tags: str) -> dg.DagsterRun:
        """A run of ``asset`` created and handed to the launcher, as the run coordinator does."""
        run = self.instance.create_run_for_job(self.job, asset_selection={dg.AssetKey(asset)},
                                               status=dg.DagsterRunStatus.STARTING, tags=tags)
        self.launcher.launch_run(LaunchRunContext(dagster_run=run, workspace=None))
        return self.run(run.run_id)

    def run(self, run_id: str) -> dg.DagsterRun:
        return self.instance.get_run_by_id(run_id)

    def pipeline(self, run: dg.DagsterRun) -> dict:
        [pipeline] = self.gitlab.pipeline_of(gitlab_runs.RUN_ID_VARIABLE, run.run_id)
        return pipeline

    def events(self, run_id: str) -> str:
        return "\n".join(entry.message for entry in self.instance.all_logs(run_id))


@pytest.fixture
def deployment(tmp_path, monkeypatch, fake_gitlab_repo):
    gitlab, repo = fake_gitlab_repo
    monkeypatch.setenv("DS_PIPELINES_PROJECT_DIR", str(repo.root))
    job = build_definitions(Project(repo.root)).resolve_job_def(NOTEBOOKS_JOB)
    with dg.instance_for_test(overrides={"run_launcher": deployed_launcher()}) as instance:
        yield Deployment(instance, job, gitlab)


@pytest.fixture
def fake_gitlab_repo(tmp_path, monkeypatch):
    from fake_gitlab import FakeGitLab

    repo = device_repo(tmp_path / "repo")
    with FakeGitLab(repo=repo.root) as gitlab:
        for name, value in gitlab.environ().items():
            monkeypatch.setenv(name, value)
        # The runner tags GitLab gives the job with GPU_RUNNER=gpu and CPU_RUNNER=cpu (templates/notebooks.yml,
        # run by gitlab-ci-local in tests/test_gitlab_execution.py).
        gitlab.jobs_of_new_pipelines = lambda pipeline: [
            {"name": "dagster-run", "tag_list": [variables(pipeline)[gitlab_runs.DEVICE_VARIABLE]]}]
        yield gitlab, repo


def variables(pipeline: dict) -> dict[str, str]:
    return {variable["key"]: variable["value"] for variable in pipeline["variables"]}


def test_each_launch_creates_one_pipeline_naming_the_run_its_notebooks_and_device(deployment):
    gpu = deployment.launch("gpu_note")
    cpu = deployment.launch("cpu_note")
    head = deployment.gitlab._resolve("main")
    for run, device in ((gpu, "gpu"), (cpu, "cpu")):
        pipeline = deployment.pipeline(run)
        assert pipeline["ref"] == "main", "the project's default branch, protected"
        assert variables(pipeline) == {
            gitlab_runs.RUN_ID_VARIABLE: run.run_id, gitlab_runs.NOTEBOOKS_VARIABLE: f"{device}_note",
            gitlab_runs.DEVICE_VARIABLE: device, gitlab_runs.COMMIT_VARIABLE: head, "SECRET_DETECTION_DISABLED": "true",
        }
        assert run.tags[gitlab_runs.PIPELINE_TAG] == str(pipeline["id"])
        assert run.tags[gitlab_runs.PIPELINE_URL_TAG] == pipeline["web_url"]
        assert f"GitLab pipeline {pipeline['id']} created on main" in deployment.events(run.run_id)
    # Nothing secret in what GitLab or the run keeps.
    kept = repr(deployment.gitlab.pipelines) + repr([deployment.run(r.run_id).tags for r in (gpu, cpu)])
    assert deployment.gitlab.token not in kept


def test_a_create_whose_reply_was_lost_still_makes_one_pipeline(deployment):
    deployment.gitlab.fail_next("POST", r"/pipeline$", LOSE_REPLY)
    deployment.gitlab.fail_next("POST", r"/pipeline$", "502")
    run = deployment.launch("cpu_note")
    assert len(deployment.gitlab.pipelines) == 1
    assert run.tags[gitlab_runs.PIPELINE_TAG] == str(deployment.pipeline(run)["id"])
    creates = [path for method, path in deployment.gitlab.requests if method == "POST" and path.endswith("/pipeline")]
    assert len(creates) == 1, "the lost reply was looked for before any second create"


def test_a_create_that_failed_before_reaching_gitlab_is_sent_again_once(deployment):
    deployment.gitlab.fail_next("POST", r"/pipeline$", "503")
    run = deployment.launch("cpu_note")
    assert len(deployment.gitlab.pipelines) == 1 and deployment.pipeline(run)


def test_a_wrong_token_fails_the_launch_clearly_and_never_shows_the_token(deployment, monkeypatch):
    wrong = "glpat-" + "w" * 20
    monkeypatch.setenv("GITLAB_TOKEN", wrong)
    with pytest.raises(gitlab_runs.LaunchError) as raised:
        deployment.launch("cpu_note")
    message = str(raised.value)
    assert "was not launched on GitLab" in message and "401" in message and "GITLAB_TOKEN" in message
    assert wrong not in message and deployment.gitlab.pipelines == []


def test_gitlab_unreachable_fails_the_launch_naming_the_url(deployment, monkeypatch):
    monkeypatch.setenv("GITLAB_URL", "http://user:hunter2-secret@127.0.0.1:9")
    with pytest.raises(gitlab_runs.LaunchError) as raised:
        deployment.launch("cpu_note")
    assert "127.0.0.1:9" in str(raised.value) and "hunter2-secret" not in str(raised.value)


def test_an_unprotected_branch_gets_no_pipeline(deployment):
    deployment.gitlab._git("branch", "feature")
    with pytest.raises(gitlab_runs.LaunchError, match="branch 'feature' .* is not protected"):
        deployment.launch("cpu_note", **{"ds-pipelines/branch": "feature"})
    assert deployment.gitlab.pipelines == []


def test_a_job_no_runner_picks_up_fails_the_run_naming_its_tag_and_cancels_the_pipeline(deployment):
    run = deployment.launch("gpu_note")
    job = deployment.pipeline(run)["jobs"][0]
    assert deployment.launcher.follow_gitlab_runs() == []  # still within the limit
    assert deployment.run(run.run_id).status == dg.DagsterRunStatus.STARTING
    done = gitlab_runs.follow(deployment.instance, deployment.launcher.gitlab_client(),
                              pending_timeout_s=PENDING_TIMEOUT_S, now=lambda: time.time() + PENDING_TIMEOUT_S + 1)
    assert len(done) == 1
    failed = deployment.run(run.run_id)
    assert failed.status == dg.DagsterRunStatus.FAILURE
    assert f"no runner with tag `gpu` picked up job {job['id']} in 2 min" in deployment.events(run.run_id)
    assert deployment.pipeline(run)["status"] == "canceled"


def test_a_pipeline_canceled_in_gitlab_cancels_the_run_and_reports_the_log(deployment):
    run = deployment.launch("cpu_note")
    job = deployment.pipeline(run)["jobs"][0]
    deployment.gitlab.set_job(job["id"], status="running", runner={"description": "cpu-runner-1"})
    deployment.launcher.follow_gitlab_runs()
    assert f"GitLab job {job['id']} (dagster-run) is running on runner cpu-runner-1" in deployment.events(run.run_id)
    assert deployment.run(run.run_id).tags[gitlab_runs.JOB_URL_TAG] == job["web_url"]
    deployment.gitlab.set_job(job["id"], status="canceled", trace="Dagster run ... on runner tag cpu\nTerminated\n")
    deployment.launcher.follow_gitlab_runs()
    assert deployment.run(run.run_id).status == dg.DagsterRunStatus.CANCELED
    assert "Terminated" in deployment.events(run.run_id)
    assert deployment.launcher.follow_gitlab_runs() == [], "a run whose log was reported is no longer followed"


def test_terminate_cancels_the_pipeline(deployment):
    run = deployment.launch("cpu_note")
    pipeline = deployment.pipeline(run)
    assert deployment.launcher.terminate(run.run_id) is True
    assert ("POST", f"/api/v4/projects/7/pipelines/{pipeline['id']}/cancel") in deployment.gitlab.requests
    assert deployment.run(run.run_id).status == dg.DagsterRunStatus.CANCELING
    deployment.launcher.follow_gitlab_runs()
    assert deployment.run(run.run_id).status == dg.DagsterRunStatus.CANCELED


def test_a_job_that_ended_before_its_run_fails_the_run_with_the_end_of_its_log_masked(deployment, monkeypatch):
    monkeypatch.setenv("MLFLOW_TRACKING_PASSWORD", "a-very-secret-mlflow-password")
    run = deployment.launch("cpu_note")
    job = deployment.pipeline(run)["jobs"][0]
    deployment.gitlab.set_job(job["id"], status="failed",
                              trace="pulling image\nERROR: no such image (password a-very-secret-mlflow-password)\n")
    assert deployment.launcher.check_run_worker_health(deployment.run(run.run_id)).status == WorkerStatus.FAILED
    deployment.launcher.follow_gitlab_runs()
    assert deployment.run(run.run_id).status == dg.DagsterRunStatus.FAILURE
    events = deployment.events(run.run_id)
    assert "ERROR: no such image" in events and "a-very-secret-mlflow-password" not in events


def test_run_monitoring_sees_the_jobs_state(deployment):
    run = deployment.launch("cpu_note")
    job = deployment.pipeline(run)["jobs"][0]
    health = deployment.launcher.check_run_worker_health
    assert health(run).status == WorkerStatus.RUNNING  # pending
    deployment.gitlab.set_job(job["id"], status="running")
    assert health(run).status == WorkerStatus.RUNNING
    deployment.gitlab.set_job(job["id"], status="success")
    assert health(run).status == WorkerStatus.SUCCESS


def test_docker_stays_the_default():
    launcher = yaml.safe_load((REPO / "deploy/dagster.yaml").read_text())["run_launcher"]
    assert launcher["config"]["execute_on"] == "docker"
    with dg.instance_for_test(overrides={"run_launcher": launcher}) as instance:
        assert isinstance(instance.run_launcher, NotebookRunLauncher) and not instance.run_launcher.on_gitlab


def test_the_dagster_internals_the_run_worker_uses_are_where_it_imports_them():
    """Fails loudly when a Dagster upgrade moves them (they are not public API)."""
    import inspect

    assert list(inspect.signature(run_worker.execute_run).parameters)[:3] == ["job", "dagster_run", "instance"]
    repository = run_worker.ReconstructableRepository.for_module(*run_worker.CODE_LOCATION, working_directory=str(REPO))
    assert callable(repository.get_reconstructable_job)


def execute_run(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ds_pipelines", "execute-run", *args], capture_output=True, text=True,
                          env=env, timeout=300, check=False)


def test_execute_run_refuses_a_run_that_is_not_waiting_to_start(deployment, tmp_path):
    run = deployment.launch("cpu_note")
    deployment.instance.report_run_canceled(run, "canceled before its job started")
    env = {key: value for key, value in os.environ.items() if key != "DAGSTER_POSTGRES_URL"}
    env["DAGSTER_HOME"] = deployment.instance.root_directory
    project = ["--project-dir", str(deployment.gitlab.repo)]
    refused = execute_run(run.run_id, *project, "--output-dir", str(tmp_path / "out"), env=env)
    assert refused.returncode == 2, refused.stderr
    assert f"error: run {run.run_id} is CANCELED, not waiting to start" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "out").exists()
    unknown = execute_run("no-such-run", *project, env=env)
    assert unknown.returncode == 2 and "run no-such-run is not in the Dagster instance" in unknown.stderr


def test_a_run_canceled_in_dagster_while_its_job_waits_has_its_pipeline_canceled_once(deployment):
    """The UI's force termination of a starting run marks it canceled without asking the launcher."""
    run = deployment.launch("cpu_note")
    deployment.instance.report_run_canceled(run, "force-terminated in the UI")
    assert len(deployment.launcher.follow_gitlab_runs()) == 1
    assert deployment.pipeline(run)["status"] == "canceled"
    cancels = [path for method, path in deployment.gitlab.requests if method == "POST" and path.endswith("/cancel")]
    deployment.launcher.follow_gitlab_runs()  # the job is canceled now: its log is reported, no second cancel
    assert [path for method, path in deployment.gitlab.requests if method == "POST" and path.endswith("/cancel")] == cancels


def test_run_monitoring_that_would_fail_waiting_jobs_first_is_refused_at_launch(fake_gitlab_repo, monkeypatch):
    gitlab, repo = fake_gitlab_repo
    monkeypatch.setenv("DS_PIPELINES_PROJECT_DIR", str(repo.root))
    job = build_definitions(Project(repo.root)).resolve_job_def(NOTEBOOKS_JOB)
    monitoring = {"enabled": True, "start_timeout_seconds": 60}  # below the launcher's PENDING_TIMEOUT_S
    with dg.instance_for_test(overrides={"run_launcher": deployed_launcher(), "run_monitoring": monitoring}) as instance:
        with pytest.raises(gitlab_runs.LaunchError, match=r"start_timeout_seconds \(60\) is below .*gitlab.pending_timeout_s \(120\)"):
            Deployment(instance, job, gitlab).launch("cpu_note")
    assert gitlab.pipelines == []
