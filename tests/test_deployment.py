"""A Dagster deployment as operators run it: ``dagster-daemon run`` with the project's workspace.

Two commits are pushed while the daemon watches a GitLab API served on 127.0.0.1: the daemon's commit
sensor asks for a run of each, its queue launches them in their own processes, one after another (pool
``commit_runs``), each executes its own commit's notebook and writes the notebook's wiki page, and the
failure of the second reaches Slack through the run-failure sensor. Nothing is called in-process: this is
the path a push takes in production.
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
from fake_gitlab import FakeGitLab
from fake_slack import FakeSlack
from gitrepo import REGISTRY, TRAINING, make_project, notebook_json
from mlflow_serve import free_port
from sandbox import REPO

from ds_pipelines.execution.instance import INSTANCE_SETTINGS, POSTGRES_STORAGE, POSTGRES_URL_ENV

pytestmark = pytest.mark.slow  # starts `dagster-daemon run`, which runs notebooks

POLL_INTERVAL_S = 5
DAEMON_TIMEOUT_S = 300
"""Daemon start, sensor ticks, two runs with their notebooks, the failure sensor: about a minute on two cores."""
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def wait_for(what: str, condition, daemon: subprocess.Popen, log: Path):
    deadline = time.monotonic() + DAEMON_TIMEOUT_S
    while not (found := condition()):
        assert daemon.poll() is None, f"the daemon exited while waiting for {what}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} after {DAEMON_TIMEOUT_S} s:\n{log.read_text()[-3000:]}"
        time.sleep(1)
    return found


def wiki_page_naming(gitlab: FakeGitLab, slug: str, *commits: str) -> str | None:
    """The page's content once it names every one of ``commits``."""
    content = gitlab.wiki.get(slug, {}).get("content", "")
    return content if all(sha[:7] in content for sha in commits) else None


def finished_commit_runs(instance: dg.DagsterInstance, count: int) -> list[dg.DagsterRun] | None:
    runs = [run for run in instance.get_runs(filters=dg.RunsFilter(job_name="commit_notebook")) if run.status in FINISHED]
    return runs if len(runs) == count else None


def deployment_of(repo, tmp_path: Path) -> Path:
    """The deployment's project folder: a clone of the project, its sensors polling every POLL_INTERVAL_S."""
    deployment = tmp_path / "deployment"
    subprocess.run(["git", "clone", "-q", str(repo.root), str(deployment)], check=True)
    registry = yaml.safe_load((deployment / REGISTRY).read_text())
    registry["triggers"].update(poll_interval_s=POLL_INTERVAL_S, orchestrator="dagster")
    (deployment / REGISTRY).write_text(yaml.safe_dump(registry))
    return deployment


@contextlib.contextmanager
def running_daemon(env: dict[str, str], log: Path) -> Iterator[subprocess.Popen]:
    daemon = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
        cwd=REPO, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        yield daemon
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        daemon.wait(timeout=60)


def deployment_env(tmp_path: Path, home: Path, deployment: Path, gitlab: FakeGitLab, **extra: str) -> dict[str, str]:
    env = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "DS_PIPELINES_", "CI_", "GITLAB_", "SLACK_"))}
    env.update(**gitlab.environ(), DAGSTER_HOME=str(home), DS_PIPELINES_PROJECT_DIR=str(deployment),
               MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}", **extra)
    return env


def test_pushed_commits_run_one_after_another_under_the_daemon(tmp_path: Path):
    repo = make_project(tmp_path / "repo")
    deployment = deployment_of(repo, tmp_path)
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_SETTINGS)
    log = tmp_path / "daemon.log"

    with FakeGitLab(repo=repo.root) as gitlab, FakeSlack() as slack:
        env = deployment_env(tmp_path, home, deployment, gitlab, **slack.webhook_environ())
        with running_daemon(env, log) as daemon:
            # The first tick only records where main is (and the daemon logs it once the cursor is stored);
            # what is pushed after it must run.
            wait_for("first tick", lambda: "gitlab_commits skipped: watching branch main" in log.read_text(), daemon, log)
            repo.write(TRAINING, notebook_json("print('pushed first')"))
            good = repo.commit("retrain")
            repo.write(TRAINING, notebook_json("raise ValueError('broken by the second push')"))
            broken = repo.commit("break training")
            with dg.DagsterInstance.from_config(str(home)) as instance:
                runs = wait_for("two finished commit runs", lambda: finished_commit_runs(instance, 2), daemon, log)
                by_commit = {run.tags["ds-pipelines/commit"]: run for run in runs}
                steps = {sha: instance.get_run_step_stats(run.run_id)[0] for sha, run in by_commit.items()}
                records = instance.fetch_materializations(dg.AssetKey("training_example"), limit=1).records
                inner_run = instance.get_run_by_id(records[0].run_id)
            posts = wait_for("Slack post", lambda: slack.texts, daemon, log)
            # Both runs' results, published by the code location's sensors once each run has ended.
            page = wait_for("both runs on the wiki", lambda: wiki_page_naming(gitlab, "model-runs/training_example", good, broken),
                            daemon, log)

    assert set(by_commit) == {good, broken}
    assert by_commit[good].status == dg.DagsterRunStatus.SUCCESS, log.read_text()[-3000:]
    assert by_commit[broken].status == dg.DagsterRunStatus.FAILURE
    assert steps[good].end_time <= steps[broken].start_time, "the commit_runs pool let two commits run at once"
    # The good commit's run materialized the notebook's asset from that commit, tagged with it.
    assert inner_run.tags["ds-pipelines/commit"] == good
    executed = json.loads(Path(records[0].asset_materialization.metadata["executed_notebook"].value).read_text())
    assert "pushed first" in json.dumps([cell.get("outputs", []) for cell in executed["cells"]])
    assert gitlab.token not in page
    assert len(posts) == 1 and "broken by the second push" in posts[0] and TRAINING in posts[0]


# Nine levels of nine aliases each: a few hundred bytes that would expand to 9**9 values.
ALIAS_BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]\n" for level in range(1, 9))


def test_no_commit_and_no_failed_fetch_stops_the_daemons_commit_sensor(tmp_path: Path, postgres):
    """On the shared Postgres instance: a fetch that fails keeps main at its commit and is retried; then a
    symlink commit, a deeply nested YAML and an alias bomb are each "not run", and the next commit runs."""
    repo = make_project(tmp_path / "repo")
    deployment = deployment_of(repo, tmp_path)
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_SETTINGS + POSTGRES_STORAGE)
    url = postgres.url(postgres.new_database())
    log = tmp_path / "daemon.log"
    registry = (repo.root / REGISTRY).read_text()

    with FakeGitLab(repo=repo.root) as gitlab:
        env = deployment_env(tmp_path, home, deployment, gitlab, **{POSTGRES_URL_ENV: url})
        with running_daemon(env, log) as daemon:
            wait_for("first tick", lambda: "gitlab_commits skipped: watching branch main" in log.read_text(), daemon, log)
            gitlab.clone_url = f"http://127.0.0.1:{free_port()}/group/project.git"  # git service down
            os.symlink("/mnt/data", repo.root / "data")
            link = repo.commit("data lives elsewhere")
            wait_for("a retried fetch", lambda: f"commit {link[:12]} could not be checked out" in log.read_text(), daemon, log)
            (repo.root / "data").unlink()
            repo.write(REGISTRY, registry + "\nextra: " + "[" * 500 + "]" * 500 + "\n")
            nested = repo.commit("deeply nested")
            repo.write(REGISTRY, registry + "\n" + ALIAS_BOMB)
            bomb = repo.commit("alias bomb")
            gitlab.clone_url = None  # back: the next retry fetches
            for sha in (link, nested, bomb):
                wait_for(f"{sha[:12]} not run", lambda sha=sha: f"commit {sha[:12]}: not run: " in log.read_text(), daemon, log)
            repo.write(REGISTRY, registry)
            repo.write(TRAINING, notebook_json("print('after the bad commits')"))
            good = repo.commit("fixed")
            os.environ[POSTGRES_URL_ENV] = url  # the instance's dagster.yaml reads it
            try:
                with dg.DagsterInstance.from_config(str(home)) as instance:
                    [run] = wait_for("the good commit's run", lambda: finished_commit_runs(instance, 1), daemon, log)
            finally:
                del os.environ[POSTGRES_URL_ENV]

    text = log.read_text()
    assert "the link data -> /mnt/data points outside the commit's files" in text
    assert "refused: nested more than 50 levels deep" in text and "refused: its aliases expand to more than" in text
    assert "Traceback" not in text and "RecursionError" not in text, text[-3000:]
    assert run.tags["ds-pipelines/commit"] == good and run.status == dg.DagsterRunStatus.SUCCESS, text[-3000:]
