"""Release notes for a tag: each notebook's metrics, the MLflow model version it registered, and links."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from urllib.parse import quote

from ds_pipelines.publish.context import Links
from ds_pipelines.publish.escape import md_code, md_link
from ds_pipelines.publish.failure import describe_failure
from ds_pipelines.publish.masking import Masker
from ds_pipelines.publish.numbers import format_duration, format_value, ordered_metrics, short_sha
from ds_pipelines.publish.results import NotebookResult, RunResults
from ds_pipelines.publish.safe import SafeText
from ds_pipelines.trigger import DEVELOPMENT, PRODUCTION, release_kind

KIND_WORDS = {PRODUCTION: "production release", DEVELOPMENT: "development release"}


@dataclass(frozen=True)
class ModelVersion:
    """A registered model version (MLflow model registry) created from a notebook's run."""

    name: str
    version: str
    aliases: tuple[str, ...] = ()
    url: str | None = None


@dataclass(frozen=True)
class ReleaseNotes:
    tag: str
    name: str
    description: str


def model_version_url(ui_url: str, name: str, version: str) -> str:
    """A model version's page in the MLflow UI."""
    return f"{ui_url.rstrip('/')}/#/models/{quote(name, safe='')}/versions/{quote(str(version), safe='')}"


def find_model_versions(
    notebooks: Sequence[NotebookResult], *, tracking_uri: str | None = None, ui_url: str | None = None
) -> dict[str, list[ModelVersion]]:
    """The model versions each successful notebook's MLflow run registered (name to versions)."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found: dict[str, list[ModelVersion]] = {}
    for nb in notebooks:
        if nb.status != "success" or not nb.mlflow_run_id:
            continue
        # Run ids are hex; anything else is not looked up (it would end up in a filter string).
        if not nb.mlflow_run_id.isalnum():
            continue
        versions = client.search_model_versions(f"run_id = '{nb.mlflow_run_id}'")
        found[nb.name] = [
            ModelVersion(
                name=v.name,
                version=str(v.version),
                aliases=tuple(getattr(v, "aliases", None) or ()),
                url=model_version_url(ui_url, v.name, v.version) if ui_url else None,
            )
            for v in sorted(versions, key=lambda v: (v.name, int(v.version)))
        ]
    return found


def render_release_notes(
    tag: str,
    results: RunResults,
    *,
    links: Links | None = None,
    model_versions: Mapping[str, Sequence[ModelVersion]] | None = None,
    masker: Masker | None = None,
) -> ReleaseNotes:
    """The release's name and markdown description (for ``GitLabClient.upsert_release``)."""
    safe = SafeText(masker)
    links = links or Links()
    model_versions = model_versions or {}
    kind = KIND_WORDS.get(release_kind(tag), "release")
    commit = md_link(short_sha(results.commit_sha), links.commit) if results.commit_sha else "an unknown commit"
    run_links = " · ".join(md_link(label, url) for label, url in (("Pipeline", links.pipeline), ("Job", links.job)) if url)
    parts = [
        f"## {md_code(tag, in_table=False)}: {kind}",
        f"Built from commit {commit}" + (f" · {run_links}" if run_links else ""),
    ]
    if results.status != "success":
        parts.append(f"⚠️ {len(results.failed)} notebook(s) failed in this release's pipeline.")
    for nb in results.notebooks:
        parts.append(_notebook(nb, model_versions.get(nb.name, ()), links, safe))
    return ReleaseNotes(tag=tag, name=f"{tag} ({kind})", description="\n\n".join(parts) + "\n")


def _notebook(nb: NotebookResult, versions: Sequence[ModelVersion], links: Links, safe: SafeText) -> str:
    lines = [f"### {safe.code(nb.name, in_table=False)}"]
    if nb.status == "not-run":
        lines.append("Did not run (an earlier notebook failed).")
        return "\n\n".join(lines)
    if nb.status == "failed":
        failure = describe_failure(nb)
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
