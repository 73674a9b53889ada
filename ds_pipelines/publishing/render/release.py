"""Release notes for a tag: each notebook's metrics, the MLflow model version it registered, and links."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ds_pipelines.masking import Masker
from ds_pipelines.project.defaults import DEVELOPMENT, PRODUCTION
from ds_pipelines.publishing.render.escape import md_code, md_identifier, md_link
from ds_pipelines.publishing.render.failure import Failure, describe_failure
from ds_pipelines.publishing.render.links import Links
from ds_pipelines.publishing.render.numbers import (
    format_duration,
    format_value,
    ordered_metrics,
    short_sha,
)
from ds_pipelines.publishing.render.safe import SafeText
from ds_pipelines.results.folder import NotebookResult, RunResults
from ds_pipelines.tracking.registry import ModelVersion

KIND_WORDS = {PRODUCTION: "production release", DEVELOPMENT: "development release"}


@dataclass(frozen=True)
class ReleaseNotes:
    tag: str
    name: str
    description: str


def render_release_notes(
    tag: str,
    kind: str,
    results: RunResults,
    *,
    links: Links | None = None,
    model_versions: Mapping[str, Sequence[ModelVersion]] | None = None,
    failures: Mapping[str, Failure] | None = None,
    masker: Masker | None = None,
    image: str | None = None,
) -> ReleaseNotes:
    """The release's name and markdown description (for ``GitLabClient.upsert_release``); ``image`` is the
    released container image, pinned by digest (``registry/group/project:v1.2.3@sha256:...``)."""
    safe = SafeText(masker)
    links = links or Links()
    model_versions = model_versions or {}
    words = KIND_WORDS.get(kind, "release")
    failures = failures or {}
    commit = md_identifier(short_sha(results.commit_sha), links.commit) if results.commit_sha else "an unknown commit"
    run_links = " · ".join(md_link(label, url) for label, url in (("Pipeline", links.pipeline), ("Job", links.job)) if url)
    parts = [
        f"## {md_code(tag, in_table=False)}: {words}",
        f"Built from commit {commit}" + (f" · {run_links}" if run_links else ""),
    ]
    if image:
        parts.append(f"Image: {md_code(image, in_table=False)}")
    if results.status != "success":
        parts.append(f"⚠️ {len(results.failed)} notebook(s) failed in this release's pipeline.")
    for nb in results.notebooks:
        parts.append(_notebook(nb, model_versions.get(nb.name, ()), links, failures.get(nb.name) or describe_failure(nb), safe))
    return ReleaseNotes(tag=tag, name=f"{tag} ({words})", description="\n\n".join(parts) + "\n")


def _notebook(nb: NotebookResult, versions: Sequence[ModelVersion], links: Links, failure: Failure, safe: SafeText) -> str:
    lines = [f"### {safe.code(nb.name, in_table=False)}"]
    if nb.status == "not-run":
        lines.append("Did not run (an earlier notebook failed).")
        return "\n\n".join(lines)
    if nb.status == "failed":
        lines.append(f"❌ Failed in code cell {failure.cell or '?'}: {safe.md(failure.error, limit=500)}")
    else:
        lines.append(f"✅ Succeeded in {format_duration(nb.duration_s)}.")
    for version in versions:
        aliases = f" (aliases: {', '.join(safe.code(a, in_table=False) for a in version.aliases)})" if version.aliases else ""
        model = f"Model {safe.code(version.name, in_table=False)} version **{safe.md(version.version)}**{aliases}"
        lines.append(model + (f" · {md_link('MLflow model', version.url)}" if version.url else ""))
    if nb.metrics:
        rows = ["| metric | value |", "|:--|--:|"]
        rows += [f"| {safe.code(name)} | {format_value(nb.metrics[name])} |" for name in ordered_metrics(nb.metrics)]
        lines.append("\n".join(rows))
    notebook_links = " · ".join(md_link(label, url) for label, url in links.of_notebook(nb.name))
    if notebook_links:
        lines.append(notebook_links)
    return "\n\n".join(lines)
