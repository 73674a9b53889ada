"""A fake of Slack's incoming webhooks and Web API ``chat.postMessage``, served over HTTP on 127.0.0.1.

It answers the way Slack does, for the clients to be tested unpatched:

- incoming webhook: ``POST /services/T…/B…/<secret>`` with a JSON ``{"text": ...}`` answers ``200 ok``;
  an unknown path ``404 no_service``, a body that is not JSON ``400 invalid_payload``, no text
  ``400 no_text``.
- Web API: ``POST /api/chat.postMessage`` with ``Authorization: Bearer <token>`` and a JSON body answers
  ``200 {"ok": true, ...}``; a wrong token ``{"ok": false, "error": "invalid_auth"}``, a channel not in
  ``channels`` ``channel_not_found``, no text ``no_text`` (Slack answers these with HTTP 200 too).

Faults: ``fake.fail_next("429")`` answers the next request with 429 and ``Retry-After: 0``;
``fail_next("500")`` (any 5xx or other status) with that status, without ``Retry-After`` unless
``retry_after`` is given; ``times`` repeats it, ``path_regex`` restricts it. ``fake.requests`` logs every
request as ``(path, status)``, ``fake.posts`` the ones that were accepted and ``fake.texts`` their texts.

    with FakeSlack() as slack:
        env = slack.webhook_environ()   # or slack.bot_environ()

or take the ``fake_slack`` fixture: tests/conftest.py loads this module as a plugin (``pytest_plugins``), so
tests name it as a parameter without importing it.
"""

from __future__ import annotations

import json
import re
import secrets
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any

import pytest
from loopback import LoopbackServer

API_PATH = "/api/"
CHANNEL = "#ml-alerts"


@dataclass(frozen=True)
class Post:
    kind: str
    """``webhook`` or ``bot``."""
    path: str
    payload: dict[str, Any]
    headers: dict[str, str]

    @property
    def text(self) -> str:
        return self.payload.get("text", "")


class _Fault:
    def __init__(self, status: int, path_regex: str, times: int, retry_after: str | None):
        self.status, self.pattern, self.left, self.retry_after = status, re.compile(path_regex), times, retry_after


class FakeSlack(LoopbackServer):
    """See the module docstring. Tokens and webhook paths are made up per instance."""

    def __init__(self, *, channels: tuple[str, ...] = (CHANNEL,)):
        super().__init__(_Handler, name="fake-slack")
        # Made up at run time: no token-shaped literal in the repository.
        self.webhook_path = f"/services/T{secrets.token_hex(4).upper()}/B{secrets.token_hex(4).upper()}/{secrets.token_urlsafe(18)}"
        self.token = "xoxb-" + secrets.token_hex(12)
        self.channels = set(channels)
        self.posts: list[Post] = []
        self.requests: list[tuple[str, int]] = []
        self._faults: list[_Fault] = []
        self._lock = threading.Lock()

    @property
    def webhook_url(self) -> str:
        return self.url + self.webhook_path

    @property
    def api_url(self) -> str:
        return self.url + API_PATH

    @property
    def texts(self) -> list[str]:
        with self._lock:
            return [post.text for post in self.posts]

    def webhook_environ(self) -> dict[str, str]:
        return {"SLACK_WEBHOOK_URL": self.webhook_url}

    def bot_environ(self, channel: str = CHANNEL) -> dict[str, str]:
        return {"SLACK_BOT_TOKEN": self.token, "SLACK_CHANNEL": channel, "SLACK_API_URL": self.api_url}

    def fail_next(self, status: str | int, *, times: int = 1, path_regex: str = "", retry_after: str | None = None) -> None:
        """Answer the next ``times`` requests whose path matches with ``status``. A 429 comes with
        ``Retry-After: 0``; other statuses without one, as Slack sends them, unless ``retry_after`` is given."""
        with self._lock:
            self._faults.append(_Fault(int(status), path_regex, times, retry_after))

    def _answer(self, path: str, headers: Any, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        with self._lock:
            fault = next((f for f in self._faults if f.left > 0 and f.pattern.search(path)), None)
            if fault:
                fault.left -= 1
                if fault.status == 429:
                    rate_limited = b'{"ok": false, "error": "ratelimited"}' if path.startswith(API_PATH) else b"rate_limited"
                    return 429, rate_limited, {"Retry-After": "0"}
                return fault.status, b"internal_error", {"Retry-After": fault.retry_after} if fault.retry_after else {}
            if path == self.webhook_path:
                return self._webhook(path, headers, body)
            if path == API_PATH + "chat.postMessage":
                return self._post_message(path, headers, body)
            if path.startswith("/services/"):
                return 404, b"no_service", {}
            return 404, b"not found", {}

    def _webhook(self, path: str, headers: Any, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        payload = _json(body)
        if payload is None:
            return 400, b"invalid_payload", {}
        if not payload.get("text"):
            return 400, b"no_text", {}
        self.posts.append(Post("webhook", path, payload, dict(headers.items())))
        return 200, b"ok", {}

    def _post_message(self, path: str, headers: Any, body: bytes) -> tuple[int, bytes, dict[str, str]]:
        def answer(data: dict) -> tuple[int, bytes, dict[str, str]]:
            return 200, json.dumps(data).encode(), {"Content-Type": "application/json"}

        if headers.get("Authorization") != f"Bearer {self.token}":
            return answer({"ok": False, "error": "invalid_auth"})
        payload = _json(body)
        if payload is None:
            return answer({"ok": False, "error": "invalid_json"})
        if payload.get("channel") not in self.channels:
            return answer({"ok": False, "error": "channel_not_found"})
        if not payload.get("text"):
            return answer({"ok": False, "error": "no_text"})
        self.posts.append(Post("bot", path, payload, dict(headers.items())))
        return answer({"ok": True, "channel": "C0123", "ts": f"{len(self.posts)}.000100", "message": {"text": payload["text"]}})


def _json(body: bytes) -> dict | None:
    try:
        data = json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return None
    return data if isinstance(data, dict) else None


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 10
    disable_nagle_algorithm = True
    fake: FakeSlack

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        path = self.path.split("?", 1)[0]
        status, data, headers = self.fake._answer(path, self.headers, body)
        with self.fake._lock:
            self.fake.requests.append((path, status))
        self.send_response(status)
        headers = {"Content-Type": "text/plain; charset=utf-8", **headers}
        for key, value in headers.items():
            self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet test output


@pytest.fixture
def fake_slack() -> Iterator[FakeSlack]:
    """A running FakeSlack (a plugin fixture: see tests/conftest.py)."""
    with FakeSlack() as fake:
        yield fake
