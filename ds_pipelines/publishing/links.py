"""Links published with a run: CI pages from GitLab's variables, MLflow run pages, executed notebooks.

- CI pages (pipeline, job, commit, merge request): ``Links.from_ci_env``.
- MLflow run pages: only when the tracking URI is an http(s) MLflow server, whose UI lives at the same
  address (credentials in the URI are dropped). GitLab's MLflow-compatible API (``.../api/v4/projects/
  <id>/ml/mlflow``) and local stores have no MLflow UI to link to.
- Executed notebooks: files of the results folder in the artifacts of the job given as ``job_url``
  (default ``CI_JOB_URL``), by their path relative to the job's checkout (``CI_PROJECT_DIR``, else the
  current folder). CI masks the folder (``ds-pipelines mask-secrets``) before keeping it as artifacts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

from ds_pipelines.publish import Links, RunResults, job_artifact_url, mlflow_run_url

Warn = Callable[[str], None]


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


def shown_uri(uri: str) -> str:
    """``uri`` without credentials that may be embedded in it (``https://user:token@host``), for messages."""
    parts = urlsplit(uri)
    if not (parts.username or parts.password):
        return uri
    netloc = f"{parts.hostname}:{parts.port}" if parts.port else (parts.hostname or "")
    return urlunsplit(parts._replace(netloc=netloc))


def run_links(
    results: RunResults, env: Mapping[str, str], *, tracking_uri: str | None, job_url: str | None, warn: Warn,
) -> Links:
    """Every link of ``results`` that can be made from the environment and the tracking server."""
    ui_url = mlflow_ui_url(tracking_uri)
    mlflow_runs = {}
    if ui_url:
        for name, experiment_id in experiment_ids(results, tracking_uri, warn).items():
            run_id = next(nb.mlflow_run_id for nb in results.notebooks if nb.name == name)
            mlflow_runs[name] = mlflow_run_url(ui_url, experiment_id, run_id)
    executed = {}
    if job_url:
        checkout = Path(env.get("CI_PROJECT_DIR") or Path.cwd()).resolve()
        for nb in results.notebooks:
            if nb.executed_notebook is not None and nb.executed_notebook.is_relative_to(checkout):
                executed[nb.name] = job_artifact_url(job_url, nb.executed_notebook.relative_to(checkout).as_posix())
    return Links.from_ci_env(env, mlflow_runs=mlflow_runs, executed_notebooks=executed)


def experiment_ids(results: RunResults, tracking_uri: str | None, warn: Warn) -> dict[str, str]:
    """The MLflow experiment of each notebook's run (for its UI link); runs that cannot be read are left out."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    found = {}
    for nb in results.notebooks:
        if not nb.mlflow_run_id:
            continue
        try:
            found[nb.name] = client.get_run(nb.mlflow_run_id).info.experiment_id
        except (MlflowException, OSError) as exc:
            warn(f"no MLflow link for {nb.name}: its run {nb.mlflow_run_id} cannot be read ({_first_line(exc)})")
    return found


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
