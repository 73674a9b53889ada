"""Slack as a Dagster resource: where the run-failure sensor posts, and the place the secrets live."""

from __future__ import annotations

import os
from collections.abc import Mapping

import dagster as dg

from ds_pipelines import slack

DAGSTER_UI_VARIABLE = "DAGSTER_WEBSERVER_URL"
"""Base URL of the Dagster UI (``https://dagster.example.com``): messages link to the failed run's page."""


class SlackNotifierResource(dg.ConfigurableResource):
    """Where alerts go; the fields mirror ``ds_pipelines.slack``'s variables. Fields left empty mean Slack
    is not configured here, and the sensor skips with a message instead of failing."""

    webhook_url: str | None = None
    token: str | None = None
    channel: str | None = None
    api_url: str | None = None
    dagster_ui_url: str | None = None

    def missing(self) -> str | None:
        """Why nothing can be posted, naming the variables to set; None when Slack is configured."""
        return slack.not_configured_message(self._environ())

    def settings(self) -> slack.SlackSettings:
        """The delivery settings; SlackConfigError when they are missing or malformed."""
        return slack.SlackSettings.from_env(self._environ())

    def post(self, text: str) -> slack.SlackSettings:
        """Post ``text`` (Slack mrkdwn); returns where it went. Raises SlackError when it was not delivered."""
        settings = self.settings()
        slack.send(text, settings)
        return settings

    def run_url(self, run_id: str) -> str | None:
        """The run's page in the Dagster UI, when its URL is known."""
        return f"{self.dagster_ui_url.rstrip('/')}/runs/{run_id}" if self.dagster_ui_url else None

    def _environ(self) -> dict[str, str]:
        values = {
            slack.WEBHOOK_VARIABLE: self.webhook_url,
            slack.TOKEN_VARIABLES[0]: self.token,
            slack.CHANNEL_VARIABLE: self.channel,
            slack.API_URL_VARIABLE: self.api_url,
        }
        return {name: value for name, value in values.items() if value}


def slack_notifier_resource(environ: Mapping[str, str] | None = None) -> SlackNotifierResource:
    """The resource for this deployment: each setting through ``dg.EnvVar`` of the first variable that is
    set, so the webhook URL and the token are read at run time and never stored in Dagster's config or
    run records."""
    env = os.environ if environ is None else environ

    def first_set(*names: str) -> dg.EnvVar | None:
        return next((dg.EnvVar(name) for name in names if (env.get(name) or "").strip()), None)

    return SlackNotifierResource(
        webhook_url=first_set(slack.WEBHOOK_VARIABLE),
        token=first_set(*slack.TOKEN_VARIABLES),
        channel=first_set(slack.CHANNEL_VARIABLE),
        api_url=first_set(slack.API_URL_VARIABLE),
        dagster_ui_url=first_set(DAGSTER_UI_VARIABLE),
    )
