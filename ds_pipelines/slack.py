"""Post a message to Slack: through an incoming webhook, or as a bot with ``chat.postMessage``.

Settings come from the environment (``SlackSettings.from_env``):

=====================================  =========================================================
``SLACK_WEBHOOK_URL``                  incoming webhook (a secret: whoever has it can post)
``SLACK_BOT_TOKEN`` (or ``SLACK_TOKEN``)  bot token with ``chat:write``, used with ``SLACK_CHANNEL``
``SLACK_CHANNEL``                      channel name (``#ml-alerts``) or id, for the bot token
``SLACK_API_URL``                      Web API base, default ``https://slack.com/api/``
=====================================  =========================================================

The webhook wins when both are set. Nothing set means Slack is off (``configured``), which callers treat
as "nothing to do" rather than as an error.

Delivery is a small client on the standard library rather than ``slack_sdk``: slack_sdk logs the full
request URL (the webhook's secret path) at INFO when it retries and puts it in some exceptions, retries
only 500 and 503, and sleeps up to a second more than ``Retry-After`` asks; ``dagster_slack.SlackResource``
has no webhook and no way to set the API's base URL. Here every error message names only the host, and
429 and 5xx answers and connection errors are retried ``MAX_RETRIES`` times (a reply lost after Slack
took the message can post it twice: a duplicate alert is better than a lost one).

No Dagster imports: the ``notify slack`` command and the run-failure sensor both use this.
"""

from __future__ import annotations

import json
import os
import socket
import time
import urllib.error
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urljoin, urlsplit

from ds_pipelines.errors import DsPipelinesError

WEBHOOK_VARIABLE = "SLACK_WEBHOOK_URL"
TOKEN_VARIABLES = ("SLACK_BOT_TOKEN", "SLACK_TOKEN")
CHANNEL_VARIABLE = "SLACK_CHANNEL"
API_URL_VARIABLE = "SLACK_API_URL"
DEFAULT_API_URL = "https://slack.com/api/"
NOT_CONFIGURED = f"Slack is not configured: set {WEBHOOK_VARIABLE} (or {TOKEN_VARIABLES[0]} and {CHANNEL_VARIABLE})"

TIMEOUT_S = 10.0
"""Per request (connect and each read)."""
MAX_RETRIES = 3
"""Further attempts after a 429, a 5xx or a connection error."""
BACKOFF_S = 0.5
"""Wait before the first retry of a 5xx or connection error; doubles on each retry."""
MAX_WAIT_S = 10.0
"""Longest wait between attempts, whatever ``Retry-After`` says: a run-failure sensor must finish its tick."""
MAX_TEXT_CHARS = 39_000
"""Slack truncates messages at 40,000 characters; longer text is cut here, with a note."""
_ERROR_BODY_CHARS = 120


class SlackError(DsPipelinesError):
    """A message that could not be posted, or settings that cannot work. Never holds the webhook's path
    or the token: only the host."""


class SlackConfigError(SlackError):
    """Slack settings that are missing or malformed."""


@dataclass(frozen=True)
class SlackSettings:
    """Where messages go. ``repr``/``str`` hide the webhook URL's path and the token."""

    webhook_url: str | None = None
    token: str | None = None
    channel: str | None = None
    api_url: str = DEFAULT_API_URL

    def __post_init__(self) -> None:
        if self.webhook_url:
            _check_url(self.webhook_url, WEBHOOK_VARIABLE, secret=True)
        elif not (self.token and self.channel):
            raise SlackConfigError(not_configured_message(self._as_env()))
        else:
            _check_url(self.api_url, API_URL_VARIABLE, secret=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> SlackSettings:
        """The settings of ``env`` (default ``os.environ``); SlackConfigError naming what to set when Slack
        is not configured there, or when a URL is malformed."""
        env = os.environ if env is None else env
        missing = not_configured_message(env)
        if missing:
            raise SlackConfigError(missing)
        return cls(
            webhook_url=_value(env, WEBHOOK_VARIABLE),
            token=next((_value(env, name) for name in TOKEN_VARIABLES if _value(env, name)), None),
            channel=_value(env, CHANNEL_VARIABLE),
            api_url=_value(env, API_URL_VARIABLE) or DEFAULT_API_URL,
        )

    @property
    def uses_webhook(self) -> bool:
        return bool(self.webhook_url)

    @property
    def destination(self) -> str:
        """Where messages go, safe to print: ``incoming webhook at hooks.slack.com``, ``#ml-alerts at slack.com``."""
        if self.webhook_url:
            return f"incoming webhook at {_host(self.webhook_url)}"
        return f"{self.channel} at {_host(self.api_url)}"

    def __repr__(self) -> str:
        return f"SlackSettings(destination={self.destination!r})"

    __str__ = __repr__

    def _as_env(self) -> dict[str, str]:
        values = {WEBHOOK_VARIABLE: self.webhook_url, TOKEN_VARIABLES[0]: self.token, CHANNEL_VARIABLE: self.channel}
        return {name: value for name, value in values.items() if value}


def not_configured_message(env: Mapping[str, str] | None = None) -> str | None:
    """Why Slack is off in ``env`` (default ``os.environ``), naming what to set; None when it is configured."""
    env = os.environ if env is None else env
    if _value(env, WEBHOOK_VARIABLE):
        return None
    token = next((name for name in TOKEN_VARIABLES if _value(env, name)), None)
    channel = _value(env, CHANNEL_VARIABLE)
    if token and channel:
        return None
    if token:
        return f"Slack is not configured: {token} is set but {CHANNEL_VARIABLE} is not (or set {WEBHOOK_VARIABLE} instead)"
    if channel:
        return f"Slack is not configured: {CHANNEL_VARIABLE} is set but {TOKEN_VARIABLES[0]} is not (or set {WEBHOOK_VARIABLE} instead)"
    return NOT_CONFIGURED


def configured(env: Mapping[str, str] | None = None) -> bool:
    """Whether ``env`` (default ``os.environ``) says where to post; ``not_configured_message`` says what is missing."""
    return not_configured_message(env) is None


def send(text: str, settings: SlackSettings) -> None:
    """Post ``text`` (Slack mrkdwn) once; raises SlackError when Slack refuses it or cannot be reached
    after the retries."""
    if len(text) > MAX_TEXT_CHARS:
        text = text[:MAX_TEXT_CHARS] + "\n… (message cut: too long for Slack)"
    if settings.uses_webhook:
        url = settings.webhook_url
        payload = {"text": text, "unfurl_links": False, "unfurl_media": False}
        headers = {}
    else:
        url = urljoin(settings.api_url if settings.api_url.endswith("/") else settings.api_url + "/", "chat.postMessage")
        payload = {"channel": settings.channel, "text": text, "unfurl_links": False, "unfurl_media": False}
        headers = {"Authorization": f"Bearer {settings.token}"}
    status, body = _post_with_retries(url, payload, headers, settings)
    if settings.uses_webhook:
        return  # an incoming webhook answers 200 "ok"; every refusal is an HTTP error status
    try:
        answer = json.loads(body)
    except json.JSONDecodeError:
        raise SlackError(f"Slack API at {_host(url)} answered HTTP {status} with something other than JSON") from None
    if not isinstance(answer, dict) or answer.get("ok") is not True:
        error = answer.get("error", "unknown error") if isinstance(answer, dict) else "unknown error"
        raise SlackError(
            f"Slack API at {_host(url)} refused chat.postMessage to {_shown(settings.channel, settings)}: "
            f"{_shown(error, settings)}{_hint(str(error))}"
        )


def _post_with_retries(url: str, payload: dict, headers: dict[str, str], settings: SlackSettings) -> tuple[int, str]:
    where = settings.destination if settings.uses_webhook else f"Slack API at {_host(url)}"
    data = json.dumps(payload).encode("utf-8")
    request_headers = {"Content-Type": "application/json; charset=utf-8", "User-Agent": "ds-pipelines", **headers}
    backoff = BACKOFF_S
    for attempt in range(MAX_RETRIES + 1):
        last_try = attempt == MAX_RETRIES
        tries = f"{attempt + 1} attempt{'s' if attempt else ''}"
        request = urllib.request.Request(url, data=data, headers=request_headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=TIMEOUT_S) as response:
                return response.status, response.read().decode("utf-8", errors="replace")
        except urllib.error.HTTPError as exc:
            body = _read(exc)
            answer = f"HTTP {exc.code} {_shown(body, settings)}".rstrip()
            if exc.code == 429 or exc.code >= 500:
                if last_try:
                    raise SlackError(f"{where} answered {answer} after {tries}") from None
                wait = _retry_after(exc.headers.get("Retry-After"), default=backoff if exc.code >= 500 else 1.0)
            else:
                raise SlackError(f"{where} refused the message: {answer}{_hint(body)}") from None
        except (urllib.error.URLError, OSError) as exc:
            # Connection refused or reset, DNS failure, timeout: nothing was answered, try again.
            if last_try:
                raise SlackError(f"{where} cannot be reached after {tries}: {_reason(exc, settings)}") from None
            wait = backoff
        time.sleep(min(wait, MAX_WAIT_S))
        backoff *= 2
    raise AssertionError("unreachable: the last attempt returns or raises")


def _retry_after(header: str | None, *, default: float) -> float:
    try:
        return max(0.0, float(header)) if header is not None else default
    except ValueError:
        return default  # an HTTP date instead of seconds: Slack sends seconds


def _read(exc: urllib.error.HTTPError) -> str:
    try:
        return exc.read().decode("utf-8", errors="replace")
    except OSError:
        return ""


def _reason(exc: BaseException, settings: SlackSettings) -> str:
    reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
    if isinstance(reason, (TimeoutError, socket.timeout)):
        return f"no answer within {TIMEOUT_S:g} s"
    text = getattr(reason, "strerror", None) or str(reason)
    return _shown(f"{type(reason).__name__}: {text}", settings)


def _shown(text: object, settings: SlackSettings) -> str:
    """``text`` on one line, short, with the webhook URL, its path and the token taken out (an answer or
    a system error could repeat them)."""
    shown = " ".join(str(text).split())[:_ERROR_BODY_CHARS]
    secrets = [settings.webhook_url, urlsplit(settings.webhook_url).path if settings.webhook_url else None, settings.token]
    for secret in sorted((s for s in secrets if s and len(s) > 1), key=len, reverse=True):
        shown = shown.replace(secret, "***")
    return shown


def _hint(error: str) -> str:
    hints = {
        "no_service": f": the webhook was removed or {WEBHOOK_VARIABLE} is wrong",
        "invalid_token": f": the webhook was revoked or {WEBHOOK_VARIABLE} is wrong",
        "channel_not_found": f": check {CHANNEL_VARIABLE} (a channel name like #alerts or its id)",
        "not_in_channel": ": invite the bot to the channel",
        "invalid_auth": f": check {TOKEN_VARIABLES[0]}",
        "not_authed": f": check {TOKEN_VARIABLES[0]}",
        "missing_scope": ": the bot token needs the chat:write scope",
    }
    return hints.get(error.strip(), "")


def _check_url(url: str, variable: str, *, secret: bool) -> None:
    parts = urlsplit(url)
    try:
        parts.port  # noqa: B018 (raises on a port that is not a number)
        well_formed = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        well_formed = False
    if not well_formed:
        # The webhook URL is a secret: not even a malformed one is repeated.
        shown = "" if secret else f" ({url!r})"
        raise SlackConfigError(f"{variable} is not an http(s) URL{shown}: expected https://host/...")


def _host(url: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "?"
    try:
        return f"{host}:{parts.port}" if parts.port else host
    except ValueError:
        return host


def _value(env: Mapping[str, str], name: str) -> str | None:
    """An empty or blank variable (a CI variable left empty) counts as unset."""
    return (env.get(name) or "").strip() or None
