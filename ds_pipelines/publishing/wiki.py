"""Wiki pages of model runs: each notebook's page gets this run's row, and the index its latest runs.

Every page is read first (its hidden data holds the earlier rows), rendered with this run merged in, and
written back with ``upsert_wiki_page``; a page a person wrote (no ds-pipelines marker) is refused, not
overwritten (WikiError), before anything is written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from ds_pipelines.gitlab import GitLabClient, GitLabSettings
from ds_pipelines.publish import (
    INDEX_SLUG,
    Masker,
    RunContext,
    load_results,
    render_wiki_pages,
    wiki_slug,
)
from ds_pipelines.publishing.links import Warn, run_links


@dataclass(frozen=True)
class WikiOutcome:
    slug: str
    action: str
    """``created`` or ``updated``."""


def publish_wiki_pages(
    results_dir: Path, *, env: Mapping[str, str], tracking_uri: str | None, job_url: str | None, warn: Warn,
) -> list[WikiOutcome]:
    """Add the run in ``results_dir`` to the wiki: one page per notebook that ran, then the index."""
    results = load_results(results_dir)
    client = GitLabClient(GitLabSettings.from_env(env))
    masker = Masker.from_env(env)
    links = run_links(results, env, tracking_uri=tracking_uri, job_url=job_url, warn=warn)
    slugs = [wiki_slug(nb.name) for nb in results.notebooks if nb.status != "not-run"] + [INDEX_SLUG]
    existing = {slug: client.get_wiki_page(slug=slug) for slug in slugs}
    pages = render_wiki_pages(
        results, context=RunContext.from_ci_env(env), links=links, existing=existing, masker=masker,
    )
    written = []
    for page in pages:
        client.upsert_wiki_page(slug=page.slug, title=page.title, content=page.content)
        written.append(WikiOutcome(slug=page.slug, action="created" if existing.get(page.slug) is None else "updated"))
    return written
