"""The ``triggers:`` section of ``configs/notebooks.yaml``: what the Dagster sensors and schedule watch.

A Dagster deployment reads it to know which branches to watch, when to score, and how many GPU notebooks
may run at once; its defaults and tag rules are in ``ds_pipelines.project.defaults`` say which tags are releases.
"""

from __future__ import annotations

import re
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from ds_pipelines.project.defaults import DEVELOPMENT_TAG, PRODUCTION_TAG, release_kind
from ds_pipelines.project.schemas.base import StrictModel

# Five fields of digits, names (MON, JAN), "*", ranges, steps and lists; or a macro such as "@daily".
_CRON_FIELD = r"[0-9A-Za-z*?/,\-]+"
_CRON = re.compile(rf"(@(yearly|annually|monthly|weekly|daily|midnight|hourly))|({_CRON_FIELD}(\s+{_CRON_FIELD}){{4}})")


class ScheduleSettings(StrictModel):
    enabled: bool = True
    cron: str = "0 6 * * *"
    """When the scoring notebook runs (cron, five fields), like the seed's scheduled pipeline."""
    timezone: str = "UTC"
    notebook: str | None = None
    """The scoring notebook; unset means ``notebooks/inference_example.ipynb`` when the project has it (no
    schedule otherwise)."""

    @field_validator("cron")
    @classmethod
    def _five_fields(cls, value: str) -> str:
        if not _CRON.fullmatch(value.strip()):
            raise ValueError(f"expected a cron expression with five fields such as '0 6 * * *', got {value!r}")
        return value.strip()

    @field_validator("timezone")
    @classmethod
    def _known_timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"expected an IANA time zone such as 'UTC' or 'Europe/Berlin', got {value!r}") from None
        return value


GITLAB_CI, DAGSTER = "gitlab-ci", "dagster"


class TriggerSettings(StrictModel):
    orchestrator: Literal["gitlab-ci", "dagster"] = GITLAB_CI
    """Who runs pushed commits, release tags and the scoring schedule, so that each runs once where GitLab CI
    and a Dagster deployment both watch the project: ``gitlab-ci`` (its pipelines; Dagster's commit and tag
    sensors and its schedule skip, saying why) or ``dagster`` (the sensors and the schedule; CI's detect job
    plans nothing and auto-release stands down). Runs started by hand (UI, ``ds-pipelines run``) always run."""
    branches: list[str] = Field(default_factory=lambda: ["main"])
    """Branches whose new commits the commit sensor runs."""
    merge_requests: bool = True
    """Also run new commits of open merge requests (diffed against their merge base)."""
    production_tag: str = PRODUCTION_TAG
    development_tag: str = DEVELOPMENT_TAG
    poll_interval_s: int = Field(default=60, ge=5)
    """How often the commit and tag sensors ask GitLab for news, in seconds."""
    gpu_concurrency: int = Field(default=1, ge=1)
    """At most this many GPU notebooks run at once (Dagster pool ``gpu``); CPU notebooks are not limited."""
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)

    def deferred(self, here: str) -> str | None:
        """Why ``here`` (``gitlab-ci`` or ``dagster``) must leave commits, tags and schedules alone; None when
        it runs them."""
        if here == self.orchestrator:
            return None
        return (f"triggers.orchestrator is {self.orchestrator} in configs/notebooks.yaml: "
                f"{'GitLab CI' if self.orchestrator == GITLAB_CI else 'the Dagster deployment'} runs commits, tags and "
                f"scheduled scoring, so {'GitLab CI' if here == GITLAB_CI else 'Dagster'} does not (set it to {here} to move them here)")

    def release_kind(self, tag: str | None) -> str:
        """``production``, ``development`` or ``none`` for ``tag``, by this project's tag patterns."""
        return release_kind(tag, self.production_tag, self.development_tag)
