"""Where a run comes from in GitLab (commit, branch, merge request, pipeline, job), read once for everyone.

One definition for every way a run starts: ``ds-pipelines run`` inside GitLab CI reads the predefined
variables (``Provenance.from_gitlab_ci``), the commit sensor fills it from the GitLab API, and a Dagster run
carries it as run tags (``run_tags``, read back with ``from_run_tags``). The tags show in the Dagster UI's
run list; publishing reads the same object to link the pipeline, job, commit and merge request.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from pathlib import Path

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.project.work_tree import ask_git

TAG_PREFIX = "ds-pipelines/"
RUN_TAGS_ENV = "DS_PIPELINES_RUN_TAGS"
"""JSON object of extra run tags that ``ds-pipelines run`` adds (how a sensor's run hands its tags on)."""
RUNNER_ENV = "DSP_RUNNER"
"""``cpu`` or ``gpu``: the runner kind, when CI_RUNNER_TAGS does not tell."""
CHILD_SOURCE_ENV = "DSP_PIPELINE_SOURCE"
CHILD_MERGE_REQUEST_ENV = "DSP_MERGE_REQUEST_IID"
"""The parent pipeline's source and merge request, in the child pipeline of ``ds-pipelines detect``."""
IMAGE_ENV = "DSP_IMAGE"
"""The image the notebooks ran in (default: GitLab's ``CI_JOB_IMAGE``)."""


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
    """What started the run: push, merge_request_event, schedule, sensor, ... (GitLab's CI_PIPELINE_SOURCE)."""
    tag: str | None = None
    """The git tag of a tag pipeline."""
    runner: str | None = None
    """``CPU`` or ``GPU``."""
    image: str | None = None
    protected: str | None = None
    """``true`` when the ref is protected in GitLab (``CI_COMMIT_REF_PROTECTED``; the commit sensor asks GitLab)."""
    project_id: str | None = None
    """The GitLab project whose pipeline (or sensor) made the run (``CI_PROJECT_ID``)."""

    @classmethod
    def from_gitlab_ci(cls, environ: Mapping[str, str] | None = None) -> Provenance:
        """From GitLab CI's predefined variables; empty outside CI."""
        env = os.environ if environ is None else environ
        project_url = env.get("CI_PROJECT_URL")
        sha = env.get("CI_COMMIT_SHA") or None
        # A child pipeline's own source is parent_pipeline: ds-pipelines' child pipeline passes the parent's on.
        iid = env.get("CI_MERGE_REQUEST_IID") or env.get(CHILD_MERGE_REQUEST_ENV) or None
        return cls(
            commit=sha,
            branch=env.get("CI_MERGE_REQUEST_SOURCE_BRANCH_NAME") or env.get("CI_COMMIT_BRANCH") or None,
            merge_request=iid,
            commit_url=f"{project_url}/-/commit/{sha}" if project_url and sha else None,
            merge_request_url=f"{project_url}/-/merge_requests/{iid}" if project_url and iid else None,
            pipeline_url=env.get("CI_PIPELINE_URL") or None,
            job_url=env.get("CI_JOB_URL") or None,
            trigger=env.get(CHILD_SOURCE_ENV) or env.get("CI_PIPELINE_SOURCE") or None,
            tag=env.get("CI_COMMIT_TAG") or None,
            runner=_runner(env),
            image=env.get(IMAGE_ENV) or env.get("CI_JOB_IMAGE") or None,
            protected=env.get("CI_COMMIT_REF_PROTECTED") or None,
            project_id=env.get("CI_PROJECT_ID") or None,
        )

    @classmethod
    def from_run_tags(cls, tags: Mapping[str, str]) -> Provenance:
        """From a Dagster run's tags (``run_tags``); tags of other tools are ignored."""
        by_tag = {_tag(name): name for name in _FIELDS}
        return cls(**{by_tag[tag]: str(value) for tag, value in tags.items() if tag in by_tag and value})

    def run_tags(self) -> dict[str, str]:
        """Dagster run tags (``ds-pipelines/commit`` ...), only for what is known."""
        return {_tag(key): value for key, value in asdict(self).items() if value}

    @property
    def trigger_label(self) -> str:
        """How the run was started, in words: ``schedule``, ``MR !12``, ``tag v1.2.3``, ``branch main``."""
        if self.trigger == "schedule":
            return "schedule"
        if self.merge_request:
            return f"MR !{self.merge_request}"
        if self.tag:
            return f"tag {self.tag}"
        if self.branch:
            return f"branch {self.branch}"
        return self.trigger or "local"

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


_FIELDS = [f.name for f in fields(Provenance)]


def _tag(field_name: str) -> str:
    return f"{TAG_PREFIX}{field_name.replace('_', '-')}"


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
        found.update({key: value for key, value in asdict(Provenance.from_run_tags(tags)).items() if value})
    if env.get("GITLAB_CI"):
        # In a GitLab job, whether the ref is protected and which project ran it come from GitLab alone: a
        # release trusts them (``publishing.release.trained_from``).
        found.update(protected=env.get("CI_COMMIT_REF_PROTECTED") or None, project_id=env.get("CI_PROJECT_ID") or None)
    return Provenance(**found)


def run_commit(root: Path, origin: Provenance) -> tuple[str, str] | None:
    """(sha, branch) of the commit the project's files are from: the one the run was started for (GitLab CI's
    variables, or a sensor's tags), else the checked-out commit of ``root``; None when neither is known."""
    if origin.commit:
        return origin.commit, origin.branch or ""
    return _checked_out_commit(root)


def _checked_out_commit(root: Path) -> tuple[str, str] | None:
    """HEAD of the git work tree holding ``root``, unless that tree ignores ``root``: a commit's checkout
    under a deployment's git-ignored ``.ds-pipelines/`` is not the deployment's HEAD."""

    head = ask_git(root, "rev-parse", "HEAD")
    if head is None or head.returncode != 0:
        return None
    ignored = ask_git(root, "check-ignore", "-q", ".")
    if ignored is None or ignored.returncode == 0:
        return None
    branch = ask_git(root, "rev-parse", "--abbrev-ref", "HEAD")
    return head.stdout.strip(), branch.stdout.strip() if branch is not None else ""


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
