"""Where MLflow tracks runs: ``MLFLOW_TRACKING_URI`` when set, else a SQLite store inside the project.

``MLFLOW_TRACKING_TOKEN`` (for a real server, GitLab's MLflow-compatible endpoint included) is read by
MLflow itself from the environment and never passes through ds-pipelines code or config.
"""

from __future__ import annotations

import os

from ds_pipelines.project import Project

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"


def tracking_uri(project: Project) -> str:
    configured = os.environ.get(TRACKING_URI_ENV)
    if configured:
        return configured
    project.state_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{project.state_dir / 'mlflow.db'}"
