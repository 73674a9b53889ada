"""A notebook run's reproducibility record (``results.reproducibility``) as a collapsed block.

The merge-request comment shows it under each notebook, the wiki in each run's row (one line: a table cell
holds no line breaks). Every value is notebook- or environment-controlled text: masked, then escaped.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ds_pipelines.publishing.render.escape import md_link
from ds_pipelines.publishing.render.numbers import short_sha
from ds_pipelines.publishing.render.safe import SafeText
from ds_pipelines.results.reproducibility import Reproducibility, ReproducibilityError

SUMMARY = "Reproducibility"
HASH_DIGITS = 12
MAX_DATA_SHOWN = 10


def record_lines(record: Mapping[str, Any], safe: SafeText) -> list[str]:
    """The record, a fact per line, in markdown."""
    commit = record.get("commit") or {}
    state = {True: "uncommitted changes", False: "clean", None: "state unknown"}[commit.get("dirty")]
    lines = [
        f"**commit** {safe.code(short_sha(commit['sha']))} ({safe.md(commit.get('branch') or 'no branch')}, {state})"
        if commit.get("sha") else "**commit** unknown",
        f"**notebook** sha256 {safe.code(record['notebook_sha256'][:HASH_DIGITS])} · "
        f"**config** sha256 {safe.code(record['config_sha256'][:HASH_DIGITS])}",
    ]
    data = record.get("data") or []
    shown = [
        f"{safe.code(entry['path'])} {safe.code(entry['sha256'][:HASH_DIGITS])}" if "path" in entry
        else f"{safe.code(entry['source'])} {safe.code(entry['version'])}"
        for entry in data[:MAX_DATA_SHOWN]
    ]
    more = f" and {len(data) - MAX_DATA_SHOWN} more" if len(data) > MAX_DATA_SHOWN else ""
    lines.append(f"**data** {', '.join(shown) + more if shown else 'none read through ds-pipelines'}")
    packages = ", ".join(f"{safe.md(name)} {safe.md(version or '—')}" for name, version in (record.get("packages") or {}).items())
    lines.append(f"**device** {safe.md(record.get('device') or 'cpu')} · **image** "
                 f"{safe.code(record['image']) if record.get('image') else 'none'} · **python** {safe.md(record.get('python') or '—')}")
    lines.append(f"**packages** {packages or '—'}")
    seeds = ", ".join(f"{safe.code(key)} = {safe.md(value)}" for key, value in (record.get("seeds") or {}).items())
    lines.append(f"**seeds** {seeds or 'none in the config'}")
    return lines


def masked_record(record: Mapping[str, Any] | None, safe: SafeText) -> dict[str, Any] | None:
    """``record`` with every text masked, to keep in a page's data block."""

    def masked(value: Any) -> Any:
        if isinstance(value, str):
            return safe.masked(value)
        if isinstance(value, Mapping):
            return {safe.masked(key): masked(item) for key, item in value.items()}
        if isinstance(value, list):
            return [masked(item) for item in value]
        return value

    return masked(dict(record)) if record else None


def _valid(record: Any) -> bool:
    """A record read back from a page's data block may have been edited: render only a well-formed one."""
    try:
        Reproducibility.from_dict(record, "record")
    except ReproducibilityError:
        return False
    return True


def details_block(record: Mapping[str, Any] | None, safe: SafeText, *, results_url: str | None = None) -> str:
    """Collapsed, one fact per line; empty without a record."""
    if not record or not _valid(record):
        return ""
    lines = record_lines(record, safe) + _link(results_url)
    return f"<details><summary>{SUMMARY}</summary>\n\n" + "  \n".join(lines) + "\n\n</details>"


def details_inline(record: Mapping[str, Any] | None, safe: SafeText, *, results_url: str | None = None) -> str:
    """Collapsed, on one line (for a table cell); empty without a record."""
    if not record or not _valid(record):
        return ""
    return f"<details><summary>{SUMMARY}</summary>" + "<br>".join(record_lines(record, safe) + _link(results_url)) + "</details>"


def _link(results_url: str | None) -> list[str]:
    return [f"full record: {md_link('results.json', results_url)}"] if results_url else []
