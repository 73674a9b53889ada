"""The release flow, started once per production tag: what ``ds-pipelines release TAG`` does, as a Dagster run.

The tag sensor finds new tags through the GitLab API; a tag matching ``triggers.production_tag`` (``v1.2.3``)
starts this job, which promotes the model version trained from the tag's commit in the MLflow registry and
creates the GitLab release, as GitLab CI's auto-release job does. Development tags (``dev-1.2.3``) deploy nothing and start nothing.

Only protected tags release (anyone with Developer access can push any other), oldest version first, so
``v1.10.0`` comes after ``v1.9.0``. A release run launched by hand must name the commit: without one it
would promote whatever version is newest, trained on any branch.
"""

# No "from __future__ import annotations": Dagster reads the config and resource annotations at runtime.
import json
import re

import dagster as dg

from ds_pipelines.defs.triggers.resources import (
    GitLabResource,
    left_to_gitlab_ci,
    not_configured,
)
from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.gitlab.repository import tags
from ds_pipelines.project import Project
from ds_pipelines.project.defaults import PRODUCTION
from ds_pipelines.publishing.release import release
from ds_pipelines.results.origin import TAG_PREFIX, Provenance
from ds_pipelines.tracking import tracking_uri

RELEASE_JOB = "release"


class ReleaseConfig(dg.Config):
    tag: str
    commit: str | None = None
    """The tag's commit, for a run launched by hand (the tag sensor's runs carry it as a run tag)."""
    rollback: bool = False
    """Allow a version older than the current production one (``ds-pipelines release --rollback``)."""


@dg.op(description="Create the GitLab release of a production tag and promote its model to the production alias.")
def release_tag(context: dg.OpExecutionContext, config: ReleaseConfig, gitlab: GitLabResource) -> None:
    missing = gitlab.missing()
    if missing:
        # Checked before anything is promoted: a misconfigured deployment changes nothing.
        raise dg.Failure(description=f"release of {config.tag} not started: GitLab is not configured: set {', '.join(missing)}")
    project = Project()
    masker = gitlab.masker()
    origin = Provenance.from_run_tags(context.run.tags)
    # The sensor tags the run with the tag's commit: the version trained from it is released, as in CI.
    commit = config.commit or origin.commit
    if not commit:
        raise dg.Failure(description=f"release of {config.tag} refused: no commit to release (the gitlab_tags sensor's "
                         "runs carry the tag's commit; a run launched by hand sets commit: <the tag's full SHA> in "
                         "the op's config): without one, the newest version of any branch would be promoted")
    try:
        client = gitlab.client()
        outcome = release(
            config.tag, project=project, results=None, model=None, commit=commit.lower(), image=None,
            gitlab=client, masker=masker, origin=Provenance(**{**vars(origin), "project_id": str(client.project_attributes()["id"])}),
            tracking_uri=tracking_uri(project), artifacts=None, warn=context.log.warning, rollback=config.rollback,
        )
    except DsPipelinesError as exc:
        raise dg.Failure(description=f"release of {config.tag} failed: {masker.mask(str(exc))}") from None
    for promotion in outcome.promotions:
        context.log.info(f"model {promotion.name} version {promotion.version} is {promotion.alias} ({promotion.model_uri})")
    if outcome.gitlab_error is not None:
        raise dg.Failure(description=f"GitLab release {config.tag} not written: {masker.mask(str(outcome.gitlab_error))}")
    context.log.info(f"GitLab release {config.tag} {outcome.gitlab_release}")


@dg.job(name=RELEASE_JOB, description="Release a production tag: GitLab release and MLflow production alias.")
def release_job() -> None:
    release_tag()


def version_order(tag: str) -> tuple:
    """Sorts tags by the numbers in them (``v1.9.0`` before ``v1.10.0``), then by name."""
    return tuple(int(number) for number in re.findall(r"\d+", tag)), tag


def tag_sensor(project: Project) -> dg.SensorDefinition:
    """The sensor ``gitlab_tags``, polling GitLab every ``triggers.poll_interval_s`` seconds."""
    settings = project.triggers

    @dg.sensor(
        name="gitlab_tags",
        target=release_job,
        minimum_interval_seconds=settings.poll_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Starts the release flow once for each new production tag (triggers.production_tag).",
    )
    def gitlab_tags(context: dg.SensorEvaluationContext, gitlab: GitLabResource) -> dg.SensorResult | dg.SkipReason:
        skip = left_to_gitlab_ci(project) or not_configured(gitlab)
        if skip:
            return skip
        try:
            found = tags(gitlab.client())
        except DsPipelinesError as exc:
            return dg.SkipReason(f"cannot read GitLab: {exc}")
        production = {tag.name: tag.sha for tag in found if settings.release_kind(tag.name) == PRODUCTION and tag.protected}
        for tag in found:
            if settings.release_kind(tag.name) == PRODUCTION and not tag.protected:
                context.log.warning(f"tag {tag.name} is not protected in GitLab: not released (protect {settings.production_tag!r} "
                                    "tags, Settings > Repository > Protected tags)")
        if context.cursor is None:
            # First evaluation: tags that exist already were released before this sensor watched them.
            return dg.SensorResult(cursor=json.dumps(sorted(production)),
                                   skip_reason=f"watching tags; {len(production)} production tag(s) already there")
        seen = set(json.loads(context.cursor))
        requests = [
            dg.RunRequest(
                run_key=f"release:{name}",
                run_config=dg.RunConfig(ops={"release_tag": ReleaseConfig(tag=name)}),
                tags={f"{TAG_PREFIX}tag": name, f"{TAG_PREFIX}commit": sha, f"{TAG_PREFIX}trigger": "tag"},
            )
            for name, sha in sorted(production.items(), key=lambda item: version_order(item[0])) if name not in seen
        ]
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(sorted(seen | set(production))),
                               skip_reason=None if requests else "no new production tag")

    return gitlab_tags
