"""Wiki pages of model runs: one page per notebook (``model-runs/<name>``) and an index (``model-runs``).

Each notebook page is a newest-first table of its runs (at most ``MAX_ROWS``). A new run's row is merged
into the page's previous content, read back from the page's hidden data block rather than from the
table, so the rendered table can change without breaking the history. A page ds-pipelines did not write
(no ``WIKI_MARKER``) is never overwritten.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.masking import Masker
from ds_pipelines.publishing.render import datablock
from ds_pipelines.publishing.render.escape import (
    md_code,
    md_identifier,
    md_link,
    md_text,
)
from ds_pipelines.publishing.render.links import Links
from ds_pipelines.publishing.render.numbers import (
    format_duration,
    format_time,
    format_uncertain,
    key_metrics,
    short_sha,
)
from ds_pipelines.publishing.render.reproducibility import details_inline, masked_record
from ds_pipelines.publishing.render.safe import SafeText
from ds_pipelines.results.folder import NotebookResult, RunResults
from ds_pipelines.results.origin import Provenance
from ds_pipelines.results.uncertainty import (
    RULE,
    Interval,
    UncertaintyError,
    checked,
    classify,
)

WIKI_MARKER = "<!-- ds-pipelines:wiki -->"
INDEX_SLUG = "model-runs"
PAGE_KIND = "wiki-runs"
INDEX_KIND = "wiki-index"
MAX_ROWS = 50
MAX_METRIC_COLUMNS = 8
STATUS_ICONS = {"success": "✅", "failed": "❌"}
_STORED = SafeText(Masker())
"""Rows keep their texts masked already (``wiki_row``)."""
_ROW_TEXT_KEYS = ("key", "finished_at", "commit", "trigger", "status", "notebook")


class WikiError(DsPipelinesError):
    """A wiki page whose current content cannot be merged with (not ours, or its data is damaged)."""


@dataclass(frozen=True)
class WikiPage:
    slug: str
    title: str
    content: str


def wiki_slug(name: str) -> str:
    """``model-runs/<name>``: the page of a notebook (asset names are already slug-safe; others are made so)."""
    return f"{INDEX_SLUG}/{re.sub(r'[^A-Za-z0-9_-]', '-', name) or 'notebook'}"


def wiki_row(nb: NotebookResult, results: RunResults, *, origin: Provenance, links: Links, safe: SafeText) -> dict[str, Any]:
    """One run of one notebook, as stored in the page's data block (notebook text already masked)."""
    return {
        "key": nb.dagster_run_id or f"{results.commit_sha or ''}:{nb.name}:{results.finished_at}",
        "finished_at": results.finished_at,
        "commit": results.commit_sha or origin.commit or "",
        "trigger": origin.trigger_label,
        "status": nb.status,
        "notebook": safe.masked(nb.notebook),
        "runner": origin.runner,
        "image": origin.image_tag,
        "duration_s": nb.duration_s,
        "metrics": {safe.masked(name): value for name, value in key_metrics(nb.metrics, limit=MAX_METRIC_COLUMNS).items()},
        "uncertainty": {safe.masked(name): interval.to_dict() for name, interval in nb.uncertainty.items()
                        if name in key_metrics(nb.metrics, limit=MAX_METRIC_COLUMNS)},
        "links": {
            key: url
            for key, url in (
                ("commit", links.commit), ("trigger", links.merge_request), ("pipeline", links.pipeline), ("job", links.job),
                ("mlflow_run", links.mlflow_runs.get(nb.name)), ("executed_notebook", links.executed_notebooks.get(nb.name)),
            )
            if url
        },
        "reproducibility": masked_record(nb.reproducibility, safe),
        "results_file": links.results_file,
    }


def render_wiki_pages(
    results: RunResults,
    *,
    origin: Provenance,
    links: Links | None = None,
    existing: Mapping[str, str | None] | None = None,
    masker: Masker | None = None,
    max_rows: int = MAX_ROWS,
) -> list[WikiPage]:
    """The page of every notebook that ran, then the index page.

    ``existing``: slug to the page's current content (None or absent: no such page yet).
    """
    safe = SafeText(masker)
    links = links or Links()
    existing = existing or {}
    pages = []
    for nb in results.notebooks:
        if nb.status == "not-run":
            continue
        slug = wiki_slug(nb.name)
        row = wiki_row(nb, results, origin=origin, links=links, safe=safe)
        content = render_notebook_page(safe.masked(nb.name), row, existing.get(slug), slug=slug, max_rows=max_rows)
        pages.append(WikiPage(slug=slug, title=slug, content=content))
    entries = [
        {"name": safe.masked(nb.name), "slug": wiki_slug(nb.name), "last_run": results.finished_at, "status": nb.status,
         "commit": results.commit_sha or ""}
        for nb in results.notebooks
        if nb.status != "not-run"
    ]
    pages.append(WikiPage(slug=INDEX_SLUG, title=INDEX_SLUG, content=render_index(entries, existing.get(INDEX_SLUG))))
    return pages


def render_notebook_page(name: str, row: Mapping[str, Any], existing: str | None, *, slug: str, max_rows: int = MAX_ROWS) -> str:
    """The page of notebook ``name`` with ``row`` merged into the rows of its ``existing`` content."""
    previous = _previous_data(existing, PAGE_KIND, slug)
    rows = [r for r in (previous or {}).get("rows", []) if _valid_row(r) and r["key"] != row["key"]]
    rows = sorted([dict(row), *rows], key=lambda r: _sort_time(r["finished_at"]), reverse=True)[:max_rows]
    columns = _metric_columns(rows)
    header = ["date", "commit", "trigger", "runner", "image", "duration", "status", *(md_code(c) for c in columns), "links"]
    lines = [
        WIKI_MARKER,
        f"# Model runs: {md_code(name, in_table=False)}",
        f"Runs of {md_code(rows[0]['notebook'], in_table=False)}, newest first (the last {max_rows} are kept). "
        "Written by ds-pipelines after every run: edits to this page are overwritten.",
        "| " + " | ".join(header) + " |\n|" + ":--|" * 7 + "--:|" * len(columns) + ":--|",
    ]
    table = "\n".join(_row_markdown(r, columns, older=rows[i + 1] if i + 1 < len(rows) else None) for i, r in enumerate(rows))
    lines[-1] += "\n" + table
    if any(_intervals(r) for r in rows):
        lines.append(f"± is half the width of the metric's interval (as the notebook reported it); each value is classed "
                     f"against the run below it: {RULE}.")
    lines.append(datablock.embed(PAGE_KIND, {"version": 1, "rows": rows}))
    return "\n\n".join(lines) + "\n"


def render_index(entries: Iterable[Mapping[str, Any]], existing: str | None) -> str:
    """The ``model-runs`` page listing every notebook page, latest run first; ``entries`` (name, slug,
    last_run, status, commit) update the ones read back from ``existing``. Pages are linked from the wiki's
    root (``/model-runs/<name>``), which GitLab resolves the same from any page."""
    previous = _previous_data(existing, INDEX_KIND, INDEX_SLUG)
    merged: dict[str, dict[str, Any]] = {}
    for entry in (previous or {}).get("notebooks", []):
        if isinstance(entry, dict) and all(isinstance(entry.get(k), str) for k in ("name", "slug", "last_run", "status", "commit")):
            merged[entry["name"]] = entry
    for entry in entries:
        merged[entry["name"]] = dict(entry)
    ordered = sorted(merged.values(), key=lambda e: _sort_time(e["last_run"]), reverse=True)
    rows = [
        f"| {md_link(e['name'], '/' + e['slug'] if _is_slug(e['slug']) else None)} | {md_text(format_time(e['last_run']))} "
        f"| {STATUS_ICONS.get(e['status'], '')} {md_text(e['status'])} | {md_code(short_sha(e['commit']))} |"
        for e in ordered
    ]
    parts = [
        WIKI_MARKER,
        "# Model runs",
        "One page per notebook, with its runs newest first. Written by ds-pipelines: edits to this page are overwritten.",
        "| notebook | last run | status | commit |\n|:--|:--|:--|:--|\n" + "\n".join(rows),
        datablock.embed(INDEX_KIND, {"version": 1, "notebooks": ordered}),
    ]
    return "\n\n".join(parts) + "\n"


def _previous_data(existing: str | None, kind: str, slug: str) -> dict[str, Any] | None:
    if not existing or not existing.strip():
        return None
    if WIKI_MARKER not in existing:
        raise WikiError(
            f"wiki page {slug!r} exists but was not written by ds-pipelines (no {WIKI_MARKER} marker): "
            "rename or delete it, so that its content is not overwritten"
        )
    data = datablock.extract(kind, existing)
    if not isinstance(data, dict):
        raise WikiError(
            f"wiki page {slug!r}: its hidden run data (<!-- ds-pipelines:data:{kind} ... -->) is missing or damaged: "
            "restore it from the page's history, or delete the page to start a new table"
        )
    return data


def _valid_row(row: Any) -> bool:
    return (
        isinstance(row, dict)
        and all(isinstance(row.get(key), str) for key in _ROW_TEXT_KEYS)
        and isinstance(row.get("metrics"), dict)
        and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in row["metrics"].values())
        and isinstance(row.get("links", {}), dict)
        and (row.get("duration_s") is None or isinstance(row.get("duration_s"), (int, float)))
    )


def _metric_columns(rows: list[Mapping[str, Any]]) -> list[str]:
    """Metrics of the newest rows first, so the current key metrics lead; bounded so the table fits."""
    columns: dict[str, None] = {}
    for row in rows:
        columns.update(dict.fromkeys(row["metrics"]))
    return list(columns)[:MAX_METRIC_COLUMNS]


def _intervals(row: Mapping[str, Any]) -> dict[str, Interval]:
    """A stored row's intervals; one this version cannot read is left out (its value is shown plain)."""
    found = {}
    stored = row.get("uncertainty")
    for name, value in (stored if isinstance(stored, dict) else {}).items():
        try:
            found.update(checked({name: value}, row["metrics"], "wiki row"))
        except UncertaintyError:
            continue
    return found


def _metric_cell(name: str, row: Mapping[str, Any], older: Mapping[str, Any] | None) -> str:
    interval = _intervals(row).get(name)
    cell = format_uncertain(row["metrics"].get(name), interval.half_width if interval else None)
    verdict = classify(name, interval, _intervals(older).get(name)) if older and row["metrics"].get(name) is not None else None
    return md_text(f"{cell} ({verdict})" if verdict else cell)


def _row_markdown(row: Mapping[str, Any], columns: list[str], *, older: Mapping[str, Any] | None = None) -> str:
    links = row.get("links", {})
    named = (("pipeline", "pipeline"), ("job", "job"), ("mlflow_run", "MLflow"), ("executed_notebook", "notebook"))
    cells = [
        md_text(format_time(row["finished_at"])),
        md_identifier(short_sha(row["commit"]), links.get("commit")),
        md_link(row["trigger"], links.get("trigger")),
        md_text(row.get("runner") or "—"),
        md_code(row["image"]) if row.get("image") else "—",
        md_text(format_duration(row.get("duration_s"))),
        f"{STATUS_ICONS.get(row['status'], '')} {md_text(row['status'])}",
        *(_metric_cell(column, row, older) for column in columns),
        (" · ".join(md_link(label, links.get(key)) for key, label in named if links.get(key)) or "—")
        + details_inline(row.get("reproducibility"), _STORED, results_url=row.get("results_file")),
    ]
    return "| " + " | ".join(cells) + " |"


def _sort_time(timestamp: str) -> datetime:
    try:
        moment = datetime.fromisoformat(timestamp)
    except (TypeError, ValueError):
        return datetime.min.replace(tzinfo=timezone.utc)
    return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)


def _is_slug(slug: str) -> bool:
    return bool(re.fullmatch(rf"{INDEX_SLUG}/[A-Za-z0-9_-]+", slug))
