"""``ds-pipelines reproduce`` and the reproducibility record of real runs: a small project in a real git
repository, run through the real CLI, Dagster and an MLflow store, then reproduced from its results folder
and from its MLflow run."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import dagster as dg
import pytest
from gitrepo import GitRepo
from mlflow.tracking import MlflowClient
from sandbox import REPO, Sandbox, make_sandbox

from ds_pipelines.results.reproducibility import PACKAGES, file_sha256

pytestmark = pytest.mark.slow

MEAN = "notebooks/mean.ipynb"
NOISY = "notebooks/noisy.ipynb"
DATA = "data/values.csv"
ENV_DUMP = "seen-environment.json"
TRAPPED = "booby-trap-fired"


def _notebook(*cells: str) -> str:
    meta = {"kernelspec": {"name": "python3", "display_name": "Python 3", "language": "python"}}
    return json.dumps({
        "cells": [{"cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [], "source": [c]} for c in cells],
        "metadata": meta, "nbformat": 4, "nbformat_minor": 5,
    }, indent=1)


MEAN_CELLS = (
    "import random, time\nfrom ds_pipelines import notebook as dsp\ncfg = dsp.load_config()",
    "frame = dsp.read_table(dsp.path(cfg['data']['path']), what='data.path')\n"
    "draw = random.Random(cfg['random_seed']).random()",
    "import mlflow\ndsp.setup_mlflow('tests-reproduce')\nwith mlflow.start_run() as run:\n"
    "    mlflow.log_metric('mean', float(frame['value'].mean()))",
    "dsp.report(metrics={'mean': float(frame['value'].mean()), 'draw': draw, 'wall_seconds': time.time()},\n"
    "           mlflow_run_id=run.info.run_id)",
)
# Nondeterministic on purpose: a draw from the operating system's entropy, no seed can fix it.
NOISY_CELLS = (
    "import random\nfrom ds_pipelines import notebook as dsp",
    "dsp.report(metrics={'draw': random.SystemRandom().random()})",
)


# What the caller of reproduce holds that the recorded commit's code must never see.
CALLER_SECRETS = {
    "GITLAB_TOKEN": "glpat-planted-caller-token-1",
    "REPO_TOKEN": "planted-repo-token-2",
    "SLACK_BOT_TOKEN": "xoxb-planted-slack-token-3",
    "DAGSTER_POSTGRES_URL": "postgresql://dagster:planted-db-password-4@127.0.0.1:1/dagster",
}


def make_project(root: Path, *, env_dump: Path, trap: Path) -> GitRepo:
    """The two notebooks; mean's first cell writes the environment it sees to ``env_dump``, and the commit
    carries a ``ds_pipelines/`` package that touches ``trap`` if anything imports it."""
    repo = GitRepo(root)
    root.mkdir(parents=True)
    repo.git("init", "-q", "-b", "main")
    repo.write(".gitignore", "data/\n.ds-pipelines/\noutputs/\n")
    repo.write("configs/notebooks.yaml", f"notebooks:\n  {MEAN}:\n    config: configs/mean.yaml\n  {NOISY}: {{}}\n")
    repo.write("configs/mean.yaml", f"data:\n  path: {DATA}\nrandom_seed: 7\n")
    repo.write(MEAN, _notebook(f"import json, os\nopen({str(env_dump)!r}, 'w').write(json.dumps(dict(os.environ)))",
                               *MEAN_CELLS))
    repo.write("ds_pipelines/__init__.py", f"open({str(trap)!r}, 'w').close()\nraise SystemExit('booby-trapped')\n")
    repo.write(NOISY, _notebook(*NOISY_CELLS))
    repo.write(DATA, "value\n1\n2\n3\n4\n")  # git-ignored: reproduce takes it from the project folder
    repo.git("add", "-A")
    repo.git("commit", "-qm", "project")
    return repo


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[Sandbox, GitRepo, Path]:
    """Both notebooks run once; the tests reproduce this run."""
    base = tmp_path_factory.mktemp("reproduce")
    repo = make_project(base / "project", env_dump=base / ENV_DUMP, trap=base / TRAPPED)
    box = make_sandbox(base / "state")
    results = base / "results"
    done = box.cli("run", MEAN, NOISY, "--project-dir", str(repo.root), "--output-dir", str(results))
    assert done.returncode == 0, done.stderr[-3000:]
    return box, repo, results


def _reproduce(box: Sandbox, repo: GitRepo, *args: str):
    return box.cli("reproduce", *args, "--project-dir", str(repo.root), "--json")


def test_results_json_carries_every_field_of_the_record(recorded):
    box, repo, results = recorded
    entry = next(nb for nb in json.loads((results / "results.json").read_text())["notebooks"] if nb["name"] == "mean")
    record = entry["reproducibility"]
    assert record["commit"] == {"sha": repo.git("rev-parse", "HEAD"), "branch": "main", "dirty": False}
    assert record["notebook_sha256"] == file_sha256(repo.root / MEAN)
    assert record["data"] == [{"path": DATA, "sha256": file_sha256(repo.root / DATA)}]
    assert record["seeds"] == {"random_seed": 7}
    assert record["device"] == "cpu"
    assert record["image"] is None
    assert set(record["packages"]) == set(PACKAGES) and all(record["packages"].values())
    assert record["python"].count(".") == 2
    assert entry["config"] == {"data": {"path": DATA}, "random_seed": 7}


def test_dagster_materialization_and_mlflow_run_carry_the_record(recorded):
    box, repo, results = recorded
    entry = next(nb for nb in json.loads((results / "results.json").read_text())["notebooks"] if nb["name"] == "mean")
    record = entry["reproducibility"]
    with dg.DagsterInstance.from_config(box.env["DAGSTER_HOME"]) as instance:
        event = instance.get_latest_materialization_event(dg.AssetKey("mean"))
        assert event.asset_materialization.metadata["reproducibility"].value == record
    run = MlflowClient(box.env["MLFLOW_TRACKING_URI"]).get_run(entry["mlflow_run_id"])
    tags, params = run.data.tags, run.data.params
    assert tags["ds-pipelines.commit"] == record["commit"]["sha"]
    assert tags["ds-pipelines.commit_dirty"] == "false"
    assert tags["ds-pipelines.notebook_sha256"] == record["notebook_sha256"]
    assert tags["ds-pipelines.config_sha256"] == record["config_sha256"]
    assert tags["ds-pipelines.device"] == "cpu" and tags["ds-pipelines.image"] == "none"
    assert tags["ds-pipelines.python"] == record["python"]
    assert json.loads(tags["ds-pipelines.data"]) == record["data"]
    assert params["ds-pipelines.seed.random_seed"] == "7"
    assert {f"ds-pipelines.package.{name}" for name in PACKAGES} <= set(params)


def test_reproduces_a_fresh_results_folder(recorded):
    box, repo, results = recorded
    done = _reproduce(box, repo, str(results), "--notebook", "mean")
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    outcome = json.loads(done.stdout)
    assert outcome["match"] is True and outcome["commit"] == repo.git("rev-parse", "HEAD")
    (mean,) = outcome["notebooks"]
    by_name = {m["name"]: m for m in mean["metrics"]}
    assert by_name["mean"] == {"name": "mean", "recorded": 2.5, "reproduced": 2.5, "compared": True, "match": True}
    assert by_name["draw"]["compared"] and by_name["draw"]["recorded"] == by_name["draw"]["reproduced"]
    assert by_name["wall_seconds"]["compared"] is False  # a timing: shown, not compared
    assert by_name["wall_seconds"]["recorded"] != by_name["wall_seconds"]["reproduced"]
    assert mean["tolerance"] == "exact"


def test_reproduces_from_the_mlflow_run_and_prints_a_table(recorded):
    box, repo, results = recorded
    entry = next(nb for nb in json.loads((results / "results.json").read_text())["notebooks"] if nb["name"] == "mean")
    done = box.cli("reproduce", "--mlflow-run", entry["mlflow_run_id"], "--project-dir", str(repo.root))
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert "reproduced: every metric matches" in done.stdout
    row = next(line for line in done.stdout.splitlines() if line.strip().startswith("mean "))
    assert row.split()[1:4] == ["2.5", "2.5", "ok"]
    # The rerun is tracked, marked as a reproduction, and has no branch: it can never become a baseline.
    client = MlflowClient(box.env["MLFLOW_TRACKING_URI"])
    experiment = client.get_run(entry["mlflow_run_id"]).info.experiment_id
    reruns = [run for run in client.search_runs([experiment]) if "ds-pipelines.reproduces" in run.data.tags]
    assert any(f"MLflow run {entry['mlflow_run_id']!r}" in run.data.tags["ds-pipelines.reproduces"] for run in reruns)
    assert all("ds-pipelines.branch" not in run.data.tags for run in reruns)


def test_a_nondeterministic_notebook_is_not_reproduced(recorded):
    box, repo, results = recorded
    done = _reproduce(box, repo, str(results), "--notebook", "noisy")
    assert done.returncode == 1, done.stdout + done.stderr[-3000:]
    (noisy,) = json.loads(done.stdout)["notebooks"]
    assert noisy["match"] is False
    assert [m["name"] for m in noisy["metrics"] if not m["match"]] == ["draw"]


def test_an_edited_data_file_fails_naming_it(recorded, tmp_path):
    box, repo, results = recorded
    data = repo.root / DATA
    original = data.read_text()
    data.write_text(original + "5\n")
    try:
        done = _reproduce(box, repo, str(results), "--notebook", "mean")
    finally:
        data.write_text(original)
    assert done.returncode == 1, done.stdout + done.stderr[-3000:]
    (mean,) = json.loads(done.stdout)["notebooks"]
    (problem,) = mean["problems"]
    assert f"data file {data} changed since the run" in problem
    assert mean["metrics"] == []  # nothing was rerun


def test_a_notebook_that_differs_from_its_commit_fails_naming_it(recorded, tmp_path):
    box, repo, results = recorded
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    data = json.loads((copy / "results.json").read_text())
    for entry in data["notebooks"]:
        entry["reproducibility"]["notebook_sha256"] = "0" * 64
        entry["reproducibility"]["commit"]["dirty"] = True
    (copy / "results.json").write_text(json.dumps(data))
    done = _reproduce(box, repo, str(copy), "--notebook", "mean")
    assert done.returncode == 1, done.stdout + done.stderr
    (mean,) = json.loads(done.stdout)["notebooks"]
    assert mean["problems"] == [
        f"notebook {MEAN} in commit {repo.git('rev-parse', 'HEAD')[:12]} differs from the one that ran (the run had "
        f"uncommitted changes): sha256 {file_sha256(repo.root / MEAN)[:12]}, recorded {'0' * 12}"
    ]


def test_the_rerun_gets_none_of_the_callers_secrets_and_never_the_checkouts_package(recorded):
    box, repo, results = recorded
    base = results.parent
    (base / ENV_DUMP).unlink()
    caller = Sandbox(root=box.root, env={**box.env, **CALLER_SECRETS})

    done = _reproduce(caller, repo, str(results), "--notebook", "mean")

    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    assert not (base / TRAPPED).exists(), "the checkout's ds_pipelines package was imported"
    seen = json.loads((base / ENV_DUMP).read_text())  # written by the rerun
    assert {name for name in CALLER_SECRETS if name in seen} == set()
    assert not any(value in json.dumps(seen) for value in CALLER_SECRETS.values())
    assert seen["MLFLOW_TRACKING_URI"] == box.env["MLFLOW_TRACKING_URI"]  # what the run needs is there


@pytest.mark.parametrize("path", ["../outside.csv", "data/../../outside.csv"])
def test_a_recorded_data_path_that_leaves_the_project_is_refused(recorded, tmp_path, path):
    box, repo, results = recorded
    (repo.root.parent / "outside.csv").write_text("value\n1\n")
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    data = json.loads((copy / "results.json").read_text())
    for entry in data["notebooks"]:
        for read in entry["reproducibility"]["data"]:
            read["path"] = path
    (copy / "results.json").write_text(json.dumps(data))

    done = _reproduce(box, repo, str(copy), "--notebook", "mean")

    assert done.returncode == 1, done.stdout + done.stderr
    (mean,) = json.loads(done.stdout)["notebooks"]
    assert mean["problems"] == [f"data path {path!r} recorded in the results leads out of the project: not read"]
    assert mean["metrics"] == []  # nothing was rerun


def test_a_commit_not_in_the_repository_is_bad_input(recorded, tmp_path):
    box, repo, results = recorded
    copy = tmp_path / "results"
    shutil.copytree(results, copy)
    data = json.loads((copy / "results.json").read_text())
    for entry in data["notebooks"]:
        entry["reproducibility"]["commit"]["sha"] = "0" * 40
    (copy / "results.json").write_text(json.dumps(data))
    done = _reproduce(box, repo, str(copy), "--notebook", "mean")
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"commit {'0' * 40} is not in {repo.root}" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_unknown_mlflow_run_is_bad_input(recorded):
    box, repo, results = recorded
    done = box.cli("reproduce", "--mlflow-run", "f" * 32, "--project-dir", str(repo.root))
    assert done.returncode == 2, done.stdout + done.stderr
    assert f"MLflow run {'f' * 32!r}" in done.stderr and "does not exist" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_training_notebook_reproduces_exactly_on_cpu(tmp_path):
    """The reference training notebook (bundled data, seeded split, seeded Optuna sampler, XGBoost on the
    CPU) gives the same metrics again; only its tuning time differs."""
    repo = GitRepo(tmp_path / "project")
    repo.root.mkdir()
    repo.git("init", "-q", "-b", "main")
    repo.write(".gitignore", ".ds-pipelines/\noutputs/\n")
    repo.write("configs/notebooks.yaml", "notebooks:\n  notebooks/training_example.ipynb:\n"
               "    config: configs/training.yaml\n    schema: training\n")
    repo.write("configs/training.yaml", json.dumps({
        "outcome": "target", "optuna": {"n_trials": 3, "timeout": 300, "cv_folds": 3}, "model": {"device": "cpu"},
        "mlflow": {"experiment_name": "tests-reproduce-training", "register_model": False},
    }))
    repo.write("notebooks/training_example.ipynb", (REPO / "notebooks/training_example.ipynb").read_text())
    repo.git("add", "-A")
    repo.git("commit", "-qm", "training")
    box = make_sandbox(tmp_path / "state")
    done = box.cli("run", "training_example", "--project-dir", str(repo.root), "--output-dir", str(tmp_path / "results"))
    assert done.returncode == 0, done.stderr[-3000:]
    record = json.loads((tmp_path / "results/results.json").read_text())["notebooks"][0]["reproducibility"]
    assert record["data"] == [{"source": "sklearn.datasets.load_breast_cancer", "version": record["packages"]["scikit-learn"]}]
    assert record["seeds"] == {"data.random_state": 42, "optuna.sampler_seed": 42}
    assert record["device"] == "cpu"

    done = _reproduce(box, repo, str(tmp_path / "results"))
    assert done.returncode == 0, done.stdout + done.stderr[-3000:]
    metrics = {m["name"]: m for m in json.loads(done.stdout)["notebooks"][0]["metrics"]}
    assert {"roc_auc", "accuracy", "log_loss", "cv_roc_auc"} <= {name for name, m in metrics.items() if m["compared"] and m["match"]}
    assert [name for name, m in metrics.items() if not m["compared"]] == ["fit_seconds", "tuning_seconds"]
