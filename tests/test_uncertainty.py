"""Metric uncertainty: the seeded bootstrap and the fold spread (examples.uncertainty), the noise rule
(results.uncertainty), uncertainties in results.json and MLflow tags, and how the merge-request comment shows them."""

from __future__ import annotations

import json

import numpy as np
import pytest
from published import Rendered
from sklearn import metrics as skm
from sklearn.datasets import load_breast_cancer
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import train_test_split

from ds_pipelines.examples import uncertainty as uncx
from ds_pipelines.publishing.render.comment import render_mr_comment
from ds_pipelines.publishing.render.wiki import render_wiki_pages
from ds_pipelines.results.folder import (
    NotebookResult,
    ResultsError,
    RunResults,
    load_results,
    write_results,
)
from ds_pipelines.results.origin import Provenance
from ds_pipelines.results.uncertainty import (
    BETTER,
    WITHIN_NOISE,
    WORSE,
    Interval,
    UncertaintyError,
    checked,
    classify,
)
from ds_pipelines.tracking.baselines import Baseline
from ds_pipelines.tracking.uncertainty import uncertainty_from_tags, uncertainty_tags


@pytest.fixture(scope="module")
def held_out():
    """A real classifier's probabilities on the breast-cancer data's held-out quarter."""
    data = load_breast_cancer()
    X_train, X_test, y_train, y_test = train_test_split(data.data, data.target, test_size=0.25, random_state=7, stratify=data.target)
    model = LogisticRegression(max_iter=5000).fit(X_train, y_train)
    return y_test, model.predict_proba(X_test)[:, 1]


def test_the_bootstrap_is_deterministic_for_a_seed_and_contains_the_point_estimate(held_out):
    y, p = held_out
    first = uncx.bootstrap_intervals(y, p, uncx.BINARY_METRICS, seed=42)
    assert first == uncx.bootstrap_intervals(y, p, uncx.BINARY_METRICS, seed=42)
    assert first != uncx.bootstrap_intervals(y, p, uncx.BINARY_METRICS, seed=43)
    for name, metric in uncx.BINARY_METRICS.items():
        interval = first[name]
        assert interval.kind == "bootstrap 95%"
        assert interval.low <= metric(y, p) <= interval.high, name
    assert first["log_loss"].high > first["log_loss"].low  # a real spread, not a point


def test_the_bootstraps_metrics_equal_scikit_learns(held_out):
    y, p = held_out
    predicted = (p >= 0.5).astype(int)
    expected = {
        "roc_auc": skm.roc_auc_score(y, p), "accuracy": skm.accuracy_score(y, predicted),
        "precision": skm.precision_score(y, predicted, zero_division=0), "recall": skm.recall_score(y, predicted, zero_division=0),
        "f1": skm.f1_score(y, predicted, zero_division=0), "log_loss": skm.log_loss(y, p),
    }
    assert {name: pytest.approx(value, abs=1e-12) for name, value in expected.items()} == {
        name: metric(y, p) for name, metric in uncx.BINARY_METRICS.items()}
    with pytest.raises(ValueError):
        uncx.roc_auc(np.ones(5, dtype=int), p[:5])


def test_the_fold_spread_is_the_mean_plus_minus_one_standard_deviation():
    interval = uncx.fold_spread([0.97, 0.99, 0.98])
    assert interval.kind == "CV fold ±1 sd"
    assert (interval.low, interval.high) == (pytest.approx(0.97), pytest.approx(0.99))
    with pytest.raises(UncertaintyError, match="at least 2 fold scores"):
        uncx.fold_spread([0.9])


@pytest.mark.parametrize(("metric", "current", "baseline", "expected"), [
    ("roc_auc", (0.95, 0.97), (0.90, 0.92), BETTER),  # clear gain
    ("roc_auc", (0.88, 0.90), (0.93, 0.95), WORSE),  # clear loss
    ("roc_auc", (0.93, 0.96), (0.94, 0.97), WITHIN_NOISE),  # overlap, although the value dropped
    ("log_loss", (0.10, 0.12), (0.20, 0.25), BETTER),  # lower is better
    ("cv_roc_auc", (0.80, 0.82), (0.90, 0.92), WORSE),  # a CV metric goes the way its metric does
    ("tuning_seconds", (50, 60), (10, 12), None),  # no better direction: a plain delta
])
def test_the_noise_rule_classifies_gains_losses_and_overlaps(metric, current, baseline, expected):
    assert classify(metric, Interval(*current, "bootstrap 95%"), Interval(*baseline, "bootstrap 95%")) == expected


def test_without_an_interval_on_either_side_the_delta_is_plain():
    interval = Interval(0.9, 0.95, "bootstrap 95%")
    assert classify("roc_auc", interval, None) is None
    assert classify("roc_auc", None, interval) is None


@pytest.mark.parametrize(("uncertainty", "message"), [
    ({"auc": (0.9, 0.95, "bootstrap 95%")}, "no metric 'auc' is reported"),
    ({"roc_auc": (0.95, 0.9, "bootstrap 95%")}, "low 0.95 is above high 0.9"),
    ({"roc_auc": (0.9, 0.95)}, r"expected \(low, high, kind\)"),
    ({"roc_auc": (0.9, float("nan"), "bootstrap 95%")}, "expected finite numbers"),
    ({"roc_auc": (0.9, 0.95, " ")}, "expected a kind naming the interval"),
])
def test_a_wrong_uncertainty_is_an_error_naming_the_metric(uncertainty, message):
    with pytest.raises(UncertaintyError, match=message) as raised:
        checked(uncertainty, {"roc_auc": 0.93}, "dsp.report")
    assert str(raised.value).startswith("dsp.report: uncertainty[")


def notebook(**changes) -> NotebookResult:
    values = dict(notebook="notebooks/training_example.ipynb", name="training_example", status="success", duration_s=12.0,
                  mlflow_run_id="run1", metrics={"roc_auc": 0.95, "log_loss": 0.2, "n_trials": 4.0},
                  uncertainty={"roc_auc": Interval(0.93, 0.97, "bootstrap 95%"), "log_loss": Interval(0.15, 0.25, "bootstrap 95%")})
    values.update(changes)
    return NotebookResult(**values)


def run(*notebooks: NotebookResult) -> RunResults:
    return RunResults(status="success", started_at="2026-01-01T10:00:00+00:00", finished_at="2026-01-01T10:01:00+00:00",
                      commit_sha="a" * 40, branch="feature", notebooks=list(notebooks))


def test_uncertainties_go_through_results_json_and_a_wrong_one_names_the_key(tmp_path):
    written = write_results(tmp_path / "results", run(notebook()))
    assert load_results(written.directory).notebook("training_example").uncertainty == notebook().uncertainty
    file = tmp_path / "results" / "results.json"
    data = json.loads(file.read_text())
    data["notebooks"][0]["uncertainty"]["roc_auc"]["low"] = "low"
    file.write_text(json.dumps(data))
    with pytest.raises(ResultsError, match=r"results\.json: notebooks\[0\]: uncertainty\['roc_auc'\]: expected finite numbers"):
        load_results(tmp_path / "results")


def test_uncertainties_go_through_mlflow_tags_and_a_broken_tag_is_left_out():
    intervals = {name: interval.to_dict() for name, interval in notebook().uncertainty.items()}
    tags = uncertainty_tags(intervals)
    assert uncertainty_from_tags({**tags, "ds-pipelines.uncertainty.f1": "{not json", "ds-pipelines.commit": "abc"}) == intervals


def baseline(metrics, uncertainty=None) -> Baseline:
    return Baseline(run_id="base1", metrics=metrics, branch="main",
                    uncertainty={name: interval.to_dict() for name, interval in (uncertainty or {}).items()})


def comment_table(nb: NotebookResult, base: Baseline | None) -> tuple[list[list[str]], str]:
    body = render_mr_comment(run(nb), default_branch="main", baselines={"training_example": base})
    return Rendered(body).tables[0], body


def test_the_comment_shows_value_plus_minus_uncertainty_and_classes_each_delta():
    base = baseline({"roc_auc": 0.952, "log_loss": 0.4, "n_trials": 4.0},
                    {"roc_auc": Interval(0.93, 0.97, "bootstrap 95%"), "log_loss": Interval(0.35, 0.45, "bootstrap 95%")})
    table, body = comment_table(notebook(), base)
    rows = {row[0]: row[1:] for row in table[1:]}
    assert rows["roc_auc"] == ["0.95 ± 0.02", "0.952 ± 0.02", "-0.002 ≈ within noise"]
    assert rows["log_loss"] == ["0.2 ± 0.05", "0.4 ± 0.05", "-0.2 better"]
    assert "**better**" in body
    assert rows["n_trials"] == ["4", "4", "0"]  # no interval: a plain delta
    assert "± is half the width of the metric's interval (bootstrap 95% for `roc_auc`, `log_loss`)." in body
    assert "better or worse only when the two intervals do not overlap, ≈ within noise when they do" in body


def test_a_clear_loss_is_worse():
    base = baseline({"roc_auc": 0.99}, {"roc_auc": Interval(0.98, 1.0, "bootstrap 95%")})
    table, body = comment_table(notebook(), base)
    assert table[1] == ["roc_auc", "0.95 ± 0.02", "0.99 ± 0.01", "-0.04 worse"]
    assert "-0.04 **worse**" in body


def test_a_baseline_without_intervals_gets_plain_deltas_and_says_so():
    table, body = comment_table(notebook(), baseline({"roc_auc": 0.99, "log_loss": 0.4}))
    assert table[1] == ["roc_auc", "0.95 ± 0.02", "0.99", "-0.04"]
    assert "The baseline has no intervals (it ran before they were recorded): Δ is a plain difference." in body


def test_without_any_interval_the_table_is_as_before_and_has_no_legend():
    table, body = comment_table(notebook(uncertainty={}), baseline({"roc_auc": 0.99}))
    assert table[1] == ["roc_auc", "0.95", "0.99", "-0.04"]
    assert "±" not in body


def test_the_wiki_shows_plus_minus_and_classes_each_run_against_the_run_below_it():
    older = run(notebook(dagster_run_id="r1"))
    first = {page.slug: page.content for page in render_wiki_pages(older, origin=Provenance())}
    newer = RunResults(**{**vars(run(notebook(dagster_run_id="r2", metrics={"roc_auc": 0.951, "log_loss": 0.5, "n_trials": 4.0},
                                              uncertainty={"roc_auc": Interval(0.94, 0.96, "bootstrap 95%"),
                                                           "log_loss": Interval(0.45, 0.55, "bootstrap 95%")}))),
                          "finished_at": "2026-01-02T10:01:00+00:00"})
    pages = {page.slug: page.content for page in render_wiki_pages(newer, origin=Provenance(), existing=first)}
    page = pages["model-runs/training_example"]
    header, *rows = Rendered(page).tables[0]
    columns = {name: header.index(name) for name in ("roc_auc", "log_loss")}
    assert [rows[0][columns[name]] for name in columns] == ["0.951 ± 0.01 (≈ within noise)", "0.5 ± 0.05 (worse)"]
    assert [rows[1][columns[name]] for name in columns] == ["0.95 ± 0.02", "0.2 ± 0.05"]  # nothing below it
    assert "each value is classed against the run below it: a delta is better or worse only when" in page
