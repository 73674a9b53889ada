"""The read side: what the repository holds, for sensors that watch it through the GitLab API.

Functions over a GitLabClient; every list is read to its end (``get_all``/iterators), never GitLab's silent
first page of 20. Changed files come back as GitLab's diff entries (``new_path``, ``old_path``,
``new_file``, ``renamed_file``, ``deleted_file``), for the trigger rules to read.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ds_pipelines.gitlab.client import GitLabClient
from ds_pipelines.gitlab.errors import GitLabError

_MAX_PER_PAGE = 100  # GitLab's limit


@dataclass(frozen=True)
class Commit:
    sha: str
    message: str
    parent_ids: tuple[str, ...]
    committed_date: str
    web_url: str

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> Commit:
        return cls(
            sha=data["id"],
            message=data.get("message") or "",
            parent_ids=tuple(data.get("parent_ids") or ()),
            committed_date=data.get("committed_date") or "",
            web_url=data.get("web_url") or "",
        )


@dataclass(frozen=True)
class MergeRequest:
    iid: int
    source_branch: str
    target_branch: str
    sha: str
    """The head commit of the source branch."""
    web_url: str
    diff_base_sha: str | None
    """Where the merge request's diff starts (``diff_refs.base_sha``): compare from here to ``sha``."""
    source_project_id: int | None = None
    """The project its branch lives in: another one's (``from_fork``) for a merge request from a fork."""
    target_project_id: int | None = None

    @classmethod
    def from_api(cls, data: Mapping[str, Any]) -> MergeRequest:
        diff_refs = data.get("diff_refs") or {}
        target = data.get("target_project_id", data.get("project_id"))
        return cls(
            iid=int(data["iid"]),
            source_branch=data["source_branch"],
            target_branch=data["target_branch"],
            sha=data.get("sha") or "",
            web_url=data.get("web_url") or "",
            diff_base_sha=diff_refs.get("base_sha"),
            source_project_id=None if data.get("source_project_id") is None else int(data["source_project_id"]),
            target_project_id=None if target is None else int(target),
        )

    @property
    def from_fork(self) -> bool:
        """Its commits come from another project (anyone who can fork may push there). Unknown counts as a fork."""
        return self.source_project_id is None or self.source_project_id != self.target_project_id


@dataclass(frozen=True)
class Tag:
    name: str
    sha: str
    """The commit the tag points to (through an annotated tag's object)."""
    protected: bool = False
    """Only Maintainers (or those allowed) may create it: GitLab's protected tags."""


def branch_head(client: GitLabClient, *, branch: str) -> str:
    """The SHA of the newest commit of ``branch``.
    API: https://docs.gitlab.com/api/branches/#get-single-repository-branch
    """
    found = client.call(f"reading branch {branch!r}", client.project.branches.get, branch)
    return found.commit["id"]


def branch_protected(client: GitLabClient, *, branch: str) -> bool:
    """Whether ``branch`` is protected in GitLab (only Maintainers, or those they allow, push to it).
    API: https://docs.gitlab.com/api/branches/#get-single-repository-branch
    """
    found = client.call(f"reading branch {branch!r}", client.project.branches.get, branch)
    return bool(found.attributes.get("protected"))


def set_commit_status(client: GitLabClient, *, sha: str, state: str, name: str, description: str) -> None:
    """Set commit ``sha``'s status ``name`` (a line of the commit's pipelines view in GitLab) to ``state``
    (``failed``, ``success``, ...), with ``description``, cut to the 255 characters GitLab keeps.
    API: https://docs.gitlab.com/api/commits/#set-the-pipeline-status-of-a-commit
    """
    text = description if len(description) <= 255 else f"{description[:252]}..."
    commit = client.project.commits.get(sha, lazy=True)
    client.call(f"setting the status {name!r} of commit {sha[:12]}", commit.statuses.create,
                {"state": state, "name": name, "description": text})


def commits_since(client: GitLabClient, *, ref: str, since_sha: str | None, limit: int = 100) -> list[Commit]:
    """The commits of ``ref`` newer than ``since_sha``, oldest first; ``[]`` when ``since_sha`` is the head.

    Walks GitLab's newest-first history of ``ref`` page by page until ``since_sha``:

    - ``since_sha`` None (nothing seen yet): only the newest commit.
    - ``since_sha`` not among the newest ``limit`` commits (a force push dropped it, or more than ``limit``
      commits were pushed at once): only the newest commit. The caller cannot tell which of the two it was
      from this list alone: it should treat it as a force push and compute what changed with
      ``compare(from_sha=since_sha, to_sha=newest)``, which works whenever ``since_sha`` still exists.

    The history is in GitLab's order (by date), so after a merge the commits of the merged branch may be
    missing here: use ``compare`` for the files a push changed, and this list for messages and cursors.
    API: https://docs.gitlab.com/api/commits/#list-repository-commits
    """
    if limit < 1:
        raise ValueError(f"limit must be at least 1, not {limit}")
    newest_first: list[Commit] = []
    with client.handling_errors(f"listing the commits of {ref!r}"):
        listed = client.project.commits.list(
            ref_name=ref, iterator=True, per_page=min(limit, _MAX_PER_PAGE), **client.request_options
        )
        for item in listed:
            commit = Commit.from_api(item.attributes)
            if since_sha is None:
                return [commit]
            if commit.sha == since_sha:
                return newest_first[::-1]
            newest_first.append(commit)
            if len(newest_first) >= limit:
                break
    return newest_first[:1]


def commit_diffs(client: GitLabClient, *, sha: str) -> list[dict[str, Any]]:
    """The files commit ``sha`` changed against its first parent (every file of a root commit), all pages.
    API: https://docs.gitlab.com/api/commits/#get-the-diff-of-a-commit
    """
    commit = client.project.commits.get(sha, lazy=True)
    diffs = client.call(f"reading the changes of commit {sha}", commit.diff, get_all=True, per_page=_MAX_PER_PAGE)
    return [dict(diff) for diff in diffs]


def compare(client: GitLabClient, *, from_sha: str, to_sha: str) -> list[dict[str, Any]]:
    """The files changed from the merge base of ``from_sha`` and ``to_sha`` to ``to_sha`` (``git diff
    from...to``, like a merge request's changes). Raises GitLabError when GitLab's comparison timed out,
    as its list of files would then be incomplete.
    API: https://docs.gitlab.com/api/repositories/#compare-branches-tags-or-commits
    """
    operation = f"comparing {from_sha}...{to_sha}"
    result = client.call(operation, client.project.repository_compare, from_sha, to_sha)
    if result.get("compare_timeout"):
        raise GitLabError(f"GitLab timed out while {operation}: its list of changed files is incomplete")
    return [dict(diff) for diff in result.get("diffs") or ()]


def open_merge_requests(client: GitLabClient) -> list[MergeRequest]:
    """The project's open merge requests, by iid.

    GitLab's list leaves ``diff_refs`` out (gitlab-org/gitlab#29620), so each one is then read on its own.
    API: https://docs.gitlab.com/api/merge_requests/
    """
    listed = client.call("listing open merge requests", client.project.mergerequests.list, state="opened",
                         get_all=True, per_page=_MAX_PER_PAGE)
    found = []
    for item in sorted(listed, key=lambda mr: mr.iid):
        full = client.call(f"reading merge request !{item.iid}", client.project.mergerequests.get, item.iid)
        found.append(MergeRequest.from_api(full.attributes))
    return found


def tags(client: GitLabClient) -> list[Tag]:
    """The repository's tags, in GitLab's order (newest first).
    API: https://docs.gitlab.com/api/tags/#list-project-repository-tags
    """
    listed = client.call("listing tags", client.project.tags.list, get_all=True, per_page=_MAX_PER_PAGE)
    return [Tag(name=tag.name, sha=tag.commit["id"], protected=bool(tag.attributes.get("protected"))) for tag in listed]


def repository_url(client: GitLabClient) -> str:
    """The project's HTTP(S) clone URL (``http_url_to_repo``)."""
    return client.project_attributes()["http_url_to_repo"]
