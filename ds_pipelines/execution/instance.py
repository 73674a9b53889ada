"""The Dagster instance ds-pipelines runs on: the embedded local default, pool limits, and opening it safely.

- With nothing configured, Dagster keeps its instance inside the project (``use_local_defaults``); MLflow's
  local default (a SQLite store in the same folder) is in ``ds_pipelines.tracking``.
- Pool limits live in the instance, not in code: GPU notebooks share ``triggers.gpu_concurrency`` slots
  (pool ``gpu``), commit runs go one at a time (pool ``commit_runs``). ``ds-pipelines run`` and
  ``ds-pipelines ui`` set them on the instance they use; a deployment with its own instance sets them once
  with ``dagster instance concurrency set gpu N`` (and ``commit_runs 1``).
- On a fresh local instance, processes that open it together race to create its SQLite tables (alembic's
  version table ends up with two heads) and then its pool rows (a UNIQUE error, or a pool's slots allocated
  twice). A lock file in the instance folder lets one process at a time set the instance up
  (``open_instance``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.project import PROJECT_DIR_ENV, Project

if TYPE_CHECKING:
    import dagster as dg

DAGSTER_HOME_ENV = "DAGSTER_HOME"
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
GPU_POOL = "gpu"
"""Pool of the ``device: gpu`` notebooks; CPU notebooks belong to no pool and are never held back."""
COMMIT_RUNS_POOL = "commit_runs"
"""Pool of the commit sensor's runs: one at a time, so a push's notebooks run one after another."""
SETUP_LOCK_FILE = "ds-pipelines-setup.lock"
SETUP_LOCK_TIMEOUT_S = 120
"""Setting up a fresh instance takes a few seconds; a lock held this long belongs to a stuck process."""


def use_local_defaults(project: Project) -> Path:
    """Point this process (and the kernels it starts) at the project, and at its local Dagster instance
    unless ``DAGSTER_HOME`` names another. Returns the instance folder."""
    os.environ[PROJECT_DIR_ENV] = str(project.root)
    home = os.environ.get(DAGSTER_HOME_ENV)
    if home:
        return Path(home)
    home_dir = project.state_dir / "dagster"
    home_dir.mkdir(parents=True, exist_ok=True)
    settings = home_dir / "dagster.yaml"
    if not settings.exists():
        settings.write_text(INSTANCE_SETTINGS)
    os.environ[DAGSTER_HOME_ENV] = str(home_dir)
    return home_dir


def pool_limits(project: Project) -> dict[str, int]:
    return {GPU_POOL: project.triggers.gpu_concurrency, COMMIT_RUNS_POOL: 1}


def apply_pool_limits(instance: dg.DagsterInstance, project: Project) -> None:
    """Set each pool's limit; a limit already in place is not rewritten.

    Dagster's SQLite storage checks for a pool's row and then inserts it without a lock: where other
    processes may do the same, call this under ``open_instance``'s lock.
    """
    storage = instance.event_log_storage
    for pool, limit in pool_limits(project).items():
        if storage.get_concurrency_info(pool).slot_count != limit:
            storage.set_concurrency_slots(pool, limit)


def open_instance(project: Project) -> dg.DagsterInstance:
    """The instance of ``DAGSTER_HOME``, its storage created and the project's pool limits set."""
    import dagster as dg

    home = os.environ.get(DAGSTER_HOME_ENV)
    if not home:
        raise DsPipelinesError(f"{DAGSTER_HOME_ENV} is not set: it names the folder of the Dagster instance")
    if not Path(home).is_dir():
        raise DsPipelinesError(
            f"{DAGSTER_HOME_ENV}={home} is not a folder: create it, or unset {DAGSTER_HOME_ENV} to use the "
            "project's local instance"
        )
    lock = FileLock(Path(home) / SETUP_LOCK_FILE, timeout=SETUP_LOCK_TIMEOUT_S)
    try:
        with lock:
            instance = dg.DagsterInstance.get()
            apply_pool_limits(instance, project)
    except Timeout:
        raise DsPipelinesError(
            f"another process has been setting up the Dagster instance in {home} for over {SETUP_LOCK_TIMEOUT_S} s "
            f"(it holds {lock.lock_file})"
        ) from None
    return instance
