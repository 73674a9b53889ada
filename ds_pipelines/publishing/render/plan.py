"""The merge-request comment of a dry run (``[plan]``): what the pipeline would run, and nothing ran.

It is the merge request's one comment (``MR_MARKER``), updated in place: the plan replaces the latest
results on display, and the results the comment held stay, collapsed, in its history and its hidden data
block, so the next real run's comment carries them on as if the plan had not been there.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from ds_pipelines.publishing.render import datablock
from ds_pipelines.publishing.render.comment import (
    DATA_KIND,
    MR_MARKER,
    history_section,
    previous_history,
)
from ds_pipelines.publishing.render.escape import (
    md_code,
    md_identifier,
    md_link,
    md_text,
)
from ds_pipelines.publishing.render.numbers import short_sha


class PlanLine(Protocol):
    """One notebook of the plan (``ds_pipelines.triggers.explain.NotebookLine`` is one)."""

    notebook: str
    runs: bool
    why: str
    runner: str
    expected: str


def render_plan_comment(
    lines: Sequence[PlanLine],
    *,
    summary: str,
    durations_note: str,
    expected_total: str | None = None,
    commit_sha: str | None = None,
    commit_url: str | None = None,
    pipeline_url: str | None = None,
    previous_body: str | None = None,
) -> str:
    """The markdown of the comment; ``previous_body``: the comment it replaces (its results are kept)."""
    commit = md_identifier(short_sha(commit_sha), commit_url) if commit_sha else "this commit"
    parts = [MR_MARKER, f"## 🗺️ Plan for {commit}: dry run, nothing executed"]
    intro = [md_text(summary)]
    if pipeline_url:
        intro.append(md_link("Pipeline", pipeline_url))
    parts.append("\n".join(intro))
    rows = ["| notebook | runs | why | runner | expected duration |", "|:--|:--|:--|:--|:--|"]
    for line in lines:
        runs = "▶️ would run" if line.runs else "⏭️ not run"
        rows.append(f"| {md_code(line.notebook)} | {runs} | {md_text(line.why)} | "
                    f"{md_text(line.runner) if line.runs else '—'} | {md_text(line.expected)} |")
    parts.append("\n".join(rows))
    notes = []
    if expected_total:
        notes.append(f"Expected runner time in all: {md_text(expected_total)}.")
    if any(line.runs for line in lines):
        notes.append(f"Expected durations: {md_text(durations_note)}.")
        notes.append("Push again without `[plan]` to run it.")
    if notes:
        parts.append("  \n".join(notes))
    history = previous_history(previous_body)
    if history:
        parts.append(history_section(history))
    kept = datablock.extract(DATA_KIND, previous_body)
    if isinstance(kept, dict):
        parts.append(datablock.embed(DATA_KIND, kept))
    return "\n\n".join(parts) + "\n"
