"""A plan explained (``triggers.explain``), its merge-request comment (``publishing.render.plan``) and the
durations it expects, read from the CI jobs of the GitLab API served on 127.0.0.1 (``gitlab.jobs``)."""

from __future__ import annotations

import pytest
from gitrepo import INFERENCE, TRAINING

from ds_pipelines.gitlab import GitLabClient, GitLabSettings
from ds_pipelines.gitlab.jobs import successful_job_durations
from ds_pipelines.project import NotebookSpec
from ds_pipelines.publishing.render import datablock
from ds_pipelines.publishing.render.comment import (
    DATA_KIND,
    MR_MARKER,
    previous_history,
)
from ds_pipelines.publishing.render.plan import render_plan_comment
from ds_pipelines.triggers.child_pipeline import Runners
from ds_pipelines.triggers.explain import NO_EARLIER_RUN, duration_text, explain
from ds_pipelines.triggers.rules import (
    DRY_RUN_REASON,
    MODIFIED,
    OVERRIDE,
    SCHEDULED,
    Plan,
    PlannedNotebook,
)

REPORT = "notebooks/report.ipynb"
SPECS = [
    NotebookSpec(TRAINING, config="configs/training_config.yaml", device="gpu"),
    NotebookSpec(INFERENCE, config="configs/inference_config.yaml", after=(TRAINING,)),
    NotebookSpec(REPORT),
]
RUNNERS = Runners(gpu="gpu-runner", cpu=None, light="light")


def dry_run(*planned: PlannedNotebook) -> Plan:
    return Plan(skip_reason=DRY_RUN_REASON, dry_run=True, would_run=planned)


def test_each_notebook_says_whether_it_runs_why_where_and_for_how_long():
    plan = dry_run(PlannedNotebook(TRAINING, MODIFIED), PlannedNotebook(REPORT, OVERRIDE))
    durations = {"run-training_example": [100.0, 300.0, 200.0], "run-report": []}

    explanation = explain(plan, SPECS, RUNNERS, durations, "from CI")

    lines = {line.notebook: line for line in explanation.lines}
    # The planned ones first, in the plan's order, then the rest.
    assert [line.notebook for line in explanation.lines] == [TRAINING, REPORT, INFERENCE]
    training, report, inference = lines[TRAINING], lines[REPORT], lines[INFERENCE]
    assert (training.runs, training.why, training.runner) == (True, "the notebook changed (modified)", "GPU runner (tag gpu-runner)")
    assert (training.expected_s, training.expected) == (200.0, "about 3 min 20 s (median of the last 3 successful runs)")
    assert (report.why, report.runner) == (f"[run {REPORT}] in the commit message (override)", "CPU runner (no tag: any untagged runner)")
    assert (report.expected_s, report.expected) == (None, NO_EARLIER_RUN)
    assert not inference.runs and inference.expected == "—"
    assert inference.why == (f"neither the notebook nor its config configs/inference_config.yaml changed, and no "
                             f"[run {INFERENCE}] in the commit message")
    assert explanation.summary == "Dry run ([plan] in the commit message): nothing executes; without [plan], 2 notebooks would run."
    assert explanation.expected_total_s is None  # the report has no earlier run: no total to give
    text = explanation.to_text()
    assert f"  {TRAINING}  [would run]" in text and f"  {INFERENCE}  [not run]" in text
    assert "expected: about 3 min 20 s" in text and text.endswith("Durations: from CI.")
    assert explanation.to_dict()["notebooks"][0]["expected_s"] == 200.0


def test_a_total_when_every_running_notebook_has_run_before():
    plan = Plan((PlannedNotebook(TRAINING, MODIFIED), PlannedNotebook(INFERENCE, OVERRIDE)))
    durations = {"run-training_example": [60.0], "run-inference_example": [30.0, 50.0]}
    explanation = explain(plan, SPECS, RUNNERS, durations)
    assert explanation.expected_total_s == 100.0
    assert explanation.summary == "2 notebooks run, in this order."
    assert "Expected runner time in all: 1 min 40 s." in explanation.to_text()
    assert [line.expected for line in explanation.lines if line.runs] == [
        "about 1 min 00 s (median of the last 1 successful run)", "about 40 s (median of the last 2 successful runs)"]


def test_without_durations_the_explanation_says_why():
    explanation = explain(Plan((PlannedNotebook(TRAINING, MODIFIED),)), SPECS, RUNNERS, None, "not read: no GitLab")
    assert explanation.lines[0].expected == "unknown (earlier runs not read)"
    assert explanation.to_text().endswith("Durations: not read: no GitLab.")


@pytest.mark.parametrize(("plan", "why"), [
    (Plan(skip_reason="[skip run] in the commit message"), "[skip run] in the commit message"),
    (Plan((PlannedNotebook(INFERENCE, SCHEDULED),)), "a schedule runs the scoring notebook only"),
])
def test_a_notebook_that_does_not_run_names_the_rule(plan, why):
    lines = {line.notebook: line for line in explain(plan, SPECS, RUNNERS, {}).lines}
    assert lines[TRAINING].why == why and not lines[TRAINING].runs


def test_duration_text():
    assert [duration_text(s) for s in (4.4, 59.6, 61, 3600 + 120)] == ["4 s", "60 s", "1 min 01 s", "1 h 02 min"]


def test_the_plan_comment_lists_the_plan_and_keeps_the_results_history():
    earlier = {"commit": "a" * 40, "finished_at": "2026-11-30T10:00:00+00:00", "status": "success",
               "notebooks": [{"name": "training_example", "status": "success", "metrics": {"roc_auc": 0.97}}]}
    previous = f"{MR_MARKER}\n\nold results\n\n" + datablock.embed(DATA_KIND, {"version": 1, "current": earlier, "history": []})
    # A runner tag is a CI variable: text, never markup or a mention.
    runners = Runners(gpu="gpu|@all", cpu=None)
    explanation = explain(dry_run(PlannedNotebook(TRAINING, MODIFIED)), SPECS, runners, {"run-training_example": [90.0]}, "from CI")

    body = render_plan_comment(explanation.lines, summary=explanation.summary, durations_note=explanation.durations_note,
                               expected_total="1 min 30 s", commit_sha="b" * 40, commit_url="https://gitlab.example.com/c",
                               pipeline_url="https://gitlab.example.com/p", previous_body=previous)

    assert body.startswith(MR_MARKER + "\n\n## 🗺️ Plan for [bbbbbbbb](https://gitlab.example.com/c): dry run, nothing executed")
    rows = [line for line in body.splitlines() if line.startswith("| `notebooks/")]
    assert len(rows) == 3
    # Markdown escapes (parentheses, pipes) render as the plain text.
    assert rows[0] == (f"| `{TRAINING}` | ▶️ would run | the notebook changed \\(modified\\) | GPU runner \\(tag gpu\\|@\u200ball\\) "
                       "| about 1 min 30 s \\(median of the last 1 successful run\\) |")
    assert "@all" not in body
    assert rows[1].startswith(f"| `{INFERENCE}` | ⏭️ not run |") and rows[1].endswith("| — | — |")
    assert "Expected runner time in all: 1 min 30 s." in body and "[Pipeline](https://gitlab.example.com/p)" in body
    # The results the comment showed stay, collapsed and in its data, for the next real run's comment.
    assert "Earlier commits in this merge request (1)" in body and "old results" not in body
    assert previous_history(body) == [earlier]


def test_a_first_plan_comment_has_no_history():
    explanation = explain(dry_run(), SPECS, RUNNERS, {})
    body = render_plan_comment(explanation.lines, summary=explanation.summary, durations_note="x")
    assert explanation.summary == ("Dry run ([plan] in the commit message): nothing executes; without [plan], nothing "
                                   "would run either (no notebook or notebook config changed).")
    assert body.count("⏭️ not run") == 3 and "would run |" not in body
    assert "Earlier commits" not in body and "ds-pipelines:data" not in body and "Expected durations" not in body


def test_durations_are_the_latest_successful_jobs_of_each_name(fake_gitlab):
    for seconds in (10, 20, 30, 40, 50, 60, 70):
        fake_gitlab.add_job("run-training_example", duration=seconds)
    fake_gitlab.add_job("run-training_example", status="failed", duration=999)
    fake_gitlab.add_job("run-inference_example", duration=5.5)
    fake_gitlab.add_job("detect-notebooks", duration=3)
    fake_gitlab.max_per_page = 2  # several pages
    client = GitLabClient(GitLabSettings(fake_gitlab.url, str(fake_gitlab.project_id), fake_gitlab.token))

    found = successful_job_durations(client, ["run-training_example", "run-inference_example", "run-report"])

    # Newest first, five at most; the failed run (the newest) is not among them.
    assert found == {"run-training_example": [70.0, 60.0, 50.0, 40.0, 30.0], "run-inference_example": [5.5], "run-report": []}
    # Reading stops at the scan limit: only the newest jobs count.
    assert successful_job_durations(client, ["run-training_example"], scan_limit=3) == {"run-training_example": [70.0]}
    assert successful_job_durations(client, ["run-training_example"], scan_limit=2) == {"run-training_example": []}
    assert successful_job_durations(client, ["run-inference_example"], scan_limit=2) == {"run-inference_example": [5.5]}
    assert successful_job_durations(client, []) == {}
