"""``ds-pipelines release TAG``: promote the model in the MLflow registry and write the GitLab release."""

from __future__ import annotations

import os
import re
from pathlib import Path

import click

from ds_pipelines.cli.options import load_project, project_dir_option
from ds_pipelines.cli.publish import (
    Console,
    gitlab_client,
    job_artifacts,
    job_url_option,
    tracking_uri,
)

_FULL_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
_PINNED_IMAGE = re.compile(r"[^\s@]+@sha256:[0-9a-f]{64}")


def _commit(ctx, param, value: str | None) -> str | None:
    if value is not None and not _FULL_SHA.fullmatch(value.lower()):
        raise click.BadParameter(f"{value!r} is not a full commit SHA (40 or 64 hex digits: git rev-parse TAG)")
    return value.lower() if value else None


def _image(ctx, param, value: str | None) -> str | None:
    if value is not None and not _PINNED_IMAGE.fullmatch(value):
        raise click.BadParameter(f"{value!r} is not an image pinned by digest (REGISTRY/IMAGE:TAG@sha256:<64 hex digits>)")
    return value


@click.command()
@click.argument("tag")
@click.option("--results", "results_dir", type=click.Path(file_okay=False, path_type=Path),
              help="Results folder of the release's run: its training run's model version is promoted and its "
              "metrics go into the notes. Default: the latest version of the registered model, metrics from "
              "its MLflow run.")
@click.option("--model", metavar="NAME",
              help="Registered model to promote. Default: mlflow.registered_model_name of the training "
              "notebook's config (configs/training_config.yaml).")
@click.option("--commit", metavar="SHA", callback=_commit,
              help="Promote the newest version whose finished MLflow run was trained from this commit (run tag "
              "ds-pipelines.commit, else mlflow.source.git.commit), never a version of another commit. CI's "
              "auto-release passes the tagged commit. Not with --results.")
@click.option("--image", metavar="REF@sha256:DIGEST", callback=_image,
              help="The released container image, pinned by digest; the release notes name it. CI's "
              "auto-release passes release-image's RELEASE_IMAGE.")
@click.option("--rollback", is_flag=True,
              help="Allow a production release of a version older than the one in production now (refused "
              "without it, nothing promoted).")
@job_url_option
@click.option("--strict", is_flag=True,
              help="Fail when the GitLab release cannot be written: exit 2 when GitLab is not configured "
              "(checked before anything is promoted), 1 when it refuses.")
@project_dir_option
def release(tag: str, results_dir: Path | None, model: str | None, commit: str | None, image: str | None,
            rollback: bool, job_url: str | None, strict: bool, project_dir: Path | None) -> None:
    """Release TAG: promote the model version in MLflow, then create or update the GitLab release.

    \b
    Production tags (v1.2.3; triggers.production_tag): MLflow alias
    `production` on the model version, then the GitLab release of the tag
    with notes (metrics, model version, links). Rerunning updates both.
    Development tags (dev-1.2.3; triggers.development_tag): alias
    `staging` only; nothing is deployed and no release is made.
    Other tags (v1.2.3-rc1 too): exit 2, nothing done.

    \b
    The model version: the one the training run in --results registered;
    else, of --model or of the configured model, the newest version trained
    from --commit by a protected job of this project (CI_PROJECT_ID) that
    passed its blocking checks (never a merge-request pipeline's or a
    reproduce rerun's), or without --commit the latest version. A version
    older than the current production one needs --rollback. On an MLflow
    server without aliases (GitLab's MLflow API) the version gets the tag
    ds-pipelines.alias=<alias> instead.

    \b
    Exit status: 0 released (a GitLab release that cannot be written is a
    warning unless --strict); 1 the model could not be promoted, or GitLab
    refused under --strict; 2 bad input (tag, results folder, model, commit,
    image), no version trained from --commit (nothing promoted: train on
    that commit first), an older version without --rollback, or GitLab not
    configured under --strict.
    """
    from ds_pipelines.gitlab import GitLabError
    from ds_pipelines.masking import Masker
    from ds_pipelines.project.defaults import DEVELOPMENT, PRODUCTION
    from ds_pipelines.publishing.release import release as release_tag
    from ds_pipelines.results.folder import load_results
    from ds_pipelines.results.origin import Provenance

    if results_dir is not None and commit is not None:
        raise click.UsageError("--results and --commit both choose the model version: give --results (the version "
                               "its training run registered) or --commit (the newest version trained from it)")
    console = Console()
    # Errors raised here stop the release (bad input, registry failures, GitLab unset under --strict); a
    # GitLab release that cannot be written comes back in the outcome, reported after the promotion.
    with console.policy("GitLab release not published", strict=strict):
        project = load_project(project_dir)
        results = load_results(results_dir) if results_dir is not None else None
        gitlab = None
        if project.triggers.release_kind(tag) == PRODUCTION:
            try:
                gitlab = gitlab_client()
            except GitLabError as exc:
                if strict:  # before anything is promoted: a misconfigured job changes nothing
                    raise
                gitlab = exc
        outcome = release_tag(
            tag, project=project, results=results, model=model, commit=commit, image=image, gitlab=gitlab,
            masker=Masker.from_env(os.environ),
            origin=Provenance.from_gitlab_ci(os.environ), tracking_uri=tracking_uri(project_dir),
            artifacts=job_artifacts(job_url), warn=console.warn, rollback=rollback,
        )
    for promotion in outcome.promotions:
        how = (f"alias {promotion.alias!r} set ({promotion.model_uri})" if promotion.method == "alias" else
               f"tagged ds-pipelines.alias={promotion.alias} (this MLflow server has no aliases)")
        console.echo(f"Model {promotion.name} version {promotion.version}: {how}.")
    if outcome.kind == DEVELOPMENT:
        console.echo(f"Development tag {tag}: the model is staged; nothing is deployed and no GitLab release is made.")
    elif outcome.gitlab_release:
        console.echo(f"GitLab release {tag} {outcome.gitlab_release}.")
    elif outcome.gitlab_error is not None:
        console.give_up(f"GitLab release {tag} not published", outcome.gitlab_error, strict=strict)
