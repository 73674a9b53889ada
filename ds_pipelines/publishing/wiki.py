"""Wiki pages of model runs: each notebook's page gets this run's row, and the index its latest runs.

Every page is read first (its hidden data holds the earlier rows), rendered with this run merged in, and
written back with ``upsert_wiki_page``; a page a person wrote (no ds-pipelines marker) is refused, not
overwritten (WikiError), before anything is written.
"""

from __future__ import annotations

from dataclasses import dataclass

from ds_pipelines.gitlab import GitLabClient
from ds_pipelines.masking import Masker
from ds_pipelines.publishing.links import Artifacts, Warn, run_links
from ds_pipelines.publishing.render.wiki import INDEX_SLUG, render_wiki_pages, wiki_slug
from ds_pipelines.results.folder import RunResults
from ds_pipelines.results.origin import Provenance


@dataclass(frozen=True)
class WikiOutcome:
    slug: str
    action: str
    """``created`` or ``updated``."""


def publish_wiki_pages(
    results: RunResults,
    *,
    client: GitLabClient,
    masker: Masker,
    origin: Provenance,
    tracking_uri: str | None,
    artifacts: Artifacts | None,
    warn: Warn,
) -> list[WikiOutcome]:
    """Add the run to the wiki: one page per notebook that ran, then the index."""
    links = run_links(results, origin, tracking_uri=tracking_uri, artifacts=artifacts, warn=warn)
    slugs = [wiki_slug(nb.name) for nb in results.notebooks if nb.status != "not-run"] + [INDEX_SLUG]
    existing = {slug: client.get_wiki_page(slug=slug) for slug in slugs}
    pages = render_wiki_pages(results, origin=origin, links=links, existing=existing, masker=masker)
    written = []
    for page in pages:
        client.upsert_wiki_page(slug=page.slug, title=page.title, content=page.content)
        written.append(WikiOutcome(slug=page.slug, action="created" if existing.get(page.slug) is None else "updated"))
    return written
