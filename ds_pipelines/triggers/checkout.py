"""A commit's files, checked out for one run, so the run executes that commit's notebooks and configs.

A Dagster deployment has one version of the project checked out, but the commit sensor runs notebooks for
many commits: each run gets the files of its own commit, extracted from a local mirror of the repository
into ``<cache>/<sha>/`` (kept, so the notebooks of one commit share their outputs: training writes the
model that inference reads; ``evict`` removes all but the latest and those of runs still to finish). The
archive is streamed from ``git archive`` member by member, never held whole in memory. No Dagster imports.

The runs execute a commit's code as the deployment's user, so they could write into the cache. Nothing there
is trusted as found: a checkout is used again only while every file of its commit still has the sha256 that
its marker recorded at extraction (otherwise it is extracted afresh), and the mirror's configuration is
rewritten and its alternates dropped before each fetch, which runs with no hooks (``core.hooksPath``), so a
run cannot redirect the next fetch or plant code that git would execute.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tarfile
import tempfile
import threading
from collections.abc import Collection
from pathlib import Path

from ds_pipelines.errors import DsPipelinesError

MIRROR_DIR = "mirror.git"
COMPLETE_MARKER = ".ds-pipelines-checkout"
FETCH_TIMEOUT_S = 300
# The project's own branches and tags. Not GitLab's merge-request heads: those hold the commits of forks,
# which only a merge request from a trusted fork fetches, one head at a time (``merge_request=``).
FETCH_REFSPECS = (
    "+refs/heads/*:refs/heads/*",
    "+refs/tags/*:refs/tags/*",
)
_SHA = re.compile(r"[0-9a-f]{40}|[0-9a-f]{64}")
# tarfile's "data" filter (refuses what leaves the folder, drops owners and odd modes) where this Python has it.
_DATA_FILTER = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}
_FILTER_ERRORS = getattr(tarfile, "FilterError", ())
# Given on every git command line: the repository's own settings cannot turn hooks or an fsmonitor back on.
_NO_HOOKS = ("-c", f"core.hooksPath={os.devnull}", "-c", "core.fsmonitor=false")
MIRROR_CONFIG = "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n"


class CheckoutError(DsPipelinesError):
    """A commit that cannot be fetched or extracted. ``transient`` when trying again later may work (the fetch
    failed or timed out); otherwise the commit itself is the problem (gone, or holding a link that leaves it)."""

    def __init__(self, message: str, *, transient: bool = False):
        super().__init__(message)
        self.transient = transient


def checkout(*, repository_url: str, sha: str, cache_dir: Path, token: str | None = None,
             merge_request: int | None = None) -> Path:
    """The folder holding the files of commit ``sha`` (fetched from ``repository_url`` when needed).

    ``merge_request`` also fetches that merge request's head (``refs/merge-requests/<iid>/head``), where the
    commits of a fork's merge request are: pass it only for a fork the deployment trusts.
    ``token`` authenticates HTTP fetches as GitLab expects (user ``oauth2``); it travels in git's environment,
    never in a command line or URL that logs could show.
    """
    if not _SHA.fullmatch(sha):
        raise CheckoutError(f"{sha!r} is not a full commit SHA (40 or 64 lowercase hex digits)")
    target = cache_dir / sha
    if _intact(target, sha):
        (target / COMPLETE_MARKER).touch()  # used: the latest are kept by ``evict``
        return target
    if target.exists():  # changed since it was extracted (or never completed): set aside, extracted again
        target.rename(Path(tempfile.mkdtemp(prefix=f".changed-{sha[:12]}-", dir=cache_dir)) / sha)
    mirror = cache_dir / MIRROR_DIR
    if not mirror.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        _git(mirror.parent, "init", "--quiet", "--bare", mirror.name)
    _reset_mirror(mirror)
    if not _has_commit(mirror, sha):
        refspecs = FETCH_REFSPECS + ((f"+refs/merge-requests/{merge_request}/head:refs/merge-requests/{merge_request}/head",)
                                     if merge_request is not None else ())
        _git(mirror, "fetch", "--quiet", "--prune", repository_url, *refspecs, token=token,
             failure=f"cannot fetch {_safe_url(repository_url)}", transient=True)
    if not _has_commit(mirror, sha):
        raise CheckoutError(f"commit {sha} is not in {_safe_url(repository_url)} (deleted by a force push?)")
    staging = Path(tempfile.mkdtemp(prefix=f".{sha[:12]}-", dir=cache_dir))
    try:
        files = {name: _sha256(staging / name) for name in _extract(mirror, sha, staging)}
        (staging / COMPLETE_MARKER).write_text(json.dumps({"sha": sha, "files": files}, sort_keys=True) + "\n")
        try:
            staging.rename(target)
        except OSError:
            if not (target / COMPLETE_MARKER).exists():  # not a concurrent run that got there first
                raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _extract(mirror: Path, sha: str, staging: Path) -> list[str]:
    """Extracts commit ``sha`` into ``staging`` as ``git archive`` streams it; the names of its regular files."""
    command = ["git", *_NO_HOOKS, "-C", str(mirror), "archive", "--format=tar", sha]
    files: list[str] = []
    unreadable: str | None = None
    with tempfile.TemporaryFile() as errors, subprocess.Popen(command, stdout=subprocess.PIPE, stderr=errors) as archive:
        timed_out = threading.Event()
        timer = threading.Timer(FETCH_TIMEOUT_S, lambda: (timed_out.set(), archive.kill()))
        timer.start()
        try:
            with tarfile.open(fileobj=archive.stdout, mode="r|") as tar:
                for member in tar:
                    refused = _leaves(member, staging)
                    if refused:
                        raise CheckoutError(refused)
                    try:
                        tar.extract(member, staging, **_DATA_FILTER)
                    except _FILTER_ERRORS as exc:
                        raise CheckoutError(f"{member.name} cannot be extracted: {exc}") from None
                    if member.isfile():
                        files.append(member.name)
        except tarfile.TarError as exc:  # git stopped part way: its own message says why, if it left one
            unreadable = str(exc)
        finally:
            timer.cancel()
            archive.stdout.close()  # git stops (SIGPIPE) if extraction stopped early
        if archive.wait() == 0 and unreadable is None:
            return files
        if timed_out.is_set():
            raise CheckoutError(f"git archive {sha}: stopped after {FETCH_TIMEOUT_S} s", transient=True)
        errors.seek(0)
        detail = errors.read().decode(errors="replace").strip().splitlines()
        raise CheckoutError(f"git archive {sha} failed: {detail[-1] if detail else unreadable or 'no details'}")


def _leaves(member: tarfile.TarInfo, staging: Path) -> str | None:
    """Why ``member`` would reach outside ``staging`` (an absolute or ``..`` path, a link pointing out, a
    device or pipe); None when it stays inside. Checked on every Python, also those without tarfile's
    ``data`` filter (3.11 before 3.11.4, as Debian's), which is applied as well where it exists."""
    root = staging.resolve()
    if os.path.isabs(member.name) or not (root / member.name).resolve().is_relative_to(root):
        return f"{member.name} lies outside the commit's folder: not extracted"
    if member.issym() or member.islnk():
        base = root if member.islnk() else (root / member.name).parent
        target = member.linkname
        if os.path.isabs(target) or not (base / target).resolve().is_relative_to(root):
            return (f"the link {member.name} -> {target} points outside the commit's files, which are all a "
                    "checkout holds (commit the data, or name its path in a config)")
    elif not (member.isfile() or member.isdir()):
        return f"{member.name} is a device or pipe, which a checkout does not hold: not extracted"
    return None


def evict(cache_dir: Path, *, keep: int, in_use: Collection[str] = ()) -> list[str]:
    """Removes the checkouts in ``cache_dir`` beyond the ``keep`` used last, except those of the commits
    ``in_use`` (runs that have not finished), and those set aside as changed; the SHAs removed."""
    if not cache_dir.is_dir():
        return []
    checkouts = [folder for folder in cache_dir.iterdir() if _SHA.fullmatch(folder.name) and folder.is_dir()]
    checkouts.sort(key=lambda folder: _last_used(folder), reverse=True)
    removed = [folder for folder in checkouts[keep:] if folder.name not in in_use]
    for folder in removed:
        shutil.rmtree(folder, ignore_errors=True)
    for set_aside in cache_dir.glob(".changed-*"):
        shutil.rmtree(set_aside, ignore_errors=True)
    return [folder.name for folder in removed]


def _last_used(folder: Path) -> float:
    try:
        return (folder / COMPLETE_MARKER).stat().st_mtime
    except OSError:  # never completed: the first to go
        return 0.0


def _intact(target: Path, sha: str) -> bool:
    """Whether ``target`` is a complete checkout of ``sha`` whose files are as extracted (outputs that runs
    added beside them are not part of it)."""
    try:
        marker = json.loads((target / COMPLETE_MARKER).read_text())
        files = marker["files"] if marker["sha"] == sha else None
    except (OSError, ValueError, KeyError, TypeError):
        return False
    if not isinstance(files, dict):
        return False
    for name, digest in files.items():
        path = target / name
        if path.is_symlink() or not path.is_file() or _sha256(path) != digest:
            return False
    return True


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _reset_mirror(mirror: Path) -> None:
    """The mirror's settings as ``git init --bare`` writes them, no alternate object stores, no hooks: a run
    may have changed any of them (``url.*.insteadOf`` would redirect the fetch, a hook would run code)."""
    (mirror / "config").write_text(MIRROR_CONFIG)
    (mirror / "objects" / "info" / "alternates").unlink(missing_ok=True)
    shutil.rmtree(mirror / "hooks", ignore_errors=True)


_PROBE_TIMEOUT_S = 60  # a lookup in the local mirror: longer is a hang (a blocked volume, a lock)


def _has_commit(mirror: Path, sha: str) -> bool:
    command = ["git", *_NO_HOOKS, "-C", str(mirror), "cat-file", "-e", f"{sha}^{{commit}}"]
    try:
        probe = subprocess.run(command, check=False, capture_output=True, timeout=_PROBE_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        raise CheckoutError(f"git cat-file -e {sha} in {str(mirror)!r} did not finish within {_PROBE_TIMEOUT_S} s: "
                            "stopped") from None
    return probe.returncode == 0


def _git(cwd: Path, *args: str, token: str | None = None, failure: str | None = None, transient: bool = False) -> bytes:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0"}
    if token:
        basic = base64.b64encode(f"oauth2:{token}".encode()).decode()
        env.update(GIT_CONFIG_COUNT="1", GIT_CONFIG_KEY_0="http.extraHeader",
                   GIT_CONFIG_VALUE_0=f"Authorization: Basic {basic}")
    try:
        done = subprocess.run(["git", *_NO_HOOKS, "-C", str(cwd), *args], capture_output=True, env=env, timeout=FETCH_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        # Not the exception's text: it quotes the whole command line, the repository URL with it.
        raise CheckoutError(f"{failure or 'git ' + args[0]}: stopped after {FETCH_TIMEOUT_S} s", transient=True) from None
    except OSError as exc:
        raise CheckoutError(f"{failure or 'git ' + args[0]}: {exc}", transient=transient) from None
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip().splitlines()
        raise CheckoutError(f"{failure or 'git ' + args[0] + ' failed'}: {detail[-1] if detail else 'no details'}",
                            transient=transient)
    return done.stdout


def _safe_url(url: str) -> str:
    """The URL without any credentials a user may have put in it."""
    return re.sub(r"//[^/@]*@", "//***@", url)
