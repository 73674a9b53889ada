"""The Slack notification of a failed run, as Slack mrkdwn text (for an incoming webhook's ``text``)."""

from __future__ import annotations

from ds_pipelines.publish.context import Links, RunContext
from ds_pipelines.publish.escape import slack_link, slack_text
from ds_pipelines.publish.failure import describe_failure
from ds_pipelines.publish.masking import Masker
from ds_pipelines.publish.numbers import format_duration, short_sha
from ds_pipelines.publish.results import RunResults
from ds_pipelines.publish.safe import SafeText

ERROR_LINES = 1
SOURCE_LINES = 8


def render_slack_failure(
    results: RunResults,
    *,
    links: Links | None = None,
    context: RunContext | None = None,
    project: str | None = None,
    masker: Masker | None = None,
) -> str:
    """Which run failed (project, commit, trigger), and each failed notebook with its cell, error and links."""
    safe = SafeText(masker)
    links = links or Links()
    context = context or RunContext()
    where = " · ".join(
        part
        for part in (
            slack_text(project) if project else "",
            "commit " + slack_link(short_sha(results.commit_sha or context.commit_sha), links.commit)
            if (results.commit_sha or context.commit_sha) else "",
            slack_link(context.trigger, links.merge_request),
        )
        if part
    )
    run_links = " · ".join(slack_link(label, url) for label, url in (("Pipeline", links.pipeline), ("Job", links.job)) if url)
    headline = ":x: *ds-pipelines run failed*" if results.status != "success" else ":white_check_mark: *ds-pipelines run succeeded*"
    lines = [f"{headline} ({where})" if where else headline]
    if run_links:
        lines.append(run_links)
    for nb in results.failed:
        failure = describe_failure(nb)
        cell = f"code cell {failure.cell}" if failure.cell else "an unknown cell"
        lines.append(
            f"*{safe.slack(nb.name)}* ({safe.slack(nb.notebook)}) failed in {cell} after {format_duration(nb.duration_s)}:"
        )
        lines.append(safe.slack_block(failure.error, max_lines=ERROR_LINES))
        if failure.source:
            lines.append(f"Failing cell:\n{safe.slack_block(failure.source, max_lines=SOURCE_LINES)}")
        notebook_links = " · ".join(slack_link(label, url) for label, url in links.of_notebook(nb.name, failed=True))
        if notebook_links:
            lines.append(notebook_links)
    not_run = [nb.name for nb in results.notebooks if nb.status == "not-run"]
    if not_run:
        lines.append("Not run: " + ", ".join(safe.slack(name) for name in not_run))
    return "\n".join(lines)
