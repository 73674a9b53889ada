"""The cron check of ``triggers.schedule.cron`` agrees with what Dagster's schedules accept, so a cron that would
break the code location is refused by ``ds-pipelines check`` and ``run`` instead."""

from __future__ import annotations

import warnings

import dagster as dg
import pytest

from ds_pipelines.project.settings import ScheduleSettings, cron_problem


@dg.job
def _nothing() -> None:
    pass


def dagster_accepts(cron: str) -> bool:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            dg.ScheduleDefinition(name="probe", cron_schedule=cron, job=_nothing)
        except dg.DagsterInvalidDefinitionError:
            return False
    return True


@pytest.mark.parametrize("cron", [
    "0 6 * * *", "*/15 * * * 1-5", "0 0 L * *", "0 6 * * MON-FRI", "0 6 * * 5#3", "@daily", "0 6 * JAN,JUL *",
    "0 6 * * 7", "5-1 * * * *", "0 0 * * FRI-MON", "0 0 1-31/2 * *", "0 0 ? * *", "0 0 * * 1/2", "0 6 31 4 *",
    "61 6 * * *", "0 25 * * *", "0 6 * *", "* * * * * *", "0 6 30 2 *", "*/0 * * * *", "0 6 * FOO *", "0 0 0 * *",
    "0 0 * 13 *", "0 0 * * 8", "0 0 * * 6#6", "0 0 LW * *", "0 0 15W * *", "0 0 * * L", "0 0 * * 5L", "0 0 * 0 *",
    "0 0 * * *,", "a b c d e",
])
def test_agrees_with_dagster(cron: str):
    assert (cron_problem(cron) is None) == dagster_accepts(cron), cron_problem(cron)


def test_an_out_of_range_minute_is_named_with_what_is_expected():
    with pytest.raises(ValueError, match=r"minute field '61': '61' is out of range 0-59, got '61 6 \* \* \*': expected a cron"):
        ScheduleSettings(cron="61 6 * * *")
