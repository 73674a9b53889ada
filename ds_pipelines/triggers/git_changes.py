"""The files a push or merge request changed, computed with git (``git diff --name-status -z -M``)."""

from __future__ import annotations

import os
import re
import subprocess
from collections.abc import Callable
from pathlib import Path

from ds_pipelines.triggers.rules import Change, TriggerError

_ZERO_SHA = re.compile(r"0{40}|0{64}")  # GitLab's before-SHA of a first push (SHA-1 or SHA-256 repository)
_FULL_SHA = re.compile(r"[0-9a-fA-F]{40}|[0-9a-fA-F]{64}")
GIT_TIMEOUT_S = 120.0
"""Seconds one git command may take: these read a local clone only, so longer is a hang (a blocked file
system, a lock), and a CI job or the sensor should fail saying so rather than wait for its own timeout."""


def changed_files(
    repo: Path,
    before: str | None,
    after: str = "HEAD",
    *,
    force_push_fallback: bool = True,
    default_branch: str | None = None,
    warn: Callable[[str], None] = lambda message: None,
    git_timeout_s: float = GIT_TIMEOUT_S,
) -> list[Change]:
    """What changed from ``before`` to ``after`` (any git revisions), paths relative to ``repo``.

    - No or all-zero ``before`` (first push): compare with the merge base of the default branch when that
      branch is fetched and ``after`` has commits of its own, else with the empty tree (every file added).
    - A full SHA that is not in the repository (force push, or a too-shallow clone): with
      ``force_push_fallback``, compare with the parent of ``after`` and ``warn``; else raise.
    - Any other revision that does not resolve raises TriggerError.
    - A git command that runs longer than ``git_timeout_s`` is stopped and raises TriggerError naming it.
    """
    git = _Git(repo, git_timeout_s)
    git.check("rev-parse", "--git-dir", failure=f"{str(repo)!r} is not a git repository")
    head = _commit(git, after)
    if head is None:
        raise TriggerError(f"commit {after!r} (after) is not in the repository {str(repo)!r}")
    if not before or _ZERO_SHA.fullmatch(before):
        base = _first_push_base(git, head, default_branch, warn)
    else:
        base = _commit(git, before)
        if base is None:
            if not (force_push_fallback and _FULL_SHA.fullmatch(before)):
                raise TriggerError(f"commit {before!r} (before) is not in the repository {str(repo)!r}")
            parent = _commit(git, f"{head}^")
            base = parent or _empty_tree(git)
            warn(
                f"commit {before} (before) is not in the repository (a force push, or a clone too shallow: "
                f"set GIT_DEPTH: 0); comparing {after} with {'its parent' if parent else 'the empty tree'} instead"
            )
    # --relative: a project in a subfolder of the repository gets paths relative to itself.
    out = git.check("diff", "--name-status", "-z", "-M", "--relative", "--no-color", "--no-ext-diff", base, head)
    return parse_name_status(out)


def parse_name_status(output: bytes) -> list[Change]:
    """Parse ``git diff --name-status -z``; names are bytes, decoded with surrogateescape, never failing."""
    fields = output.split(b"\0")
    if fields and not fields[-1]:
        fields.pop()
    changes, i = [], 0
    while i < len(fields):
        status = fields[i].decode("ascii")[:1]
        if status in ("R", "C"):
            changes.append(Change(status, _decode(fields[i + 2]), _decode(fields[i + 1])))
            i += 3
        else:
            changes.append(Change(status, _decode(fields[i + 1])))
            i += 2
    return changes


def _decode(name: bytes) -> str:
    return name.decode("utf-8", "surrogateescape")


def _first_push_base(git: _Git, head: str, default_branch: str | None, warn: Callable[[str], None]) -> str:
    for ref in (f"refs/remotes/origin/{default_branch}", f"refs/heads/{default_branch}") if default_branch else ():
        tip = _commit(git, ref)
        if tip is None:
            continue
        merge_base = git.run("merge-base", tip, head)
        base = merge_base.stdout.decode().strip()
        # A branch with no commits of its own (or the default branch itself) falls through to the empty tree.
        if merge_base.returncode == 0 and base != head:
            warn(f"first push of this branch: comparing with where it left {default_branch} ({base[:12]})")
            return base
        break
    warn("first push: comparing with the empty tree, so every file counts as added")
    return _empty_tree(git)


def _commit(git: _Git, revision: str) -> str | None:
    """The full SHA of a commit, or None; options and odd characters never reach git as a revision."""
    if not revision or revision.startswith("-") or not revision.isprintable():
        return None
    out = git.run("rev-parse", "--verify", "--quiet", f"{revision}^{{commit}}")
    return out.stdout.decode().strip() if out.returncode == 0 else None


def _empty_tree(git: _Git) -> str:
    # Asked of git rather than hard-coded: the hash differs in SHA-256 repositories.
    return git.check("hash-object", "-t", "tree", "--stdin", input=b"").decode().strip()


class _Git:
    """git commands in one repository, each stopped after ``timeout_s``."""

    def __init__(self, repo: Path, timeout_s: float):
        self.repo, self.timeout_s = repo, timeout_s

    def check(self, *args: str, input: bytes | None = None, failure: str | None = None) -> bytes:
        """The output of a git command that must succeed, else TriggerError."""
        out = self.run(*args, input=input)
        if out.returncode != 0:
            detail = out.stderr.decode(errors="replace").strip()
            raise TriggerError(failure or f"git {args[0]} failed: {detail}")
        return out.stdout

    def run(self, *args: str, input: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
        # git needs none of the pipeline's variables, and CI_COMMIT_MESSAGE may be too large to pass to a process.
        env = {key: value for key, value in os.environ.items() if not key.startswith("CI_")}
        try:
            return subprocess.run(["git", "-C", str(self.repo), *args], check=False, capture_output=True,
                                  input=input, env=env, timeout=self.timeout_s)
        except subprocess.TimeoutExpired:
            raise TriggerError(
                f"git {' '.join(args)} in {str(self.repo)!r} did not finish within {self.timeout_s:g} s: stopped "
                f"(is the repository on a blocked file system, or locked?)"
            ) from None
        except OSError as exc:
            raise TriggerError(f"cannot run git: {exc}") from None
