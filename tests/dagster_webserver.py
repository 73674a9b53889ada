"""A real ``dagster-webserver`` on 127.0.0.1 serving the code location, and GraphQL queries to it."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from mlflow_serve import free_port

STARTUP_TIMEOUT_S = 180


@contextmanager
def dagster_webserver(cwd: Path, env: dict[str, str], log: Path) -> Iterator[int]:
    """The webserver's port once it answers; its output goes to ``log``, shown if it does not come up."""
    port = free_port()
    server = subprocess.Popen(
        [str(Path(sys.executable).parent / "dagster-webserver"), "-m", "ds_pipelines.definitions",
         "-h", "127.0.0.1", "-p", str(port)],
        cwd=cwd, env=env, stdout=open(log, "w"), stderr=subprocess.STDOUT, start_new_session=True,
    )
    try:
        deadline = time.monotonic() + STARTUP_TIMEOUT_S
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=5):
                    break
            except OSError:
                assert server.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
                time.sleep(1)
        yield port
    finally:
        stop_process_group(server)


def stop_process_group(server: subprocess.Popen, grace_s: float = 60) -> None:
    """SIGTERM to the server's process group, then SIGKILL if it is still running after ``grace_s`` (a
    ``dagster dev`` under the full suite's load once took longer than a minute to stop its webserver)."""
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=grace_s)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait(timeout=30)


def graphql(port: int, query: str, variables: dict | None = None) -> dict:
    """The query's data; an answer with errors fails the test."""
    request = urllib.request.Request(f"http://127.0.0.1:{port}/graphql", headers={"Content-Type": "application/json"},
                                     data=json.dumps({"query": query, "variables": variables or {}}).encode())
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read())
    assert "errors" not in answer, answer
    return answer["data"]


def answers(url: str) -> bool:
    """Whether ``url`` answers at all (a server that is up)."""
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except OSError:
        return False
