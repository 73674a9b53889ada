"""A commit's files, checked out for one run, so the run executes that commit's notebooks and configs.

A Dagster deployment has one version of the project checked out, but the commit sensor runs notebooks for
many commits: each run gets the files of its own commit, extracted from a local mirror of the repository
into ``<cache>/<sha>/`` (kept, so the notebooks of one commit share their outputs: training writes the
model that inference reads). No Dagster imports.
"""

from __future__ import annotations

import base64
import io
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
from pathlib import Path

from ds_pipelines.errors import DsPipelinesError

MIRROR_DIR = "mirror.git"
COMPLETE_MARKER = ".ds-pipelines-checkout"
FETCH_TIMEOUT_S = 300
# Branches, tags and GitLab's merge-request heads: a merge request from a fork is reachable only through these.
FETCH_REFSPECS = (
    "+refs/heads/*:refs/heads/*",
    "+refs/tags/*:refs/tags/*",
    "+refs/merge-requests/*/head:refs/merge-requests/*/head",
)
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")


class CheckoutError(DsPipelinesError):
    """A commit that cannot be fetched or extracted."""


def checkout(*, repository_url: str, sha: str, cache_dir: Path, token: str | None = None) -> Path:
    """The folder holding the files of commit ``sha`` (fetched from ``repository_url`` when needed).

    ``token`` authenticates HTTP fetches as GitLab expects (user ``oauth2``); it travels in git's environment,
    never in a command line or URL that logs could show.
    """
    if not _SHA.fullmatch(sha):
        raise CheckoutError(f"{sha!r} is not a full commit SHA (40 or 64 lowercase hex digits)")
    target = cache_dir / sha
    if (target / COMPLETE_MARKER).exists():
        return target
    mirror = cache_dir / MIRROR_DIR
    if not mirror.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        _git(mirror.parent, "init", "--quiet", "--bare", mirror.name)
    if not _has_commit(mirror, sha):
        _git(mirror, "fetch", "--quiet", "--prune", repository_url, *FETCH_REFSPECS, token=token,
             failure=f"cannot fetch {_safe_url(repository_url)}")
    if not _has_commit(mirror, sha):
        raise CheckoutError(f"commit {sha} is not in {_safe_url(repository_url)} (deleted by a force push?)")
    staging = Path(tempfile.mkdtemp(prefix=f".{sha[:12]}-", dir=cache_dir))
    try:
        archive = _git(mirror, "archive", "--format=tar", sha)
        with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
            tar.extractall(staging, filter="data")  # refuses absolute paths and links that leave the folder
        (staging / COMPLETE_MARKER).write_text(sha + "\n")
        try:
            staging.rename(target)
        except OSError:
            if not (target / COMPLETE_MARKER).exists():  # not a concurrent run that got there first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


_PROBE_TIMEOUT_S = 60  # a lookup in the local mirror: longer is a hang (a blocked volume, a lock)


def _has_commit(mirror: Path, sha: str) -> bool:
    command = ["git", "-C", str(mirror), "cat-file", "-e", f"{sha}^{{commit}}"]
    try:
        probe = subprocess.run(command, check=False, capture_output=True, timeout=_PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise CheckoutError(f"git cat-file -e {sha} in {str(mirror)!r} did not finish within {_PROBE_TIMEOUT_S} s: "
                            "stopped") from None
    return probe.returncode == 0


def _git(cwd: Path, *args: str, token: str | None = None, failure: str | None = None) -> bytes:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    if token:
        basic = base64.b64encode(f"oauth2:{token}".encode()).decode()
        env.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="http.extraHeader",
                   GIT_CONFIG_VALUE_0=f"Authorization: Basic {basic}")
    try:
        done = subprocess.run(["git", "-C", str(cwd), *args], capture_output=True, env=env, timeout=FETCH_TIMEOUT_S)
    except (OSError, subprocess.TimeoutExpired) as exc:
        raise CheckoutError(f"{failure or 'git ' + args[0]}: {exc}") from None
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        raise CheckoutError(f"{failure or 'git ' + args[0] + ' failed'}: {detail[-1] if detail else 'no details'}")
    return done.stdout


def _safe_url(url: str) -> str:
    """The URL without any credentials a user may have put in it."""
    return re.sub(r"//[^/@]*@", "//***@", url)
