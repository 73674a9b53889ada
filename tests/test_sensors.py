"""The commit sensor against a GitLab API served on 127.0.0.1 (real python-gitlab, real git repositories).

Each evaluation is one sensor tick through ``dg.build_sensor_context``; the cursor it returns is fed to the
next tick, as the daemon does across restarts.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
from pathlib import Path

import dagster as dg
import pytest
import yaml
from fake_gitlab import FakeGitLab
from gitrepo import (
    INFERENCE,
    REGISTRY,
    TRAINING,
    TRAINING_CONFIG,
    make_project,
    notebook_json,
)
from sandbox import CLI

from ds_pipelines.defs.triggers.releases import tag_sensor
from ds_pipelines.defs.triggers.resources import GitLabResource, gitlab_resource
from ds_pipelines.defs.triggers.sensors import commit_sensor
from ds_pipelines.execution.instance import DEVICE_TAG
from ds_pipelines.gitlab import GitLabClient, GitLabSettings
from ds_pipelines.gitlab.repository import set_commit_status
from ds_pipelines.project import PROJECT_DIR_ENV, Project


@pytest.fixture
def deployment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The Dagster deployment's own project folder: its settings say which branches to watch."""
    root = tmp_path / "deployment"
    (root / "configs").mkdir(parents=True)
    registry = yaml.safe_load((Path(__file__).parent.parent / REGISTRY).read_text())
    registry["triggers"]["orchestrator"] = "dagster"  # this deployment, not GitLab CI, runs pushed commits
    (root / REGISTRY).write_text(yaml.safe_dump(registry))
    monkeypatch.setenv(PROJECT_DIR_ENV, str(root))
    return root


@pytest.fixture
def gitlab(tmp_path: Path):
    repo = make_project(tmp_path / "repo")
    with FakeGitLab(repo=repo.root) as fake:
        yield repo, fake


def tick(fake: FakeGitLab, cursor: str | None = None, token: str | None = None) -> dg.SensorResult | dg.SkipReason:
    resource = GitLabResource(url=fake.url, project_id=str(fake.project_id), token=token or fake.token)
    with dg.build_sensor_context(cursor=cursor, resources={"gitlab": resource}, instance=dg.DagsterInstance.ephemeral()) as context:
        return commit_sensor(Project())(context)


def skipped(result: dg.SensorResult) -> str:
    """Why a tick that requested no run did not: its messages."""
    assert result.skip_reason is not None, result.run_requests
    return result.skip_reason.skip_message


def runs(result: dg.SensorResult) -> list[tuple[str, str]]:
    return [(request.tags["ds-pipelines/commit"], request.tags["ds-pipelines/notebook"]) for request in result.run_requests]


def test_without_gitlab_settings_the_sensor_skips_naming_what_to_set(deployment: Path):
    with dg.build_sensor_context(resources={"gitlab": gitlab_resource(environ={})}) as context:
        result = commit_sensor(Project())(context)
    assert isinstance(result, dg.SkipReason)
    assert "set CI_SERVER_URL (or GITLAB_URL), CI_PROJECT_ID (or GITLAB_PROJECT_ID), GITLAB_TOKEN" in result.skip_message


def test_first_tick_watches_without_running_history(deployment: Path, gitlab):
    repo, fake = gitlab
    result = tick(fake)
    assert result.run_requests == []
    assert json.loads(result.cursor) == {"branch:main": repo.head()}
    assert "watching branch main" in result.skip_reason.skip_message


def test_new_commits_run_their_notebooks_in_order_each_from_its_checkout(deployment: Path, gitlab):
    repo, fake = gitlab
    cursor = tick(fake).cursor
    repo.write(TRAINING, notebook_json("print('training v2')"))
    trained = repo.commit("retrain")
    repo.commit("docs only [skip run]")
    repo.touch(INFERENCE)
    repo.write(TRAINING, notebook_json("print('training v3')"))
    both = repo.commit("both notebooks")

    result = tick(fake, cursor)

    assert runs(result) == [(trained, TRAINING), (both, TRAINING), (both, INFERENCE)]
    first = result.run_requests[0]
    assert first.run_key == f"{trained}:{TRAINING}"
    assert first.tags["ds-pipelines/branch"] == "main" and first.tags["ds-pipelines/reason"] == "modified"
    assert first.tags["ds-pipelines/commit-url"].endswith(trained)
    assert "training v2" in (checkout_of(first) / TRAINING).read_text()  # that commit's file, not the newest
    assert "training v3" in (checkout_of(result.run_requests[1]) / TRAINING).read_text()
    assert json.loads(result.cursor)["branch:main"] == both


def test_each_run_is_tagged_with_the_device_of_its_notebook_at_that_commit(deployment: Path, gitlab):
    repo, fake = gitlab
    cursor = tick(fake).cursor
    repo.touch(TRAINING)
    repo.touch(INFERENCE)
    both = repo.commit("both notebooks")
    registry = yaml.safe_load((repo.root / REGISTRY).read_text())
    registry["notebooks"][INFERENCE]["device"] = "gpu"
    repo.write(REGISTRY, yaml.safe_dump(registry))
    repo.touch(INFERENCE)
    on_gpu = repo.commit("inference on the GPU now")

    devices = {(request.tags["ds-pipelines/commit"], request.tags["ds-pipelines/notebook"]): request.tags[DEVICE_TAG]
               for request in tick(fake, cursor).run_requests}

    # The launchers give such a run the GPUs, or GitLab's GPU runner (execution.docker_launcher.runs_gpu_notebook).
    assert devices[both, TRAINING] == "gpu" and devices[both, INFERENCE] == "cpu"
    assert devices[on_gpu, INFERENCE] == "gpu"


def test_a_restart_from_the_stored_cursor_neither_repeats_nor_skips(deployment: Path, gitlab):
    repo, fake = gitlab
    cursor = tick(fake).cursor
    repo.touch(TRAINING)
    one = repo.commit("one")
    after_one = tick(fake, cursor)
    repo.touch(TRAINING_CONFIG)
    two = repo.commit("two")  # pushed while the daemon was down

    # The daemon restarts with the cursor it stored after the last tick.
    after_restart = tick(fake, after_one.cursor)
    again = tick(fake, after_restart.cursor)

    assert runs(after_one) == [(one, TRAINING)]
    assert runs(after_restart) == [(two, TRAINING)]
    assert after_restart.run_requests[0].tags["ds-pipelines/reason"] == "config-changed"
    assert again.run_requests == [] and again.cursor == after_restart.cursor


def test_merge_requests_run_their_changes_from_the_merge_base(deployment: Path, gitlab):
    repo, fake = gitlab
    cursor = tick(fake).cursor
    repo.diverge_feature_branch()  # feature changes the training config, main changes inference
    feature_head = repo.git("rev-parse", "feature")
    fake.add_merge_request(iid=5, source_branch="feature")

    result = tick(fake, cursor)

    by_ref = {(commit, notebook): request.tags for request in result.run_requests for commit, notebook in [runs_of(request)]}
    assert by_ref[(feature_head, TRAINING)]["ds-pipelines/merge-request"] == "5"
    assert by_ref[(feature_head, TRAINING)]["ds-pipelines/merge-request-url"].endswith("/-/merge_requests/5")
    assert (feature_head, INFERENCE) not in by_ref  # main's change is not the merge request's
    assert (repo.git("rev-parse", "main"), INFERENCE) in by_ref
    assert json.loads(result.cursor)["mr:5"] == feature_head
    # What a release trusts, from GitLab: main is protected (FakeGitLab, as GitLab, protects the default branch).
    assert by_ref[(repo.git("rev-parse", "main"), INFERENCE)]["ds-pipelines/protected"] == "true"
    assert by_ref[(feature_head, TRAINING)]["ds-pipelines/protected"] == "false"
    assert by_ref[(feature_head, TRAINING)]["ds-pipelines/project-id"] == str(fake.project_id)


def test_a_plan_commit_launches_nothing_and_logs_its_plan(deployment: Path, gitlab):
    repo, fake = gitlab
    cursor = tick(fake).cursor
    repo.touch(TRAINING)
    planned = repo.commit(f"try it first [plan] [run {INFERENCE}]")

    result = tick(fake, cursor)

    assert result.run_requests == []
    assert json.loads(result.cursor)["branch:main"] == planned  # seen: the next tick does not plan it again
    assert result.skip_reason.skip_message == (
        f"commit {planned[:12]}: dry run, nothing launched ([plan] in the commit message: a dry run, nothing "
        f"executes); would run: {TRAINING} (modified), {INFERENCE} (override)")
    # The next commit without [plan] runs as usual.
    repo.touch(TRAINING)
    after = repo.commit("now train")
    assert runs(tick(fake, result.cursor)) == [(after, TRAINING)]


def checkout_of(request: dg.RunRequest) -> Path:
    return Path(request.run_config["ops"]["run_commit_notebook"]["config"]["project_dir"])


def runs_of(request: dg.RunRequest) -> tuple[str, str]:
    return request.tags["ds-pipelines/commit"], request.tags["ds-pipelines/notebook"]


def test_a_force_push_runs_what_changed_since_the_old_head(deployment: Path, gitlab):
    repo, fake = gitlab
    base = repo.head()
    repo.touch(INFERENCE)
    repo.commit("soon rewritten")
    cursor = tick(fake).cursor
    repo.git("reset", "-q", "--hard", base)
    repo.touch(TRAINING)
    rewritten = repo.commit("rewritten history")

    result = tick(fake, cursor)

    # Compared from the merge base of the old and new heads, the push changed training only.
    assert runs(result) == [(rewritten, TRAINING)]


def test_a_bad_override_is_reported_and_later_commits_still_run(deployment: Path, gitlab):
    repo, fake = gitlab
    cursor = tick(fake).cursor
    bad = repo.commit("[run ../outside.ipynb]")
    repo.touch(TRAINING)
    good = repo.commit("fine")

    result = tick(fake, cursor)

    assert runs(result) == [(good, TRAINING)]
    assert json.loads(result.cursor)["branch:main"] == good
    assert bad[:12] not in str(result.run_requests)


# Nine levels of nine aliases each: a few hundred bytes that would expand to 9**9 values.
ALIAS_BOMB = "a0: &a0 [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"a{level}: &a{level} [{', '.join([f'*a{level - 1}'] * 9)}]\n" for level in range(1, 9))


def link_out(repo) -> None:
    os.symlink("/mnt/data", repo.root / "data")


def nested_registry(repo) -> None:
    repo.write(REGISTRY, (repo.root / REGISTRY).read_text() + "\nextra: " + "[" * 500 + "]" * 500 + "\n")


def alias_bomb_registry(repo) -> None:
    repo.write(REGISTRY, (repo.root / REGISTRY).read_text() + "\n" + ALIAS_BOMB)


@pytest.mark.parametrize(("make_bad", "reason"), [
    (link_out, "the link data -> /mnt/data points outside the commit's files"),
    (nested_registry, "configs/notebooks.yaml: refused: nested more than 50 levels deep"),
    (alias_bomb_registry, "configs/notebooks.yaml: refused: its aliases expand to more than 100000 values"),
])
def test_a_commit_that_cannot_be_planned_is_not_run_and_the_next_commit_runs(deployment: Path, gitlab, make_bad, reason):
    repo, fake = gitlab
    cursor = tick(fake).cursor
    make_bad(repo)
    repo.touch(TRAINING)
    bad = repo.commit("bad for planning")

    reported = tick(fake, cursor)

    assert reported.run_requests == [] and f"commit {bad[:12]}: not run: " in skipped(reported)
    assert reason in skipped(reported) and len(skipped(reported)) < 1000
    assert json.loads(reported.cursor)["branch:main"] == bad  # a permanent reason: the branch moves on
    # ...and the commit says why, where GitLab shows its pipelines.
    [status] = fake.statuses[bad]
    assert (status["name"], status["status"]) == ("ds-pipelines: commit sensor", "failed")
    assert status["description"].startswith("not run by the Dagster deployment: ") and reason[:60] in status["description"]
    repo.git("rm", "-q", "-r", "--cached", ".")
    repo.git("checkout", "-q", "HEAD~1", "--", ".")  # back to the good files
    (repo.root / "data").unlink(missing_ok=True)
    repo.touch(TRAINING)
    good = repo.commit("fixed")

    assert runs(tick(fake, reported.cursor)) == [(good, TRAINING)]


def test_a_status_gitlab_refuses_leaves_the_reason_in_the_log_and_the_sensor_going(deployment: Path, gitlab, capfd):
    """A token that may not set commit statuses (GitLab's Reporter role): the tick still moves on, and says so."""
    repo, fake = gitlab
    cursor = tick(fake).cursor
    link_out(repo)
    bad = repo.commit("links outside")
    fake.fail_next("POST", r"/statuses/", "403")

    reported = tick(fake, cursor)

    assert json.loads(reported.cursor)["branch:main"] == bad and fake.statuses == {}
    logged = capfd.readouterr().err
    assert f"could not record on commit {bad[:12]} why it was not run" in logged and "403" in logged


def test_the_reason_on_the_commit_is_masked(deployment: Path, gitlab):
    """A reason quotes what the commit holds (here its message names the token): the status shows none of it."""
    repo, fake = gitlab
    cursor = tick(fake).cursor
    repo.touch(TRAINING)
    bad = repo.commit(f"[run notebooks/{fake.token}.ipynb]")

    reported = tick(fake, cursor)

    [status] = fake.statuses[bad]
    assert "[MASKED]" in status["description"] and fake.token not in status["description"]
    assert f"commit {bad[:12]}: not run: " in skipped(reported)


def test_a_long_reason_is_cut_to_what_gitlab_keeps(gitlab):
    repo, fake = gitlab
    client = GitLabClient(GitLabSettings(url=fake.url, project_id=str(fake.project_id), token=fake.token))
    set_commit_status(client, sha=repo.head(), state="failed", name="x", description="y" * 400)
    [status] = fake.statuses[repo.head()]
    assert len(status["description"]) == 255 and status["description"].endswith("y...")


def test_a_fetch_that_fails_keeps_the_branch_at_its_commit_and_retries_with_a_growing_delay(deployment: Path, gitlab):
    repo, fake = gitlab
    cursor = tick(fake).cursor
    before = repo.head()
    repo.touch(TRAINING)
    pushed = repo.commit("pushed while GitLab's git service is down")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        fake.clone_url = f"http://127.0.0.1:{probe.getsockname()[1]}/group/project.git"  # nothing listens there

    failed = tick(fake, cursor)

    state = json.loads(failed.cursor)
    assert failed.run_requests == [] and state["branch:main"] == before  # not moved past the commit
    assert state["retries"]["branch:main"]["sha"] == pushed and state["retries"]["branch:main"]["attempts"] == 1
    assert f"commit {pushed[:12]} could not be checked out (cannot fetch" in skipped(failed)
    assert "tried again in 60 s (attempt 2)" in skipped(failed)

    waiting = tick(fake, failed.cursor)  # within the delay: not even fetched
    assert "is tried again in" in skipped(waiting) and json.loads(waiting.cursor) == state

    state["retries"]["branch:main"]["not_before"] = 0  # the delay has passed
    again = tick(fake, json.dumps(state))
    assert "tried again in 120 s (attempt 3)" in skipped(again)  # doubled
    assert json.loads(again.cursor)["retries"]["branch:main"]["attempts"] == 2

    fake.clone_url = None  # GitLab is back
    state = json.loads(again.cursor)
    state["retries"]["branch:main"]["not_before"] = 0
    recovered = tick(fake, json.dumps(state))
    assert runs(recovered) == [(pushed, TRAINING)]
    assert json.loads(recovered.cursor) == {"branch:main": pushed}  # no retry left behind


def test_old_checkouts_are_removed_keeping_those_of_requested_runs(deployment: Path, gitlab):
    registry = yaml.safe_load((deployment / REGISTRY).read_text())
    registry["triggers"]["keep_checkouts"] = 1
    (deployment / REGISTRY).write_text(yaml.safe_dump(registry))
    repo, fake = gitlab
    cursor = tick(fake).cursor
    checkouts = Project().state_dir / "checkouts"
    shas = []
    for number in range(2):
        repo.touch(TRAINING)
        shas.append(repo.commit(f"change {number}"))
    repo.commit("[skip run] nothing to run")
    cursor = tick(fake, cursor).cursor  # both have runs requested: both kept, beyond keep_checkouts

    assert {shas[0], shas[1]} <= {p.name for p in checkouts.iterdir()}

    repo.touch(INFERENCE)
    latest = repo.commit("another")
    tick(fake, cursor)

    assert {p.name for p in checkouts.iterdir() if p.name != "mirror.git"} == {latest}


def test_a_refused_token_skips_with_the_reason_and_keeps_the_cursor(deployment: Path, gitlab):
    repo, fake = gitlab
    result = tick(fake, cursor='{"branch:main": "%s"}' % repo.head(), token="glpat-wrongwrongwrong0000")
    assert isinstance(result, dg.SkipReason)
    assert "cannot read GitLab" in result.skip_message and "401" in result.skip_message
    assert "wrongwrong" not in result.skip_message


def tag_tick(fake: FakeGitLab, cursor: str | None = None) -> dg.SensorResult | dg.SkipReason:
    resource = GitLabResource(url=fake.url, project_id=str(fake.project_id), token=fake.token)
    with dg.build_sensor_context(cursor=cursor, resources={"gitlab": resource}, instance=dg.DagsterInstance.ephemeral()) as context:
        return tag_sensor(Project())(context)


def test_each_new_production_tag_starts_one_release(deployment: Path, gitlab):
    repo, fake = gitlab
    repo.git("tag", "v0.9.0")  # released before the sensor watched: not released again
    first = tag_tick(fake)
    repo.git("tag", "v1.2.3")
    repo.git("tag", "dev-1.2.4")
    repo.git("tag", "v1.3.0-rc1")

    result = tag_tick(fake, first.cursor)
    again = tag_tick(fake, result.cursor)

    assert first.run_requests == []
    assert [r.run_key for r in result.run_requests] == ["release:v1.2.3"]
    request = result.run_requests[0]
    assert request.tags["ds-pipelines/tag"] == "v1.2.3" and request.tags["ds-pipelines/commit"] == repo.head()
    assert request.run_config["ops"]["release_tag"]["config"]["tag"] == "v1.2.3"
    assert again.run_requests == []


def test_new_tags_release_in_version_order_and_unprotected_ones_never(deployment: Path, gitlab):
    repo, fake = gitlab
    fake.protected_tags = ["v1.*"]
    first = tag_tick(fake)
    for tag in ("v1.10.0", "v1.9.0", "v2.0.0"):  # v2.* is not protected: anyone with Developer access pushes it
        repo.git("tag", tag)

    result = tag_tick(fake, first.cursor)

    assert [r.run_key for r in result.run_requests] == ["release:v1.9.0", "release:v1.10.0"]


def test_the_tag_sensor_skips_without_gitlab_settings(deployment: Path):
    with dg.build_sensor_context(resources={"gitlab": gitlab_resource(environ={})}) as context:
        result = tag_sensor(Project())(context)
    assert "GitLab is not configured: set CI_SERVER_URL (or GITLAB_URL)" in result.skip_message


def test_the_sensor_and_ci_detect_plan_the_same_for_each_push(deployment: Path, gitlab):
    """Parity: for the same commits, GitLab CI's detect job and the Dagster sensor run the same notebooks."""
    repo, fake = gitlab
    cursor = tick(fake).cursor
    pushes = []
    for message, change in [("retrain", TRAINING_CONFIG), ("[run notebooks/inference_example.ipynb] docs", "README.md"),
                            ("both", INFERENCE), ("nothing [skip run]", TRAINING)]:
        before = repo.head()
        repo.touch(change)
        if change == INFERENCE:
            repo.touch(TRAINING)
        pushes.append((before, repo.commit(message), message))

    by_commit: dict[str, list[str]] = {}
    for commit, notebook in runs(tick(fake, cursor)):
        by_commit.setdefault(commit, []).append(notebook)
    assert len(by_commit) == 3  # every push but the [skip run] one runs something
    for before, after, message in pushes:
        detected = subprocess.run(
            [str(CLI), "detect", "--repo", str(repo.root), "--source", "push", "--before", before, "--after", after,
             "--message", message, "--json"], capture_output=True, text=True, check=True,
        )
        planned = [entry["path"] for entry in json.loads(detected.stdout)["notebooks"]]
        assert by_commit.get(after, []) == planned, message


def fork_merge_request(repo, fake: FakeGitLab, *, iid: int = 5, fork_id: int = 99) -> str:
    """A merge request from project ``fork_id``: its commit is in this repository only under GitLab's
    ``refs/merge-requests/<iid>/head``, as a fork's is; returns that commit."""
    repo.diverge_feature_branch()  # the fork's commit changes training; main moves on (inference)
    fork_head = repo.git("rev-parse", "feature")
    repo.git("update-ref", f"refs/merge-requests/{iid}/head", fork_head)
    repo.git("branch", "-q", "-D", "feature")
    fake.add_merge_request(iid=iid, source_branch="feature", sha=fork_head, source_project_id=fork_id)
    return fork_head


def mirror_refs(deployment: Path) -> str:
    mirror = Project(deployment).state_dir / "checkouts" / "mirror.git"
    return subprocess.run(["git", "-C", str(mirror), "for-each-ref", "--format=%(refname)"],
                          capture_output=True, text=True, check=True).stdout


def test_a_fork_merge_request_is_skipped_and_none_of_its_refs_is_fetched(deployment: Path, gitlab):
    repo, fake = gitlab
    cursor = tick(fake).cursor
    fork_head = fork_merge_request(repo, fake)

    result = tick(fake, cursor)

    assert runs(result) == [(repo.git("rev-parse", "main"), INFERENCE)]  # main's push runs, the fork's commit does not
    refs = mirror_refs(deployment)  # main's checkout fetched from the repository that holds the fork's head
    assert "refs/heads/main" in refs and "merge-requests" not in refs
    mirror = Project(deployment).state_dir / "checkouts" / "mirror.git"
    assert subprocess.run(["git", "-C", str(mirror), "cat-file", "-e", fork_head]).returncode != 0
    assert json.loads(result.cursor)["mr:5"] == fork_head  # seen: the skip is said once per new head


def test_the_skip_of_a_fork_merge_request_says_why_and_how_to_allow_it(deployment: Path, gitlab):
    repo, fake = gitlab
    cursor = tick(fake).cursor
    repo.git("update-ref", "refs/merge-requests/6/head", repo.head())
    fake.add_merge_request(iid=6, source_branch="main", sha=repo.head(), source_project_id=99)

    result = tick(fake, cursor)

    assert result.run_requests == []
    assert "merge request !6 comes from another project (id 99): not run" in result.skip_reason.skip_message
    assert "triggers.trusted_forks" in result.skip_reason.skip_message


def test_a_trusted_fork_runs_fetching_only_its_merge_request_head(deployment: Path, gitlab):
    registry = yaml.safe_load((deployment / REGISTRY).read_text())
    registry["triggers"]["trusted_forks"] = [99]
    (deployment / REGISTRY).write_text(yaml.safe_dump(registry))
    repo, fake = gitlab
    repo.git("update-ref", "refs/merge-requests/4/head", repo.head())  # an unrelated fork's head stays behind
    cursor = tick(fake).cursor
    fork_head = fork_merge_request(repo, fake)

    result = tick(fake, cursor)

    tags = {runs_of(request): request.tags for request in result.run_requests}
    assert tags[(fork_head, TRAINING)]["ds-pipelines/merge-request"] == "5"
    # Recorded as the fork's branch: a fork's "main" never becomes this project's baseline.
    assert tags[(fork_head, TRAINING)]["ds-pipelines/branch"] == "fork-99/feature"
    refs = mirror_refs(deployment).split()
    assert "refs/merge-requests/5/head" in refs and "refs/merge-requests/4/head" not in refs
