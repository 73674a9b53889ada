"""Where a run comes from (branch, merge request, schedule, runner, image) and the links shown with it.

Renderers take these as plain values; ``from_ci_env`` fills them from GitLab CI's predefined variables,
read through ``ds_pipelines.provenance`` like the Dagster run tags, so the mapping is written once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import quote

from ds_pipelines.provenance import Provenance

RUNNER_ENV = "DSP_RUNNER"
"""``cpu`` or ``gpu``: the runner kind, when CI_RUNNER_TAGS does not tell."""
IMAGE_ENV = "DSP_IMAGE"
"""The image the notebooks ran in (default: GitLab's ``CI_JOB_IMAGE``)."""


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

    def of_notebook(self, name: str, *, failed: bool = False) -> list[tuple[str, str]]:
        """(label, URL) of a notebook's pages that are known; the executed notebook first for a failure,
        where it shows what went wrong."""
        pages = [("MLflow run", self.mlflow_runs.get(name)), ("Executed notebook", self.executed_notebooks.get(name))]
        return [(label, url) for label, url in (reversed(pages) if failed else pages) if url]

    @classmethod
    def from_ci_env(cls, env: Mapping[str, str], **notebook_links: Mapping[str, str]) -> Links:
        origin = Provenance.from_gitlab_ci(env)
        return cls(
            pipeline=origin.pipeline_url, job=origin.job_url, commit=origin.commit_url,
            merge_request=origin.merge_request_url, **notebook_links,
        )


def job_artifact_url(job_url: str, path: str, *, raw: bool = False) -> str:
    """The URL of ``path`` (relative to the project directory) in a GitLab job's artifacts."""
    return f"{job_url.rstrip('/')}/artifacts/{'raw' if raw else 'file'}/{quote(path.lstrip('/'))}"


def mlflow_run_url(ui_url: str, experiment_id: str, run_id: str) -> str:
    """A run's page in the MLflow UI (``ui_url`` is the server's base URL)."""
    return f"{ui_url.rstrip('/')}/#/experiments/{quote(experiment_id, safe='')}/runs/{quote(run_id, safe='')}"


@dataclass(frozen=True)
class RunContext:
    """What started a run and where it ran."""

    commit_sha: str | None = None
    branch: str | None = None
    merge_request_iid: str | None = None
    pipeline_source: str | None = None
    """GitLab's CI_PIPELINE_SOURCE: push, merge_request_event, schedule, web, api, trigger..."""
    tag: str | None = None
    runner: str | None = None
    """``CPU`` or ``GPU``."""
    image: str | None = None

    @classmethod
    def from_ci_env(cls, env: Mapping[str, str]) -> RunContext:
        origin = Provenance.from_gitlab_ci(env)
        return cls(
            commit_sha=origin.commit,
            branch=origin.branch,
            merge_request_iid=origin.merge_request,
            pipeline_source=origin.trigger,
            tag=env.get("CI_COMMIT_TAG") or None,
            runner=_runner(env),
            image=env.get(IMAGE_ENV) or env.get("CI_JOB_IMAGE") or None,
        )

    @property
    def trigger(self) -> str:
        """How the run was started, in words: ``schedule``, ``MR !12``, ``tag v1.2.3``, ``branch main``."""
        if self.pipeline_source == "schedule":
            return "schedule"
        if self.merge_request_iid:
            return f"MR !{self.merge_request_iid}"
        if self.tag:
            return f"tag {self.tag}"
        if self.branch:
            return f"branch {self.branch}"
        return self.pipeline_source or "local"

    @property
    def image_tag(self) -> str | None:
        """The tag (or short digest) of ``image``: ``registry/group/ds:1.4`` gives ``1.4``."""
        if not self.image:
            return None
        name, _, digest = self.image.partition("@")
        if digest:
            return digest.split(":")[-1][:12]
        last = name.rsplit("/", 1)[-1]
        return last.split(":", 1)[1] if ":" in last else "latest"


def _runner(env: Mapping[str, str]) -> str | None:
    explicit = (env.get(RUNNER_ENV) or "").strip().lower()
    if explicit in ("cpu", "gpu"):
        return explicit.upper()
    tags = env.get("CI_RUNNER_TAGS")
    if not tags:
        return None
    try:
        listed = json.loads(tags)
    except json.JSONDecodeError:
        listed = tags.split(",")
    names = [str(tag).strip().lower() for tag in (listed if isinstance(listed, list) else [listed])]
    return "GPU" if any("gpu" in name or "cuda" in name for name in names) else "CPU"
