"""Checkouts of one commit's files, fetched from a real repository: what a commit run executes."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import zlib
from pathlib import Path

import pytest
from gitrepo import TRAINING, make_project

from ds_pipelines.triggers.checkout import (
    COMPLETE_MARKER,
    MIRROR_DIR,
    CheckoutError,
    checkout,
    copy_commit_files,
    evict,
)


def test_each_commit_gets_its_own_files(tmp_path: Path):
    repo = make_project(tmp_path / "repo")
    first = repo.head()
    repo.write(TRAINING, '{"marker": "second"}')
    second = repo.commit("second")
    cache = tmp_path / "cache"

    old = checkout(repository_url=str(repo.root), sha=first, cache_dir=cache)
    new = checkout(repository_url=str(repo.root), sha=second, cache_dir=cache)

    assert old == cache / first and new == cache / second
    assert "second" not in (old / TRAINING).read_text()
    assert (new / TRAINING).read_text() == '{"marker": "second"}'
    assert (old / "configs/notebooks.yaml").is_file() and not (old / ".git").exists()


def test_a_commit_already_checked_out_is_not_fetched_again(tmp_path: Path):
    repo = make_project(tmp_path / "repo")
    sha = repo.head()
    cache = tmp_path / "cache"
    folder = checkout(repository_url=str(repo.root), sha=sha, cache_dir=cache)
    (folder / "outputs.txt").write_text("written by training")  # the next notebook of the same commit reads it

    again = checkout(repository_url=str(tmp_path / "gone"), sha=sha, cache_dir=cache)

    assert again == folder and (again / "outputs.txt").read_text() == "written by training"
    assert json.loads((again / COMPLETE_MARKER).read_text())["sha"] == sha


def test_a_checkout_changed_after_extraction_is_extracted_again(tmp_path: Path):
    """Runs execute as the deployment's user: one could rewrite another commit's files in the cache."""
    repo = make_project(tmp_path / "repo")
    sha = repo.head()
    cache = tmp_path / "cache"
    folder = checkout(repository_url=str(repo.root), sha=sha, cache_dir=cache)
    original = (folder / TRAINING).read_text()
    (folder / TRAINING).write_text('{"cells": ["planted by another run"]}')

    again = checkout(repository_url=str(repo.root), sha=sha, cache_dir=cache)

    assert again == folder and (again / TRAINING).read_text() == original
    [set_aside] = cache.glob(f".changed-{sha[:12]}-*/{sha}")  # kept aside, never used
    assert "planted" in (set_aside / TRAINING).read_text()


def test_hooks_and_settings_planted_in_the_mirror_are_never_used(tmp_path: Path):
    repo = make_project(tmp_path / "repo")
    cache = tmp_path / "cache"
    checkout(repository_url=str(repo.root), sha=repo.head(), cache_dir=cache)
    mirror = cache / "mirror.git"
    fired = tmp_path / "hook-fired"
    (mirror / "hooks").mkdir(exist_ok=True)
    for hook in ("reference-transaction", "post-checkout", "pre-auto-gc"):
        (mirror / "hooks" / hook).write_text(f"#!/bin/sh\ntouch {fired}\n")
        (mirror / "hooks" / hook).chmod(0o755)
    decoy = make_project(tmp_path / "decoy")  # where a planted url.insteadOf would send the next fetch
    with (mirror / "config").open("a") as config:
        config.write(f'[url "{decoy.root}"]\n\tinsteadOf = {repo.root}\n[core]\n\thooksPath = {mirror / "hooks"}\n')
    repo.write(TRAINING, '{"marker": "next commit"}')
    next_commit = repo.commit("next")

    folder = checkout(repository_url=str(repo.root), sha=next_commit, cache_dir=cache)

    assert (folder / TRAINING).read_text() == '{"marker": "next commit"}'
    assert not fired.exists(), "a hook planted in the mirror ran"
    assert "insteadOf" not in (mirror / "config").read_text()


@pytest.mark.parametrize(
    ("sha", "expected"),
    [("HEAD", "is not a full commit SHA"), ("--upload-pack=evil", "is not a full commit SHA"), ("a" * 40, "is not in")],
)
def test_bad_commits_are_refused_by_name(tmp_path: Path, sha: str, expected: str):
    repo = make_project(tmp_path / "repo")
    with pytest.raises(CheckoutError, match=expected) as error:
        checkout(repository_url=str(repo.root), sha=sha, cache_dir=tmp_path / "cache")
    assert sha[:12] in str(error.value)
    assert not list((tmp_path / "cache").glob("*")) or [p.name for p in (tmp_path / "cache").iterdir()] == ["mirror.git"]


def test_credentials_in_a_url_never_reach_the_message(tmp_path: Path):
    url = "http://oauth2:glpat-secretsecretsecret1@127.0.0.1:9/group/project.git"
    with pytest.raises(CheckoutError) as error:
        checkout(repository_url=url, sha="b" * 40, cache_dir=tmp_path / "cache", token="glpat-secretsecretsecret1")
    assert "glpat-" not in str(error.value) and "127.0.0.1:9" in str(error.value)


@pytest.mark.parametrize("target", ["/mnt/data", "../../outside"])
def test_a_link_out_of_the_commit_is_a_permanent_error_naming_the_link(tmp_path: Path, target: str):
    repo = make_project(tmp_path / "repo")
    os.symlink(target, repo.root / "data")
    sha = repo.commit("data lives elsewhere")

    with pytest.raises(CheckoutError) as error:
        checkout(repository_url=str(repo.root), sha=sha, cache_dir=tmp_path / "cache")

    assert f"the link data -> {target} points outside the commit's files" in str(error.value)
    assert not error.value.transient
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [MIRROR_DIR]  # nothing half-extracted kept


def test_a_link_within_the_commit_is_kept(tmp_path: Path):
    repo = make_project(tmp_path / "repo")
    os.symlink("configs/notebooks.yaml", repo.root / "registry.yaml")
    sha = repo.commit("a shortcut")

    folder = checkout(repository_url=str(repo.root), sha=sha, cache_dir=tmp_path / "cache")

    assert (folder / "registry.yaml").is_symlink() and os.readlink(folder / "registry.yaml") == "configs/notebooks.yaml"
    assert checkout(repository_url=str(tmp_path / "gone"), sha=sha, cache_dir=tmp_path / "cache") == folder


def test_a_fetch_that_fails_is_transient_a_missing_commit_is_not(tmp_path: Path):
    repo = make_project(tmp_path / "repo")
    with pytest.raises(CheckoutError) as unreachable:
        checkout(repository_url="http://127.0.0.1:9/group/project.git", sha="c" * 40, cache_dir=tmp_path / "a")
    with pytest.raises(CheckoutError) as missing:
        checkout(repository_url=str(repo.root), sha="c" * 40, cache_dir=tmp_path / "b")
    assert unreachable.value.transient and "cannot fetch" in str(unreachable.value)
    assert not missing.value.transient and "is not in" in str(missing.value)


def test_eviction_keeps_the_latest_used_and_those_in_use(tmp_path: Path):
    repo = make_project(tmp_path / "repo")
    cache = tmp_path / "cache"
    shas = []
    for number in range(4):
        repo.touch(TRAINING)
        shas.append(repo.commit(f"commit {number}"))
        checkout(repository_url=str(repo.root), sha=shas[-1], cache_dir=cache)
        os.utime(cache / shas[-1] / COMPLETE_MARKER, (1000 + number, 1000 + number))
    checkout(repository_url=str(repo.root), sha=shas[0], cache_dir=cache)  # used again: now the latest

    removed = evict(cache, keep=2, in_use={shas[1]})

    assert sorted(removed) == sorted([shas[2]])
    assert sorted(p.name for p in cache.iterdir()) == sorted([MIRROR_DIR, shas[0], shas[1], shas[3]])
    again = checkout(repository_url=str(repo.root), sha=shas[2], cache_dir=cache)  # extracted afresh when asked
    assert (again / TRAINING).is_file()


def test_an_object_changed_in_the_mirror_never_reaches_a_checkout(tmp_path: Path):
    """A run may write into the cache: a blob of the mirror rewritten in place (same id, other content) is
    found by its hash, and the mirror is fetched again from nothing."""
    repo = make_project(tmp_path / "repo")
    sha = repo.head()
    cache = tmp_path / "cache"
    original = (checkout(repository_url=str(repo.root), sha=sha, cache_dir=cache) / TRAINING).read_text()
    shutil.rmtree(cache / sha)  # evicted: the next run of this commit extracts it from the mirror again
    mirror = cache / MIRROR_DIR
    loose_objects_only(mirror)
    blob = git(mirror, "rev-parse", f"{sha}:{TRAINING}")
    planted = b'{"cells": ["planted by a run"]}'
    stored = mirror / "objects" / blob[:2] / blob[2:]
    stored.chmod(0o644)
    stored.write_bytes(zlib.compress(b"blob %d\0" % len(planted) + planted))
    assert git(mirror, "cat-file", "blob", blob) == planted.decode(), "git serves it as it is"

    folder = checkout(repository_url=str(repo.root), sha=sha, cache_dir=cache)

    assert (folder / TRAINING).read_text() == original
    assert "planted" not in git(cache / MIRROR_DIR, "cat-file", "blob", blob)


def test_a_commit_with_a_git_folder_is_refused(tmp_path: Path):
    """A ``.git`` folder in a checkout would make git commands run there obey its config (an fsmonitor runs
    code). git itself never commits one; a crafted tree can hold it."""
    repo = make_project(tmp_path / "repo")
    inner = git(repo.root, "mktree", stdin=f"100644 blob {git(repo.root, 'hash-object', '-w', '--stdin', stdin='[core]')}\tconfig\n")
    tree = git(repo.root, "mktree", stdin=f"040000 tree {inner}\t.git\n")
    sha = git(repo.root, "commit-tree", tree, "-p", repo.head(), "-m", "a repository inside")
    git(repo.root, "update-ref", "refs/heads/main", sha)

    with pytest.raises(CheckoutError, match=r"'\.git' is a name a commit's file cannot have") as error:
        checkout(repository_url=str(repo.root), sha=sha, cache_dir=tmp_path / "cache")

    assert not error.value.transient
    assert sorted(p.name for p in (tmp_path / "cache").iterdir()) == [MIRROR_DIR]


def test_executable_files_stay_executable_and_others_do_not(tmp_path: Path):
    repo = make_project(tmp_path / "repo")
    (repo.root / "run.sh").write_text("#!/bin/sh\n")
    (repo.root / "run.sh").chmod(0o755)
    sha = repo.commit("a script")

    folder = checkout(repository_url=str(repo.root), sha=sha, cache_dir=tmp_path / "cache")

    assert (folder / "run.sh").stat().st_mode & 0o777 == 0o755
    assert (folder / TRAINING).stat().st_mode & 0o777 == 0o644


def test_without_a_repository_a_commit_is_extracted_from_the_mirror_alone(tmp_path: Path):
    """A commit run's container holds no GitLab token: what the sensor fetched is enough to extract again."""
    repo = make_project(tmp_path / "repo")
    sha = repo.head()
    cache = tmp_path / "cache"
    checkout(repository_url=str(repo.root), sha=sha, cache_dir=cache)
    shutil.rmtree(cache / sha)

    assert (checkout(repository_url=None, sha=sha, cache_dir=cache) / TRAINING).is_file()
    with pytest.raises(CheckoutError, match="is not in the mirror .* no repository to fetch it from"):
        checkout(repository_url=None, sha="d" * 40, cache_dir=cache)


def loose_objects_only(mirror: Path) -> None:
    """Every object of the mirror as a loose file (a fetch packs them), so that a test can rewrite one."""
    for pack in list((mirror / "objects" / "pack").glob("*.pack")):
        data = pack.read_bytes()
        for part in pack.parent.glob(pack.stem + ".*"):
            part.unlink()
        subprocess.run(["git", "-C", str(mirror), "unpack-objects", "-q"], input=data, check=True)


def git(cwd: Path, *args: str, stdin: str | None = None) -> str:
    return subprocess.run(["git", "-C", str(cwd), *args], input=stdin, capture_output=True, text=True, check=True,
                          env={"PATH": os.environ["PATH"], "GIT_CONFIG_GLOBAL": os.devnull, "GIT_CONFIG_NOSYSTEM": "1",
                               "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
                               "GIT_COMMITTER_EMAIL": "t@t"}).stdout.strip()


def test_a_commits_files_are_copied_into_its_own_folder_keeping_its_outputs(tmp_path: Path):
    """A commit run in the deployment's containers: its files from the read-only checkout into its own volume,
    replacing what an earlier run of the commit changed, never writing through a link it left there."""
    repo = make_project(tmp_path / "repo")
    os.symlink("configs/notebooks.yaml", repo.root / "registry.yaml")
    (repo.root / "run.sh").write_text("echo hi\n")
    (repo.root / "run.sh").chmod(0o755)
    sha = repo.commit("a link and a script")
    folder = checkout(repository_url=str(repo.root), sha=sha, cache_dir=tmp_path / "cache")
    own = tmp_path / "commit"
    copy_commit_files(folder, sha, own)
    assert (own / TRAINING).read_text() == (folder / TRAINING).read_text()
    assert os.readlink(own / "registry.yaml") == "configs/notebooks.yaml" and (own / "run.sh").stat().st_mode & 0o777 == 0o755
    assert not (own / COMPLETE_MARKER).exists()

    # What earlier runs of the commit left: an output, a changed file, a link put where a file was.
    (own / "outputs").mkdir()
    (own / "outputs" / "model.json").write_text("trained")
    (own / TRAINING).write_text("changed")
    outside = tmp_path / "outside.txt"
    outside.write_text("untouched")
    (own / "README.md").unlink()
    os.symlink(outside, own / "README.md")
    copy_commit_files(folder, sha, own)

    assert (own / TRAINING).read_text() == (folder / TRAINING).read_text()
    assert not (own / "README.md").is_symlink() and (own / "README.md").read_text() == (folder / "README.md").read_text()
    assert outside.read_text() == "untouched"
    assert (own / "outputs" / "model.json").read_text() == "trained"


def test_a_checkout_that_is_not_intact_is_not_copied(tmp_path: Path):
    repo = make_project(tmp_path / "repo")
    sha = repo.head()
    folder = checkout(repository_url=str(repo.root), sha=sha, cache_dir=tmp_path / "cache")
    (folder / TRAINING).write_text("planted")
    with pytest.raises(CheckoutError, match="not an intact checkout"):
        copy_commit_files(folder, sha, tmp_path / "commit")
    assert not (tmp_path / "commit").exists()
