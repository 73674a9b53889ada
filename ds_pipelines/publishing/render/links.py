"""The links shown with a run, as plain values: CI pages and each notebook's MLflow run and executed notebook."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from ds_pipelines.results.origin import Provenance


@dataclass(frozen=True)
class Links:
    """URLs shown with a run; any of them may be absent, and absent links are left out.

    ``mlflow_runs`` and ``executed_notebooks`` map a notebook's asset name to its URL.
    """

    pipeline: str | None = None
    job: str | None = None
    commit: str | None = None
    merge_request: str | None = None
    mlflow_runs: Mapping[str, str] = field(default_factory=dict)
    executed_notebooks: Mapping[str, str] = field(default_factory=dict)
    results_file: str | None = None
    """The run's results.json in the CI job's artifacts: the full reproducibility records."""

    def of_notebook(self, name: str, *, failed: bool = False) -> list[tuple[str, str]]:
        """(label, URL) of a notebook's pages that are known; the executed notebook first for a failure,
        where it shows what went wrong."""
        pages = [("MLflow run", self.mlflow_runs.get(name)), ("Executed notebook", self.executed_notebooks.get(name))]
        return [(label, url) for label, url in (reversed(pages) if failed else pages) if url]

    @classmethod
    def from_origin(cls, origin: Provenance, **notebook_links: Mapping[str, str]) -> Links:
        return cls(
            pipeline=origin.pipeline_url, job=origin.job_url, commit=origin.commit_url,
            merge_request=origin.merge_request_url, **notebook_links,
        )


def job_artifact_url(job_url: str, path: str, *, raw: bool = False) -> str:
    """The URL of ``path`` (relative to the project directory) in a GitLab job's artifacts."""
    return f"{job_url.rstrip('/')}/artifacts/{'raw' if raw else 'file'}/{quote(path.lstrip('/'))}"
