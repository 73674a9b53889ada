"""The scoring schedule: the seed's scheduled pipeline, run by Dagster (cron from configs/notebooks.yaml)."""

from __future__ import annotations

import dagster as dg

from ds_pipelines.project import Project
from ds_pipelines.provenance import TAG_PREFIX
from ds_pipelines.trigger import SCHEDULED

SCORING_SCHEDULE = "scoring"


def scoring_schedule(project: Project) -> dg.ScheduleDefinition:
    """Runs ``triggers.schedule.notebook`` (the scoring notebook) at ``triggers.schedule.cron``."""
    settings = project.triggers.schedule
    notebook = project.find(settings.notebook)
    return dg.ScheduleDefinition(
        name=SCORING_SCHEDULE,
        cron_schedule=settings.cron,
        execution_timezone=settings.timezone,
        target=dg.AssetSelection.assets(notebook.name),
        tags={f"{TAG_PREFIX}trigger": "schedule", f"{TAG_PREFIX}reason": SCHEDULED, f"{TAG_PREFIX}notebook": notebook.path},
        default_status=dg.DefaultScheduleStatus.RUNNING if settings.enabled else dg.DefaultScheduleStatus.STOPPED,
        description=f"Scores with {notebook.path} ({settings.cron}, {settings.timezone}); "
        "set triggers.schedule in configs/notebooks.yaml.",
    )
