"""Releasing a tag: promote the model version in the MLflow registry, then write the GitLab release.

- production tag (``v1.2.3``; ``triggers.production_tag``): alias ``production`` on the model version,
  then the GitLab release of the tag, created or updated, with notes that record the version;
- development tag (``dev-1.2.3``; ``triggers.development_tag``): alias ``staging``, nothing else (no
  release, nothing deployed);
- any other tag: ReleaseTagError, nothing done.

The promotion is not best effort: when it fails the release stops. The GitLab release is (see
``outcome``): with GitLab unset or refusing, the model is still promoted and the caller decides.
The release notes' metrics come from the results folder when one is given, else from the MLflow run
that registered the version.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.gitlab import GitLabClient, GitLabError, GitLabSettings
from ds_pipelines.project import Project
from ds_pipelines.publish import (
    Masker,
    ModelVersion,
    NotebookResult,
    RunResults,
    load_results,
    render_release_notes,
)
from ds_pipelines.publish.baseline import BRANCH_TAG, COMMIT_TAG, NOTEBOOK_TAG
from ds_pipelines.publish.escape import md_code, md_text
from ds_pipelines.publish.release import model_version_url
from ds_pipelines.publishing.links import Warn, mlflow_ui_url, run_links
from ds_pipelines.publishing.models import (
    PRODUCTION_ALIAS,
    STAGING_ALIAS,
    ChosenVersion,
    Promotion,
    RegistryError,
    choose_versions,
    current_aliases,
    promote,
)
from ds_pipelines.registry import ALIAS_TAG
from ds_pipelines.trigger import DEVELOPMENT, PRODUCTION, release_kind

GIT_COMMIT_TAG = "mlflow.source.git.commit"


class ReleaseTagError(DsPipelinesError):
    """A tag that is neither a production nor a development release."""


@dataclass(frozen=True)
class ReleaseOutcome:
    tag: str
    kind: str
    """``production`` or ``development``."""
    promotions: list[Promotion]
    gitlab_release: str | None = None
    """``created`` or ``updated``; None for development tags."""
    gitlab_error: GitLabError | None = None
    """Why the GitLab release was not written (best effort: the model is promoted all the same)."""
    notes: str | None = field(default=None, repr=False)


def release(
    tag: str,
    *,
    project: Project,
    results_dir: Path | None,
    model: str | None,
    env: Mapping[str, str],
    tracking_uri: str | None,
    job_url: str | None,
    strict: bool,
    warn: Warn,
) -> ReleaseOutcome:
    """Release ``tag`` (see the module docstring). With ``strict``, GitLab settings are checked before
    anything is promoted, so a misconfigured job changes nothing. A GitLab release that cannot be written
    comes back as ``gitlab_error`` (the model is promoted by then), strict or not."""
    from mlflow.tracking import MlflowClient

    triggers = project.triggers
    kind = release_kind(tag, triggers.production_tag, triggers.development_tag)
    if kind not in (PRODUCTION, DEVELOPMENT):
        raise ReleaseTagError(
            f"tag {tag!r} is not a release: production tags match {triggers.production_tag}, development tags "
            f"{triggers.development_tag} (whole tag; triggers.production_tag / development_tag in configs/notebooks.yaml)"
        )
    results = load_results(results_dir) if results_dir is not None else None
    settings, settings_error = None, None
    if kind == PRODUCTION:
        try:
            settings = GitLabSettings.from_env(env)
        except GitLabError as exc:
            if strict:
                raise
            settings_error = exc
    client = MlflowClient(tracking_uri=tracking_uri)
    chosen = choose_versions(client, results=results, model=model, project=project, tracking_uri=tracking_uri,
                             warn=warn)
    alias = PRODUCTION_ALIAS if kind == PRODUCTION else STAGING_ALIAS
    promotions = [promote(client, version, alias) for version in chosen]
    if kind == DEVELOPMENT:
        return ReleaseOutcome(tag=tag, kind=kind, promotions=promotions)

    masker = Masker.from_env(env)
    notes_results = results if results is not None else results_from_runs(client, chosen)
    links = run_links(notes_results, env, tracking_uri=tracking_uri, job_url=job_url, warn=warn)
    ui_url = mlflow_ui_url(tracking_uri)
    versions: dict[str, list[ModelVersion]] = {}
    for version in chosen:
        aliases = current_aliases(client, version.name, version.version)
        versions.setdefault(version.notebook, []).append(ModelVersion(
            name=version.name, version=version.version, aliases=aliases,
            url=model_version_url(ui_url, version.name, version.version) if ui_url else None,
        ))
    notes = render_release_notes(tag, notes_results, links=links, model_versions=versions, masker=masker)
    description = notes.description + "\n" + "\n\n".join(_promotion_line(p) for p in promotions) + "\n"
    if settings is None:
        return ReleaseOutcome(tag=tag, kind=kind, promotions=promotions, gitlab_error=settings_error, notes=description)
    try:
        action = GitLabClient(settings).upsert_release(tag=tag, name=notes.name, description=description)
    except GitLabError as exc:
        # Strict or not, the model is promoted by now: the caller says so, then applies its policy.
        return ReleaseOutcome(tag=tag, kind=kind, promotions=promotions, gitlab_error=exc, notes=description)
    return ReleaseOutcome(tag=tag, kind=kind, promotions=promotions, gitlab_release=action, notes=description)


def _promotion_line(promotion: Promotion) -> str:
    model = f"model {md_code(promotion.name, in_table=False)} version **{md_text(promotion.version)}**"
    if promotion.method == "alias":
        return f"**Promoted:** {model} is {md_code(promotion.alias, in_table=False)} (MLflow alias, " \
               f"{md_code(promotion.model_uri, in_table=False)})."
    return f"**Promoted:** {model} is {md_code(promotion.alias, in_table=False)} (model version tag " \
           f"{md_code(f'{ALIAS_TAG}={promotion.alias}', in_table=False)}: this MLflow server has no aliases)."


def results_from_runs(client, chosen: list[ChosenVersion]) -> RunResults:
    """What release notes need, read from the MLflow runs that registered ``chosen`` (no results folder)."""
    from mlflow.exceptions import MlflowException

    notebooks, commits, starts, ends = [], [], [], []
    for version in chosen:
        if not version.run_id:
            continue
        try:
            run = client.get_run(version.run_id)
        except (MlflowException, OSError) as exc:
            raise RegistryError(
                f"the run {version.run_id} that registered model {version.name!r} version {version.version} "
                f"cannot be read: {str(getattr(exc, 'message', exc)).splitlines()[0]}"
            ) from None
        tags = run.data.tags
        path = tags.get(NOTEBOOK_TAG) or version.notebook_path
        start, end = run.info.start_time, run.info.end_time
        notebooks.append(NotebookResult(
            notebook=path or f"models:/{version.name}/{version.version}",
            name=version.notebook,
            status="success",
            duration_s=max((end - start) / 1000, 0.0) if start and end else 0.0,
            dagster_run_id=None,
            mlflow_run_id=version.run_id,
            metrics=dict(run.data.metrics),
            executed_notebook=None,
            metrics_file=None,
            artifacts={},
            error=None,
            failed_cell=None,
        ))
        commits.append((tags.get(COMMIT_TAG) or tags.get(GIT_COMMIT_TAG), tags.get(BRANCH_TAG)))
        starts.append(start)
        ends.append(end)
    commit, branch = next(((sha, branch) for sha, branch in commits if sha), (None, None))
    return RunResults(
        directory=Path.cwd(),
        status="success",
        started_at=_iso(min((s for s in starts if s), default=None)),
        finished_at=_iso(max((e for e in ends if e), default=None)),
        commit_sha=commit,
        branch=branch,
        notebooks=notebooks,
    )


def _iso(millis: int | None) -> str:
    if millis is None:
        return ""
    return datetime.fromtimestamp(millis / 1000, tz=UTC).isoformat(timespec="seconds")
