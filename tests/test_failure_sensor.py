"""The run-failure sensor posts real failed runs, executed on a temporary Dagster instance, to the fake Slack.

Runs fail the way the notebook assets fail (a ``dg.Failure`` naming the cell and the error, run tags from
GitLab) and the way any other op fails (an exception); the sensor is evaluated directly on the failure
event, and through real ticks that keep a cursor.
"""

from __future__ import annotations

import dagster as dg
import pytest
from fake_slack import CHANNEL
from made_up import random_text

from ds_pipelines.defs.alerts.definitions import alert_definitions
from ds_pipelines.defs.alerts.resources import SlackNotifierResource
from ds_pipelines.defs.alerts.sensors import (
    RESOURCE_KEY,
    SENSOR_NAME,
    slack_on_run_failure,
)
from ds_pipelines.slack import NOT_CONFIGURED, SlackError

PROJECT_URL = "https://gitlab.example.com/group/ds"
SHA = "0123456789abcdef0123456789abcdef01234567"
UI_URL = "https://dagster.example.com"


# Made up at run time, so this file holds no token-shaped string for secret scanners to report.
GITLAB_TOKEN = "glpat-" + random_text(20)
PASSWORD = "horse-" + random_text(14)
"""Only masked because it is a secret variable's value in the sensor's environment."""
TAGS = {
    "ds-pipelines/notebook": "notebooks/leaky.ipynb",
    "ds-pipelines/commit": SHA,
    "ds-pipelines/commit-url": f"{PROJECT_URL}/-/commit/{SHA}",
    "ds-pipelines/merge-request-url": f"{PROJECT_URL}/-/merge_requests/12",
    "ds-pipelines/pipeline-url": f"{PROJECT_URL}/-/pipelines/77",
}


@dg.op
def leaky_notebook() -> None:
    # What the notebook asset raises when a cell fails (ds_pipelines/defs/notebooks/assets.py).
    raise dg.Failure(
        description="notebooks/leaky.ipynb failed in code cell 2 ('raise ValueError(...)'): "
        f"ValueError: <!channel> login refused for {GITLAB_TOKEN} with {PASSWORD}"
    )


@dg.job(tags=TAGS)
def notebook_job() -> None:
    leaky_notebook()


@dg.asset
def broken_asset() -> None:
    raise ValueError("disk full, ask <@U123ABC>")


@pytest.fixture
def instance():
    with dg.DagsterInstance.ephemeral() as instance:
        yield instance


@pytest.fixture
def secret_env(monkeypatch):
    """The sensor masks the secret variables of its own process, as a deployment's code server would."""
    monkeypatch.setenv("DEMO_SERVICE_PASSWORD", PASSWORD)
    for name in ("SLACK_WEBHOOK_URL", "SLACK_BOT_TOKEN", "SLACK_TOKEN", "SLACK_CHANNEL", "SLACK_API_URL", "DAGSTER_WEBSERVER_URL"):
        monkeypatch.delenv(name, raising=False)


def failed_notebook_run(instance: dg.DagsterInstance) -> dg.ExecuteInProcessResult:
    result = notebook_job.execute_in_process(instance=instance, raise_on_error=False)
    assert not result.success
    return result


def evaluate(result, instance, notifier: SlackNotifierResource):
    """The sensor, called on ``result``'s run-failure event."""
    context = dg.build_run_status_sensor_context(
        sensor_name=SENSOR_NAME, dagster_event=result.get_run_failure_event(), dagster_instance=instance,
        dagster_run=result.dagster_run, resources={RESOURCE_KEY: notifier},
    ).for_run_failure()
    return slack_on_run_failure(context)


def test_failed_run_is_posted_with_run_notebook_error_and_links(instance, fake_slack, secret_env):
    result = failed_notebook_run(instance)
    run_id = result.dagster_run.run_id
    assert evaluate(result, instance, SlackNotifierResource(webhook_url=fake_slack.webhook_url, dagster_ui_url=UI_URL + "/")) is None
    [text] = fake_slack.texts
    lines = text.splitlines()
    assert lines[0] == f":x: *Dagster run failed* (job notebook_job · run <{UI_URL}/runs/{run_id}|{run_id[:8]}>)"
    assert lines[1] == (f"<{PROJECT_URL}/-/commit/{SHA}|Commit> · <{PROJECT_URL}/-/merge_requests/12|Merge request> · "
                        f"<{PROJECT_URL}/-/pipelines/77|Pipeline>")
    assert lines[2] == "*leaky_notebook* (notebooks/leaky.ipynb) failed:"
    assert lines[3:6] == [
        "```",
        ("notebooks/leaky.ipynb failed in code cell 2 ('raise ValueError(...)'): "
         "ValueError: &lt;!channel&gt; login refused for [MASKED] with [MASKED]"),
        "```",
    ]


def test_planted_secrets_are_masked_and_the_channel_ping_is_escaped(instance, fake_slack, secret_env):
    evaluate(failed_notebook_run(instance), instance, SlackNotifierResource(webhook_url=fake_slack.webhook_url))
    [text] = fake_slack.texts
    assert GITLAB_TOKEN not in text and "glpat-" not in text and PASSWORD not in text
    assert "<!channel>" not in text and "&lt;!channel&gt;" in text


def test_untagged_run_names_the_failed_step_and_the_exception(instance, fake_slack, secret_env):
    result = dg.materialize([broken_asset], instance=instance, raise_on_error=False)
    assert not result.success
    evaluate(result, instance, SlackNotifierResource(webhook_url=fake_slack.webhook_url))
    [text] = fake_slack.texts
    lines = text.splitlines()
    # No UI URL: the whole run id, to search for in the UI.
    assert lines[0] == f":x: *Dagster run failed* (job __ephemeral_asset_job__ · run {result.dagster_run.run_id})"
    assert lines[1] == "*broken_asset* failed:"
    assert lines[2:5] == ["```", "ValueError: disk full, ask &lt;@\u200bU123ABC&gt;", "```"]
    assert "DagsterExecutionStepExecutionError" not in text  # Dagster's wrapper is not what people need to read
    assert len(lines) == 5  # no GitLab tags, no links line


def test_run_that_failed_outside_its_steps_is_posted_with_the_run_failure_message(instance, fake_slack, secret_env):
    # What run monitoring records when a run worker dies: a run failure, no step failure.
    run = instance.create_run_for_job(notebook_job, tags=TAGS)
    event = instance.report_run_failed(run, message=f"Run worker crashed (exit 137) while using {PASSWORD}")
    context = dg.build_run_status_sensor_context(
        sensor_name=SENSOR_NAME, dagster_event=event, dagster_instance=instance,
        dagster_run=instance.get_run_by_id(run.run_id), resources={RESOURCE_KEY: SlackNotifierResource(webhook_url=fake_slack.webhook_url)},
    ).for_run_failure()
    assert slack_on_run_failure(context) is None
    [text] = fake_slack.texts
    assert text.splitlines()[2:6] == [
        "*notebook_job* (notebooks/leaky.ipynb) failed:", "```", "Run worker crashed (exit 137) while using [MASKED]", "```",
    ]


def test_definitions_from_the_environment_post_with_the_bot_token(instance, fake_slack, secret_env, monkeypatch):
    for name, value in {**fake_slack.bot_environ(), "DAGSTER_WEBSERVER_URL": UI_URL}.items():
        monkeypatch.setenv(name, value)
    defs = alert_definitions()
    notifier = defs.resources[RESOURCE_KEY]
    # Only what is set is wired in, and through EnvVar: no secret in Dagster's config.
    assert isinstance(notifier.token, dg.EnvVar) and notifier.token.env_var_name == "SLACK_BOT_TOKEN"
    assert notifier.webhook_url is None
    result = failed_notebook_run(instance)
    evaluate(result, instance, notifier)
    [post] = fake_slack.posts
    assert (post.kind, post.payload["channel"]) == ("bot", CHANNEL)
    assert f"<{UI_URL}/runs/{result.dagster_run.run_id}|" in post.text


def test_unconfigured_sensor_skips_and_names_what_to_set(instance, secret_env):
    notifier = alert_definitions({}).resources[RESOURCE_KEY]
    assert (notifier.webhook_url, notifier.token, notifier.channel) == (None, None, None)
    result = failed_notebook_run(instance)
    skipped = evaluate(result, instance, notifier)
    assert isinstance(skipped, dg.SkipReason)
    assert skipped.skip_message == (
        f"{NOT_CONFIGURED} in the code location's environment: run {result.dagster_run.run_id} not posted"
    )


def test_token_without_channel_skips_without_calling_slack(instance, fake_slack, secret_env):
    notifier = SlackNotifierResource(token=fake_slack.token, api_url=fake_slack.api_url)
    skipped = evaluate(failed_notebook_run(instance), instance, notifier)
    assert isinstance(skipped, dg.SkipReason)
    assert skipped.skip_message.startswith("Slack is not configured: SLACK_BOT_TOKEN is set but SLACK_CHANNEL is not")
    assert fake_slack.token not in skipped.skip_message and fake_slack.requests == []


def test_delivery_failure_fails_the_tick_without_the_webhook_path(instance, fake_slack, secret_env):
    removed = fake_slack.webhook_url.rsplit("/", 1)[0] + "/removed-" + random_text(16)
    notifier = SlackNotifierResource(webhook_url=removed)
    with pytest.raises(SlackError) as error:
        evaluate(failed_notebook_run(instance), instance, notifier)
    assert "HTTP 404 no_service" in str(error.value)
    assert removed.rsplit("/", 1)[1] not in str(error.value) and "/services/" not in str(error.value)
    assert fake_slack.posts == []


def test_ticks_post_each_failed_run_once(instance, fake_slack, secret_env):
    notifier = SlackNotifierResource(webhook_url=fake_slack.webhook_url)

    def tick(cursor):
        return slack_on_run_failure.evaluate_tick(dg.build_sensor_context(instance=instance, cursor=cursor, resources={RESOURCE_KEY: notifier}))

    failed_notebook_run(instance)  # before the sensor started: not posted
    first = tick(None)
    assert first.skip_message.startswith(f"Initiating {SENSOR_NAME}") and fake_slack.posts == []
    result = failed_notebook_run(instance)
    second = tick(first.cursor)
    assert [reaction.dagster_run.run_id for reaction in second.dagster_run_reactions] == [result.dagster_run.run_id]
    assert second.dagster_run_reactions[0].error is None and len(fake_slack.posts) == 1
    assert result.dagster_run.run_id in fake_slack.texts[0]
    third = tick(second.cursor)
    assert third.dagster_run_reactions == [] and len(fake_slack.posts) == 1


def test_sensor_watches_every_job_of_the_code_location_and_starts_running():
    from ds_pipelines.defs.notebooks.definitions import build_definitions
    from ds_pipelines.project import Project

    merged = dg.Definitions.merge(build_definitions(Project()), alert_definitions({}))
    dg.Definitions.validate_loadable(merged)
    sensor = merged.resolve_sensor_def(SENSOR_NAME)
    assert sensor.default_status == dg.DefaultSensorStatus.RUNNING
    assert RESOURCE_KEY in sensor.required_resource_keys
