"""Questions to git about a project's work tree never hang: no answer in time is "unknown", as no git is."""

from __future__ import annotations

import time
from pathlib import Path

from gitrepo import make_project

from ds_pipelines.project.work_tree import ask_git


def test_git_answers_about_a_work_tree(tmp_path: Path):
    repo = make_project(tmp_path / "repo")
    answer = ask_git(repo.root, "rev-parse", "HEAD")
    assert answer is not None and answer.returncode == 0 and answer.stdout.strip() == repo.head()


def test_a_git_that_hangs_is_no_answer_within_the_limit(tmp_path: Path, monkeypatch):
    # A git stuck on a blocked file system or a lock, as a program on PATH that never answers.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "git").write_text("#!/bin/sh\nexec sleep 60\n")
    (bin_dir / "git").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")

    started = time.monotonic()
    assert ask_git(tmp_path, "rev-parse", "HEAD", timeout_s=1) is None
    assert time.monotonic() - started < 10


def test_no_git_installed_is_no_answer(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path / "empty"))
    assert ask_git(tmp_path, "rev-parse", "HEAD") is None
