"""What the commit sensor runs: new commits on watched branches and merge requests, through the trigger rules.

Free of Dagster imports; the sensor (``ds_pipelines.defs.triggers.sensors``) only turns the result into run
requests and stores the cursor. The cursor maps each watched ref (``branch:main``, ``mr:12``) to the last
commit seen there, so after a restart the next evaluation continues from it: nothing is run twice, nothing
is skipped. Each commit is planned on its own checkout, so ``[run ...]`` and config changes are read from
that commit's ``configs/notebooks.yaml``. A ``[plan]`` commit launches nothing: its plan is a message.

A merge request from a fork is skipped, saying so, unless the deployment's ``triggers.trusted_forks`` names the
fork: its commits are anyone's who can fork the project, and a run executes them with the deployment's
credentials. Nothing of it is fetched. A trusted fork's branch is recorded as ``fork-<id>/<branch>``, so a
fork's ``main`` never passes for this project's ``main`` (the baseline of every merge request).

No commit stops the sensor: one that cannot be planned or checked out, for whatever reason, is reported "not
run" with the reason and the ref moves on. Only a transient failure (the fetch failed or timed out) keeps the
ref at that commit; it is tried again after a delay that doubles from ``poll_interval_s`` up to
``MAX_RETRY_DELAY_S``, kept in the cursor under ``retries``, while the other refs go on.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Protocol

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.gitlab import repository
from ds_pipelines.gitlab.client import GitLabClient
from ds_pipelines.gitlab.errors import GitLabError
from ds_pipelines.gitlab.repository import Commit, commits_since, open_merge_requests
from ds_pipelines.project import Project
from ds_pipelines.project.settings import TriggerSettings
from ds_pipelines.results.origin import Provenance
from ds_pipelines.triggers.checkout import CheckoutError
from ds_pipelines.triggers.rules import Change, plan

RETRIES_KEY = "retries"
MAX_RETRY_DELAY_S = 900
MAX_REASON_CHARS = 500


class Checkout(Protocol):
    """Gives the folder with the files of a commit (``ds_pipelines.triggers.checkout.checkout`` bound to a
    repository); ``merge_request`` names the merge request whose head holds a trusted fork's commit."""

    def __call__(self, sha: str, merge_request: int | None = None) -> Path: ...


@dataclass(frozen=True)
class CommitRun:
    """One notebook to run at one commit."""

    notebook: str
    reason: str
    checkout: Path
    provenance: Provenance
    device: str = "cpu"
    """The notebook's ``device:`` at that commit: the run's container or GitLab runner follows it."""

    @property
    def run_key(self) -> str:
        """Derived from the commit and the notebook: the same commit seen on a branch and in a merge request
        runs once."""
        return f"{self.provenance.commit}:{self.notebook}"


@dataclass(frozen=True)
class Retry:
    """A commit of one ref whose checkout failed for a transient reason: tried again from ``not_before``."""

    sha: str
    attempts: int
    not_before: float


@dataclass
class Cursor:
    """Where the sensor stands: the last commit seen on each ref, and the refs waiting to retry a commit."""

    refs: dict[str, str] = field(default_factory=dict)
    retries: dict[str, Retry] = field(default_factory=dict)

    def dumps(self) -> str:
        """As JSON: the refs at the top level (as cursors before retries were), ``retries`` only when any."""
        data: dict[str, object] = dict(self.refs)
        if self.retries:
            data[RETRIES_KEY] = {ref: asdict(retry) for ref, retry in self.retries.items()}
        return json.dumps(data, sort_keys=True)


@dataclass(frozen=True)
class NotRun:
    """A commit that cannot be planned or checked out for a permanent reason: it runs nothing, ever."""

    sha: str
    reason: str


@dataclass
class Evaluation:
    runs: list[CommitRun] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    cursor: Cursor = field(default_factory=Cursor)
    not_run: list[NotRun] = field(default_factory=list)
    """Recorded on the commits too (their GitLab status), where people look."""


def parse_cursor(raw: str | None) -> Cursor:
    if not raw:
        return Cursor()
    try:
        data = json.loads(raw)
    except json.JSONDecodeError:
        data = None
    if not isinstance(data, dict):
        raise DsPipelinesError(f"the commit sensor's cursor is not a JSON object of refs to commits: {raw[:200]!r}")
    retries = data.pop(RETRIES_KEY, None) or {}
    try:
        parsed = {str(ref): Retry(str(r["sha"]), int(r["attempts"]), float(r["not_before"])) for ref, r in retries.items()}
    except (AttributeError, KeyError, TypeError, ValueError):
        parsed = {}  # unreadable: the refs' commits are simply tried again now
    return Cursor({str(k): str(v) for k, v in data.items()}, parsed)


def evaluate(client: GitLabClient, settings: TriggerSettings, cursor: Cursor, checkout: Checkout) -> Evaluation:
    """The runs that commits newer than ``cursor`` ask for, and the cursor that follows them.

    The first evaluation (empty cursor) only records where each ref is: enabling the sensor must not rerun
    history. Merge requests that appear later run in full (their diff from the merge base).
    """
    result = Evaluation(cursor=Cursor(dict(cursor.refs), dict(cursor.retries)))
    first = not cursor.refs
    now = time.time()
    for branch in settings.branches:
        key = f"branch:{branch}"
        if _waiting(result, key, now):
            continue
        commits = commits_since(client, ref=branch, since_sha=cursor.refs.get(key))
        if first or key not in cursor.refs:
            if commits:
                result.cursor.refs[key] = commits[-1].sha
                result.messages.append(f"watching branch {branch} from {commits[-1].sha[:12]}")
            continue
        pushes = _pushes(client, commits, cursor.refs[key])
        # Recorded on the runs' MLflow runs, as CI_COMMIT_REF_PROTECTED is in CI: releases promote only
        # versions that protected refs of this project trained.
        protected = str(repository.branch_protected(client, branch=branch)).lower() if pushes else None
        for commit, changes in pushes:
            if not _plan(result, key, commit, changes, settings, checkout, now, Provenance(
                    commit=commit.sha, branch=branch, commit_url=commit.web_url, trigger="push", protected=protected,
                    project_id=_project_id(client))):
                break
            result.cursor.refs[key] = commit.sha
    if settings.merge_requests:
        open_now = open_merge_requests(client)
        for mr in open_now:
            key = f"mr:{mr.iid}"
            if result.cursor.refs.get(key) == mr.sha or _waiting(result, key, now):
                continue
            trusted_fork = mr.from_fork and mr.source_project_id in settings.trusted_forks
            if mr.from_fork and not trusted_fork:
                result.cursor.refs[key] = mr.sha
                result.messages.append(
                    f"merge request !{mr.iid} comes from another project (id {mr.source_project_id}): not run, as "
                    "its commits would run with this deployment's credentials (list the fork in "
                    "triggers.trusted_forks of the deployment's configs/notebooks.yaml to run it)")
                continue
            if first:
                result.cursor.refs[key] = mr.sha
                result.messages.append(f"watching merge request !{mr.iid} from {mr.sha[:12]}")
                continue
            head = commits_since(client, ref=mr.sha, since_sha=None)[-1]
            changes = compare(client, from_sha=mr.diff_base_sha, to_sha=mr.sha) if mr.diff_base_sha else commit_changes(client, sha=mr.sha)
            branch = f"fork-{mr.source_project_id}/{mr.source_branch}" if trusted_fork else mr.source_branch
            if _plan(result, key, head, changes, settings,
                     lambda sha, iid=mr.iid if trusted_fork else None: checkout(sha, merge_request=iid), now,
                     Provenance(commit=mr.sha, branch=branch, merge_request=str(mr.iid), commit_url=head.web_url,
                                merge_request_url=mr.web_url, trigger="merge_request_event", protected="false",
                                project_id=_project_id(client))):
                result.cursor.refs[key] = mr.sha
        still_open = {f"mr:{mr.iid}" for mr in open_now}
        for key in [k for k in result.cursor.refs if k.startswith("mr:") and k not in still_open]:
            del result.cursor.refs[key]  # merged or closed: forget it, the cursor stays small
            result.cursor.retries.pop(key, None)
    return result


def _waiting(result: Evaluation, key: str, now: float) -> bool:
    """Whether ``key`` waits to retry a commit whose checkout failed for a transient reason (saying so)."""
    retry = result.cursor.retries.get(key)
    if retry is None or retry.not_before <= now:
        return False
    result.messages.append(f"{key}: commit {retry.sha[:12]} is tried again in {retry.not_before - now:.0f} s "
                           f"(attempt {retry.attempts + 1})")
    return True


def _project_id(client: GitLabClient) -> str:
    return str(client.project_attributes()["id"])


def commit_changes(client: GitLabClient, *, sha: str) -> list[Change]:
    """The files commit ``sha`` changed (``repository.commit_diffs``), as the trigger rules read them."""
    return [Change.from_gitlab_diff(diff) for diff in repository.commit_diffs(client, sha=sha)]


def compare(client: GitLabClient, *, from_sha: str, to_sha: str) -> list[Change]:
    """The files changed from the merge base of the two commits to ``to_sha`` (``repository.compare``)."""
    return [Change.from_gitlab_diff(diff) for diff in repository.compare(client, from_sha=from_sha, to_sha=to_sha)]


def _pushes(client: GitLabClient, commits: list[Commit], since: str) -> list[tuple[Commit, list[Change]]]:
    """Each commit on the first-parent line from ``since`` with what it changed (a merge brings the merged
    branch's changes with it, so the merged commits do not run again); or, when that line does not lead back
    to ``since`` (a force push, or more commits than were listed), the newest commit with everything the push
    changed, as GitLab CI's before..after diff would."""
    if not commits:
        return []
    by_sha = {commit.sha: commit for commit in commits}
    line: list[Commit] = []
    sha: str | None = commits[-1].sha
    while sha in by_sha:
        line.append(by_sha[sha])
        sha = next(iter(by_sha[sha].parent_ids), None)
    if sha == since:
        return [(commit, commit_changes(client, sha=commit.sha)) for commit in reversed(line)]
    newest = commits[-1]
    try:
        changes = compare(client, from_sha=since, to_sha=newest.sha)
    except GitLabError:  # the old head is gone from GitLab too: what the newest commit changed is all we know
        changes = commit_changes(client, sha=newest.sha)
    return [(newest, changes)]


def _plan(result: Evaluation, key: str, commit: Commit, changes: list[Change], settings: TriggerSettings,
          checkout: Checkout, now: float, provenance: Provenance) -> bool:
    """Plans ``commit`` of ref ``key`` into ``result``; False when its checkout failed for a transient reason
    (the ref must stay before it, to try again)."""
    where = f"commit {commit.sha[:12]}" + (f" (!{provenance.merge_request})" if provenance.merge_request else "")
    try:
        folder = checkout(commit.sha)
        project = Project(folder)
        decided = plan(project, changes, commit.message, source="push",
                       production_tag=settings.production_tag, development_tag=settings.development_tag)
        devices = {planned.path: project.find(planned.path).device for planned in decided.notebooks}
    except Exception as exc:  # whatever a commit makes planning raise must not stop the sensor: its cursor
        # would never be saved, and every later tick would replay this commit
        if isinstance(exc, CheckoutError) and exc.transient:
            _retry_later(result, key, commit.sha, settings.poll_interval_s, now, str(exc))
            return False
        # Our own errors say what is wrong (a bad [run ...], a broken config); anything else is named by its type.
        reason = str(exc) if isinstance(exc, DsPipelinesError) else f"{type(exc).__name__}: {exc}"
        result.messages.append(f"{where}: not run: {_bounded(reason)}")
        result.not_run.append(NotRun(commit.sha, reason))
        result.cursor.retries.pop(key, None)
        return True
    result.cursor.retries.pop(key, None)
    if decided.dry_run:
        would = ", ".join(f"{n.path} ({n.reason})" for n in decided.would_run) or "nothing"
        result.messages.append(f"{where}: dry run, nothing launched ({decided.skip_reason}); would run: {would}")
    elif decided.skip:
        result.messages.append(f"{where}: nothing to run ({decided.skip_reason})")
    for planned in decided.notebooks:
        result.runs.append(CommitRun(planned.path, planned.reason, folder, provenance, devices[planned.path]))
    return True


def _retry_later(result: Evaluation, key: str, sha: str, poll_interval_s: int, now: float, reason: str) -> None:
    previous = result.cursor.retries.get(key)
    attempts = previous.attempts + 1 if previous and previous.sha == sha else 1
    delay = min(poll_interval_s * 2 ** (attempts - 1), MAX_RETRY_DELAY_S)
    result.cursor.retries[key] = Retry(sha, attempts, now + delay)
    result.messages.append(f"{key}: commit {sha[:12]} could not be checked out ({_bounded(reason)}): tried again in "
                           f"{delay} s (attempt {attempts + 1}); the later commits of {key} wait for it")


def _bounded(text: str) -> str:
    """A reason as messages quote it: an exception's text can hold a parsed value, cut it short."""
    return text if len(text) <= MAX_REASON_CHARS else f"{text[:MAX_REASON_CHARS]}... ({len(text)} characters)"
