"""The merge-request comment: this commit's notebook results against the default branch, and earlier commits.

One comment per merge request, found again by ``MR_MARKER`` and updated in place. Each update carries
the previous comment's results into a collapsed history (newest first, ``HISTORY_LIMIT`` commits), read
back from the comment's hidden data block.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ds_pipelines.masking import Masker
from ds_pipelines.publishing.render import datablock
from ds_pipelines.publishing.render.escape import (
    md_code,
    md_identifier,
    md_image,
    md_link,
    md_text,
)
from ds_pipelines.publishing.render.failure import Failure, describe_failure
from ds_pipelines.publishing.render.links import Links
from ds_pipelines.publishing.render.numbers import (
    format_delta,
    format_duration,
    format_time,
    format_uncertain,
    format_value,
    key_metrics,
    ordered_metrics,
    short_sha,
)
from ds_pipelines.publishing.render.reproducibility import details_block
from ds_pipelines.publishing.render.safe import SafeText
from ds_pipelines.results.checks import CheckOutcome, blocking_failures
from ds_pipelines.results.folder import NotebookResult, RunResults
from ds_pipelines.results.uncertainty import (
    RULE,
    WITHIN_NOISE,
    Interval,
    UncertaintyError,
    checked,
    classify,
)
from ds_pipelines.tracking.baselines import Baseline

MR_MARKER = "<!-- ds-pipelines:metrics -->"
DATA_KIND = "mr-comment"
HISTORY_LIMIT = 10
HISTORY_METRICS = 8
"""Metrics kept per notebook in the history (the key ones), so the comment stays small."""
STATUS_ICONS = {"success": "✅", "failed": "❌", "not-run": "⏭️"}
CHECK_STATUS = {"passed": "✅ passed", "failed": "❌ failed (blocking)", "warning": "⚠️ warning (non-blocking)"}
SOURCE_LINES = 20


def render_mr_comment(
    results: RunResults,
    *,
    default_branch: str,
    baselines: Mapping[str, Baseline | None] | None = None,
    links: Links | None = None,
    plots: Mapping[str, Mapping[str, str]] | None = None,
    previous_body: str | None = None,
    failures: Mapping[str, Failure] | None = None,
    masker: Masker | None = None,
    history_limit: int = HISTORY_LIMIT,
) -> str:
    """The markdown of the merge-request comment.

    ``baselines``: notebook name to its baseline (None or absent: "no baseline yet").
    ``plots``: notebook name to {plot name: markdown image} as GitLab's upload answered.
    ``previous_body``: the comment this one replaces (its results move into the history).
    ``failures``: failed notebooks' cells and errors as read from their executed notebooks (else results.json's).
    """
    safe = SafeText(masker)
    links = links or Links()
    baselines = baselines or {}
    plots = plots or {}
    failures = failures or {}
    current = _summary(results, safe)
    history = _history(previous_body, current, history_limit)

    parts = [MR_MARKER, _heading(results, links), _intro(results, default_branch, links)]
    for nb in results.notebooks:
        parts.append(_notebook_section(nb, baselines.get(nb.name), default_branch, links, plots.get(nb.name, {}),
                                       failures.get(nb.name) or describe_failure(nb), safe))
    if history:
        parts.append(history_section(history))
    parts.append(datablock.embed(DATA_KIND, {"version": 1, "current": current, "history": history}))
    return "\n\n".join(part for part in parts if part) + "\n"


def previous_history(body: str | None) -> list[dict[str, Any]]:
    """The results a previous comment recorded, newest first (its current commit, then its history)."""
    data = datablock.extract(DATA_KIND, body)
    if not isinstance(data, dict):
        return []
    history = data.get("history")
    entries = [data.get("current"), *(history if isinstance(history, list) else [])]
    return [entry for entry in entries if _valid_entry(entry)]


def _summary(results: RunResults, safe: SafeText) -> dict[str, Any]:
    return {
        "commit": results.commit_sha or "",
        "finished_at": results.finished_at,
        "status": results.status,
        "notebooks": [
            {
                "name": safe.masked(nb.name),
                "status": nb.status,
                "metrics": {safe.masked(k): v for k, v in key_metrics(nb.metrics, limit=HISTORY_METRICS).items()},
            }
            for nb in results.notebooks
        ],
    }


def _history(previous_body: str | None, current: dict[str, Any], limit: int) -> list[dict[str, Any]]:
    history, seen = [], {current["commit"]}
    for entry in previous_history(previous_body):
        # A re-run of the same commit replaces its results instead of adding a row.
        if entry["commit"] in seen:
            continue
        seen.add(entry["commit"])
        history.append(entry)
    return history[:limit]


def _valid_entry(entry: Any) -> bool:
    if not isinstance(entry, dict) or not all(isinstance(entry.get(k), str) for k in ("commit", "finished_at", "status")):
        return False
    notebooks = entry.get("notebooks")
    return isinstance(notebooks, list) and all(
        isinstance(nb, dict) and isinstance(nb.get("name"), str) and isinstance(nb.get("status"), str)
        and isinstance(nb.get("metrics"), dict)
        and all(isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) for k, v in nb["metrics"].items())
        for nb in notebooks
    )


def _heading(results: RunResults, links: Links) -> str:
    commit = md_identifier(short_sha(results.commit_sha), links.commit) if results.commit_sha else "this run"
    return f"## {STATUS_ICONS.get(results.status, '')} Notebook results for {commit}"


def _intro(results: RunResults, default_branch: str, links: Links) -> str:
    total = len(results.notebooks)
    failed = len(results.failed)
    if not total:
        outcome = "No notebook ran."
    elif failed:
        outcome = f"{failed} of {total} notebook{'s' if total > 1 else ''} failed."
    else:
        outcome = f"{'All ' + str(total) + ' notebooks' if total > 1 else 'The notebook'} succeeded."
    compared = f"Metrics are compared with the latest successful run on {md_code(default_branch, in_table=False)}."
    run_links = " · ".join(md_link(label, url) for label, url in (("Pipeline", links.pipeline), ("Job", links.job)) if url)
    return "\n".join(line for line in (f"{outcome} {compared}", run_links) if line)


def _notebook_section(
    nb: NotebookResult, baseline: Baseline | None, default_branch: str, links: Links, plots: Mapping[str, str],
    failure: Failure, safe: SafeText,
) -> str:
    icon = STATUS_ICONS.get(nb.status, "")
    name = safe.code(nb.name, in_table=False)
    if nb.status == "not-run":
        return f"### {icon} {name} did not run (an earlier notebook failed)"
    verb = "succeeded in" if nb.status == "success" else "failed after"
    lines = [f"### {icon} {name} {verb} {format_duration(nb.duration_s)}"]
    if nb.status == "failed" and blocking_failures(nb.checks):
        lines.append("**Failed its blocking quality checks** (the notebook itself ran).")
    elif nb.status == "failed":
        lines.append(_failure(failure, safe))
    if nb.metrics:
        lines.append(_metrics_table(nb.metrics, nb.uncertainty, baseline, default_branch, safe))
    if nb.checks:
        lines.append(_checks_table(nb.checks, safe))
    notebook_links = " · ".join(md_link(label, url) for label, url in links.of_notebook(nb.name))
    if notebook_links:
        lines.append(notebook_links)
    record = details_block(nb.reproducibility, safe, results_url=links.results_file)
    if record:
        lines.append(record)
    if plots:
        lines.append(" ".join(md_image(markdown, fallback_label=safe.masked(plot)) for plot, markdown in plots.items()))
    return "\n\n".join(lines)


def _failure(failure: Failure, safe: SafeText) -> str:
    cell = f"code cell {failure.cell}" if failure.cell else "unknown cell"
    text = [f"**Notebook:** {safe.code(failure.notebook, in_table=False)} · **failing cell:** {cell}  ", f"**Error:** {safe.md(failure.error, limit=500)}"]
    if failure.source:
        text.append("\n" + safe.block(failure.source, language="python", max_lines=SOURCE_LINES))
    return "\n".join(text)


def _metrics_table(metrics: Mapping[str, float], uncertainty: Mapping[str, Interval], baseline: Baseline | None,
                   default_branch: str, safe: SafeText) -> str:
    header = f"| metric | this commit | baseline ({md_code(default_branch)}) | Δ |"
    rows = [header, "|:--|--:|--:|--:|"]
    names = ordered_metrics(list(metrics) + (list(baseline.metrics) if baseline else []))
    base_uncertainty = _baseline_intervals(baseline)
    for name in names:
        current = metrics.get(name)
        interval = uncertainty.get(name)
        if baseline is None:
            base_cell, delta = "no baseline yet", "—"
        else:
            previous = baseline.metrics.get(name)
            base_interval = base_uncertainty.get(name)
            base_cell = format_uncertain(previous, base_interval.half_width if base_interval else None)
            if current is None:
                delta = "removed"
            elif previous is None:
                delta = "new"
            else:
                delta = _classed_delta(format_delta(current, previous), classify(name, interval, base_interval))
        rows.append(f"| {safe.code(name)} | {format_uncertain(current, interval.half_width if interval else None)} | {base_cell} | {delta} |")
    note = (
        f"Baseline: MLflow run {md_code(baseline.run_id, in_table=False)}"  # a code span: copied whole, never linked
        + (f", commit {md_code(short_sha(baseline.commit_sha), in_table=False)}" if baseline.commit_sha else "")
        + (f", {md_text(baseline.started_at)}" if baseline.started_at else "")
        + "."
        if baseline
        else f"No baseline yet: no successful run on {md_code(default_branch, in_table=False)} in this notebook's MLflow experiment."
    )
    legend = _legend(uncertainty, base_uncertainty, baseline is not None, safe)
    return "\n".join(rows) + "\n\n" + note + (f"  \n{legend}" if legend else "")


def _checks_table(outcomes: list[CheckOutcome], safe: SafeText) -> str:
    """Each quality check of ``configs/notebooks.yaml``: passed, failed (blocking) or a warning, and why."""
    rows = ["| quality check | result | details |", "|:--|:--|:--|"]
    rows += [f"| {safe.code(outcome.name)} | {CHECK_STATUS[outcome.status]} | {safe.md(outcome.message, limit=300)} |"
             for outcome in outcomes]
    return "\n".join(rows)


def _baseline_intervals(baseline: Baseline | None) -> dict[str, Interval]:
    """The baseline's intervals; ones its MLflow tags hold in a form this version cannot read are left out
    (their deltas stay plain)."""
    intervals = {}
    for name, value in (baseline.uncertainty if baseline else {}).items():
        try:
            intervals.update(checked({name: value}, baseline.metrics, f"baseline run {baseline.run_id}"))
        except UncertaintyError:
            continue
    return intervals


def _classed_delta(delta: str, verdict: str | None) -> str:
    if verdict is None:
        return delta
    return f"{delta} {verdict}" if verdict == WITHIN_NOISE else f"{delta} **{verdict}**"


def _legend(current: Mapping[str, Interval], baseline: Mapping[str, Interval], compared: bool, safe: SafeText) -> str:
    """What ± means and the rule the Δ column follows; nothing when no metric has an interval."""
    intervals = {**baseline, **current}
    if not intervals:
        return ""
    kinds: dict[str, list[str]] = {}
    for name, interval in intervals.items():
        kinds.setdefault(interval.kind, []).append(name)
    what = "; ".join(f"{safe.md(kind, limit=80)} for {', '.join(safe.code(name, in_table=False) for name in names)}"
                     for kind, names in kinds.items())
    line = f"± is half the width of the metric's interval ({what})."
    if not compared:
        return line
    if not baseline:
        return line + " The baseline has no intervals (it ran before they were recorded): Δ is a plain difference."
    return line + f" Δ: {RULE}."


def history_section(history: list[dict[str, Any]]) -> str:
    """The collapsed table of earlier commits' results (``previous_history``'s entries)."""
    rows = ["| commit | finished | notebook | status | metrics |", "|:--|:--|:--|:--|:--|"]
    for entry in history:
        for nb in entry["notebooks"] or [{"name": "—", "status": entry["status"], "metrics": {}}]:
            metrics = ", ".join(f"{md_text(name)} {format_value(value)}" for name, value in nb["metrics"].items())
            rows.append(
                f"| {md_code(short_sha(entry['commit']))} | {md_text(format_time(entry['finished_at']))} | {md_code(nb['name'])} "
                f"| {STATUS_ICONS.get(nb['status'], '')} {md_text(nb['status'])} | {metrics or '—'} |"
            )
    count = len(history)
    summary = f"Earlier commits in this merge request ({count})"
    return f"<details><summary>{summary}</summary>\n\n" + "\n".join(rows) + "\n\n</details>"
