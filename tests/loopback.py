"""An HTTP server on 127.0.0.1 (a free port) that runs in a thread while used as a context manager.

The stand-ins for services that cannot exist here (GitLab, Slack, GitLab's MLflow API) build on it: each
passes its request handler class, whose instances reach the stand-in as ``self.fake``.
"""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Self

POLL_INTERVAL_S = 0.05
"""How often the serving thread checks for shutdown: teardown takes at most this long."""
JOIN_TIMEOUT_S = 10


class LoopbackServer:
    def __init__(self, handler: type[BaseHTTPRequestHandler], *, name: str):
        self._handler = handler
        self._name = name
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    def __enter__(self) -> Self:
        handler = type("Handler", (self._handler,), {"fake": self})
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._thread = threading.Thread(target=self._server.serve_forever, args=(POLL_INTERVAL_S,), name=self._name, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        assert self._server is not None and self._thread is not None
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=JOIN_TIMEOUT_S)

    @property
    def url(self) -> str:
        assert self._server is not None, f"use {type(self).__name__} as a context manager"
        return f"http://127.0.0.1:{self._server.server_address[1]}"
