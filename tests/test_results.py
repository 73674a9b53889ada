"""Which commit a run's results name: the one it was started for, else the project's checked-out commit."""

from __future__ import annotations

from pathlib import Path

from gitrepo import make_project

from ds_pipelines.results.origin import Provenance, run_commit


def test_the_commit_a_run_was_started_for_wins(tmp_path: Path):
    repo = make_project(tmp_path / "repo")
    origin = Provenance(commit="f" * 40, branch="feature")
    assert run_commit(repo.root, origin) == ("f" * 40, "feature")


def test_otherwise_the_checked_out_commit(tmp_path: Path):
    repo = make_project(tmp_path / "repo")
    assert run_commit(repo.root, Provenance()) == (repo.head(), "main")
    assert run_commit(tmp_path, Provenance()) is None  # not in a git work tree


def test_a_checkout_in_a_git_ignored_folder_is_not_the_enclosing_repositorys_commit(tmp_path: Path):
    deployment = make_project(tmp_path / "deployment")
    deployment.write(".gitignore", ".ds-pipelines/\n")
    deployment.commit("ignore the state folder")
    checkout = deployment.root / ".ds-pipelines" / "checkouts" / "abc"
    checkout.mkdir(parents=True)
    assert run_commit(checkout, Provenance()) is None
    assert run_commit(deployment.root, Provenance())[0] == deployment.head()
