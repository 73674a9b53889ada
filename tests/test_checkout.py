"""Checkouts of one commit's files, fetched from a real repository: what a commit run executes."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from gitrepo import TRAINING, make_project

from ds_pipelines.triggers.checkout import COMPLETE_MARKER, MIRROR_DIR, CheckoutError, checkout, evict


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
