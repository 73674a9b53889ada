"""A real PostgreSQL server on 127.0.0.1 for the tests, started once per session (fixture ``postgres``).

The server binaries of the machine image are used (``initdb``, ``pg_ctl``; PostgreSQL 15 on Debian 12, in
``/usr/lib/postgresql/<version>/bin`` when they are not on PATH). ``initdb`` refuses to run as root: as root
the cluster belongs to the ``postgres`` user and the commands run through ``su``. Each test takes its own
database (``postgres.new_database()``), so tests share the server but never their data. Authentication is
by password (scram), so a wrong password is refused as it would be in production.
"""

from __future__ import annotations

import glob
import os
import pwd
import shlex
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg2
import pytest
from required import require

SUPERUSER = "postgres"
SUPERUSER_PASSWORD = "test-superuser-password"
START_TIMEOUT_S = 60


def _server_binaries() -> Path | None:
    initdb = shutil.which("initdb")
    if initdb:
        return Path(os.path.realpath(initdb)).parent
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
    return Path(found[-1]).parent if found else None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class PostgresServer:
    port: int

    def url(self, database: str = "postgres", *, user: str = SUPERUSER, password: str = SUPERUSER_PASSWORD) -> str:
        return f"postgresql://{user}:{password}@127.0.0.1:{self.port}/{database}"

    def execute(self, sql: str, *, database: str = "postgres") -> list[tuple]:
        """Run ``sql`` as the superuser (autocommit); the rows it returns, if any."""
        connection = psycopg2.connect(self.url(database))
        try:
            connection.autocommit = True
            with connection.cursor() as cursor:
                cursor.execute(sql)
                return cursor.fetchall() if cursor.description else []
        finally:
            connection.close()

    def new_database(self, *, owner: str = SUPERUSER) -> str:
        name = f"test_{uuid.uuid4().hex[:12]}"
        self.execute(f'CREATE DATABASE "{name}" OWNER "{owner}"')
        return name

    def new_role(self, password: str) -> str:
        name = f"role_{uuid.uuid4().hex[:12]}"
        self.execute(f"CREATE ROLE \"{name}\" LOGIN PASSWORD '{password}'")
        return name

    def tables(self, database: str) -> set[str]:
        rows = self.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'", database=database)
        return {name for (name,) in rows}


def _as_owner(command: list[str], owner: str | None) -> list[str]:
    if owner is None:
        return command
    return ["su", owner, "-s", "/bin/sh", "-c", shlex.join(command)]


class PostgresUnavailable(Exception):
    """This machine cannot start a PostgreSQL server: the message says what to install."""


@contextmanager
def running_postgres() -> Iterator[PostgresServer]:
    """A fresh PostgreSQL cluster on 127.0.0.1 and a free port, removed afterwards (also for benchmarks/)."""
    binaries = _server_binaries()
    if binaries is None:
        raise PostgresUnavailable("no PostgreSQL server (initdb, pg_ctl): apt-get install postgresql")
    owner = None
    if os.geteuid() == 0:
        try:
            pwd.getpwnam(SUPERUSER)
        except KeyError:
            raise PostgresUnavailable("running as root without a 'postgres' user for initdb: apt-get install postgresql") from None
        owner = SUPERUSER
    # Not under pytest's temporary folder: as root that is private to root, and the server runs as postgres.
    root = Path(tempfile.mkdtemp(prefix="ds-pipelines-postgres-"))
    if owner is not None:
        shutil.chown(root, owner)
    data, log = root / "data", root / "server.log"
    password_file = root / "superuser-password"
    password_file.write_text(SUPERUSER_PASSWORD)
    if owner is not None:
        shutil.chown(password_file, owner)
    port = _free_port()

    def run(*command: str) -> None:
        done = subprocess.run(_as_owner([str(binaries / command[0]), *command[1:]], owner), capture_output=True,
                              text=True, timeout=START_TIMEOUT_S, check=False)
        assert done.returncode == 0, f"{command[0]} failed:\n{done.stdout}\n{done.stderr}\n" + (log.read_text() if log.exists() else "")

    try:
        run("initdb", "-D", str(data), "-U", SUPERUSER, "--pwfile", str(password_file), "-A", "scram-sha-256")
        options = f"-p {port} -k {root} -c listen_addresses=127.0.0.1"
        run("pg_ctl", "-D", str(data), "-o", options, "-l", str(log), "-w", "-t", str(START_TIMEOUT_S), "start")
        try:
            yield PostgresServer(port)
        finally:
            run("pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    try:
        with running_postgres() as server:
            yield server
    except PostgresUnavailable as missing:
        require(str(missing))
