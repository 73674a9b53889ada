"""The Slack alert of a failed run, as Slack mrkdwn text: one renderer for both ways a failure is reported.

``ds-pipelines notify slack`` reports a run from its results folder (``alert_from_results``); the Dagster
sensor ``slack_on_run_failure`` reports a failed Dagster run (it builds a ``FailureAlert`` from the run's
events). Either way the text comes from ``render_failure_alert``: every string a notebook controls masked
and escaped, so an error cannot ping ``@channel`` or post a secret.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ds_pipelines.masking import Masker
from ds_pipelines.publishing.render.escape import slack_link, slack_text
from ds_pipelines.publishing.render.failure import Failure, describe_failure
from ds_pipelines.publishing.render.links import Links
from ds_pipelines.publishing.render.numbers import format_duration, short_sha
from ds_pipelines.publishing.render.safe import SafeText
from ds_pipelines.results.folder import RunResults
from ds_pipelines.results.origin import Provenance

ERROR_LINES = 15
"""Lines of error shown per failure; the rest is in the executed notebook or the Dagster UI."""
SOURCE_LINES = 8


@dataclass(frozen=True)
class FailedNotebook:
    """One failed notebook (or Dagster step) of an alert."""

    label: str
    """The notebook's asset name, or the step's key."""
    notebook: str | None = None
    """The notebook's path."""
    cell: int | None = None
    error: str = "unknown error"
    source: str | None = None
    """The failing cell's source."""
    duration_s: float | None = None
    links: Sequence[tuple[str, str]] = ()


@dataclass(frozen=True)
class FailureAlert:
    title: str
    """``ds-pipelines run failed``, ``Dagster run failed``..."""
    succeeded: bool = False
    where: Sequence[tuple[str, str, str | None]] = ()
    """What ran and where, as (prefix, label, link or None): project, commit, trigger; or job and run."""
    links: Sequence[tuple[str, str]] = ()
    """Pages of the run: pipeline, job, commit, merge request."""
    failures: Sequence[FailedNotebook] = ()
    not_run: Sequence[str] = ()
    """Notebooks that did not run because an earlier one failed."""


def render_failure_alert(alert: FailureAlert, *, masker: Masker | None = None) -> str:
    """The alert as Slack mrkdwn: headline, links, then each failure with its cell, error and links."""
    safe = SafeText(masker)
    where = " · ".join(prefix + slack_link(safe.masked(label), url) for prefix, label, url in alert.where)
    icon = ":white_check_mark:" if alert.succeeded else ":x:"
    headline = f"{icon} *{slack_text(alert.title)}*"
    lines = [f"{headline} ({where})" if where else headline]
    run_links = " · ".join(slack_link(label, url) for label, url in alert.links)
    if run_links:
        lines.append(run_links)
    for failure in alert.failures:
        name = f"*{safe.slack(failure.label)}*" + (f" ({safe.slack(failure.notebook)})" if failure.notebook else "")
        cell = f" in code cell {failure.cell}" if failure.cell else ""
        after = f" after {format_duration(failure.duration_s)}" if failure.duration_s is not None else ""
        lines.append(f"{name} failed{cell}{after}:")
        lines.append(safe.slack_block(failure.error, max_lines=ERROR_LINES))
        if failure.source:
            lines.append(f"Failing cell:\n{safe.slack_block(failure.source, max_lines=SOURCE_LINES)}")
        notebook_links = " · ".join(slack_link(label, url) for label, url in failure.links)
        if notebook_links:
            lines.append(notebook_links)
    if alert.not_run:
        lines.append("Not run: " + ", ".join(safe.slack(name) for name in alert.not_run))
    return "\n".join(lines)


def alert_from_results(
    results: RunResults,
    *,
    origin: Provenance,
    links: Links,
    failures: Mapping[str, Failure] | None = None,
    project: str | None = None,
) -> FailureAlert:
    """The alert of a run in a results folder; ``failures`` are the failed notebooks' cells and errors as
    read from their executed notebooks (``publishing.failures``), else what results.json says."""
    failures = failures or {}
    sha = results.commit_sha or origin.commit
    where = [("", project, None)] if project else []
    if sha:
        where.append(("commit ", short_sha(sha), links.commit))
    where.append(("", origin.trigger_label, links.merge_request))
    failed = []
    for nb in results.failed:
        failure = failures.get(nb.name) or describe_failure(nb)
        failed.append(FailedNotebook(
            label=nb.name, notebook=nb.notebook, cell=failure.cell, error=failure.error, source=failure.source,
            duration_s=nb.duration_s, links=links.of_notebook(nb.name, failed=True),
        ))
    succeeded = results.status == "success"
    return FailureAlert(
        title="ds-pipelines run succeeded" if succeeded else "ds-pipelines run failed",
        succeeded=succeeded,
        where=where,
        links=[(label, url) for label, url in (("Pipeline", links.pipeline), ("Job", links.job)) if url],
        failures=failed,
        not_run=[nb.name for nb in results.notebooks if nb.status == "not-run"],
    )
