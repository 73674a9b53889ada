"""Pipelines this project's GitLab runs for others: created once per key, followed job by job, canceled.

The Dagster deployment's run launcher (``ds_pipelines.execution.gitlab_runs``) creates one pipeline per
Dagster run and follows its job. A pipeline is found again by one of its variables (the Dagster run's id),
so a create whose reply was lost is never sent blindly again: python-gitlab would POST twice.
APIs: https://docs.gitlab.com/api/pipelines/ and https://docs.gitlab.com/api/jobs/
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any

from ds_pipelines.gitlab.client import GitLabClient
from ds_pipelines.gitlab.errors import GitLabError

_MAX_PER_PAGE = 100  # GitLab's limit
LOOKUP_WINDOW = timedelta(hours=1)
"""How far back the pipelines are searched for one that carries a key: a launch's own create is seconds old."""
WAITING = frozenset({"created", "pending", "waiting_for_resource", "preparing", "scheduled", "manual"})
"""Job states before a runner runs it."""
FINISHED = frozenset({"success", "failed", "canceled", "skipped"})


@dataclass(frozen=True)
class Pipeline:
    id: int
    status: str
    ref: str
    web_url: str

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Pipeline:
        return cls(id=int(data["id"]), status=data.get("status") or "", ref=data.get("ref") or "",
                   web_url=data.get("web_url") or "")


@dataclass(frozen=True)
class Job:
    id: int
    name: str
    status: str
    web_url: str
    tags: tuple[str, ...]
    runner: str | None
    """The runner's description once one took the job."""

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Job:
        runner = data.get("runner") or {}
        return cls(id=int(data["id"]), name=data.get("name") or "", status=data.get("status") or "",
                   web_url=data.get("web_url") or "", tags=tuple(data.get("tag_list") or ()),
                   runner=runner.get("description") or runner.get("name") or None)


def find_pipeline(client: GitLabClient, *, ref: str, key: str, value: str) -> Pipeline | None:
    """The newest pipeline of ``ref`` created through the API within ``LOOKUP_WINDOW`` whose variable
    ``key`` is ``value``, or None."""
    since = (datetime.now(timezone.utc) - LOOKUP_WINDOW).isoformat()
    with client.handling_errors(f"looking for the pipeline of {key}={value} on {ref}"):
        listed = client.project.pipelines.list(ref=ref, source="api", updated_after=since, order_by="id", sort="desc",
                                               iterator=True, per_page=_MAX_PER_PAGE, **client.request_options)
        for pipeline in listed:
            variables = pipeline.variables.list(get_all=True, **client.request_options)
            if any(v.attributes.get("key") == key and v.attributes.get("value") == value for v in variables):
                return Pipeline.from_api(pipeline.attributes)
    return None


def create_pipeline_once(client: GitLabClient, *, ref: str, variables: Mapping[str, str], key: str) -> Pipeline:
    """The pipeline of ``ref`` with ``variables``, created unless one carrying ``variables[key]`` exists.

    Each create is a single request (python-gitlab's retries off): after a failure that may have reached
    GitLab (no reply, 5xx) the pipeline is looked for first, and created again only when it is not there."""
    operation = f"creating a pipeline on {ref}"
    payload = {"ref": ref, "variables": [{"key": name, "value": value, "variable_type": "env_var"}
                                         for name, value in variables.items()]}
    for attempt in itertools.count():
        try:
            with client.handling_errors(operation):
                created = client.project.pipelines.create(payload, retry_transient_errors=False, max_retries=0)
            return Pipeline.from_api(created.attributes)
        except GitLabError as exc:
            if attempt >= client.max_retries or not _maybe_applied(exc):
                raise
        found = find_pipeline(client, ref=ref, key=key, value=variables[key])
        if found is not None:
            return found
        time.sleep(0.1 * 2**attempt)
    raise AssertionError("unreachable")  # pragma: no cover


def get_pipeline(client: GitLabClient, pipeline_id: int) -> Pipeline:
    data = client.call(f"reading pipeline {pipeline_id}", client.project.pipelines.get, pipeline_id)
    return Pipeline.from_api(data.attributes)


def pipeline_jobs(client: GitLabClient, pipeline_id: int) -> list[Job]:
    """The pipeline's jobs, retried ones included, oldest first."""
    with client.handling_errors(f"listing the jobs of pipeline {pipeline_id}"):
        pipeline = client.project.pipelines.get(pipeline_id, lazy=True)
        listed = pipeline.jobs.list(get_all=True, per_page=_MAX_PER_PAGE, include_retried=True, **client.request_options)
        return sorted((Job.from_api(job.attributes) for job in listed), key=lambda job: job.id)


def cancel_pipeline(client: GitLabClient, pipeline_id: int) -> None:
    with client.handling_errors(f"canceling pipeline {pipeline_id}"):
        client.project.pipelines.get(pipeline_id, lazy=True).cancel(**client.request_options)


def job_trace_tail(client: GitLabClient, job_id: int, *, max_chars: int = 4000) -> str:
    """The end of the job's log, token masked (GitLab masks the masked CI/CD variables itself)."""
    with client.handling_errors(f"reading the log of job {job_id}"):
        trace = client.project.jobs.get(job_id, lazy=True).trace(**client.request_options)
    text = trace.decode("utf-8", "replace") if isinstance(trace, bytes) else str(trace)
    return client.mask(text[-max_chars:])


def _maybe_applied(exc: GitLabError) -> bool:
    """Whether the failed request may have created the pipeline: no reply (no status), or a server error."""
    return exc.status is None or exc.status == 429 or exc.status >= 500
