"""Runs started in Dagster execute on GitLab's runners (deploy/dagster.yaml's run launcher, execute_on: gitlab).

The deployment's processes on the test's PostgreSQL server: ``dagster-webserver`` (whose GraphQL API launches
runs, the UI's path) and ``dagster-daemon`` (the ``gitlab_runs`` sensor), with deploy/dagster.yaml's run launcher
turned to GitLab, against the loopback GitLab API of tests/fake_gitlab.py. The fake creates a pipeline's job as
GitLab would; the test plays the runner: gitlab-ci-local executes that job of the real ``.gitlab-ci.yml`` with
the pipeline's variables (and the project's CI/CD variables GPU_RUNNER, CPU_RUNNER and DAGSTER_POSTGRES_URL),
and the fake's job follows what it did (running, then its result and log).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import dagster as dg
import pytest
import yaml
from ci_helpers import OFFLINE, CiProject, job_environment, missing_tools
from dagster_webserver import answers, graphql, stop_process_group
from fake_gitlab import LOSE_REPLY, FakeGitLab
from gitrepo import notebook_json
from mlflow_serve import free_port
from postgres import SUPERUSER_PASSWORD
from required import require

from ds_pipelines.execution import gitlab_runs
from ds_pipelines.execution.instance import INSTANCE_SETTINGS, POSTGRES_STORAGE, POSTGRES_URL_ENV
from ds_pipelines.results.folder import EXECUTED_NOTEBOOK_URL_TAG

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]  # two servers, three notebook jobs, sensor ticks

REPO = Path(__file__).resolve().parent.parent
PENDING_TIMEOUT_S = 45
WAIT_S = 300
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
RUNNERS = {"GPU_RUNNER": "gpu", "CPU_RUNNER": "cpu"}
"""The project's CI/CD variables: the runner tags of device gpu and cpu notebooks."""
CPU_CELL = ("import os\nfrom ds_pipelines import notebook as dsp\nprint('cpu notebook ran')\n"
            "print('credentials in the kernel:', sorted(n for n in os.environ if n.startswith(('GITLAB_', 'SLACK_', 'CI_'))))\n"
            "dsp.report(metrics={'answer': 42.0})")
GPU_CELL = "print('gpu notebook ran')"
SLEEP_CELL = "import time\nprint('sleeping', flush=True)\ntime.sleep(120)"
BROKEN_CELL = "x = 1\nraise ValueError('broken on purpose')"
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""
REEXECUTE = """
mutation Reexecute($params: ReexecutionParams!) {
  launchPipelineReexecution(reexecutionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}
"""
TERMINATE = """mutation Terminate($runId: String!, $policy: TerminateRunPolicy) {
  terminateRun(runId: $runId, terminatePolicy: $policy) { __typename
  ... on TerminateRunSuccess { run { runId } } ... on TerminateRunFailure { message } ... on PythonError { message } } }"""
SCHEDULE = {"repositoryLocationName": "ds_pipelines", "repositoryName": "__repository__", "scheduleName": "scoring"}
START_SCHEDULE = """mutation Start($selector: ScheduleSelector!) { startSchedule(scheduleSelector: $selector) {
  __typename ... on PythonError { message } } }"""
RESET_SCHEDULE = """mutation Reset($selector: ScheduleSelector!) { resetSchedule(scheduleSelector: $selector) {
  __typename ... on PythonError { message } } }"""
BACKFILL = """mutation Backfill($params: LaunchBackfillParams!) { launchPartitionBackfill(backfillParams: $params) {
  __typename ... on LaunchBackfillSuccess { backfillId } ... on PythonError { message } } }"""
RUN_QUERY = """query Run($runId: ID!) { runOrError(runId: $runId) { ... on Run { status tags { key value } } } }"""
MATERIALIZATIONS_QUERY = """{ assetOrError(assetKey: {path: ["cpu_note"]}) { ... on Asset {
  assetMaterializations(limit: 5) { runId metadataEntries { label __typename
    ... on UrlMetadataEntry { url } ... on FloatMetadataEntry { floatValue } } } } } }"""


def small_project(tmp_path: Path) -> CiProject:
    """The real CI configuration with three one-cell notebooks: a CPU one with a quality check, a GPU one and a
    broken one."""
    project = CiProject.create(tmp_path)
    for notebook in (project.root / "notebooks").glob("*.ipynb"):
        notebook.unlink()
    project.write("notebooks/cpu_note.ipynb", notebook_json(CPU_CELL))
    project.write("notebooks/gpu_note.ipynb", notebook_json(GPU_CELL))
    project.write("notebooks/broken_note.ipynb", notebook_json(BROKEN_CELL))
    project.write("notebooks/sleep_note.ipynb", notebook_json(SLEEP_CELL))
    project.write("configs/notebooks.yaml", yaml.safe_dump({"notebooks": {
        "notebooks/cpu_note.ipynb": {"checks": [{"metric": "answer", "min": 40}]},
        "notebooks/gpu_note.ipynb": {"device": "gpu"},
    }, "triggers": {
        # The deployment runs pushed commits (its commit sensor, polling often) and scores on a schedule the
        # test starts and stops (every minute while on).
        "orchestrator": "dagster", "poll_interval_s": 5,
        "schedule": {"notebook": "notebooks/cpu_note.ipynb", "cron": "* * * * *", "enabled": False},
    }}))
    project.push("three small notebooks")
    return project


def instance_settings() -> str:
    """The test's instance with deploy/dagster.yaml's queue and run launcher, the launcher turned to GitLab."""
    deployed = yaml.safe_load((REPO / "deploy/dagster.yaml").read_text())
    launcher = deployed["run_launcher"]
    launcher["config"].update(execute_on="gitlab", gitlab={"pending_timeout_s": PENDING_TIMEOUT_S})
    return INSTANCE_SETTINGS + POSTGRES_STORAGE + yaml.safe_dump(
        {"run_launcher": launcher, "run_coordinator": deployed["run_coordinator"]})


@contextlib.contextmanager
def process(command: list[str], env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    started = subprocess.Popen(command, cwd=REPO, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
                               start_new_session=True)
    try:
        yield started
    finally:
        stop_process_group(started)


class Deployment:
    def __init__(self, tmp_path: Path, url: str, home: Path, port: int, gitlab: FakeGitLab, project: CiProject):
        self.tmp_path, self.url, self.home, self.port, self.gitlab, self.project = tmp_path, url, home, port, gitlab, project

    def logs(self) -> str:
        return "\n".join(f"--- {log.name}:\n{log.read_text()[-3000:]}" for log in self.tmp_path.glob("*.log"))

    def launch(self, asset: str) -> str:
        params = {"selector": {"repositoryLocationName": "ds_pipelines", "repositoryName": "__repository__",
                               "pipelineName": "notebooks", "assetSelection": [{"path": [asset]}]}, "runConfigData": {}}
        launched = graphql(self.port, LAUNCH, {"params": params})["launchPipelineExecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return launched["run"]["runId"]

    def instance(self) -> dg.DagsterInstance:
        os.environ[POSTGRES_URL_ENV] = self.url
        return dg.DagsterInstance.from_config(str(self.home))

    def run(self, run_id: str) -> dg.DagsterRun:
        with self.instance() as instance:
            return instance.get_run_by_id(run_id)

    def events(self, run_id: str) -> str:
        with self.instance() as instance:
            return "\n".join(entry.message + repr(entry.dagster_event and entry.dagster_event.event_specific_data)
                             for entry in instance.all_logs(run_id))

    def wait(self, what: str, condition):
        deadline = time.monotonic() + WAIT_S
        while not (found := condition()):
            assert time.monotonic() < deadline, f"no {what} after {WAIT_S} s:\n{self.logs()}"
            time.sleep(1)
        return found

    def finished(self, run_id: str) -> dg.DagsterRun:
        return self.wait(f"end of run {run_id}", lambda: (run := self.run(run_id)) and run.status in FINISHED and run)

    def pipeline(self, run_id: str) -> dict:
        """The run's one pipeline, once the daemon's queue has launched it."""
        pipelines = self.wait(f"pipeline of run {run_id}", lambda: self.gitlab.pipeline_of(gitlab_runs.RUN_ID_VARIABLE, run_id))
        assert len(pipelines) == 1, f"{len(pipelines)} pipelines of run {run_id}:\n{self.events(run_id)}"
        return pipelines[0]

    def execute_job(self, run_id: str) -> subprocess.CompletedProcess:
        """Be the runner that takes the run's job: gitlab-ci-local runs it with the pipeline's variables."""
        job, variables = self.take_job(run_id)
        result = self.project.gitlab_ci_local("dagster-run", variables=variables)
        log = result.stdout + result.stderr
        self.gitlab.set_job(job["id"], status="success" if result.returncode == 0 else "failed", trace=log)
        return result

    def take_job(self, run_id: str) -> tuple[dict, dict[str, str]]:
        """The run's job, now running on the test's runner, and the variables it runs with."""
        pipeline = self.pipeline(run_id)
        job = pipeline["jobs"][0]
        self.gitlab.set_job(job["id"], status="running", runner={"description": "test runner"})
        # A protected ref's job holds the project's GitLab token, as the real one does.
        return job, {**OFFLINE, **RUNNERS, "CI_PIPELINE_SOURCE": "api", POSTGRES_URL_ENV: self.url,
                     "CI_SERVER_URL": self.gitlab.url, "CI_PROJECT_ID": str(self.gitlab.project_id),
                     "GITLAB_TOKEN": self.gitlab.token, **pipeline_variables(pipeline)}

    def terminate(self, run_id: str, policy: str = "SAFE_TERMINATE") -> dict:
        return graphql(self.port, TERMINATE, {"runId": run_id, "policy": policy})["terminateRun"]


def pipeline_variables(pipeline: dict) -> dict[str, str]:
    return {variable["key"]: variable["value"] for variable in pipeline["variables"]}


@pytest.fixture(scope="module")
def deployment(postgres, tmp_path_factory):
    require("; ".join(missing_tools()))
    tmp_path = tmp_path_factory.mktemp("gitlab-execution")
    project = small_project(tmp_path)
    url = postgres.url(postgres.new_database())
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(instance_settings())
    port = free_port()
    with FakeGitLab(repo=project.root) as gitlab:
        # The runner tag GitLab gives the job with RUNNERS as CI/CD variables (execute_job checks it in the job).
        gitlab.jobs_of_new_pipelines = lambda pipeline: [{"name": "dagster-run", "tag_list": [
            RUNNERS[f"{pipeline_variables(pipeline)[gitlab_runs.DEVICE_VARIABLE].upper()}_RUNNER"]]}]
        env = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "DS_PIPELINES_", "CI_", "GITLAB_"))}
        env.update(**gitlab.environ(), DAGSTER_HOME=str(home), DS_PIPELINES_PROJECT_DIR=str(project.root),
                   MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
        env[POSTGRES_URL_ENV] = url
        bin_dir = Path(sys.executable).parent
        with process([str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, tmp_path / "daemon.log"), \
             process([str(bin_dir / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1", "-p", str(port)],
                     env, tmp_path / "webserver.log"):
            deployment = Deployment(tmp_path, url, home, port, gitlab, project)
            deployment.wait("webserver", lambda: answers(f"http://127.0.0.1:{port}/server_info"))
            yield deployment
    os.environ.pop(POSTGRES_URL_ENV, None)


def test_runs_launched_in_dagster_execute_on_the_runner_of_their_device(deployment):
    gitlab = deployment.gitlab
    # Launched before the others, so that the gitlab_runs sensor's verdicts come while the jobs below execute.
    pending = deployment.launch("gpu_note")  # no runner ever takes its job
    deployment.pipeline(pending)
    # The gpu pool (one slot) holds across GitLab-launched runs: a second GPU run waits in Dagster's queue, with
    # no pipeline, while the first one's job waits for a runner.
    gpu = deployment.launch("gpu_note")
    time.sleep(5)
    assert deployment.run(gpu).status == dg.DagsterRunStatus.QUEUED
    assert not gitlab.pipeline_of(gitlab_runs.RUN_ID_VARIABLE, gpu)
    canceled_in_gitlab = deployment.launch("cpu_note")
    gitlab.set_job(deployment.pipeline(canceled_in_gitlab)["jobs"][0]["id"], status="canceled")
    # Force termination of a run whose job still waits: Dagster marks it canceled without the launcher; the
    # gitlab_runs sensor then cancels its pipeline.
    force_canceled = deployment.launch("cpu_note")
    deployment.pipeline(force_canceled)  # launched: a run still queued is canceled by the queue itself
    assert deployment.terminate(force_canceled, "MARK_AS_CANCELED_IMMEDIATELY")["__typename"] == "TerminateRunSuccess"
    terminate_started_run(deployment)

    gitlab.fail_next("POST", r"/pipeline$", LOSE_REPLY)  # created, but the launcher never hears of it
    cpu = deployment.launch("cpu_note")
    broken = deployment.launch("broken_note")
    for run_id, notebook, device in ((cpu, "cpu_note", "cpu"), (broken, "broken_note", "cpu"), (gpu, "gpu_note", "gpu")):
        pipeline = deployment.pipeline(run_id)  # exactly one each, the lost reply's too
        variables = pipeline_variables(pipeline)
        assert (variables[gitlab_runs.NOTEBOOKS_VARIABLE], variables[gitlab_runs.DEVICE_VARIABLE]) == (notebook, device)
        assert pipeline["ref"] == "main" and variables[gitlab_runs.COMMIT_VARIABLE] == deployment.project.head()
        assert SUPERUSER_PASSWORD not in json.dumps(pipeline) and gitlab.token not in json.dumps(pipeline)
        deployment.take_job(run_id)  # a runner takes each job now: none waits past the pending limit
    # The gated GPU run got its pipeline once the first one failed, freeing the slot (asserted below).

    executed = deployment.execute_job(cpu)
    log = executed.stdout + executed.stderr
    assert executed.returncode == 0, log[-3000:] + deployment.events(cpu)
    assert f"Dagster run {cpu} (cpu_note, device cpu) on runner tag cpu" in log
    assert SUPERUSER_PASSWORD not in log, "the database password stays out of the job log"
    run = deployment.finished(cpu)
    assert run.status == dg.DagsterRunStatus.SUCCESS, deployment.events(cpu)
    tags = {t["key"]: t["value"] for t in graphql(deployment.port, RUN_QUERY, {"runId": cpu})["runOrError"]["tags"]}
    assert tags[gitlab_runs.PIPELINE_URL_TAG] == deployment.pipeline(cpu)["web_url"]
    job_url = tags[gitlab_runs.JOB_URL_TAG]
    assert "/jobs/" in job_url
    materializations = graphql(deployment.port, MATERIALIZATIONS_QUERY)["assetOrError"]["assetMaterializations"]
    [materialization] = [m for m in materializations if m["runId"] == cpu]
    entries = {entry["label"]: entry for entry in materialization["metadataEntries"]}
    assert entries["answer"]["floatValue"] == 42.0
    assert entries["executed_notebook_url"]["url"] == f"{job_url}/artifacts/file/results/dagster-run/cpu_note.ipynb"
    kept = deployment.project.artifacts("dagster-run") / "results/dagster-run/cpu_note.ipynb"
    assert "cpu notebook ran" in kept.read_text()
    # The job held GITLAB_TOKEN and GitLab's CI_* variables; the notebook's kernel got none of them.
    assert "credentials in the kernel: []" in kept.read_text()
    with deployment.instance() as instance:
        checks = [entry.dagster_event.event_specific_data for entry in instance.all_logs(cpu)
                  if entry.dagster_event and entry.dagster_event.event_type_value == "ASSET_CHECK_EVALUATION"]
    assert [(check.check_name, check.passed) for check in checks] == [("answer_min", True)], checks

    executed = deployment.execute_job(broken)
    assert executed.returncode != 0
    assert deployment.finished(broken).status == dg.DagsterRunStatus.FAILURE
    assert "broken on purpose" in deployment.events(broken) and "cell" in deployment.events(broken)
    # The UI's "Re-execute from failure" goes to GitLab's runners as well, with the parent's failed notebook.
    reexecuted = graphql(deployment.port, REEXECUTE, {"params": {"parentRunId": broken, "strategy": "FROM_FAILURE"}})
    assert reexecuted["launchPipelineReexecution"]["__typename"] == "LaunchRunSuccess", reexecuted
    retry = reexecuted["launchPipelineReexecution"]["run"]["runId"]
    assert deployment.run(retry).tags["dagster/parent_run_id"] == broken
    variables = pipeline_variables(deployment.pipeline(retry))
    assert (variables[gitlab_runs.RUN_ID_VARIABLE], variables[gitlab_runs.NOTEBOOKS_VARIABLE]) == (retry, "broken_note")
    deployment.take_job(retry)
    assert deployment.execute_job(retry).returncode != 0
    assert "broken on purpose" in deployment.events(retry)

    executed = deployment.execute_job(gpu)
    assert "on runner tag gpu" in executed.stdout + executed.stderr
    assert deployment.finished(gpu).status == dg.DagsterRunStatus.SUCCESS, deployment.events(gpu)

    # The gitlab_runs sensor's verdicts (it ticks every 30 s under the daemon).
    assert deployment.finished(canceled_in_gitlab).status == dg.DagsterRunStatus.CANCELED
    deployment.wait("the force-canceled run's pipeline canceled",
                    lambda: deployment.pipeline(force_canceled)["status"] == "canceled")
    assert deployment.finished(pending).status == dg.DagsterRunStatus.FAILURE
    pending_job = deployment.pipeline(pending)["jobs"][0]
    assert f"no runner with tag `gpu` picked up job {pending_job['id']}" in deployment.events(pending)
    assert deployment.pipeline(pending)["status"] == "canceled"


def terminate_started_run(deployment: Deployment) -> None:
    """Terminate in the UI while the run executes: its pipeline is canceled, the runner stops the job (here:
    the test stops gitlab-ci-local), and the run ends canceled."""
    run_id = deployment.launch("sleep_note")
    job, variables = deployment.take_job(run_id)
    command = deployment.project.gitlab_ci_local_command("dagster-run", variables=variables)
    runner = subprocess.Popen(command, cwd=deployment.project.root, env=job_environment(), stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, start_new_session=True)
    try:
        deployment.wait("the sleeping run started", lambda: deployment.run(run_id).status == dg.DagsterRunStatus.STARTED)
        assert deployment.terminate(run_id)["__typename"] == "TerminateRunSuccess"
        pipeline = deployment.pipeline(run_id)
        assert ("POST", f"/api/v4/projects/7/pipelines/{pipeline['id']}/cancel") in deployment.gitlab.requests
        assert pipeline["status"] == "canceled" and deployment.run(run_id).status == dg.DagsterRunStatus.CANCELING
    finally:
        os.killpg(runner.pid, signal.SIGTERM)  # what GitLab's runner does to a canceled job's processes
        output = runner.communicate(timeout=120)[0]
    deployment.gitlab.set_job(job["id"], trace=output)
    assert deployment.finished(run_id).status == dg.DagsterRunStatus.CANCELED, deployment.events(run_id)


def test_a_wrong_token_fails_the_run_at_launch_with_a_clear_message(deployment):
    gitlab = deployment.gitlab
    user = gitlab.users.pop(gitlab.token)  # the deployment's token revoked
    try:
        run_id = deployment.launch("cpu_note")
        run = deployment.finished(run_id)
    finally:
        gitlab.users[gitlab.token] = user
    events = deployment.events(run_id)
    assert run.status == dg.DagsterRunStatus.FAILURE
    assert "was not launched on GitLab" in events and "401" in events and "GITLAB_TOKEN" in events
    assert gitlab.token not in events and not gitlab.pipeline_of(gitlab_runs.RUN_ID_VARIABLE, run_id)



def test_the_commit_sensor_the_schedule_and_a_backfill_launch_runs_that_execute_on_gitlab(deployment):
    """Runs the daemon starts go to GitLab's runners too. A commit sensor's and the schedule's runs execute
    their notebook with ``ds-pipelines run`` in the job's checkout of their commit (the folder in their config
    is the deployment's), on the runner of the notebook's device, publish to the wiki from the job and keep
    their results folder, masked, with the job's artifacts."""
    gitlab, project = deployment.gitlab, deployment.project
    project.write("notebooks/gpu_note.ipynb", notebook_json(GPU_CELL + "\nprint('changed on main')"))
    sha = project.push("the gpu notebook changed")["CI_COMMIT_SHA"]
    commit_run = deployment.wait("the commit sensor's run", lambda: runs_of(deployment, "commit_notebook", {"ds-pipelines/commit": sha}))
    variables = pipeline_variables(pipeline := deployment.pipeline(commit_run.run_id))
    assert pipeline["ref"] == "main" and variables[gitlab_runs.COMMIT_VARIABLE] == sha
    assert variables[gitlab_runs.DEVICE_VARIABLE] == "gpu", "the notebook's device, not the op's"
    executed = deployment.execute_job(commit_run.run_id)
    log = executed.stdout + executed.stderr
    assert executed.returncode == 0, log[-3000:] + deployment.events(commit_run.run_id)
    assert "on runner tag gpu" in log and f"Executing commit {sha}" in log
    assert deployment.finished(commit_run.run_id).status == dg.DagsterRunStatus.SUCCESS, deployment.events(commit_run.run_id)
    assert not [key for key in deployment.run(commit_run.run_id).tags if key.startswith(EXECUTED_NOTEBOOK_URL_TAG)], \
        "its one op is no notebook with an executed copy of its own"
    materialized = latest_materialization_run(deployment, "gpu_note")
    assert materialized.tags["ds-pipelines/commit"] == sha and materialized.run_id != commit_run.run_id
    kept = project.artifacts("dagster-run") / "results/dagster-run/gpu_note"
    assert json.loads((kept / "results.json").read_text())["notebooks"][0]["status"] == "success"
    assert "changed on main" in next(kept.rglob("*.ipynb")).read_text()
    assert sha[:7] in gitlab.wiki["model-runs/gpu_note"]["content"], "published from the job"
    assert gitlab.token not in json.dumps(pipeline)
    assert not [file for file in kept.rglob("*") if file.is_file() and gitlab.token.encode() in file.read_bytes()]

    # The schedule, started in the UI, ticks within the minute; reset to its default (stopped) at once.
    assert graphql(deployment.port, START_SCHEDULE, {"selector": SCHEDULE})["startSchedule"]["__typename"] == "ScheduleStateResult"
    try:
        scheduled = deployment.wait("the schedule's run", lambda: runs_of(deployment, "scheduled_notebook", {}))
    finally:
        graphql(deployment.port, RESET_SCHEDULE, {"selector": SCHEDULE})
    assert scheduled.tags["dagster/schedule_name"] == "scoring"
    assert pipeline_variables(deployment.pipeline(scheduled.run_id))[gitlab_runs.DEVICE_VARIABLE] == "cpu"
    executed = deployment.execute_job(scheduled.run_id)
    assert executed.returncode == 0, (executed.stdout + executed.stderr)[-3000:] + deployment.events(scheduled.run_id)
    assert deployment.finished(scheduled.run_id).status == dg.DagsterRunStatus.SUCCESS, deployment.events(scheduled.run_id)
    assert latest_materialization_run(deployment, "cpu_note").tags["ds-pipelines/trigger"] == "schedule"
    assert (project.artifacts("dagster-run") / "results/dagster-run/cpu_note/results.json").is_file()

    # A backfill of the asset, which the daemon's backfill loop submits as a run of the notebooks job.
    backfill = graphql(deployment.port, BACKFILL, {"params": {"assetSelection": [{"path": ["cpu_note"]}], "allPartitions": True}})
    assert backfill["launchPartitionBackfill"]["__typename"] == "LaunchBackfillSuccess", backfill
    backfill_id = backfill["launchPartitionBackfill"]["backfillId"]
    filled = deployment.wait("the backfill's run", lambda: runs_of(deployment, None, {"dagster/backfill": backfill_id}))
    assert pipeline_variables(deployment.pipeline(filled.run_id))[gitlab_runs.NOTEBOOKS_VARIABLE] == "cpu_note"
    assert deployment.execute_job(filled.run_id).returncode == 0
    assert deployment.finished(filled.run_id).status == dg.DagsterRunStatus.SUCCESS, deployment.events(filled.run_id)


def runs_of(deployment: Deployment, job_name: str | None, tags: dict[str, str]) -> dg.DagsterRun | None:
    """The first run of ``job_name`` (any job: None) with ``tags``, or None."""
    with deployment.instance() as instance:
        runs = instance.get_runs(filters=dg.RunsFilter(job_name=job_name, tags=tags))
    return runs[-1] if runs else None


def latest_materialization_run(deployment: Deployment, asset: str) -> dg.DagsterRun:
    with deployment.instance() as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey(asset))
        return instance.get_run_by_id(event.run_id)
