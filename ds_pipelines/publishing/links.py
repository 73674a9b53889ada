"""Every link of a run that can be made: CI pages from the run's origin, MLflow run pages from the tracking
server, executed notebooks in the CI job's artifacts.

- MLflow run pages: only for an http(s) MLflow server (``tracking.links.mlflow_ui_url``).
- Executed notebooks: files of the results folder in the artifacts of the CI job that kept the folder
  (``JobArtifacts``), by their path relative to the job's checkout. CI masks the folder (``ds-pipelines
  mask-secrets``) before keeping it as artifacts.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ds_pipelines.publishing.render.links import Links, job_artifact_url
from ds_pipelines.results.folder import RESULTS_FILE, RunResults
from ds_pipelines.results.origin import Provenance
from ds_pipelines.tracking.links import mlflow_run_url, mlflow_ui_url

Warn = Callable[[str], None]


@dataclass(frozen=True)
class JobArtifacts:
    """The artifacts of the CI job that kept the results folder: its URL, and the checkout it ran in."""

    job_url: str
    checkout: Path

    def url(self, path: Path) -> str | None:
        """The artifact URL of ``path``; None for a file outside the job's checkout (never kept)."""
        checkout = self.checkout.resolve()
        path = path.resolve()
        return job_artifact_url(self.job_url, path.relative_to(checkout).as_posix()) if path.is_relative_to(checkout) else None


@dataclass(frozen=True)
class ArtifactsOfJobs:
    """Results folders kept by different CI jobs (a child pipeline's notebook jobs, one folder each): a file is
    linked in the artifacts of the job that kept its folder."""

    jobs: tuple[tuple[Path, JobArtifacts | None], ...]
    """Each results folder, as this checkout holds it, and the job that kept it."""

    def url(self, path: Path) -> str | None:
        """The artifact URL of ``path``; None for a file in none of the folders."""
        path = path.resolve()
        for folder, job in self.jobs:
            if job is not None and path.is_relative_to(folder.resolve()):
                return job.url(path)
        return None


Artifacts = JobArtifacts | ArtifactsOfJobs


def run_links(
    results: RunResults, origin: Provenance, *, tracking_uri: str | None, artifacts: Artifacts | None, warn: Warn,
) -> Links:
    """Every link of ``results`` that can be made from its origin, the tracking server and the artifacts."""
    ui_url = mlflow_ui_url(tracking_uri)
    mlflow_runs = {}
    if ui_url:
        for name, experiment_id in experiment_ids(results, tracking_uri, warn).items():
            mlflow_runs[name] = mlflow_run_url(ui_url, experiment_id, results.notebook(name).mlflow_run_id)
    executed = {}
    if artifacts is not None:
        for nb in results.notebooks:
            url = artifacts.url(nb.executed_notebook) if nb.executed_notebook is not None else None
            if url:
                executed[nb.name] = url
    results_file = artifacts.url(results.directory / RESULTS_FILE) if artifacts and results.directory else None
    return Links.from_origin(origin, mlflow_runs=mlflow_runs, executed_notebooks=executed, results_file=results_file)


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
            warn(f"no MLflow link for {nb.name}: its run {nb.mlflow_run_id} cannot be read ({first_line(exc)})")
    return found


def first_line(exc: BaseException) -> str:
    """The first line of an error's message (MLflow's messages run to many lines)."""
    text = str(getattr(exc, "message", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
