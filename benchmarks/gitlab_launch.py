"""What running a Dagster run on GitLab costs (run launcher execute_on: gitlab), measured side by side in one run.

The deployment of tests/test_gitlab_execution.py: ``dagster-webserver`` and ``dagster-daemon`` on a fresh
PostgreSQL cluster (tests/postgres.py), deploy/dagster.yaml's run launcher turned to GitLab, the loopback
GitLab API of tests/fake_gitlab.py, a project of one one-cell CPU notebook, and the benchmark as the runner
(gitlab-ci-local executing the pipeline's ``dagster-run`` job). Each round measures:

1. Launch overhead: from sending the GraphQL ``launchPipelineExecution`` mutation to the fake GitLab
   receiving the pipeline's create POST; split into the queue's part (until the run's RUN_STARTING event,
   when the daemon's queued run coordinator hands it to the launcher) and the launcher's own (RUN_STARTING
   to the POST). Goal: at most 2 s. Two launches a round (those of 2. and 3.).
2. Reporting delay: from gitlab-ci-local returning (the end of the job) to the run's end time in the
   instance, signed: negative when the job's run worker wrote the final state before the job exited.
3. Job overhead: the job's command ``ds-pipelines execute-run RUN_ID`` (a launched run whose job the
   benchmark took) against ``ds-pipelines run notebooks/cpu_note.ipynb``, both subprocesses in the project
   with the job's environment (DAGSTER_POSTGRES_URL, no DAGSTER_HOME), alternating which goes first.
   Goal: ratio near 1.

The machine is shared and noisy: medians over the rounds, and ratios within this one run.

    uv run python benchmarks/gitlab_launch.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import dagster as dg
import yaml

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "tests"))

from ci_helpers import OFFLINE, CiProject, job_environment, missing_tools  # noqa: E402
from fake_gitlab import FakeGitLab  # noqa: E402
from gitrepo import notebook_json  # noqa: E402
from mlflow_serve import free_port  # noqa: E402
from postgres import PostgresUnavailable, running_postgres  # noqa: E402
from test_gitlab_execution import CPU_CELL, RUNNERS, Deployment, answers, instance_settings, process  # noqa: E402

from ds_pipelines.execution import gitlab_runs  # noqa: E402
from ds_pipelines.execution.instance import POSTGRES_URL_ENV  # noqa: E402

NOTEBOOK = "cpu_note"


class TimedGitLab(FakeGitLab):
    """The fake GitLab, noting when each run's pipeline create POST arrived (monotonic and wall clock)."""

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.created: dict[str, tuple[float, float]] = {}

    def _create_pipeline(self, params: dict):
        arrived = time.monotonic(), time.time()
        variables = {v.get("key"): v.get("value") for v in params.get("variables") or []}
        self.created.setdefault(variables.get(gitlab_runs.RUN_ID_VARIABLE, ""), arrived)
        return super()._create_pipeline(params)


def one_notebook_project(root: Path) -> CiProject:
    project = CiProject.create(root)
    for notebook in (project.root / "notebooks").glob("*.ipynb"):
        notebook.unlink()
    project.write(f"notebooks/{NOTEBOOK}.ipynb", notebook_json(CPU_CELL))
    project.write("configs/notebooks.yaml", yaml.safe_dump({"notebooks": {}}))
    project.push("one small notebook")
    return project


def deployment(stack: ExitStack, root: Path) -> Deployment:
    """Postgres, the fake GitLab, the daemon and the webserver, each stopped by ``stack`` (failure or not)."""
    server = stack.enter_context(running_postgres())
    url = server.url(server.new_database())
    project = one_notebook_project(root)
    home = root / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(instance_settings())
    gitlab = stack.enter_context(TimedGitLab(repo=project.root))
    gitlab.jobs_of_new_pipelines = lambda pipeline: [{"name": "dagster-run", "tag_list": [RUNNERS["CPU_RUNNER"]]}]
    private = ("MLFLOW_", "DS_PIPELINES_", "CI_", "GITLAB_", "DAGSTER_")
    env = {key: value for key, value in os.environ.items() if not key.startswith(private)}
    env.update(**gitlab.environ(), DAGSTER_HOME=str(home), DS_PIPELINES_PROJECT_DIR=str(project.root),
               MLFLOW_TRACKING_URI=f"sqlite:///{root / 'mlflow.db'}", **{POSTGRES_URL_ENV: url})
    port = free_port()
    bin_dir = Path(sys.executable).parent
    stack.enter_context(process([str(bin_dir / "dagster-daemon"), "run", "-w", "workspace.yaml"], env, root / "daemon.log"))
    stack.enter_context(process([str(bin_dir / "dagster-webserver"), "-w", "workspace.yaml", "-h", "127.0.0.1",
                                 "-p", str(port)], env, root / "webserver.log"))
    stack.callback(os.environ.pop, POSTGRES_URL_ENV, None)
    found = Deployment(root, url, home, port, gitlab, project)
    found.wait("webserver", lambda: answers(f"http://127.0.0.1:{port}/server_info"))
    return found


def timed_launch(deployed: Deployment) -> tuple[str, dict[str, float]]:
    """Launch the notebook's run in the webserver; the launch's figures once its pipeline exists."""
    sent_mono, sent_wall = time.monotonic(), time.time()
    run_id = deployed.launch(NOTEBOOK)
    deployed.pipeline(run_id)
    posted_mono, posted_wall = deployed.gitlab.created[run_id]
    with deployed.instance() as instance:
        [starting] = [entry.timestamp for entry in instance.all_logs(run_id)
                      if entry.dagster_event and entry.dagster_event.event_type == dg.DagsterEventType.RUN_STARTING]
    return run_id, {"total": posted_mono - sent_mono, "queue": starting - sent_wall, "launcher": posted_wall - starting}


def reporting_delay(deployed: Deployment, run_id: str) -> float:
    """Be the runner (gitlab-ci-local runs the job); the run's end time minus the end of the job."""
    job, variables = deployed.take_job(run_id)
    result = deployed.project.gitlab_ci_local("dagster-run", variables=variables)
    job_ended = time.time()
    deployed.gitlab.set_job(job["id"], status="success" if result.returncode == 0 else "failed",
                            trace=result.stdout + result.stderr)
    if result.returncode != 0:
        raise SystemExit(f"the dagster-run job failed:\n{(result.stdout + result.stderr)[-3000:]}")
    run = deployed.finished(run_id)
    if run.status != dg.DagsterRunStatus.SUCCESS:
        raise SystemExit(f"run {run_id} ended {run.status}:\n{deployed.events(run_id)[-3000:]}")
    with deployed.instance() as instance:
        return instance.get_run_record_by_id(run_id).end_time - job_ended


def timed(command: list[str], env: dict[str, str], cwd: Path) -> float:
    started = time.perf_counter()
    done = subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - started
    if done.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({done.returncode}):\n{(done.stdout + done.stderr)[-3000:]}")
    return elapsed


def job_commands(deployed: Deployment, run_id: str, execute_first: bool) -> tuple[float, float]:
    """Wall seconds of the job's ``execute-run`` of the launched run and of a ``ds-pipelines run`` of its notebook."""
    root = deployed.project.root
    # The job's environment (templates/notebooks.yml's before_script), its run id and database; no DAGSTER_HOME.
    env = job_environment(DS_PIPELINES_PROJECT_DIR=str(root), PYTHONPATH=str(root), **OFFLINE,
                          **{POSTGRES_URL_ENV: deployed.url})
    ours = Path(sys.executable).parent / "ds-pipelines"
    job = deployed.pipeline(run_id)["jobs"][0]
    deployed.gitlab.set_job(job["id"], status="running", runner={"description": "benchmark"})

    def execute() -> float:
        seconds = timed([str(ours), "execute-run", run_id, "--notebooks", "cpu_note", "--output-dir", "results/dagster-run"],
                            env, root)
        deployed.gitlab.set_job(job["id"], status="success")
        return seconds

    def run() -> float:
        return timed([str(ours), "run", f"notebooks/{NOTEBOOK}.ipynb"], env, root)

    if execute_first:
        executed = execute()
        return executed, run()
    ran = run()
    return execute(), ran


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    if missing := missing_tools():
        raise SystemExit("missing: " + "; ".join(missing) + " (ci-tools/install-test-tools)")
    with ExitStack() as stack:
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="gitlab-launch-")))
        try:
            deployed = deployment(stack, root)
        except PostgresUnavailable as missing:
            raise SystemExit(str(missing)) from None
        print(f"{os.cpu_count()} CPUs; {args.rounds} rounds; deployment up", flush=True)
        launches, rounds = [], []
        try:
            for number in range(1, args.rounds + 1):
                reported, launched = timed_launch(deployed)
                delay = reporting_delay(deployed, reported)
                executed_id, second = timed_launch(deployed)
                executed, ran = job_commands(deployed, executed_id, execute_first=number % 2 == 1)
                launches += [launched, second]
                rounds.append({"delay": delay, "execute": executed, "run": ran})
                print(f"round {number}/{args.rounds}: launch {launched['total']:.2f} s and {second['total']:.2f} s "
                      f"(launcher {launched['launcher']:.2f} s, {second['launcher']:.2f} s), reporting delay {delay:+.2f} s, "
                      f"execute-run {executed:.1f} s, run {ran:.1f} s", flush=True)
        except BaseException:
            print(deployed.logs()[-4000:], file=sys.stderr)
            raise
        total, queue, launcher = (median(launches, key) for key in ("total", "queue", "launcher"))
        execute, run = median(rounds, "execute"), median(rounds, "run")
        print(f"\nmedians ({len(launches)} launches, {args.rounds} rounds)")
        print(f"{'launch: GraphQL mutation -> pipeline POST':<46} {total:>8.2f} s   {total / 2:.2f}x the 2 s goal")
        print(f"{'  queued (mutation -> RUN_STARTING)':<46} {queue:>8.2f} s   {queue / total:.0%} of it")
        print(f"{'  launcher (RUN_STARTING -> pipeline POST)':<46} {launcher:>8.2f} s   {launcher / total:.0%} of it")
        print(f"{'reporting delay: job end -> run end (signed)':<46} {median(rounds, 'delay'):>+8.2f} s")
        print(f"{'ds-pipelines execute-run RUN_ID':<46} {execute:>8.2f} s")
        print(f"{'ds-pipelines run notebooks/cpu_note.ipynb':<46} {run:>8.2f} s")
        print(f"{'ratio execute-run / run':<46} {execute / run:>8.2f}x")


if __name__ == "__main__":
    main()
