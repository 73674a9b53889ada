"""A Dagster deployment as operators run it: ``dagster-daemon run`` with the project's workspace.

The daemon evaluates the commit sensor against a GitLab API served on 127.0.0.1, queues the run it asks
for, launches it in its own process, and that run executes the pushed commit's notebook and writes the
notebook's wiki page. Nothing is called in-process: this is the path a push takes in production.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import yaml
from conftest import REPO
from fake_gitlab import FakeGitLab
from gitrepo import REGISTRY, TRAINING, make_project, notebook_json

from ds_pipelines.local import INSTANCE_SETTINGS

POLL_INTERVAL_S = 5
DAEMON_TIMEOUT_S = 300
"""Daemon start, two sensor ticks, the run's own process, the notebook's: about a minute on two busy cores."""
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}


def wait_for(what: str, condition, daemon: subprocess.Popen, log: Path):
    deadline = time.monotonic() + DAEMON_TIMEOUT_S
    while not (found := condition()):
        assert daemon.poll() is None, f"the daemon exited while waiting for {what}:\n{log.read_text()[-3000:]}"
        assert time.monotonic() < deadline, f"no {what} after {DAEMON_TIMEOUT_S} s:\n{log.read_text()[-3000:]}"
        time.sleep(1)
    return found


def test_a_push_runs_under_the_daemon_and_reaches_the_wiki(tmp_path: Path):
    repo = make_project(tmp_path / "repo")
    deployment = tmp_path / "deployment"
    subprocess.run(["git", "clone", "-q", str(repo.root), str(deployment)], check=True)
    registry = yaml.safe_load((deployment / REGISTRY).read_text())
    registry["triggers"]["poll_interval_s"] = POLL_INTERVAL_S
    (deployment / REGISTRY).write_text(yaml.safe_dump(registry))
    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_SETTINGS)
    log = tmp_path / "daemon.log"

    with FakeGitLab(repo=repo.root) as fake:
        env = {key: value for key, value in os.environ.items() if not key.startswith(("MLFLOW_", "DS_PIPELINES_", "CI_", "GITLAB_"))}
        env.update(fake.environ(), DAGSTER_HOME=str(home), DS_PIPELINES_PROJECT_DIR=str(deployment),
                   MLFLOW_TRACKING_URI=f"sqlite:///{tmp_path / 'mlflow.db'}")
        daemon = subprocess.Popen(
            [str(Path(sys.executable).parent / "dagster-daemon"), "run", "-w", "workspace.yaml"],
            cwd=REPO, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
        )
        try:
            # The first tick only records where main is (and the daemon logs it once the cursor is stored);
            # what is pushed after it must run.
            wait_for("first tick", lambda: "gitlab_commits skipped: watching branch main" in log.read_text(), daemon, log)
            repo.write(TRAINING, notebook_json("print('pushed while the daemon watched')"))
            sha = repo.commit("retrain")
            with dg.DagsterInstance.from_config(str(home)) as instance:
                run = wait_for("finished commit run", lambda: next(
                    (r for r in instance.get_runs(filters=dg.RunsFilter(job_name="commit_notebook")) if r.status in FINISHED), None,
                ), daemon, log)
                records = instance.fetch_materializations(dg.AssetKey("training_example"), limit=1).records
                inner_run = instance.get_run_by_id(records[0].run_id) if records else None
            wiki = dict(fake.wiki)
        finally:
            os.killpg(daemon.pid, signal.SIGTERM)
            daemon.wait(timeout=60)

    assert run.status == dg.DagsterRunStatus.SUCCESS, log.read_text()[-3000:]
    assert run.tags["ds-pipelines/commit"] == sha and run.tags["ds-pipelines/notebook"] == TRAINING
    # The run materialized the notebook's asset from the pushed commit, tagged with it.
    assert inner_run is not None and inner_run.tags["ds-pipelines/commit"] == sha
    executed = json.loads(Path(records[0].asset_materialization.metadata["executed_notebook"].value).read_text())
    assert "pushed while the daemon watched" in json.dumps([cell.get("outputs", []) for cell in executed["cells"]])
    page = wiki["model-runs/training_example"]["content"]
    assert sha[:7] in page and fake.token not in page
