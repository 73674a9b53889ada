"""A commit's files, checked out for one run, so the run executes that commit's notebooks and configs.

A Dagster deployment has one version of the project checked out, but the commit sensor runs notebooks for
many commits: each run gets the files of its own commit, extracted from a local mirror of the repository
into ``<cache>/<sha>/`` (kept, so the notebooks of one commit share their outputs: training writes the
model that inference reads; ``evict`` removes all but the latest and those of runs still to finish). Files
are streamed out of the mirror object by object, never held whole in memory. No Dagster imports.

In the deployment's containers, runs mount the cache read-only and each commit run copies its commit's files
into a folder of that commit's own (``copy_commit_files``). Elsewhere (``dagster dev``) the runs execute a
commit's code as the deployment's user, and could write into the cache. Nothing there is trusted as found:

- a checkout is used again only while every file of its commit still has the sha256 that its marker recorded
  at extraction (otherwise it is extracted afresh);
- every object a checkout is written from is hashed and compared with its id, from the commit's id (which
  GitLab's API gave) down through its trees: a run that rewrote an object of the mirror cannot slip its
  content into another commit's checkout, and a mirror found changed is fetched again from nothing;
- the mirror's configuration is rewritten and its alternates dropped before each fetch, which runs with no
  hooks (``core.hooksPath``), so a run cannot redirect the next fetch or plant code that git would execute;
- no checkout holds a ``.git`` folder (which git commands run in it would obey), a link leaving the commit,
  or anything but folders, files and links.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
import shutil
import subprocess
import tempfile
import threading
from collections.abc import Collection
from pathlib import Path

from ds_pipelines.errors import DsPipelinesError

CHECKOUTS_DIR = "checkouts"
"""The folder of a project's state folder where the commit sensor keeps its mirror and checkouts."""
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
# Tree entry modes: a folder, a link, a submodule, and the files with the permissions a checkout gives them.
_FOLDER, _LINK, _SUBMODULE = b"40000", b"120000", b"160000"
_FILE_MODES = {b"100644": 0o644, b"100755": 0o755, b"100664": 0o644}
# Given on every git command line: the repository's own settings cannot turn hooks or an fsmonitor back on.
_NO_HOOKS = ("-c", f"core.hooksPath={os.devnull}", "-c", "core.fsmonitor=false")
MIRROR_CONFIG = "[core]\n\trepositoryformatversion = 0\n\tfilemode = true\n\tbare = true\n"


class CheckoutError(DsPipelinesError):
    """A commit that cannot be fetched or extracted. ``transient`` when trying again later may work (the fetch
    failed or timed out); otherwise the commit itself is the problem (gone, or holding a link that leaves it)."""

    def __init__(self, message: str, *, transient: bool = False):
        super().__init__(message)
        self.transient = transient


def checkout(*, repository_url: str | None, sha: str, cache_dir: Path, token: str | None = None,
             merge_request: int | None = None) -> Path:
    """The folder holding the files of commit ``sha`` (fetched from ``repository_url`` when needed; None: from
    the mirror only, which then must hold the commit).

    ``merge_request`` also fetches that merge request's head (``refs/merge-requests/<iid>/head``), where the
    commits of a fork's merge request are: pass it only for a fork the deployment trusts.
    ``token`` authenticates HTTP fetches as GitLab expects (user ``oauth2``); it travels in git's environment,
    never in a command line or URL that logs could show.
    """
    if not _SHA.fullmatch(sha):
        raise CheckoutError(f"{sha!r} is not a full commit SHA (40 or 64 lowercase hex digits)")
    target = cache_dir / sha
    if intact(target, sha):
        (target / COMPLETE_MARKER).touch()  # used: the latest are kept by ``evict``
        return target
    if target.exists():  # changed since it was extracted (or never completed): set aside, extracted again
        target.rename(Path(tempfile.mkdtemp(prefix=f".changed-{sha[:12]}-", dir=cache_dir)) / sha)
    mirror = cache_dir / MIRROR_DIR
    fetch = {"repository_url": repository_url, "sha": sha, "token": token, "merge_request": merge_request}
    try:
        return _fetched_and_extracted(mirror, target, **fetch)
    except _CorruptMirror:
        # An object the mirror holds was changed or lost (a run may write there): fetched again from nothing.
        shutil.rmtree(mirror, ignore_errors=True)
        try:
            return _fetched_and_extracted(mirror, target, **fetch)
        except _CorruptMirror as again:
            raise CheckoutError(f"commit {sha} fetched afresh from {_safe_url(repository_url or '(nowhere)')} still "
                                f"does not match its id: {again}") from None


def _fetched_and_extracted(mirror: Path, target: Path, *, repository_url: str | None, sha: str, token: str | None,
                           merge_request: int | None) -> Path:
    cache_dir = mirror.parent
    if not mirror.exists():
        cache_dir.mkdir(parents=True, exist_ok=True)
        _git(cache_dir, "init", "--quiet", "--bare", mirror.name)
    _reset_mirror(mirror)
    if not _has_commit(mirror, sha) and repository_url is None:
        raise CheckoutError(f"commit {sha} is not in the mirror {mirror}, and no repository to fetch it from was given")
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
    """Writes the files of commit ``sha`` into ``staging``, read object by object from the mirror and each
    checked against its id, from the commit down (``_VerifiedObjects``): what is written is the commit's
    content, whatever a run changed in the mirror's object store. The names of its regular files."""
    files: list[str] = []
    with _VerifiedObjects(mirror, sha) as objects:
        commit = objects.read(sha, b"commit")
        tree = commit.split(b"\n", 1)[0]
        if not tree.startswith(b"tree "):
            raise _CorruptMirror(f"commit {sha} names no tree")
        folders = [(tree[5:].decode(), "")]
        while folders:
            tree_id, prefix = folders.pop()
            for mode, name, object_id in _entries(objects.read(tree_id, b"tree"), len(sha) // 2):
                path = prefix + _checked_name(name, prefix)
                if mode == _FOLDER:
                    _new_folder(staging / path)
                    folders.append((object_id, path + "/"))
                elif mode == _SUBMODULE:
                    _new_folder(staging / path)  # as git archive leaves it: the submodule's commit is not here
                elif mode == _LINK:
                    target = objects.read(object_id, b"blob").decode(errors="surrogateescape")
                    refused = _link_leaves(staging, path, target)
                    if refused:
                        raise CheckoutError(refused)
                    os.symlink(target, staging / path)
                elif mode in _FILE_MODES:
                    with open(staging / path, "xb") as file:
                        objects.read(object_id, b"blob", into=file)
                    os.chmod(staging / path, _FILE_MODES[mode])
                    files.append(path)
                else:
                    raise CheckoutError(f"{path} has mode {mode.decode(errors='replace')}, which no commit's file has")
    for link in (path for path in staging.rglob("*") if path.is_symlink()):  # once every link of the commit is there
        refused = _link_leaves(staging, link.relative_to(staging).as_posix(), os.readlink(link))
        if refused:
            raise CheckoutError(refused)
    return files


class _CorruptMirror(CheckoutError):
    """An object of the mirror is missing or does not hash to its id: the mirror is fetched afresh."""


class _VerifiedObjects:
    """Objects of the mirror through one ``git cat-file --batch``, each hashed as git does (``<type> <size>\\0``
    then its content, SHA-1 or SHA-256 by the commit's id) and refused unless that is its id. Trees name their
    entries by id, so a commit's id vouches for every file under it."""

    def __init__(self, mirror: Path, sha: str):
        self._algorithm = "sha1" if len(sha) == 40 else "sha256"
        self._errors = tempfile.TemporaryFile()
        self._process = subprocess.Popen(["git", *_NO_HOOKS, "-C", str(mirror), "cat-file", "--batch"],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=self._errors)
        self._timed_out = threading.Event()
        self._timer = threading.Timer(FETCH_TIMEOUT_S, lambda: (self._timed_out.set(), self._process.kill()))
        self._timer.start()

    def __enter__(self) -> _VerifiedObjects:
        return self

    def __exit__(self, *exc_info) -> None:
        self._timer.cancel()
        self._process.stdin.close()
        self._process.kill()
        self._process.wait()
        self._process.stdout.close()
        self._errors.close()

    def read(self, object_id: str, kind: bytes, *, into=None) -> bytes:
        """The content of object ``object_id`` of type ``kind``, written to the file ``into`` instead when given."""
        try:
            self._process.stdin.write(object_id.encode() + b"\n")
            self._process.stdin.flush()
            header = self._process.stdout.readline().split()
        except OSError:  # git stopped: killed by the timer, or it failed
            header = []
        if self._timed_out.is_set():
            raise CheckoutError(f"reading the commit's files from the mirror stopped after {FETCH_TIMEOUT_S} s", transient=True)
        if len(header) != 3 or header[1] != kind or not header[2].isdigit():
            self._errors.seek(0)
            detail = self._errors.read().decode(errors="replace").strip() or b" ".join(header).decode(errors="replace")
            raise _CorruptMirror(f"{kind.decode()} {object_id} cannot be read from the mirror: {detail or 'no answer'}")
        size = int(header[2])
        digest = hashlib.new(self._algorithm, kind + b" %d\0" % size)
        chunks, left = [], size
        while left:
            chunk = self._process.stdout.read(min(left, 1 << 20))
            if not chunk:
                raise _CorruptMirror(f"{kind.decode()} {object_id} ended early in the mirror")
            digest.update(chunk)
            left -= len(chunk)
            if into is None:
                chunks.append(chunk)
            else:
                into.write(chunk)
        self._process.stdout.read(1)  # the newline after each object
        if digest.hexdigest() != object_id:
            raise _CorruptMirror(f"{kind.decode()} {object_id} in the mirror does not hash to its id (changed in place)")
        return b"".join(chunks)


def _entries(tree: bytes, id_length: int) -> list[tuple[bytes, bytes, str]]:
    """(mode, name, id) of each entry of a tree object: ``<mode> <name>\\0<id, raw>`` after one another."""
    entries, position = [], 0
    while position < len(tree):
        space = tree.index(b" ", position)
        end = tree.index(b"\0", space)
        entries.append((tree[position:space], tree[space + 1:end], tree[end + 1:end + 1 + id_length].hex()))
        position = end + 1 + id_length
    return entries


def _checked_name(name: bytes, prefix: str) -> str:
    """A tree entry's name, refused when it could reach out of its folder or make the checkout a repository."""
    text = name.decode(errors="surrogateescape")
    if text in ("", ".", "..") or "/" in text or "\0" in text or text.lower() == ".git":
        raise CheckoutError(f"{prefix}{text!r} is a name a commit's file cannot have: not extracted")
    return text


def _new_folder(path: Path) -> None:
    try:
        path.mkdir()
    except FileExistsError:  # a tree naming an entry twice, which git itself never writes
        raise CheckoutError(f"{path.name} appears twice in its folder: not extracted") from None


def _link_leaves(staging: Path, path: str, target: str) -> str | None:
    """Why the link ``path -> target`` would point outside ``staging``; None when it stays inside."""
    root = staging.resolve()
    if os.path.isabs(target) or not ((root / path).parent / target).resolve().is_relative_to(root):
        return (f"the link {path} -> {target} points outside the commit's files, which are all a checkout holds "
                "(commit the data, or name its path in a config)")
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


def intact(target: Path, sha: str) -> bool:
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


def copy_commit_files(checkout_dir: Path, sha: str, target: Path) -> None:
    """Writes the files of the checkout ``checkout_dir`` of commit ``sha`` into ``target``, replacing whatever
    has their names there, and leaves the rest of ``target`` (outputs of the commit's earlier runs) as it is.
    The deployment's containers run a commit's notebooks in a folder of that commit's own (``target``), fed
    from a checkout they can read but not write. Refused unless the checkout is intact."""
    if not intact(checkout_dir, sha):
        raise CheckoutError(f"{checkout_dir} is not an intact checkout of commit {sha}: not copied")
    target.mkdir(parents=True, exist_ok=True)
    for folder, folders, names in os.walk(checkout_dir):
        relative = Path(folder).relative_to(checkout_dir)
        for name in sorted(folders) + sorted(names):
            source, copy = Path(folder) / name, target / relative / name
            if relative == Path(".") and name == COMPLETE_MARKER:
                continue
            is_folder = source.is_dir() and not source.is_symlink()
            if copy.is_symlink() or (copy.exists() and (not copy.is_dir() or not is_folder)):
                # Never written through: a link, or a file where the commit has a folder (or the reverse).
                if copy.is_dir() and not copy.is_symlink():
                    shutil.rmtree(copy)
                else:
                    copy.unlink()
            if source.is_symlink():
                os.symlink(os.readlink(source), copy)
            elif is_folder:
                copy.mkdir(exist_ok=True)
            else:
                shutil.copyfile(source, copy)
                os.chmod(copy, source.stat().st_mode & 0o777)


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
