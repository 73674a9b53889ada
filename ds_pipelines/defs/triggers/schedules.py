"""The scoring schedule: the seed's scheduled pipeline, run by Dagster (cron from configs/notebooks.yaml).

Like the scoring job and ``write-to-wiki`` of a CI schedule's child pipeline, a tick runs the scoring
notebook (its asset is materialized by the inner ``ds-pipelines run``) and logs the run on the notebook's
wiki page. With ``triggers.orchestrator: gitlab-ci`` (the default) GitLab's pipeline schedule scores
instead, and each tick skips, saying so.
"""

from __future__ import annotations

import dagster as dg

from ds_pipelines.defs.triggers.notebook_runs import (
    NotebookRunConfig,
    run_scheduled_notebook,
    scheduled_notebook_job,
)
from ds_pipelines.errors import ConfigError, NotebookNotFoundError
from ds_pipelines.execution.instance import DEVICE_TAG
from ds_pipelines.project import REGISTRY_FILE, Project
from ds_pipelines.project.defaults import SCORING_NOTEBOOK
from ds_pipelines.project.settings import DAGSTER
from ds_pipelines.results.origin import TAG_PREFIX
from ds_pipelines.triggers.rules import SCHEDULED

SCORING_SCHEDULE = "scoring"


def scoring_schedule(project: Project) -> dg.ScheduleDefinition | None:
    """Runs ``triggers.schedule.notebook`` (the scoring notebook) at ``triggers.schedule.cron``; None for a
    project without the default scoring notebook that names no other."""
    settings = project.triggers.schedule
    if settings.notebook is None and SCORING_NOTEBOOK not in {spec.path for spec in project.notebooks()}:
        return None
    try:
        notebook = project.find(settings.notebook or SCORING_NOTEBOOK)
    except NotebookNotFoundError as exc:
        raise ConfigError(REGISTRY_FILE, "triggers.schedule.notebook", str(exc)) from None
    run_config = dg.RunConfig(
        ops={run_scheduled_notebook.name: NotebookRunConfig(notebook=notebook.path, project_dir=str(project.root))},
    )
    tags = {f"{TAG_PREFIX}trigger": "schedule", f"{TAG_PREFIX}reason": SCHEDULED, f"{TAG_PREFIX}notebook": notebook.path,
            DEVICE_TAG: notebook.device}

    @dg.schedule(
        name=SCORING_SCHEDULE,
        cron_schedule=settings.cron,
        execution_timezone=settings.timezone,
        target=scheduled_notebook_job,
        default_status=dg.DefaultScheduleStatus.RUNNING if settings.enabled else dg.DefaultScheduleStatus.STOPPED,
        description=f"Scores with {notebook.path} ({settings.cron}, {settings.timezone}); "
        "set triggers.schedule in configs/notebooks.yaml.",
    )
    def scoring(context: dg.ScheduleEvaluationContext) -> dg.RunRequest | dg.SkipReason:
        # Read at each tick: a deployment that hands scoring to GitLab CI's pipeline schedule skips, saying so.
        deferred = project.triggers.deferred(DAGSTER)
        if deferred:
            return dg.SkipReason(deferred)
        return dg.RunRequest(run_config=run_config, tags=tags)

    return scoring
