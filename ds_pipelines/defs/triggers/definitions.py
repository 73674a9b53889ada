"""What starts runs without a person: the commit and tag sensors (GitLab) and the scoring schedule."""

from __future__ import annotations

import dagster as dg

from ds_pipelines.defs.triggers.notebook_runs import (
    commit_notebook_job,
    scheduled_notebook_job,
)
from ds_pipelines.defs.triggers.published import publish_failed_notebook_runs, publish_succeeded_notebook_runs
from ds_pipelines.defs.triggers.releases import release_job, tag_sensor
from ds_pipelines.defs.triggers.resources import gitlab_resource
from ds_pipelines.defs.triggers.schedules import scoring_schedule
from ds_pipelines.defs.triggers.sensors import commit_sensor
from ds_pipelines.project import Project


def trigger_definitions(project: Project) -> dg.Definitions:
    schedule = scoring_schedule(project)
    return dg.Definitions(
        jobs=[commit_notebook_job, scheduled_notebook_job, release_job],
        sensors=[commit_sensor(project), tag_sensor(project), publish_succeeded_notebook_runs, publish_failed_notebook_runs],
        schedules=[schedule] if schedule else [],
        resources={"gitlab": gitlab_resource()},
    )


@dg.definitions
def defs() -> dg.Definitions:
    return trigger_definitions(Project())
