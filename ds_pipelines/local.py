"""Embedded defaults: with nothing configured, Dagster keeps its instance inside the project.

MLflow's local default (a SQLite store in the same folder) is in ``ds_pipelines.tracking``.
"""

from __future__ import annotations

import os
from pathlib import Path

from ds_pipelines.project import PROJECT_DIR_ENV, Project

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
