"""Quality checks end to end: a small project whose notebook logs ``roc_auc`` to MLflow, four ``ds-pipelines run``s
on branch main (0.9, 0.995, 0.3, 0.97), and a Dagster webserver on the same instance showing the check evaluations
over GraphQL.

The registry's checks: ``roc_auc >= 0.5`` (blocking), ``roc_auc <= 0.99`` (non-blocking) and ``roc_auc`` no worse
than the baseline on main (non-blocking). The third run fails its blocking check, so the fourth one's baseline is
the second run, not the third."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml
from dagster_webserver import dagster_webserver, graphql
from gitrepo import GitRepo, notebook_json
from mlflow.tracking import MlflowClient
from sandbox import make_sandbox

pytestmark = pytest.mark.slow  # three runs with MLflow in the kernel, then a webserver

NOTEBOOK_CELL = """\
import mlflow
from ds_pipelines import notebook as dsp
config = dsp.load_config()
dsp.setup_mlflow("quality-checks")
with mlflow.start_run() as run:
    mlflow.log_metric("roc_auc", config["roc_auc"])
dsp.report(metrics={"roc_auc": config["roc_auc"]}, mlflow_run_id=run.info.run_id)
"""
CHECKS = [
    {"metric": "roc_auc", "min": 0.5},
    {"metric": "roc_auc", "max": 0.99, "blocking": False},
    {"metric": "roc_auc", "no_worse_than_baseline": True, "blocking": False},
]
CHECK_NAMES = ("roc_auc_min", "roc_auc_max", "roc_auc_vs_baseline")
OPENMETRICS_LINE = re.compile(r"# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* gauge|[a-zA-Z_:][a-zA-Z0-9_:]* (-?[0-9.e+-]+|NaN|[+-]Inf)")


def scored_project(root: Path) -> Path:
    repo = GitRepo(root)
    root.mkdir(parents=True)
    repo.git("init", "-q", "-b", "main")
    repo.write("notebooks/scored.ipynb", notebook_json(NOTEBOOK_CELL))
    repo.write("configs/scored.yaml", "roc_auc: 0.9\n")
    repo.write("configs/notebooks.yaml", yaml.safe_dump({"notebooks": {"notebooks/scored.ipynb": {
        "config": "configs/scored.yaml", "checks": CHECKS}}}, sort_keys=False))
    repo.commit("scored notebook with quality checks")
    return root


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """The sandbox, the project, and the four runs (the process, results.json, metrics.txt)."""
    box = make_sandbox(tmp_path_factory.mktemp("quality-checks"))
    project = scored_project(box.root / "project")
    head = GitRepo(project).git("rev-parse", "HEAD")
    # The notebook's MLflow runs are tagged with the branch (the baseline search's key), as in a CI pipeline on main.
    box.env.update(DS_PIPELINES_PROJECT_DIR=str(project), CI_COMMIT_SHA=head, CI_COMMIT_BRANCH="main", CI_DEFAULT_BRANCH="main")
    outcomes = []
    for index, value in enumerate((0.9, 0.995, 0.3, 0.97)):
        config = box.write_yaml(f"scored-{index}.yaml", {"roc_auc": value})
        out = box.root / f"results-{index}"
        result = box.cli("run", "scored", "--config", f"scored={config}", "--output-dir", str(out))
        outcomes.append((result, json.loads((out / "results.json").read_text()), (out / "metrics.txt").read_text()))
    return box, project, outcomes


def checks_of(results: dict) -> dict[str, dict]:
    [notebook] = results["notebooks"]
    return {check["name"]: check for check in notebook["checks"]}


def test_passing_checks_and_no_baseline_on_the_first_run(runs):
    _, _, [(result, results, _), *_] = runs
    assert result.returncode == 0, result.stderr[-3000:]
    checks = checks_of(results)
    assert list(checks) == list(CHECK_NAMES)
    assert all(check["passed"] for check in checks.values())
    first = checks["roc_auc_vs_baseline"]
    assert first["baseline"] is None and first["baseline_run_id"] is None
    assert "no baseline (no successful run on main" in first["message"]


def test_a_failing_non_blocking_check_is_a_warning_and_the_run_succeeds(runs):
    _, _, [first, (result, results, _), *_] = runs
    assert result.returncode == 0, result.stderr[-3000:]
    assert "warning: non-blocking check roc_auc_max failed: roc_auc 0.995 is above max 0.99" in result.stderr
    checks = checks_of(results)
    assert results["status"] == "success"
    assert checks["roc_auc_max"] | {"message": None} == {
        "name": "roc_auc_max", "metric": "roc_auc", "passed": False, "blocking": False, "value": 0.995,
        "min": None, "max": 0.99, "baseline": None, "baseline_run_id": None, "message": None}
    # Compared with the first run, on main: better, so it passes.
    baseline = checks["roc_auc_vs_baseline"]
    assert baseline["passed"] and baseline["baseline"] == 0.9
    assert baseline["baseline_run_id"] == first[1]["notebooks"][0]["mlflow_run_id"]


def test_an_impossible_blocking_check_fails_the_run_naming_the_metric_and_values(runs):
    _, _, [_, second, (result, results, _), _] = runs
    assert result.returncode == 1
    assert "blocking check failed: roc_auc_min (roc_auc 0.3 is below min 0.5)" in result.stderr
    assert "Traceback" not in result.stderr
    assert results["status"] == "failed"
    [notebook] = results["notebooks"]
    assert notebook["status"] == "failed" and notebook["metrics"] == {"roc_auc": 0.3}
    assert notebook["error"] == "blocking check failed: roc_auc_min (roc_auc 0.3 is below min 0.5)"
    checks = checks_of(results)
    assert not checks["roc_auc_min"]["passed"] and checks["roc_auc_min"]["blocking"]
    assert checks["roc_auc_max"]["passed"]
    # Worse than the second run (the latest on main), without intervals: a warning, named with both values.
    baseline = checks["roc_auc_vs_baseline"]
    assert not baseline["passed"] and baseline["baseline"] == 0.995
    assert baseline["baseline_run_id"] == second[1]["notebooks"][0]["mlflow_run_id"]
    assert "roc_auc 0.3 against baseline 0.995: worse" in baseline["message"]
    assert f"warning: non-blocking check roc_auc_vs_baseline failed: {baseline['message']}" in result.stderr
    # The summary on stdout lists every check.
    assert re.search(r"check roc_auc_min:\s+FAILED \(blocking\): roc_auc 0.3 is below min 0.5", result.stdout)


def test_a_run_that_failed_its_blocking_checks_is_never_a_baseline(runs):
    box, _, [_, second, third, (result, results, _)] = runs
    tags = MlflowClient(tracking_uri=box.env["MLFLOW_TRACKING_URI"]).get_run(third[1]["notebooks"][0]["mlflow_run_id"]).data.tags
    assert tags["ds-pipelines.blocking_checks"] == "failed"
    assert result.returncode == 0, result.stderr[-3000:]
    baseline = checks_of(results)["roc_auc_vs_baseline"]
    assert baseline["baseline_run_id"] == second[1]["notebooks"][0]["mlflow_run_id"] and baseline["baseline"] == 0.995
    assert not baseline["passed"]


def test_the_metrics_report_is_openmetrics_text(runs):
    _, _, [_, _, (_, _, report), _] = runs
    lines = report.splitlines()
    assert lines[-1] == "# EOF"
    bad = [line for line in lines[:-1] if not OPENMETRICS_LINE.fullmatch(line)]
    assert not bad, report
    values = dict(line.split(" ") for line in lines[:-1] if not line.startswith("#"))
    assert values == {"scored_roc_auc": "0.3", "scored_check_roc_auc_min_passed": "0.0",
                      "scored_check_roc_auc_max_passed": "1.0", "scored_check_roc_auc_vs_baseline_passed": "0.0"}


CHECKS_QUERY = """{ assetNodes(assetKeys: [{path: ["scored"]}]) { assetChecksOrError {
  ... on AssetChecks { checks { name blocking } } } } }"""
EXECUTIONS_QUERY = """query($name: String!) { assetCheckExecutions(assetKey: {path: ["scored"]}, checkName: $name, limit: 10) {
  runId status evaluation { success severity description } } }"""


def test_the_dagster_ui_shows_every_check_evaluation(runs, tmp_path: Path):
    box, project, outcomes = runs
    with dagster_webserver(project, box.env, tmp_path / "webserver.log") as port:
        [node] = graphql(port, CHECKS_QUERY)["assetNodes"]
        executions = {name: graphql(port, EXECUTIONS_QUERY, {"name": name})["assetCheckExecutions"] for name in CHECK_NAMES}
    assert {check["name"]: check["blocking"] for check in node["assetChecksOrError"]["checks"]} == {
        "roc_auc_min": True, "roc_auc_max": False, "roc_auc_vs_baseline": False}
    run_ids = [results["notebooks"][0]["dagster_run_id"] for _, results, _ in outcomes]
    for name in CHECK_NAMES:
        # Newest first: one evaluation per run.
        assert [execution["runId"] for execution in executions[name]] == run_ids[::-1], name
    last = {name: executions[name][1] for name in CHECK_NAMES}  # the third run's
    assert last["roc_auc_min"]["status"] == "FAILED"
    assert last["roc_auc_min"]["evaluation"] == {
        "success": False, "severity": "ERROR", "description": "roc_auc 0.3 is below min 0.5"}
    assert last["roc_auc_vs_baseline"]["evaluation"]["success"] is False
    assert last["roc_auc_vs_baseline"]["evaluation"]["severity"] == "WARN"
    assert last["roc_auc_max"]["evaluation"]["success"] is True
    second_max = executions["roc_auc_max"][2]["evaluation"]
    assert second_max["success"] is False and second_max["severity"] == "WARN"
