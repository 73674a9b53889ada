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

_CRON_MACROS = {"@yearly", "@annually", "@monthly", "@weekly", "@daily", "@midnight", "@hourly"}
_MONTHS = {name: number for number, name in enumerate(("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1)}
_WEEKDAYS = {name: number for number, name in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"))}
# (name, lowest, highest, names): the five fields Dagster's schedules take (no seconds field).
_CRON_FIELDS = (("minute", 0, 59, {}), ("hour", 0, 23, {}), ("day of month", 1, 31, {}),
                ("month", 1, 12, _MONTHS), ("day of week", 0, 7, _WEEKDAYS))
_CRON_EXPECTED = ("a cron expression of five fields such as '0 6 * * *' (minute 0-59, hour 0-23, day of month 1-31, "
                  "month 1-12 or JAN-DEC, day of week 0-7 or SUN-SAT; *, ranges a-b, steps /n and lists a,b) or a macro "
                  "such as '@daily'")


def cron_problem(cron: str) -> str | None:
    """What is wrong with ``cron`` as Dagster reads a schedule's cron string; None when nothing is.

    Dagster checks the ranges only when the code location loads, with croniter, which it vendors privately:
    this is the same check, so ``ds-pipelines check`` and ``run`` refuse ``61 6 * * *`` before a deployment
    does (the definitions-load step of ``check`` still builds the real schedule)."""
    if cron in _CRON_MACROS:
        return None
    fields = cron.split()
    if len(fields) != 5:
        return f"expected five fields, found {len(fields)}"
    for text, (name, low, high, names) in zip(fields, _CRON_FIELDS):
        for item in text.split(","):
            problem = _cron_item_problem(item.upper(), name, low, high, names)
            if problem:
                return f"{name} field {text!r}: {problem}"
    day, month = fields[2], fields[3].upper()
    if month in ("2", "FEB") and day in ("30", "31"):
        return f"February has no day {day}"  # Dagster refuses a schedule that never fires
    return None


def _cron_item_problem(item: str, name: str, low: int, high: int, names: dict[str, int]) -> str | None:
    base, slash, step = item.partition("/")
    if slash and not (step.isdigit() and int(step) >= 1):
        return f"step {step!r} is not a whole number of at least 1"
    if base in ("*", "?"):
        return None
    # The extensions Dagster's schedules take: L, the last day of the month; 5#3, the third Friday.
    if name == "day of month" and base == "L":
        return None
    if name == "day of week":
        weekday, hash_sign, nth = base.partition("#")
        if hash_sign:
            if not (nth.isdigit() and 1 <= int(nth) <= 5):
                return f"{base!r}: the week after # must be 1-5"
            base = weekday
    bounds = base.split("-")
    if len(bounds) > 2 or not all(bounds):
        return f"{item!r} is not a value, a range a-b or *"
    for bound in bounds:
        value = int(bound) if bound.isdigit() else names.get(bound)
        if value is None or not low <= value <= high:
            return f"{bound!r} is out of range {low}-{high}" if bound.isdigit() else f"{bound!r} is not a {name}"
    return None  # a range that runs backwards (FRI-MON) wraps around, as in Dagster


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
    def _valid_cron(cls, value: str) -> str:
        problem = cron_problem(value.strip())
        if problem:
            raise ValueError(f"{problem}, got {value!r}: expected {_CRON_EXPECTED}")
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
    trusted_forks: list[int] = Field(default_factory=list)
    """Ids of the projects whose merge requests into this one the commit sensor runs although they come from a
    fork. A fork's commits run with the deployment's MLflow credentials: list only forks whose every pusher you
    trust. Read from the deployment's own configs/notebooks.yaml, never from a commit's."""
    production_tag: str = PRODUCTION_TAG
    development_tag: str = DEVELOPMENT_TAG
    poll_interval_s: int = Field(default=60, ge=5)
    """How often the commit and tag sensors ask GitLab for news, in seconds."""
    gpu_concurrency: int = Field(default=1, ge=1)
    """At most this many GPU notebooks run at once (Dagster pool ``gpu``); CPU notebooks are not limited."""
    keep_checkouts: int = Field(default=20, ge=1)
    """How many commit checkouts the commit sensor keeps (those used last), besides those of runs that have not
    finished: older ones are removed, and extracted again if a run needs them."""
    schedule: ScheduleSettings = Field(default_factory=ScheduleSettings)

    @field_validator("production_tag", "development_tag")
    @classmethod
    def _regular_expression(cls, value: str) -> str:
        # Checked here, not first when a tag arrives: the tag sensor would fail at every tick.
        try:
            re.compile(value)
        except re.error as exc:
            raise ValueError(f"expected a regular expression matching whole tags, got {value!r}: {exc}") from None
        return value

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
