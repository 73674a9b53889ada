"""The release flow, started once per production tag: ``ds-pipelines release TAG`` as a Dagster run.

The tag sensor finds new tags through the GitLab API; a tag matching ``triggers.production_tag`` (``v1.2.3``)
starts this job, which creates the GitLab release and promotes the model in the MLflow registry, exactly
as GitLab CI's auto-release job does. Development tags (``dev-1.2.3``) deploy nothing and start nothing.
"""

# No "from __future__ import annotations": Dagster reads the config and resource annotations at runtime.
import json
import os
import subprocess
import sys

import dagster as dg

from ds_pipelines.defs.triggers.resources import GitLabResource, not_configured
from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.gitlab.repository import tags
from ds_pipelines.project import Project
from ds_pipelines.provenance import TAG_PREFIX
from ds_pipelines.trigger import PRODUCTION, release_kind
from ds_pipelines.tracking import TRACKING_URI_ENV, tracking_uri

RELEASE_JOB = "release"


class ReleaseConfig(dg.Config):
    tag: str


@dg.op(description="Create the GitLab release of a production tag and promote its model to the production alias.")
def release_tag(context: dg.OpExecutionContext, config: ReleaseConfig, gitlab: GitLabResource) -> None:
    project = Project()
    env = {**os.environ, TRACKING_URI_ENV: tracking_uri(project), "DS_PIPELINES_PROJECT_DIR": str(project.root)}
    # The release command reads GitLab's settings from the environment, as in CI (these names win there).
    env.update({"CI_SERVER_URL": gitlab.url or "", "CI_PROJECT_ID": gitlab.project_id or "", "GITLAB_TOKEN": gitlab.token or ""})
    command = [sys.executable, "-m", "ds_pipelines", "release", config.tag, "--strict"]
    done = subprocess.run(command, env=env, cwd=project.root, capture_output=True, text=True)
    for line in (done.stdout + done.stderr).splitlines():
        context.log.info(line)
    if done.returncode != 0:
        raise dg.Failure(description=f"release of {config.tag} failed (exit {done.returncode}); see the run log")


@dg.job(name=RELEASE_JOB, description="Release a production tag: GitLab release and MLflow production alias.")
def release_job() -> None:
    release_tag()


def tag_sensor(project: Project) -> dg.SensorDefinition:
    """The sensor ``gitlab_tags``, polling GitLab every ``triggers.poll_interval_s`` seconds."""
    settings = project.triggers

    @dg.sensor(
        name="gitlab_tags",
        job=release_job,
        minimum_interval_seconds=settings.poll_interval_s,
        default_status=dg.DefaultSensorStatus.RUNNING,
        description="Starts the release flow once for each new production tag (triggers.production_tag).",
    )
    def gitlab_tags(context: dg.SensorEvaluationContext, gitlab: GitLabResource) -> dg.SensorResult | dg.SkipReason:
        skip = not_configured(gitlab)
        if skip:
            return skip
        try:
            found = tags(gitlab.client())
        except DsPipelinesError as exc:
            return dg.SkipReason(f"cannot read GitLab: {exc}")
        production = {tag.name: tag.sha for tag in found
                      if release_kind(tag.name, settings.production_tag, settings.development_tag) == PRODUCTION}
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
            for name, sha in sorted(production.items()) if name not in seen
        ]
        return dg.SensorResult(run_requests=requests, cursor=json.dumps(sorted(seen | set(production))),
                               skip_reason=None if requests else "no new production tag")

    return gitlab_tags
