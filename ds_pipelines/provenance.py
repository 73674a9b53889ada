"""Where a run comes from in GitLab (commit, branch, merge request, pipeline, job), as run tags.

One definition for every way a run starts: ``ds-pipelines run`` inside GitLab CI reads the predefined
variables, the commit sensor fills it from the GitLab API. The tags show in the Dagster UI's run list, and
the publishing code (``ds_pipelines.publish.context``) reads GitLab CI's variables through it too.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass

from ds_pipelines.errors import DsPipelinesError

TAG_PREFIX = "ds-pipelines/"
RUN_TAGS_ENV = "DS_PIPELINES_RUN_TAGS"
"""JSON object of extra run tags that ``ds-pipelines run`` adds (how a sensor's run hands its tags on)."""


@dataclass(frozen=True)
class Provenance:
    commit: str | None = None
    branch: str | None = None
    merge_request: str | None = None
    """The merge request's IID, as GitLab shows it (``!12``)."""
    commit_url: str | None = None
    merge_request_url: str | None = None
    pipeline_url: str | None = None
    job_url: str | None = None
    trigger: str | None = None
    """What started the run: push, merge_request_event, schedule, sensor, ..."""

    @classmethod
    def from_gitlab_ci(cls, environ: Mapping[str, str] | None = None) -> Provenance:
        """From GitLab CI's predefined variables; empty outside CI."""
        env = os.environ if environ is None else environ
        project_url = env.get("CI_PROJECT_URL")
        sha = env.get("CI_COMMIT_SHA") or None
        iid = env.get("CI_MERGE_REQUEST_IID") or None
        return cls(
            commit=sha,
            branch=env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME") or env.get("CI_COMMIT_BRANCH") or None,
            merge_request=iid,
            commit_url=f"{project_url}/-/commit/{sha}" if project_url and sha else None,
            merge_request_url=f"{project_url}/-/merge_requests/{iid}" if project_url and iid else None,
            pipeline_url=env.get("CI_PIPELINE_URL") or None,
            job_url=env.get("CI_JOB_URL") or None,
            trigger=env.get("CI_PIPELINE_SOURCE") or None,
        )

    def run_tags(self) -> dict[str, str]:
        """Dagster run tags (``ds-pipelines/commit`` ...), only for what is known."""
        return {f"{TAG_PREFIX}{key.replace('_', '-')}": value for key, value in asdict(self).items() if value}


def current(environ: Mapping[str, str] | None = None) -> Provenance:
    """Where this ``ds-pipelines run`` comes from: GitLab CI's variables, overridden by what a sensor's run
    handed on through ``DS_PIPELINES_RUN_TAGS`` (a JSON object of run tags)."""
    env = os.environ if environ is None else environ
    found = asdict(Provenance.from_gitlab_ci(env))
    handed_on = env.get(RUN_TAGS_ENV)
    if handed_on:
        try:
            tags = json.loads(handed_on)
        except json.JSONDecodeError:
            tags = None
        if not isinstance(tags, dict):
            raise DsPipelinesError(f"{RUN_TAGS_ENV} is not a JSON object of run tags: {handed_on[:200]!r}")
        by_tag = {f"{TAG_PREFIX}{key.replace('_', '-')}": key for key in found}
        found.update({by_tag[tag]: str(value) for tag, value in tags.items() if tag in by_tag})
    return Provenance(**found)
