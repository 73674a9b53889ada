"""The ``triggers:`` section of ``configs/notebooks.yaml``, and what a release tag is.

A Dagster deployment reads the section to know which branches to watch, when to score, and how many GPU
notebooks may run at once. The tag patterns are shared by everyone who classifies a tag: ``ds-pipelines
detect`` and the tag sensor (which tags start a release), ``ds-pipelines release`` (which alias) and
``ds-pipelines image-tag`` (which image tags).
"""

from __future__ import annotations

import re
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.project.schemas.base import StrictModel

PRODUCTION, DEVELOPMENT, NO_RELEASE = "production", "development", "none"

PRODUCTION_TAG = r"v[0-9]+\.[0-9]+\.[0-9]+"
"""Full-match pattern of production release tags. ``v1.2.3-rc1`` does not match: a pre-release is no
production release, and as it matches neither pattern it is no release at all (``none``)."""
DEVELOPMENT_TAG = r"dev-[0-9]+\.[0-9]+\.[0-9]+"
"""Full-match pattern of development tags: released, never deployed."""

SCORING_NOTEBOOK = "notebooks/inference_example.ipynb"
"""The notebook a ``schedule`` pipeline runs when ``triggers.schedule.notebook`` is unset."""


class TagPatternError(DsPipelinesError):
    """A release tag pattern that is not a regular expression."""


def release_kind(tag: str | None, production: str = PRODUCTION_TAG, development: str = DEVELOPMENT_TAG) -> str:
    """``production``, ``development`` or ``none`` for a tag; patterns must match the whole tag."""
    if not tag:
        return NO_RELEASE
    for kind, pattern in ((PRODUCTION, production), (DEVELOPMENT, development)):
        try:
            if re.fullmatch(pattern, tag):
                return kind
        except re.error as exc:
            raise TagPatternError(f"{kind} tag pattern {pattern!r} is not a valid regular expression: {exc}") from None
    return NO_RELEASE

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


class TriggerSettings(StrictModel):
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

    def release_kind(self, tag: str | None) -> str:
        """``production``, ``development`` or ``none`` for ``tag``, by this project's tag patterns."""
        return release_kind(tag, self.production_tag, self.development_tag)
