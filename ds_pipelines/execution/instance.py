"""The Dagster instance ds-pipelines runs on: the embedded local default, pool limits, and opening it safely.

- With nothing configured, Dagster keeps its instance inside the project (``use_local_defaults``); MLflow's
  local default (a SQLite store in the same folder) is in ``ds_pipelines.tracking``.
- Pool limits live in the instance, not in code: GPU notebooks share ``triggers.gpu_concurrency`` slots
  (pool ``gpu``), commit runs go one at a time (pool ``commit_runs``). ``ds-pipelines run`` and
  ``ds-pipelines ui`` set them on the instance they use; a deployment with its own instance sets them once
  with ``dagster instance concurrency set gpu N`` (and ``commit_runs 1``).
- With ``DAGSTER_POSTGRES_URL`` set, the local default keeps runs, event logs, schedules and sensor state in
  that Postgres database instead (a separate instance folder, ``dagster-postgres``, holds only the captured
  logs and the executed notebooks of this machine): a CI job's runs then show in the deployment's UI. A
  ``DAGSTER_HOME`` that is set wins over both: its ``dagster.yaml`` decides (deploy/dagster.yaml reads the same
  variable), but one that would keep runs elsewhere while ``DAGSTER_POSTGRES_URL`` is set is refused.
- On a fresh SQLite instance, processes that open it together race to create its tables (alembic's version
  table ends up with two heads) and then its pool rows (a UNIQUE error, or a pool's slots allocated twice). A
  lock file in the instance folder lets one process at a time set it up (``open_instance``). On Postgres the
  lock only orders the processes of one machine; for those of other machines, opening the instance is tried
  again when it lost a race to create a table or a pool row (dagster-postgres' own retries do not cover
  every table: ``relation "instance_info" already exists`` got through them).
- Dagster's SQLite storage keeps each run's event log in a database of its own, created when the run starts
  (``history/runs/<run id>.db``) and written at every event. Waiting for the disk at each of the ~200 commits
  that makes for a one-cell notebook cost ``ds-pipelines run`` about half a second; so in this process those
  databases do not wait (``PRAGMA synchronous=OFF``: a crash of the process loses nothing, a power cut or an
  operating-system crash during a run can lose that run's event log). The run list, the asset index
  (``index.db``), schedules and sensor state are written as Dagster writes them.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from filelock import FileLock, Timeout

# SQLAlchemy (about 0.3 s) is imported by the functions that read Postgres URLs, not here: ``ds-pipelines run``
# imports this module before it starts the first notebook's kernel, and every import before that delays the notebook.
from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.project import PROJECT_DIR_ENV, Project
from ds_pipelines.project.run_environment import DAGSTER_HOME_ENV, POSTGRES_URL_ENV

if TYPE_CHECKING:
    import dagster as dg

POSTGRES_URL_EXAMPLE = "postgresql://USER:PASSWORD@HOST:5432/DATABASE"
POSTGRES_CONNECT_TIMEOUT_S = 10
"""An unreachable server fails a run within this long, not after TCP's minutes-long retries."""
SETUP_ATTEMPTS = 5
SETUP_RETRY_WAIT_S = 0.2
_CREATION_RACE_CODES = {"42P07", "42710", "23505"}
"""duplicate_table, duplicate_object, unique_violation."""
INSTANCE_SETTINGS = """\
# Written by ds-pipelines for the project's local Dagster instance.
telemetry:
  enabled: false
python_logs:
  # papermill logs each cell and the notebook's output as it runs: keep them in the Dagster run logs.
  managed_python_loggers: [papermill]
concurrency:
  pools:
    # Only GPU notebooks belong to a pool ("gpu"): at most this many run at once. CPU notebooks are unlimited.
    default_limit: 1
"""
POSTGRES_STORAGE = f"""\
storage:
  # Runs, event logs, schedules and sensor state in the shared Postgres database ({POSTGRES_URL_ENV}).
  postgres:
    postgres_url:
      env: {POSTGRES_URL_ENV}
"""
GPU_POOL = "gpu"
"""Pool of the ``device: gpu`` notebooks; CPU notebooks belong to no pool and are never held back."""
DEVICE_TAG = "ds-pipelines/device"
"""Op tag of every notebook asset, the notebook's ``device:``: the deployment's run launcher gives the containers of
runs with a ``gpu`` step the GPUs (``execution.docker_launcher``)."""
GPU = "gpu"
COMMIT_RUNS_POOL = "commit_runs"
"""Pool of the commit sensor's runs: one at a time, so a push's notebooks run one after another."""
RUN_EVENT_LOGS = Path("history", "runs")
"""Where Dagster's SQLite storage keeps a database per run, in the instance folder (and ``RUN_EVENT_LOG_INDEX``)."""
RUN_EVENT_LOG_INDEX = "index.db"
SETUP_LOCK_FILE = "ds-pipelines-setup.lock"
SETUP_LOCK_TIMEOUT_S = 120
"""Setting up a fresh instance takes a few seconds; a lock held this long belongs to a stuck process."""


def executed_notebook_path(instance: dg.DagsterInstance, name: str, run_id: str) -> Path:
    """Where notebook ``name``'s asset keeps its executed copy: with the Dagster instance, one file per run."""
    return Path(instance.storage_directory()) / "notebooks" / name / f"{run_id}.ipynb"


def use_local_defaults(project: Project) -> Path:
    """Point this process (and the kernels it starts) at the project, and at its local Dagster instance
    unless ``DAGSTER_HOME`` names another: on SQLite in the project, or on ``DAGSTER_POSTGRES_URL``'s database
    when that is set. Returns the instance folder."""
    os.environ[PROJECT_DIR_ENV] = str(project.root)
    home = os.environ.get(DAGSTER_HOME_ENV)
    if home:
        _refuse_ignored_postgres(Path(home))
        return Path(home)
    home_dir = _prepared_home(local_instance_home(project), postgres=bool(os.environ.get(POSTGRES_URL_ENV)))
    os.environ[DAGSTER_HOME_ENV] = str(home_dir)
    return home_dir


def _prepared_home(home_dir: Path, *, postgres: bool) -> Path:
    home_dir.mkdir(parents=True, exist_ok=True)
    settings = home_dir / "dagster.yaml"
    if not settings.exists():
        settings.write_text(INSTANCE_SETTINGS + (POSTGRES_STORAGE if postgres else ""))
    return home_dir


def keeps_runs_in_postgres(instance: dg.DagsterInstance) -> bool:
    """Whether ``instance`` (however it was configured: a ``dagster.yaml``, or the instance ref a run
    launcher hands a run's container) stores its runs in Postgres."""
    return type(instance.run_storage).__module__.split(".")[0] == "dagster_postgres"


def home_for_processes_of(instance: dg.DagsterInstance, project: Project) -> Path:
    """The ``DAGSTER_HOME`` a ``ds-pipelines run`` started from a run of ``instance`` opens the same runs in.

    A run's container gets its instance from the launcher's command, without a ``dagster.yaml`` (the folder
    Dagster reports is its artifact storage): on Postgres the process then gets an instance folder of its own
    in the project's state folder, on ``DAGSTER_POSTGRES_URL``'s database, as ``use_local_defaults`` makes it."""
    home = Path(instance.root_directory)
    if keeps_runs_in_postgres(instance) and not reads_postgres_url(home):
        return _prepared_home(project.state_dir / "dagster-postgres", postgres=True)
    return home


def reads_postgres_url(home: Path) -> bool:
    """Whether the instance in ``home`` reads ``DAGSTER_POSTGRES_URL`` (its ``dagster.yaml`` names it): only
    then does a run of that instance get the URL, with its password."""
    settings = home / "dagster.yaml"
    return settings.is_file() and POSTGRES_URL_ENV in settings.read_text(encoding="utf-8", errors="replace")


def configures_postgres(home: Path) -> bool:
    """Whether the ``dagster.yaml`` in ``home`` keeps the instance's runs in Postgres (``storage: postgres``,
    or a ``run_storage`` of dagster-postgres), whatever variable or literal URL it takes them from."""
    settings = home / "dagster.yaml"
    if not settings.is_file():
        return False
    from ds_pipelines.project.config import read_yaml  # YAML and pydantic: only where a DAGSTER_HOME is checked

    data = read_yaml(settings)
    if not isinstance(data, dict):
        return False
    storage = data.get("storage")
    if isinstance(storage, dict) and "postgres" in storage:
        return True
    run_storage = data.get("run_storage")
    return isinstance(run_storage, dict) and "postgres" in str(run_storage.get("module", ""))


def _refuse_ignored_postgres(home: Path) -> None:
    """A set ``DAGSTER_POSTGRES_URL`` means runs belong in that database: never record them elsewhere in silence
    (a ``DAGSTER_HOME`` without ``dagster.yaml`` is Dagster's SQLite default, and CI's runs would be lost)."""
    if not os.environ.get(POSTGRES_URL_ENV) or configures_postgres(home):
        return
    settings = home / "dagster.yaml"
    found = (f"{settings} does not store runs in Postgres" if settings.is_file()
             else f"{home} holds no dagster.yaml, so Dagster would store runs in SQLite there")
    raise InstanceSettingsError(
        f"{POSTGRES_URL_ENV} is set, but {DAGSTER_HOME_ENV} ({home}) would ignore it: {found}. Unset "
        f"{DAGSTER_HOME_ENV} (ds-pipelines then stores runs in {POSTGRES_URL_ENV}'s database itself), or configure "
        f"Postgres in that dagster.yaml (storage: postgres: postgres_url: env: {POSTGRES_URL_ENV}, as "
        f"deploy/dagster.yaml does), or unset {POSTGRES_URL_ENV} to use that instance as it is")


class InstanceSettingsError(DsPipelinesError):
    """The Dagster instance in use contradicts the settings (``DAGSTER_POSTGRES_URL`` would be ignored)."""


def local_defaults_env(project: Project) -> dict[str, str]:
    """The variables ``use_local_defaults`` sets, without setting them or creating anything: for a kernel
    started before the project is checked."""
    return {PROJECT_DIR_ENV: str(project.root), DAGSTER_HOME_ENV: str(local_instance_home(project))}


def local_instance_home(project: Project) -> Path:
    """The instance folder: ``DAGSTER_HOME``, else the project's on SQLite, or on ``DAGSTER_POSTGRES_URL``'s database."""
    home = os.environ.get(DAGSTER_HOME_ENV)
    if home:
        return Path(home)
    return project.state_dir / ("dagster-postgres" if os.environ.get(POSTGRES_URL_ENV) else "dagster")


def pool_limits(project: Project) -> dict[str, int]:
    return {GPU_POOL: project.triggers.gpu_concurrency, COMMIT_RUNS_POOL: 1}


def apply_pool_limits(instance: dg.DagsterInstance, project: Project) -> None:
    """Set each pool's limit; a limit already in place is not rewritten.

    Dagster's SQLite storage checks for a pool's row and then inserts it without a lock: where other
    processes may do the same, call this under ``open_instance``'s lock. On Postgres an existing row is
    locked, but two processes may both insert a missing one: the loser's transaction fails as a whole
    (``open_instance`` tries again).
    """
    storage = instance.event_log_storage
    for pool, limit in pool_limits(project).items():
        if storage.get_concurrency_info(pool).slot_count != limit:
            storage.set_concurrency_slots(pool, limit)


def open_instance(project: Project) -> dg.DagsterInstance:
    """The instance of ``DAGSTER_HOME``, its storage created and the project's pool limits set.

    On Postgres (``DAGSTER_POSTGRES_URL``), a database that cannot be reached or used is a DsPipelinesError
    naming the variable (password hidden), raised before any run is created."""

    home = os.environ.get(DAGSTER_HOME_ENV)
    if not home:
        raise DsPipelinesError(f"{DAGSTER_HOME_ENV} is not set: it names the folder of the Dagster instance")
    if not Path(home).is_dir():
        raise DsPipelinesError(
            f"{DAGSTER_HOME_ENV}={home} is not a folder: create it, or unset {DAGSTER_HOME_ENV} to use the "
            "project's local instance"
        )
    postgres_url = os.environ.get(POSTGRES_URL_ENV)
    if postgres_url:
        check_postgres(postgres_url)
    _event_logs_without_disk_waits(Path(home) / RUN_EVENT_LOGS)
    lock = FileLock(Path(home) / SETUP_LOCK_FILE, timeout=SETUP_LOCK_TIMEOUT_S)
    try:
        with lock:
            return _open_and_set_pools(project, postgres_url)
    except Timeout:
        raise DsPipelinesError(
            f"another process has been setting up the Dagster instance in {home} for over {SETUP_LOCK_TIMEOUT_S} s "
            f"(it holds {lock.lock_file})"
        ) from None


def _event_logs_without_disk_waits(folder: Path) -> None:
    """SQLite connections this process opens to a run's event log database in ``folder`` (not its
    ``RUN_EVENT_LOG_INDEX``) commit without waiting for the disk (see the module docstring)."""
    from sqlalchemy import event
    from sqlalchemy.engine import Engine

    if not _unsynced_folders:
        event.listen(Engine, "connect", _unsynced_if_run_event_log)
    _unsynced_folders.add(folder.resolve())


_unsynced_folders: set[Path] = set()


def _unsynced_if_run_event_log(connection: Any, _record: Any) -> None:
    import sqlite3

    if not isinstance(connection, sqlite3.Connection):
        return
    file = connection.execute("PRAGMA database_list").fetchone()[2]
    database = Path(file).resolve() if file else None
    if database is not None and database.parent in _unsynced_folders and database.name != RUN_EVENT_LOG_INDEX:
        connection.execute("PRAGMA synchronous=OFF")


def shown_postgres_url(url: str) -> str:
    """``url`` with its password hidden, fit for logs and error messages."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


def check_postgres(url: str) -> None:
    """Connect to ``url`` once, briefly: a DsPipelinesError naming ``DAGSTER_POSTGRES_URL`` when it is not a
    Postgres URL or the database cannot be reached or logged into."""
    import psycopg2
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    try:
        parsed = make_url(url)
    except ArgumentError:
        # The value itself is not shown: it may hold a password in a shape we cannot hide.
        raise DsPipelinesError(f"{POSTGRES_URL_ENV} is not a database URL: expected {POSTGRES_URL_EXAMPLE}") from None
    if parsed.get_backend_name() != "postgresql":  # "postgres://" too: SQLAlchemy dropped that old alias
        raise DsPipelinesError(
            f"{POSTGRES_URL_ENV}={shown_postgres_url(url)} is not a Postgres URL: expected {POSTGRES_URL_EXAMPLE}"
        )
    try:
        # psycopg2 takes the libpq form: without sqlalchemy's "+driver" suffix.
        psycopg2.connect(parsed.set(drivername="postgresql").render_as_string(hide_password=False),
                         connect_timeout=POSTGRES_CONNECT_TIMEOUT_S).close()
    except psycopg2.Error as exc:
        raise DsPipelinesError(_postgres_problem(url, exc)) from None


SHARED_LOCK_TIMEOUT_S = 300
"""Longer than any read-merge-write of pages takes: a lock held this long belongs to a stuck process."""


@contextlib.contextmanager
def shared_lock(name: str, postgres_url: str | None) -> Iterator[None]:
    """Held by one process at a time across every machine that shares ``postgres_url``'s database (a Postgres
    advisory lock named ``name``, released when the block ends or the process dies); without a URL there
    is nothing to share, and the block runs unlocked."""
    if not postgres_url:
        yield
        return
    import psycopg2
    from sqlalchemy.engine import make_url

    key = int.from_bytes(hashlib.sha256(name.encode()).digest()[:8], "big", signed=True)
    libpq_url = make_url(postgres_url).set(drivername="postgresql").render_as_string(hide_password=False)
    connection = None
    try:
        connection = psycopg2.connect(libpq_url, connect_timeout=POSTGRES_CONNECT_TIMEOUT_S)
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute("SET lock_timeout = %s", (f"{SHARED_LOCK_TIMEOUT_S}s",))
            cursor.execute("SELECT pg_advisory_lock(%s)", (key,))
    except psycopg2.Error as exc:
        if connection is not None:
            connection.close()
        raise DsPipelinesError(f"cannot take the lock {name!r}: {_postgres_problem(postgres_url, exc)}") from None
    try:
        yield
    finally:
        connection.close()  # ends the session, and with it the lock


def _open_and_set_pools(project: Project, postgres_url: str | None) -> dg.DagsterInstance:
    import dagster as dg

    for attempt in range(1, SETUP_ATTEMPTS + 1):
        instance = None
        try:
            instance = dg.DagsterInstance.get()
            apply_pool_limits(instance, project)
            return instance
        except _postgres_errors(postgres_url) as exc:
            if instance is not None:
                instance.dispose()
            if _lost_creation_race(exc) and attempt < SETUP_ATTEMPTS:
                time.sleep(SETUP_RETRY_WAIT_S * attempt)
                continue
            # Creating Dagster's tables needs CREATE on the schema: a role that may only connect fails here.
            raise DsPipelinesError(_postgres_problem(postgres_url, exc)) from None
    raise AssertionError("unreachable: the last attempt returns or raises")


def _postgres_errors(postgres_url: str | None) -> tuple[type[BaseException], ...]:
    """What a Postgres instance raises when its database refuses; nothing on SQLite (imports nothing more)."""
    if not postgres_url:
        return ()
    import psycopg2
    from dagster_postgres.utils import DagsterPostgresException
    from sqlalchemy.exc import SQLAlchemyError

    return (SQLAlchemyError, psycopg2.Error, DagsterPostgresException)


def _lost_creation_race(exc: BaseException) -> bool:
    """Whether another process created the same table, type or row first (Postgres error codes), possibly
    after dagster-postgres' own retries gave up: opening again then finds them."""
    for error in (exc, getattr(exc, "orig", None), exc.__cause__, getattr(exc.__cause__, "orig", None)):
        if getattr(error, "pgcode", None) in _CREATION_RACE_CODES:
            return True
    return False


def _postgres_problem(url: str, exc: BaseException) -> str:
    from sqlalchemy.engine import make_url

    cause = getattr(exc, "orig", None) or exc.__cause__ or exc
    reason = " ".join(str(cause).split()) or type(cause).__name__
    password = make_url(url).password
    if password:
        reason = reason.replace(str(password), "***")
    return (f"the Dagster instance's Postgres database cannot be used ({POSTGRES_URL_ENV}={shown_postgres_url(url)}): "
            f"{reason}")
