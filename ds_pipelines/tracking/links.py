"""Addresses of MLflow pages, and tracking URIs safe to print.

- MLflow UI pages exist only when the tracking URI is an http(s) MLflow server, whose UI lives at the same
  address (credentials in the URI are dropped). GitLab's MLflow-compatible API (``.../api/v4/projects/
  <id>/ml/mlflow``) and local stores have no MLflow UI to link to.
"""

from __future__ import annotations

from urllib.parse import quote, urlsplit, urlunsplit


def mlflow_ui_url(tracking_uri: str | None) -> str | None:
    """The MLflow UI of an http(s) tracking server, without credentials; None when there is none to link."""
    if not tracking_uri:
        return None
    parts = urlsplit(tracking_uri)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    if "/api/v4/" in f"{parts.path}/":
        return None  # GitLab's MLflow-compatible API: its runs are shown by GitLab, not by an MLflow UI
    netloc = f"{parts.hostname}:{parts.port}" if parts.port else parts.hostname
    return urlunsplit((parts.scheme, netloc, parts.path.rstrip("/"), "", ""))


def shown_uri(uri: str | None) -> str:
    """``uri`` without credentials that may be embedded in it (``https://user:token@host``), for messages."""
    if not uri:
        return "the default tracking URI"
    parts = urlsplit(uri)
    if not (parts.username or parts.password):
        return uri
    netloc = f"{parts.hostname}:{parts.port}" if parts.port else (parts.hostname or "")
    return urlunsplit(parts._replace(netloc=netloc))


def mlflow_run_url(ui_url: str, experiment_id: str, run_id: str) -> str:
    """A run's page in the MLflow UI (``ui_url`` is the server's base URL)."""
    return f"{ui_url.rstrip('/')}/#/experiments/{quote(experiment_id, safe='')}/runs/{quote(run_id, safe='')}"


def model_version_url(ui_url: str, name: str, version: str) -> str:
    """A model version's page in the MLflow UI."""
    return f"{ui_url.rstrip('/')}/#/models/{quote(name, safe='')}/versions/{quote(str(version), safe='')}"
