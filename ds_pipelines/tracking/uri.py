"""Where MLflow tracks runs: ``MLFLOW_TRACKING_URI`` when set, else a SQLite store inside the project.

``MLFLOW_TRACKING_TOKEN`` (for a real server, GitLab's MLflow-compatible endpoint included) is read by
MLflow itself from the environment and never passes through ds-pipelines code or config.
"""

from __future__ import annotations

import os
import re

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.project import Project
from ds_pipelines.tracking.links import shown_uri

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
MLFLOW_CONNECT_TIMEOUT_S = 10


def tracking_uri(project: Project) -> str:
    configured = os.environ.get(TRACKING_URI_ENV)
    if configured:
        return configured
    project.state_dir.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{project.state_dir / 'mlflow.db'}"


def require_reachable(uri: str | None, error: type[DsPipelinesError] = DsPipelinesError) -> None:
    """For an http(s) tracking URI, an ``error`` naming ``MLFLOW_TRACKING_URI`` when nothing answers there
    within ``MLFLOW_CONNECT_TIMEOUT_S``: MLflow's own client retries a refused connection with backoff for
    minutes before it gives up, with a message that names neither."""
    if not uri or not uri.startswith(("http://", "https://")):
        return
    import requests

    try:
        # Any answer will do (GitLab's MLflow API has no /health): only a connection that fails is a problem.
        requests.get(f"{uri.rstrip('/')}/health", timeout=MLFLOW_CONNECT_TIMEOUT_S)
    except requests.RequestException as exc:
        reason = re.search(r"\[Errno -?\d+\] [^'\")]+|timed out|Name or service not known", str(exc))
        raise error(
            f"the MLflow tracking server at {TRACKING_URI_ENV}={shown_uri(uri)} cannot be reached"
            f" ({reason.group(0) if reason else type(exc).__name__}): start it, or set {TRACKING_URI_ENV} to one that runs"
        ) from None
