"""Wiki pages of model runs: each notebook's page gets this run's row, and the index its latest runs.

Every page is read first (its hidden data holds the earlier rows), rendered with this run merged in, and
written back with ``upsert_wiki_page``; a page a person wrote (no ds-pipelines marker) is refused, not
overwritten (WikiError), before anything is written.

GitLab's wiki API has no conditional write, so two runs publishing at once could each merge their row into
the same old page and the second write would drop the first's row. Writers serialize on ``lock`` (a Postgres
advisory lock where the processes share the Dagster database: CI jobs and the deployment's runs), and each
page is read again just before it is written: when it changed since it was read, the pages are merged
again from what is there now.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass

from ds_pipelines.gitlab import GitLabClient
from ds_pipelines.masking import Masker
from ds_pipelines.publishing.links import Artifacts, Warn, run_links
from ds_pipelines.publishing.render.wiki import INDEX_SLUG, WikiError, render_wiki_pages, wiki_slug
from ds_pipelines.results.folder import RunResults
from ds_pipelines.results.origin import Provenance

MERGE_ATTEMPTS = 5


@dataclass(frozen=True)
class WikiOutcome:
    slug: str
    action: str
    """``created`` or ``updated``."""


def wiki_lock_name(client: GitLabClient) -> str:
    """The name writers of this project's wiki serialize on (``lock`` of ``publish_wiki_pages``): the same
    for a CI job and the deployment, however each names the project."""
    return f"ds-pipelines wiki of project {client.project_attributes()['id']} at {client.settings.url}"


def publish_wiki_pages(
    results: RunResults,
    *,
    client: GitLabClient,
    masker: Masker,
    origin: Provenance,
    tracking_uri: str | None,
    artifacts: Artifacts | None,
    warn: Warn,
    lock: contextlib.AbstractContextManager[object] | None = None,
) -> list[WikiOutcome]:
    """Add the run to the wiki: one page per notebook that ran, then the index; under ``lock`` when given."""
    links = run_links(results, origin, tracking_uri=tracking_uri, artifacts=artifacts, warn=warn)
    slugs = [wiki_slug(nb.name) for nb in results.notebooks if nb.status != "not-run"] + [INDEX_SLUG]
    with lock or contextlib.nullcontext():
        written: dict[str, WikiOutcome] = {}
        wrote: dict[str, str] = {}
        for _ in range(MERGE_ATTEMPTS):
            existing = {slug: client.get_wiki_page(slug=slug) for slug in slugs}
            pages = render_wiki_pages(results, origin=origin, links=links, existing=existing, masker=masker)
            for page in pages:
                if page.slug in wrote and existing.get(page.slug) == wrote[page.slug]:
                    continue  # written on an earlier attempt, with this run's row, and still as written
                if client.get_wiki_page(slug=page.slug) != existing.get(page.slug):
                    break  # changed since it was read: merge everything again from what is there now
                client.upsert_wiki_page(slug=page.slug, title=page.title, content=page.content)
                wrote[page.slug] = page.content
                written.setdefault(page.slug, WikiOutcome(page.slug, "created" if existing.get(page.slug) is None else "updated"))
            else:
                return list(written.values())
    raise WikiError(f"wiki pages {', '.join(slugs)} changed each of the {MERGE_ATTEMPTS} times they were "
                    "merged: other runs kept writing them; publish again later")
