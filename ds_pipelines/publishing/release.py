"""Releasing a tag: promote the model version in the MLflow registry, then write the GitLab release.

- production tag (``v1.2.3``; ``triggers.production_tag``): alias ``production`` on the model version,
  then the GitLab release of the tag, created or updated, with notes that record the version;
- development tag (``dev-1.2.3``; ``triggers.development_tag``): alias ``staging``, nothing else (no
  release, nothing deployed);
- any other tag: ReleaseTagError, nothing done.

The version promoted is the one the training run in a results folder registered; without one, the newest
version trained from a given commit (CI: the tagged commit), else the newest version of the registered
model. The promotion is not best effort: when it fails the release stops. The GitLab release is (see
``outcome``): with GitLab unset or refusing, the model is still promoted and the caller decides.
The release notes' metrics come from the results folder when one is given, else from the MLflow run
that registered the version.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.gitlab import GitLabClient, GitLabError
from ds_pipelines.masking import Masker
from ds_pipelines.project import Project
from ds_pipelines.project.defaults import DEVELOPMENT, PRODUCTION
from ds_pipelines.publishing.failures import describe_failures
from ds_pipelines.publishing.links import JobArtifacts, Warn, first_line, run_links
from ds_pipelines.publishing.render.escape import md_code, md_text
from ds_pipelines.publishing.render.release import render_release_notes
from ds_pipelines.results.folder import NotebookResult, RunResults
from ds_pipelines.results.origin import Provenance
from ds_pipelines.tracking.baselines import (
    BLOCKING_CHECKS_TAG,
    BRANCH_TAG,
    COMMIT_TAG,
    NOTEBOOK_TAG,
    PIPELINE_SOURCE_TAG,
    PROJECT_ID_TAG,
    PROTECTED_REF_TAG,
    REPRODUCES_TAG,
)
from ds_pipelines.tracking.links import mlflow_ui_url, model_version_url, shown_uri
from ds_pipelines.tracking.registry import (
    ALIAS_TAG,
    PRODUCTION_ALIAS,
    STAGING_ALIAS,
    ModelLookupError,
    ModelVersion,
    Promotion,
    RegistryError,
    aliased_version,
    current_aliases,
    latest_version,
    promote,
    versions_registered_by,
)
from ds_pipelines.tracking.uri import require_reachable

GIT_COMMIT_TAG = "mlflow.source.git.commit"
TRAINING_SCHEMA = "training"


class ReleaseTagError(DsPipelinesError):
    """A tag that is neither a production nor a development release."""


class RollbackError(DsPipelinesError):
    """The version to release is older than the one in production, and no rollback was asked for."""


@dataclass(frozen=True)
class ChosenVersion:
    """A model version to promote, and the notebook whose run registered it (the release notes' section)."""

    version: ModelVersion
    notebook: str
    """Asset name of the notebook."""
    notebook_path: str | None = None


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
    results: RunResults | None,
    model: str | None,
    commit: str | None,
    image: str | None,
    gitlab: GitLabClient | GitLabError | None,
    masker: Masker,
    origin: Provenance,
    tracking_uri: str | None,
    artifacts: JobArtifacts | None,
    warn: Warn,
    rollback: bool = False,
) -> ReleaseOutcome:
    """Release ``tag`` (see the module docstring). ``commit``: promote the newest version trained from this
    commit (see ``choose_versions``); ``image``: the released image, pinned by digest, for the notes.
    A production release of a version older than the model's current ``production`` one is refused
    (RollbackError, nothing promoted) unless ``rollback``.
    ``gitlab`` is the client of the project's GitLab, or why there is none (the model is promoted all the
    same, and the outcome says why no release was written). A GitLab release that cannot be written comes
    back as ``gitlab_error``: the model is promoted by then."""
    from mlflow.tracking import MlflowClient

    triggers = project.triggers
    kind = triggers.release_kind(tag)
    if kind not in (PRODUCTION, DEVELOPMENT):
        raise ReleaseTagError(
            f"tag {tag!r} is not a release: production tags match {triggers.production_tag}, development tags "
            f"{triggers.development_tag} (whole tag; triggers.production_tag / development_tag in configs/notebooks.yaml)"
        )
    require_reachable(tracking_uri)
    client = MlflowClient(tracking_uri=tracking_uri)
    chosen = choose_versions(client, results=results, model=model, commit=commit, project=project,
                             tracking_uri=tracking_uri, warn=warn, project_id=origin.project_id)
    if kind == PRODUCTION and not rollback:
        _refuse_older_than_production(client, chosen)
    alias = PRODUCTION_ALIAS if kind == PRODUCTION else STAGING_ALIAS
    promotions = [promote(client, c.version.name, c.version.version, alias) for c in chosen]
    if kind == DEVELOPMENT:
        return ReleaseOutcome(tag=tag, kind=kind, promotions=promotions)

    notes_results = results if results is not None else results_from_runs(client, chosen)
    links = run_links(notes_results, origin, tracking_uri=tracking_uri, artifacts=artifacts, warn=warn)
    ui_url = mlflow_ui_url(tracking_uri)
    versions: dict[str, list[ModelVersion]] = {}
    for c in chosen:
        v = c.version
        versions.setdefault(c.notebook, []).append(ModelVersion(
            name=v.name, version=v.version, run_id=v.run_id, aliases=current_aliases(client, v.name, v.version),
            url=model_version_url(ui_url, v.name, v.version) if ui_url else None,
        ))
    notes = render_release_notes(tag, kind, notes_results, links=links, model_versions=versions,
                                 failures=describe_failures(notes_results), masker=masker, image=image)
    description = notes.description + "\n" + "\n\n".join(_promotion_line(p) for p in promotions) + "\n"
    if isinstance(gitlab, GitLabError):
        return ReleaseOutcome(tag=tag, kind=kind, promotions=promotions, gitlab_error=gitlab, notes=description)
    try:
        action = gitlab.upsert_release(tag=tag, name=notes.name, description=description)
    except GitLabError as exc:
        # The model is promoted by now: the caller says so, then applies its policy.
        return ReleaseOutcome(tag=tag, kind=kind, promotions=promotions, gitlab_error=exc, notes=description)
    return ReleaseOutcome(tag=tag, kind=kind, promotions=promotions, gitlab_release=action, notes=description)


def _refuse_older_than_production(client, chosen: list[ChosenVersion]) -> None:
    for choice in chosen:
        current = aliased_version(client, choice.version.name, PRODUCTION_ALIAS)
        if current is not None and int(choice.version.version) < int(current):
            raise RollbackError(
                f"model {choice.version.name!r} version {choice.version.version} is older than version {current}, "
                f"which is {PRODUCTION_ALIAS} now: nothing was promoted. To go back to it on purpose, run the "
                "release again with --rollback")


def choose_versions(
    client, *, results: RunResults | None, model: str | None, commit: str | None, project: Project,
    tracking_uri: str | None, warn: Warn, project_id: str | None = None,
) -> list[ChosenVersion]:
    """The model versions a release promotes: the one the training run in ``results`` registered (the
    newest per registered model among its runs); without results, or when its runs registered none, a
    version of the registered model ``model``, else of the one the training notebook's config names
    (``mlflow.registered_model_name``): with ``commit``, the newest version whose finished MLflow run was
    trained from that commit, never one of another commit; without, the latest version. ModelLookupError
    when there is none. ``commit`` is for releases without results (the CLI refuses both together)."""
    from mlflow.exceptions import MlflowException

    try:
        if results is not None:
            chosen = _registered_by_results(client, results, model)
            if chosen:
                return chosen
            warn(f"no successful run in {results.directory} registered a model version"
                 f"{f' of {model!r}' if model else ''}: releasing the latest registered version instead")
        names = [(model, model, None)] if model else _configured_models(project)
        if commit is not None:
            return [ChosenVersion(trained_from(client, name, commit, project_id=project_id), notebook, path)
                    for name, notebook, path in names]
        return [ChosenVersion(latest_version(client, name), notebook, path) for name, notebook, path in names]
    except (MlflowException, OSError) as exc:
        raise RegistryError(f"the MLflow model registry cannot be read at {shown_uri(tracking_uri)}: {first_line(exc)}") from None


def trained_from(client, name: str, commit: str, *, project_id: str | None = None) -> ModelVersion:
    """The newest version of registered model ``name`` that a release may promote for ``commit``: its MLflow
    run finished, was trained from ``commit`` (run tag ``ds-pipelines.commit``, else
    ``mlflow.source.git.commit``) by a job on a protected ref (``ds-pipelines.protected_ref=true``) of project
    ``project_id`` (when known), not in a merge-request pipeline, passed its blocking quality checks and is not
    a ``ds-pipelines reproduce`` rerun. ModelLookupError naming what the newest versions were and why each
    was passed over, and how to get a version, when there is none."""
    from mlflow.exceptions import MlflowException

    latest_version(client, name)  # ModelLookupError when the model has no version at all
    seen: list[str] = []
    for version in sorted(client.search_model_versions(f"name = '{name}'"), key=lambda v: int(v.version), reverse=True):
        if not version.run_id:
            continue
        try:
            run = client.get_run(version.run_id)
        except MlflowException as exc:
            if exc.error_code == "RESOURCE_DOES_NOT_EXIST":  # the run was deleted for good: it proves nothing
                continue
            raise
        tags = run.data.tags
        trained = tags.get(COMMIT_TAG) or tags.get(GIT_COMMIT_TAG)
        passed_over = _not_releasable(tags, run.info.status, project_id) if trained == commit else None
        if trained == commit and passed_over is None:
            return ModelVersion(name=name, version=str(version.version), run_id=version.run_id)
        if len(seen) < 3:
            where = f"commit {trained[:12]}" if trained else "an unknown commit"
            branch = f" on branch {tags[BRANCH_TAG]}" if tags.get(BRANCH_TAG) else ""
            seen.append(f"version {version.version} from {where}{branch}{f', {passed_over}' if passed_over else ''}")
    raise ModelLookupError(
        f"no version of registered model {name!r} was trained from commit {commit} by a finished MLflow run "
        f"of a protected job that passed its blocking checks (run tags {COMMIT_TAG} or {GIT_COMMIT_TAG}, "
        f"{PROTECTED_REF_TAG}; the newest: {'; '.join(seen) or 'none has a run'}): nothing "
        "was promoted (a version of another commit never is). "
        "Train on that commit: push it to a protected branch so that CI trains it, or run the training notebook "
        "in a pipeline of the tag; then run the release again"
    )


def _not_releasable(tags: dict[str, str], status: str, project_id: str | None) -> str | None:
    """Why a run of the right commit cannot be released, in words; None when it can."""
    if status != "FINISHED":
        return f"run {status}"
    if tags.get(BLOCKING_CHECKS_TAG) == "failed":
        return "its blocking quality checks failed"
    if tags.get(REPRODUCES_TAG):
        return "a ds-pipelines reproduce rerun"
    if tags.get(PROTECTED_REF_TAG) != "true":
        return "not trained on a protected ref"
    if tags.get(PIPELINE_SOURCE_TAG) == "merge_request_event":
        return "trained in a merge-request pipeline"
    if project_id and tags.get(PROJECT_ID_TAG) != str(project_id):
        return f"trained by project {tags.get(PROJECT_ID_TAG) or 'unknown'}, not {project_id}"
    return None


def _registered_by_results(client, results: RunResults, model: str | None) -> list[ChosenVersion]:
    newest: dict[str, ChosenVersion] = {}
    for nb in results.notebooks:
        if nb.status != "success" or not nb.mlflow_run_id:
            continue
        for version in versions_registered_by(client, nb.mlflow_run_id):
            if model and version.name != model:
                continue
            current = newest.get(version.name)
            if current is None or int(version.version) > int(current.version.version):
                newest[version.name] = ChosenVersion(version, nb.name, nb.notebook)
    return sorted(newest.values(), key=lambda chosen: chosen.version.name)


def _configured_models(project: Project) -> list[tuple[str, str, str]]:
    """(registered model name, notebook asset name, notebook path) of every training notebook's config."""
    found = []
    for spec in project.notebooks():
        if spec.schema != TRAINING_SCHEMA:
            continue
        name = (project.config_for(spec).get("mlflow") or {}).get("registered_model_name")
        if name:
            found.append((name, spec.name, spec.path))
    if not found:
        raise ModelLookupError(
            f"no registered model to release: no training notebook's config sets mlflow.registered_model_name "
            f"(e.g. configs/training_config.yaml in {project.root}); pass --model NAME or --results DIR"
        )
    return found


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
    for choice in chosen:
        version = choice.version
        if not version.run_id:
            continue
        try:
            run = client.get_run(version.run_id)
        except (MlflowException, OSError) as exc:
            raise RegistryError(
                f"the run {version.run_id} that registered model {version.name!r} version {version.version} "
                f"cannot be read: {first_line(exc)}"
            ) from None
        tags = run.data.tags
        path = tags.get(NOTEBOOK_TAG) or choice.notebook_path
        start, end = run.info.start_time, run.info.end_time
        notebooks.append(NotebookResult(
            notebook=path or f"models:/{version.name}/{version.version}",
            name=choice.notebook,
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
