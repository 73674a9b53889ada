"""A real ``mlflow server`` on 127.0.0.1 for tests, and a stand-in for GitLab's MLflow API in front of one.

GitLab's MLflow-compatible API has no model alias endpoints and answers them with its own 404
(``{"error": "404 Not Found"}``). ``AliaslessProxy`` forwards everything else to a real server, so a
client sees a real registry that lacks aliases, as it would on GitLab.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler
from pathlib import Path

from loopback import LoopbackServer

STARTUP_TIMEOUT_S = 180
ALIAS_PATH = "/api/2.0/mlflow/registered-models/alias"
FORWARD_TIMEOUT_S = 60


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@contextmanager
def mlflow_server(backend_db: Path, root: Path) -> Iterator[str]:
    """Serve the SQLite store ``backend_db`` (artifacts under ``root``); yields the server's URL."""
    port = free_port()
    env = {**os.environ, "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false"}
    log = root / "server.log"
    server = subprocess.Popen(
        [
            str(Path(sys.executable).parent / "mlflow"), "server",
            "--backend-store-uri", f"sqlite:///{backend_db}",
            "--artifacts-destination", str(root / "artifacts"),
            "--host", "127.0.0.1", "--port", str(port), "--workers", "1",
        ],
        cwd=root, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT,
        start_new_session=True,  # its own process group, so teardown also stops the workers it forks
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + STARTUP_TIMEOUT_S
    try:
        while True:
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                    if response.status == 200:
                        break
            except OSError:
                pass
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"mlflow server did not become healthy:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=30)


class AliaslessProxy(LoopbackServer):
    """``with AliaslessProxy(upstream) as proxy``: at ``proxy.url``, the MLflow REST API of ``upstream``
    without aliases."""

    def __init__(self, upstream: str):
        super().__init__(_ProxyHandler, name="aliasless-mlflow")
        self.upstream = upstream.rstrip("/")
        self.refused: list[str] = []
        """``METHOD path`` of every alias request answered with GitLab's 404."""


class _ProxyHandler(BaseHTTPRequestHandler):
    fake: AliaslessProxy

    def _forward(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0)) or None
        if self.path.split("?", 1)[0] == ALIAS_PATH:
            self.fake.refused.append(f"{self.command} {self.path}")
            self._answer(404, json.dumps({"error": "404 Not Found"}).encode(), "application/json")
            return
        request = urllib.request.Request(self.fake.upstream + self.path, data=body, method=self.command,
                                         headers={"Content-Type": self.headers.get("Content-Type", "application/json")})
        try:
            with urllib.request.urlopen(request, timeout=FORWARD_TIMEOUT_S) as response:
                self._answer(response.status, response.read(), response.headers.get("Content-Type", "application/json"))
        except urllib.error.HTTPError as error:
            self._answer(error.code, error.read(), error.headers.get("Content-Type", "application/json"))

    def _answer(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _forward

    def log_message(self, format: str, *args: object) -> None:  # quiet: pytest shows failures, not traffic
        return
