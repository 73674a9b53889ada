"""Alerts: failed runs of this code location are posted to Slack (see ``ds_pipelines.slack`` for the settings)."""

from __future__ import annotations

from collections.abc import Mapping

import dagster as dg

from ds_pipelines.defs.alerts.resources import slack_notifier_resource
from ds_pipelines.defs.alerts.sensors import RESOURCE_KEY, slack_on_run_failure


def alert_definitions(environ: Mapping[str, str] | None = None) -> dg.Definitions:
    """The run-failure sensor and its Slack resource, configured from ``environ`` (default ``os.environ``):
    only the variables set there are wired in (through ``dg.EnvVar``), so an unconfigured deployment loads
    and its sensor skips, saying what to set."""
    return dg.Definitions(sensors=[slack_on_run_failure], resources={RESOURCE_KEY: slack_notifier_resource(environ)})


@dg.definitions
def defs() -> dg.Definitions:
    return alert_definitions()
