"""Quality checks without running a notebook: reading them from configs/notebooks.yaml, evaluating them, recording
them in results.json and metrics.txt, and showing them in the merge-request comment. The runs through Dagster
are in test_quality_checks_run.py."""

from __future__ import annotations

import json
import math
import re
from pathlib import Path

import pytest
import yaml
from gitrepo import notebook_json

from ds_pipelines.errors import ConfigError
from ds_pipelines.project import Project
from ds_pipelines.project.quality_checks import QualityCheck, check_problems
from ds_pipelines.publishing.render.comment import render_mr_comment
from ds_pipelines.results.checks import BaselineValues, CheckOutcome, evaluate
from ds_pipelines.results.folder import (
    NotebookResult,
    ResultsError,
    RunResults,
    load_results,
    write_results,
)
from ds_pipelines.results.metrics_report import metrics_report
from ds_pipelines.results.uncertainty import Interval

REGISTRY = "configs/notebooks.yaml"
# OpenMetrics text as GitLab's metrics report reads it: gauges with a TYPE line each, `name value`, `# EOF` last.
OPENMETRICS_LINE = re.compile(r"# TYPE [a-zA-Z_:][a-zA-Z0-9_:]* gauge|[a-zA-Z_:][a-zA-Z0-9_:]* (-?[0-9.e+-]+|NaN|[+-]Inf)")


def problems(checks) -> list[str]:
    return [str(problem) for problem in check_problems(REGISTRY, "notebooks.nb.checks", checks)]


# --- reading them ----------------------------------------------------------------------------------------------------

def test_checks_are_read_from_the_registry_blocking_by_default(tmp_path: Path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks/nb.ipynb").write_text(notebook_json())
    (tmp_path / "configs").mkdir()
    (tmp_path / REGISTRY).write_text(yaml.safe_dump({"notebooks": {"notebooks/nb.ipynb": {"checks": [
        {"metric": "roc_auc", "min": 0.9},
        {"metric": "val/loss", "max": 1, "no_worse_than_baseline": True, "blocking": False},
        {"metric": "roc_auc", "min": 0.5, "max": 1},
    ]}}}))
    [spec] = Project(tmp_path).notebooks()
    assert spec.checks == (
        QualityCheck("roc_auc", min=0.9),
        QualityCheck("val/loss", max=1.0, no_worse_than_baseline=True, blocking=False),
        QualityCheck("roc_auc", min=0.5, max=1.0),
    )
    assert [check.name for check in spec.checks] == ["roc_auc_min", "val_loss_max_vs_baseline", "roc_auc_range"]
    assert spec.checks[0].describe() == "roc_auc ≥ 0.9"
    assert spec.checks[1].describe() == ("val/loss ≤ 1 and val/loss not worse than the default branch's baseline beyond "
                                         "noise (non-blocking)")


def test_a_registry_with_a_bad_check_is_refused_naming_it(tmp_path: Path):
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "notebooks/nb.ipynb").write_text(notebook_json())
    (tmp_path / "configs").mkdir()
    (tmp_path / REGISTRY).write_text(yaml.safe_dump({"notebooks": {"notebooks/nb.ipynb": {"checks": [{"metric": "auc", "min": 2, "max": 1}]}}}))
    with pytest.raises(ConfigError, match=re.escape("notebooks.notebooks/nb.ipynb.checks[0].min: min 2 is above max 1")):
        Project(tmp_path).notebooks()


@pytest.mark.parametrize(("checks", "expected"), [
    ({"metric": "auc"}, ["checks: expected a list of checks"]),
    (["auc"], ["checks[0]: expected a mapping with keys"]),
    ([{"metric": "auc"}], ["checks[0]: a check needs a condition: min, max or no_worse_than_baseline: true"]),
    ([{"metric": "auc", "no_worse_than_baseline": False}], ["checks[0]: a check needs a condition"]),
    ([{"metric": "", "min": 1}], ["checks[0].metric: expected the name of a metric the notebook reports", "got ''"]),
    ([{"metric": 3, "min": 1}], ["checks[0].metric: expected the name", "got 3"]),
    ([{"metric": "a b", "min": 1}], ["checks[0].metric: expected the name", "got 'a b'"]),
    ([{"metric": "auc", "min": True}], ["checks[0].min: expected a number, got True"]),
    ([{"metric": "auc", "max": float("nan")}], ["checks[0].max: expected a number, got nan"]),
    ([{"metric": "auc", "min": 0.9, "max": 0.8}], ["checks[0].min: min 0.9 is above max 0.8: no value can pass"]),
    ([{"metric": "auc", "min": 0.9, "severity": "warn"}], ["checks[0].severity: unknown key (expected one of: metric, min, max, no_worse_than_baseline, blocking)"]),
    ([{"metric": "auc", "min": 0.9, "blocking": "no"}], ["checks[0].blocking: expected true or false, got 'no'"]),
    ([{"metric": "auc", "no_worse_than_baseline": 1}], ["checks[0].no_worse_than_baseline: expected true or false, got 1"]),
    ([{"metric": "a.b", "min": 0.9}, {"metric": "a-b", "min": 0.5}],
     ["checks[1]: the same check as notebooks.nb.checks[0] (both are 'a_b_min')"]),
])
def test_bad_checks_are_named_with_what_was_expected(checks, expected):
    found = problems(checks)
    assert found, checks
    text = "\n".join(found)
    for part in expected:
        assert part in text, text
    assert all(problem.startswith(f"{REGISTRY}: notebooks.nb.checks") for problem in found)


def test_every_problem_of_a_check_is_reported_at_once():
    found = problems([{"metric": "a b", "min": "x", "blocking": 1, "extra": 2}])
    assert [problem.split(":")[1].strip() for problem in found] == [
        "notebooks.nb.checks[0].extra", "notebooks.nb.checks[0].metric", "notebooks.nb.checks[0].min",
        "notebooks.nb.checks[0].blocking"]


# --- evaluating them -------------------------------------------------------------------------------------------------

def test_bounds_are_inclusive_and_a_failure_names_the_values():
    check = QualityCheck("roc_auc", min=0.9, max=0.99)
    assert evaluate(check, {"roc_auc": 0.9}, {}, None).passed
    assert evaluate(check, {"roc_auc": 0.99}, {}, None).passed
    low = evaluate(check, {"roc_auc": 0.85}, {}, None)
    assert (low.passed, low.value, low.min, low.max) == (False, 0.85, 0.9, 0.99)
    assert low.message == "roc_auc 0.85 is below min 0.9"
    assert low.status == "failed"
    assert evaluate(check, {"roc_auc": 0.995}, {}, None).message == "roc_auc 0.995 is above max 0.99"
    assert evaluate(check, {"roc_auc": math.nan}, {}, None).message == "roc_auc is NaN"
    assert evaluate(QualityCheck("roc_auc", max=0.5, blocking=False), {"roc_auc": 0.7}, {}, None).status == "warning"


def test_a_metric_the_notebook_did_not_report_fails_naming_what_it_reported():
    outcome = evaluate(QualityCheck("roc_auc", min=0.9), {"log_loss": 0.2, "accuracy": 0.9}, {}, None)
    assert not outcome.passed and outcome.value is None
    assert outcome.message == "roc_auc was not reported by the notebook (it reported: accuracy, log_loss)"


def baseline(value: float, interval: tuple[float, float] | None = None, metric: str = "roc_auc") -> BaselineValues:
    uncertainty = {metric: {"low": interval[0], "high": interval[1], "kind": "bootstrap 95%"}} if interval else {}
    return BaselineValues.from_run("base-run", {metric: value}, uncertainty)


NO_WORSE = QualityCheck("roc_auc", no_worse_than_baseline=True, blocking=False)


def test_no_baseline_passes_and_says_why():
    outcome = evaluate(NO_WORSE, {"roc_auc": 0.5}, {}, None, no_baseline="no successful run on main yet")
    assert outcome.passed and outcome.baseline is None
    assert outcome.message == "no baseline (no successful run on main yet): nothing to compare with, passes"
    missing = evaluate(NO_WORSE, {"roc_auc": 0.5}, {}, baseline(0.9, metric="accuracy"))
    assert missing.passed and missing.baseline_run_id == "base-run"
    assert missing.message == "baseline run base-run has no roc_auc: nothing to compare with, passes"


def test_with_intervals_only_worse_beyond_noise_fails():
    current = {"roc_auc": Interval(0.88, 0.92, "bootstrap 95%")}
    within = evaluate(NO_WORSE, {"roc_auc": 0.90}, current, baseline(0.91, (0.89, 0.93)))
    assert within.passed and within.baseline == 0.91
    assert within.message == "roc_auc 0.9 [0.88, 0.92] against baseline 0.91 [0.89, 0.93]: ≈ within noise"
    worse = evaluate(NO_WORSE, {"roc_auc": 0.90}, current, baseline(0.96, (0.95, 0.97)))
    assert not worse.passed
    assert worse.message == ("roc_auc 0.9 [0.88, 0.92] against baseline 0.96 [0.95, 0.97]: worse beyond noise "
                             "(the intervals do not overlap)")
    assert evaluate(NO_WORSE, {"roc_auc": 0.90}, current, baseline(0.80, (0.79, 0.81))).passed


def test_without_intervals_any_move_in_the_worse_direction_fails():
    assert not evaluate(NO_WORSE, {"roc_auc": 0.899}, {}, baseline(0.9)).passed
    assert evaluate(NO_WORSE, {"roc_auc": 0.9}, {}, baseline(0.9)).passed
    lower_is_better = QualityCheck("log_loss", no_worse_than_baseline=True)
    rose = evaluate(lower_is_better, {"log_loss": 0.31}, {}, baseline(0.3, metric="log_loss"))
    assert not rose.passed and rose.message == "log_loss 0.31 against baseline 0.3: worse (no interval on both sides, so any drop counts)"
    assert evaluate(lower_is_better, {"log_loss": 0.29}, {}, baseline(0.3, metric="log_loss")).passed


def test_a_metric_whose_better_direction_is_unknown_cannot_be_compared():
    check = QualityCheck("uplift", no_worse_than_baseline=True)
    outcome = evaluate(check, {"uplift": 3.0}, {}, baseline(2.0, metric="uplift"))
    assert not outcome.passed
    assert outcome.message.startswith("cannot tell whether uplift got worse: its better direction is unknown (known: accuracy")


def test_all_conditions_of_one_check_are_reported():
    check = QualityCheck("roc_auc", min=0.95, no_worse_than_baseline=True)
    outcome = evaluate(check, {"roc_auc": 0.9}, {}, baseline(0.93))
    assert outcome.message == ("roc_auc 0.9 is below min 0.95; "
                               "roc_auc 0.9 against baseline 0.93: worse (no interval on both sides, so any drop counts)")


# --- recording and showing them ----------------------------------------------------------------------------------------

def outcome(name: str, passed: bool, blocking: bool, message: str) -> CheckOutcome:
    return CheckOutcome(name=name, metric="roc_auc", passed=passed, blocking=blocking, value=0.8, min=0.9, max=None,
                        baseline=None, baseline_run_id=None, message=message)


CHECKED = [outcome("roc_auc_min", False, True, "roc_auc 0.8 is below min 0.9"),
           outcome("roc_auc_max", False, False, "roc_auc 0.8 is above max 0.5"),
           outcome("roc_auc_vs_baseline", True, False, "no baseline (first run): nothing to compare with, passes")]


def run_with_checks(executed: Path) -> RunResults:
    executed.write_text(notebook_json("print(1)"))
    notebook = NotebookResult(notebook="notebooks/train-model.ipynb", name="train_model", status="failed",
                              metrics={"roc_auc": 0.8, "val/loss": math.nan}, executed_notebook=executed,
                              error="blocking check failed: roc_auc_min (roc_auc 0.8 is below min 0.9)", checks=CHECKED)
    return RunResults(status="failed", started_at="2026-01-01T00:00:00+00:00", finished_at="2026-01-01T00:01:00+00:00",
                      commit_sha="a" * 40, branch="feature", notebooks=[notebook])


def test_results_json_keeps_every_check_outcome(tmp_path: Path):
    written = write_results(tmp_path / "out", run_with_checks(tmp_path / "executed.ipynb"))
    data = json.loads((tmp_path / "out/results.json").read_text())
    assert data["notebooks"][0]["checks"][0] == {
        "name": "roc_auc_min", "metric": "roc_auc", "passed": False, "blocking": True, "value": 0.8, "min": 0.9,
        "max": None, "baseline": None, "baseline_run_id": None, "message": "roc_auc 0.8 is below min 0.9"}
    assert load_results(written.directory).notebooks[0].checks == CHECKED


def test_a_results_folder_written_before_checks_reads_as_none(tmp_path: Path):
    write_results(tmp_path / "out", run_with_checks(tmp_path / "executed.ipynb"))
    file = tmp_path / "out/results.json"
    data = json.loads(file.read_text())
    del data["notebooks"][0]["checks"]
    file.write_text(json.dumps(data))
    assert load_results(tmp_path / "out").notebooks[0].checks == []


@pytest.mark.parametrize(("change", "expected"), [
    (lambda check: check.pop("passed"), "notebooks[0].checks[0]: required key 'passed' is missing"),
    (lambda check: check.update(blocking="yes"), "notebooks[0].checks[0].blocking: expected true or false, got 'yes'"),
    (lambda check: check.update(value="0.8"), "notebooks[0].checks[0].value: expected null or a number, got '0.8'"),
])
def test_a_bad_check_outcome_in_results_json_is_named(tmp_path: Path, change, expected):
    write_results(tmp_path / "out", run_with_checks(tmp_path / "executed.ipynb"))
    file = tmp_path / "out/results.json"
    data = json.loads(file.read_text())
    change(data["notebooks"][0]["checks"][0])
    file.write_text(json.dumps(data))
    with pytest.raises(ResultsError, match=re.escape(f"{file}: {expected}")):
        load_results(tmp_path / "out")


def test_the_metrics_report_is_openmetrics_text_with_sanitized_names(tmp_path: Path):
    write_results(tmp_path / "out", run_with_checks(tmp_path / "executed.ipynb"))
    report = (tmp_path / "out/metrics.txt").read_text()
    lines = report.splitlines()
    assert lines[-1] == "# EOF" and report.endswith("\n")
    assert [line for line in lines[:-1] if not OPENMETRICS_LINE.fullmatch(line)] == []
    values = dict(line.split(" ") for line in lines[:-1] if not line.startswith("#"))
    assert values == {"train_model_roc_auc": "0.8", "train_model_val_loss": "NaN",
                      "train_model_check_roc_auc_min_passed": "0.0", "train_model_check_roc_auc_max_passed": "0.0",
                      "train_model_check_roc_auc_vs_baseline_passed": "1.0"}
    # Every sample has its TYPE line right before it.
    assert all(lines[i] == f"# TYPE {lines[i + 1].split(' ')[0]} gauge" for i in range(0, len(lines) - 1, 2))


def test_names_made_alike_by_sanitizing_stay_apart():
    report = metrics_report([("1st", {"a.b": 1.0, "a-b": 2.0, "big": math.inf}, [])])
    assert report.splitlines() == ["# TYPE nb_1st_a_b gauge", "nb_1st_a_b 1.0", "# TYPE nb_1st_a_b_2 gauge", "nb_1st_a_b_2 2.0",
                                   "# TYPE nb_1st_big gauge", "nb_1st_big +Inf", "# EOF"]


def test_the_merge_request_comment_shows_each_check(tmp_path: Path):
    body = render_mr_comment(run_with_checks(tmp_path / "executed.ipynb"), default_branch="main")
    assert "**Failed its blocking quality checks** (the notebook itself ran)." in body
    assert "| quality check | result | details |" in body
    assert "| `roc_auc_min` | ❌ failed (blocking) | roc\\_auc 0.8 is below min 0.9 |" in body
    assert "| `roc_auc_max` | ⚠️ warning (non-blocking) | roc\\_auc 0.8 is above max 0.5 |" in body
    assert "| `roc_auc_vs_baseline` | ✅ passed | no baseline \\(first run\\): nothing to compare with, passes |" in body
    # No failing cell is made up for a notebook that ran through.
    assert "failing cell" not in body
