"""Slack delivery (``ds_pipelines.slack``) over real HTTP against the fake Slack on 127.0.0.1: webhook and
bot token, retries on 429 and 5xx, and errors that never show the webhook's secret path or the token."""

from __future__ import annotations

import socket
import time

import pytest
from fake_slack import CHANNEL, FakeSlack
from made_up import random_text

from ds_pipelines import slack
from ds_pipelines.errors import DsPipelinesError


def closed_port_url(path: str) -> str:
    """A URL on 127.0.0.1 where nothing listens (connections are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}{path}"


def assert_hides_secrets(message: str, fake: FakeSlack) -> None:
    assert fake.webhook_path not in message and fake.webhook_path.rsplit("/", 1)[1] not in message
    assert fake.token not in message


# --- settings ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("env, expected", [
    ({}, "Slack is not configured: set SLACK_WEBHOOK_URL (or SLACK_BOT_TOKEN and SLACK_CHANNEL)"),
    ({"SLACK_WEBHOOK_URL": "  ", "SLACK_CHANNEL": ""}, "Slack is not configured: set SLACK_WEBHOOK_URL (or SLACK_BOT_TOKEN and SLACK_CHANNEL)"),
    ({"SLACK_BOT_TOKEN": "xoxb-1"}, "Slack is not configured: SLACK_BOT_TOKEN is set but SLACK_CHANNEL is not (or set SLACK_WEBHOOK_URL instead)"),
    ({"SLACK_TOKEN": "xoxb-1"}, "Slack is not configured: SLACK_TOKEN is set but SLACK_CHANNEL is not (or set SLACK_WEBHOOK_URL instead)"),
    ({"SLACK_CHANNEL": "#x"}, "Slack is not configured: SLACK_CHANNEL is set but SLACK_BOT_TOKEN is not (or set SLACK_WEBHOOK_URL instead)"),
], ids=["nothing", "blank", "token-without-channel", "legacy-token-without-channel", "channel-without-token"])
def test_not_configured_names_what_to_set(env, expected):
    assert slack.not_configured_message(env) == expected
    assert not slack.configured(env)
    with pytest.raises(slack.SlackConfigError) as error:
        slack.SlackSettings.from_env(env)
    assert str(error.value) == expected and isinstance(error.value, DsPipelinesError)


def test_settings_from_env_prefer_the_webhook_and_hide_secrets(fake_slack):
    both = {**fake_slack.webhook_environ(), **fake_slack.bot_environ()}
    settings = slack.SlackSettings.from_env(both)
    assert slack.configured(both) and settings.uses_webhook
    host = fake_slack.url.removeprefix("http://")
    assert settings.destination == f"incoming webhook at {host}"
    assert_hides_secrets(repr(settings) + str(settings), fake_slack)

    bot = slack.SlackSettings.from_env({"SLACK_TOKEN": fake_slack.token, "SLACK_CHANNEL": CHANNEL, "SLACK_API_URL": fake_slack.api_url})
    assert not bot.uses_webhook and bot.token == fake_slack.token and bot.destination == f"{CHANNEL} at {host}"
    assert slack.SlackSettings.from_env({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_CHANNEL": "#x"}).api_url == "https://slack.com/api/"
    assert_hides_secrets(repr(bot), fake_slack)


def test_malformed_webhook_url_is_rejected_without_repeating_it():
    secret_path = random_text(24)
    secret = f"hooks.slack.com/services/T1/B2/{secret_path}"  # no scheme: not a URL, yet a secret
    with pytest.raises(slack.SlackConfigError) as error:
        slack.SlackSettings.from_env({"SLACK_WEBHOOK_URL": secret})
    assert str(error.value) == "SLACK_WEBHOOK_URL is not an http(s) URL: expected https://host/..."
    assert secret_path not in str(error.value)
    with pytest.raises(slack.SlackConfigError, match=r"SLACK_API_URL is not an http\(s\) URL \('ftp://x'\)"):
        slack.SlackSettings.from_env({"SLACK_BOT_TOKEN": "xoxb-1", "SLACK_CHANNEL": "#x", "SLACK_API_URL": "ftp://x"})


# --- delivery ------------------------------------------------------------------------------------------


def test_webhook_delivery_posts_the_text(fake_slack):
    text = ":x: *run failed* <https://example.com|Pipeline>\n```\nValueError: boom\n```"
    slack.send(text, slack.SlackSettings.from_env(fake_slack.webhook_environ()))
    [post] = fake_slack.posts
    assert (post.kind, post.text) == ("webhook", text)
    assert post.payload["unfurl_links"] is False and post.headers["Content-Type"].startswith("application/json")
    assert fake_slack.requests == [(fake_slack.webhook_path, 200)]


def test_bot_token_delivery_posts_to_the_channel(fake_slack):
    slack.send("hello from the bot", slack.SlackSettings.from_env(fake_slack.bot_environ()))
    [post] = fake_slack.posts
    assert (post.kind, post.payload["channel"], post.text) == ("bot", CHANNEL, "hello from the bot")
    assert post.headers["Authorization"] == f"Bearer {fake_slack.token}"
    assert fake_slack.requests == [("/api/chat.postMessage", 200)]


def test_api_url_without_trailing_slash_still_reaches_chat_post_message(fake_slack):
    env = {**fake_slack.bot_environ(), "SLACK_API_URL": fake_slack.api_url.rstrip("/")}
    slack.send("hi", slack.SlackSettings.from_env(env))
    assert fake_slack.texts == ["hi"]


def test_text_too_long_for_slack_is_cut(fake_slack):
    slack.send("x" * (slack.MAX_TEXT_CHARS + 500), slack.SlackSettings.from_env(fake_slack.webhook_environ()))
    [text] = fake_slack.texts
    assert text.startswith("x" * slack.MAX_TEXT_CHARS) and text.endswith("(message cut: too long for Slack)")
    assert len(text) < slack.MAX_TEXT_CHARS + 100


@pytest.mark.parametrize("environ", ["webhook_environ", "bot_environ"])
def test_rate_limit_is_retried_after_retry_after(fake_slack, environ):
    fake_slack.fail_next(429, times=2)
    slack.send("after the rate limit", slack.SlackSettings.from_env(getattr(fake_slack, environ)()))
    assert [status for _, status in fake_slack.requests] == [429, 429, 200]
    assert fake_slack.texts == ["after the rate limit"]  # posted once


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retried_with_backoff(fake_slack, status):
    fake_slack.fail_next(status)
    started = time.monotonic()
    slack.send("after the outage", slack.SlackSettings.from_env(fake_slack.webhook_environ()))
    assert time.monotonic() - started >= slack.BACKOFF_S  # waited before retrying (no Retry-After sent)
    assert [status for _, status in fake_slack.requests] == [status, 200]
    assert fake_slack.texts == ["after the outage"]


def test_gives_up_after_max_retries_without_showing_the_webhook_path(fake_slack):
    fake_slack.fail_next(500, times=slack.MAX_RETRIES + 1, retry_after="0")
    with pytest.raises(slack.SlackError) as error:
        slack.send("never delivered", slack.SlackSettings.from_env(fake_slack.webhook_environ()))
    host = fake_slack.url.removeprefix("http://")
    assert str(error.value) == f"incoming webhook at {host} answered HTTP 500 internal_error after {slack.MAX_RETRIES + 1} attempts"
    assert len(fake_slack.requests) == slack.MAX_RETRIES + 1 and fake_slack.posts == []
    assert_hides_secrets(str(error.value), fake_slack)


def test_client_errors_are_not_retried_and_name_only_the_host(fake_slack):
    wrong = fake_slack.webhook_url.rsplit("/", 1)[0] + "/revoked-secret-path-value"
    with pytest.raises(slack.SlackError) as error:
        slack.send("to a removed webhook", slack.SlackSettings.from_env({"SLACK_WEBHOOK_URL": wrong}))
    message = str(error.value)
    assert message.startswith(f"incoming webhook at {fake_slack.url.removeprefix('http://')} refused the message: HTTP 404 no_service")
    assert "SLACK_WEBHOOK_URL is wrong" in message and "revoked-secret-path-value" not in message
    assert "/services/" not in message and len(fake_slack.requests) == 1


@pytest.mark.parametrize("env_change, expected", [
    ({"SLACK_BOT_TOKEN": "xoxb-" + random_text(24)}, "invalid_auth: check SLACK_BOT_TOKEN"),
    ({"SLACK_CHANNEL": "#nowhere"}, "channel_not_found: check SLACK_CHANNEL"),
], ids=["wrong-token", "unknown-channel"])
def test_bot_refusals_name_the_slack_error_without_the_token(fake_slack, env_change, expected):
    env = {**fake_slack.bot_environ(), **env_change}
    with pytest.raises(slack.SlackError) as error:
        slack.send("refused", slack.SlackSettings.from_env(env))
    message = str(error.value)
    assert f"refused chat.postMessage to {env['SLACK_CHANNEL']}: {expected}" in message
    assert env["SLACK_BOT_TOKEN"] not in message and fake_slack.token not in message
    assert fake_slack.posts == [] and len(fake_slack.requests) == 1  # a refusal is final: not retried


def test_unreachable_slack_is_retried_then_reported_by_host_only():
    url = closed_port_url("/services/T0/B0/unreachable-secret-path")
    with pytest.raises(slack.SlackError) as error:
        slack.send("nobody listens", slack.SlackSettings.from_env({"SLACK_WEBHOOK_URL": url}))
    message = str(error.value)
    port = url.split(":")[2].split("/")[0]
    assert message.startswith(f"incoming webhook at 127.0.0.1:{port} cannot be reached after {slack.MAX_RETRIES + 1} attempts: ")
    assert "ConnectionRefusedError" in message and "unreachable-secret-path" not in message and "/services/" not in message
