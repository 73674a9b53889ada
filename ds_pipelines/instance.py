"""Opening the Dagster instance of ``DAGSTER_HOME`` when several ``ds-pipelines`` processes may start at once.

On a fresh local instance, processes that open it together race to create its SQLite tables (alembic's
version table ends up with two heads) and then its pool rows (a UNIQUE error, or a pool's slots allocated
twice). A lock file in the instance folder lets one process at a time set the instance up.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.local import DAGSTER_HOME_ENV
from ds_pipelines.pools import apply_pool_limits
from ds_pipelines.project import Project

if TYPE_CHECKING:
    import dagster as dg

SETUP_LOCK_FILE = "ds-pipelines-setup.lock"
SETUP_LOCK_TIMEOUT_S = 120
"""Setting up a fresh instance takes a few seconds; a lock held this long belongs to a stuck process."""


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
