"""``ds-pipelines detect --explain`` and ``ds-pipelines publish plan`` through the real CLI, against the GitLab
API served on 127.0.0.1 (FakeGitLab, real python-gitlab): a ``[plan]`` commit's plan with its runners and
the durations of earlier runs, printed and posted to the merge request's one comment."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner
from fake_gitlab import FakeGitLab
from gitrepo import INFERENCE, TRAINING, GitRepo, make_project

from ds_pipelines.cli import cli
from ds_pipelines.gitlab import GitLabClient, GitLabSettings
from ds_pipelines.publishing.render import datablock
from ds_pipelines.publishing.render.comment import (
    DATA_KIND,
    MR_MARKER,
    previous_history,
)

pytestmark = pytest.mark.timeout(120)

MR = 4
# Every variable the commands read, unset unless a test sets it.
VARIABLES = ["CI_PIPELINE_SOURCE", "CI_COMMIT_BEFORE_SHA", "CI_COMMIT_SHA", "CI_COMMIT_MESSAGE", "CI_COMMIT_TAG",
             "CI_MERGE_REQUEST_DIFF_BASE_SHA", "CI_MERGE_REQUEST_IID", "CI_DEFAULT_BRANCH", "CI_SERVER_URL",
             "CI_PROJECT_ID", "CI_PROJECT_URL", "CI_PIPELINE_URL", "GITLAB_URL", "GITLAB_PROJECT_ID", "GITLAB_TOKEN",
             "REPO_TOKEN", "GPU_RUNNER", "CPU_RUNNER", "LIGHT_RUNNER", "COMMIT_RUNNER", "DSP_PLAN",
             "DSP_PIPELINE_SOURCE", "DSP_MERGE_REQUEST_IID"]


@pytest.fixture
def repo(tmp_path) -> GitRepo:
    return make_project(tmp_path / "repo")


def invoke(repo: GitRepo, *args: str, **env: str):
    variables = {name: None for name in VARIABLES} | {"DS_PIPELINES_PROJECT_DIR": str(repo.root)} | env
    return CliRunner(env=variables).invoke(cli, list(args), catch_exceptions=False)


def planned_push(repo: GitRepo, message: str) -> dict[str, str]:
    """A push changing the training notebook, with ``message``: the variables detect reads."""
    before = repo.head()
    repo.touch(TRAINING)
    return {"CI_COMMIT_BEFORE_SHA": before, "CI_COMMIT_SHA": repo.commit(message), "CI_COMMIT_MESSAGE": message}


def earlier_runs(fake: FakeGitLab) -> None:
    for seconds in (80, 100, 400):
        fake.add_job("run-training_example", duration=seconds)
    fake.add_job("run-training_example", status="failed", duration=5)


def test_explain_reads_the_durations_from_gitlab(repo, fake_gitlab):
    earlier_runs(fake_gitlab)
    pushed = planned_push(repo, f"[plan] [run {INFERENCE}]")

    result = invoke(repo, "detect", "--explain", GPU_RUNNER="gpu", **pushed, **fake_gitlab.environ())

    assert result.exit_code == 0, result.stderr
    assert result.stdout.splitlines() == [
        "Dry run ([plan] in the commit message): nothing executes; without [plan], 2 notebooks would run.",
        f"  {TRAINING}  [would run]",
        "      why:      the notebook changed (modified)",
        "      runner:   GPU runner (tag gpu)",
        "      expected: about 1 min 40 s (median of the last 3 successful runs)",
        f"  {INFERENCE}  [would run]",
        f"      why:      [run {INFERENCE}] in the commit message (override)",
        "      runner:   CPU runner (no tag: any untagged runner)",
        "      expected: unknown (no earlier successful run)",
        "Durations: the median of each notebook's latest successful run-<name> jobs in this project's GitLab CI.",
    ]
    as_json = json.loads(invoke(repo, "detect", "--explain", "--json", **pushed, **fake_gitlab.environ()).stdout)
    assert as_json["plan"]["dry_run"] is True and as_json["plan"]["notebooks"] == []
    assert [(n["notebook"], n["runs"], n["expected_s"]) for n in as_json["notebooks"]] == [
        (TRAINING, True, 100.0), (INFERENCE, True, None)]


def test_explain_without_gitlab_says_where_durations_would_come_from(repo):
    result = invoke(repo, "detect", "--explain", **planned_push(repo, "retrain"))
    assert result.exit_code == 0, result.stderr
    assert result.stdout.startswith("1 notebook runs, in this order.\n")
    assert f"  {INFERENCE}  [not run]\n" in result.stdout
    assert "expected: unknown (earlier runs not read)" in result.stdout
    assert result.stdout.rstrip().endswith(
        "Durations: not read, GitLab is not configured (set CI_SERVER_URL (or GITLAB_URL), CI_PROJECT_ID (or "
        "GITLAB_PROJECT_ID), GITLAB_TOKEN (or REPO_TOKEN)); they would be the median of each notebook's latest successful "
        "run-<name> jobs in this project's GitLab CI.")


def test_explain_when_gitlab_refuses_still_explains(repo, fake_gitlab):
    environ = fake_gitlab.environ() | {"GITLAB_TOKEN": "wrong"}
    result = invoke(repo, "detect", "--explain", **planned_push(repo, "[plan]"), **environ)
    assert result.exit_code == 0, result.stderr
    assert "expected: unknown (earlier runs not read)" in result.stdout
    assert "Durations: not read: " in result.stdout and "GITLAB_TOKEN" in result.stdout


def plan_json(repo: GitRepo, pushed: dict[str, str]) -> str:
    result = invoke(repo, "detect", "--json", **pushed)
    assert result.exit_code == 0, result.stderr
    return result.stdout


def test_publish_plan_posts_in_the_one_comment_and_keeps_its_results(repo, fake_gitlab):
    earlier_runs(fake_gitlab)
    # The merge request's comment as a run left it: its results, in its hidden data.
    earlier = {"commit": "a" * 40, "finished_at": "2026-11-30T10:00:00+00:00", "status": "success",
               "notebooks": [{"name": "training_example", "status": "success", "metrics": {"roc_auc": 0.9}}]}
    client = GitLabClient(GitLabSettings(fake_gitlab.url, str(fake_gitlab.project_id), fake_gitlab.token))
    client.upsert_merge_request_note(mr_iid=MR, marker=MR_MARKER, body=f"{MR_MARKER}\nresults\n" + datablock.embed(
        DATA_KIND, {"version": 1, "current": earlier, "history": []}))
    pushed = planned_push(repo, "[plan]")
    env = {**fake_gitlab.environ(), "CI_COMMIT_SHA": pushed["CI_COMMIT_SHA"], "CI_PROJECT_URL": fake_gitlab.web_url,
           "GPU_RUNNER": "gpu", "DSP_PLAN": plan_json(repo, pushed)}

    first = invoke(repo, "publish", "plan", "--mr", str(MR), **env)
    second = invoke(repo, "publish", "plan", "--mr", str(MR), **env)

    assert first.exit_code == 0 and second.exit_code == 0, first.stderr + second.stderr
    assert first.stdout.startswith("Dry run ([plan] in the commit message)")
    assert "expected: about 1 min 40 s (median of the last 3 successful runs)" in first.stdout
    assert f"Plan updated in the merge-request comment on !{MR}" in first.stdout
    [note] = fake_gitlab.notes[MR]
    body = note["body"]
    assert f"## 🗺️ Plan for [{pushed['CI_COMMIT_SHA'][:8]}]" in body
    assert f"| `{TRAINING}` | ▶️ would run |" in body and f"| `{INFERENCE}` | ⏭️ not run |" in body
    assert "GPU runner \\(tag gpu\\)" in body and "about 1 min 40 s" in body
    assert previous_history(body) == [earlier] and "Earlier commits in this merge request (1)" in body


def test_publish_plan_without_a_merge_request_prints_it_and_warns(repo):
    pushed = planned_push(repo, "[plan]")
    result = invoke(repo, "publish", "plan", DSP_PLAN=plan_json(repo, pushed), GPU_RUNNER="from-env")
    assert result.exit_code == 0
    assert f"  {TRAINING}  [would run]" in result.stdout
    assert "warning: plan not posted: no merge request to comment on" in result.stderr
    assert "runner:   GPU runner (tag from-env)" in result.stdout
    # The child pipeline passes the tags detect resolved; '' is no tag, whatever the environment says.
    passed = invoke(repo, "publish", "plan", "--gpu-runner", "", DSP_PLAN=plan_json(repo, pushed), GPU_RUNNER="from-env")
    assert "runner:   GPU runner (no tag: any untagged runner)" in passed.stdout
    strict = invoke(repo, "publish", "plan", "--strict", DSP_PLAN=plan_json(repo, pushed))
    assert strict.exit_code == 2 and "error: plan not posted: no merge request" in strict.stderr


@pytest.mark.parametrize(("plan", "error"), [
    ("{not json", "error: --plan (or DSP_PLAN) is not JSON: "),
    ('{"would_run": [{"path": 1}]}', "error: --plan (or DSP_PLAN): plan: 'would_run' must be a list of {path, reason} objects"),
    ('{"notebooks": [{"path": "notebooks/training_example.ipynb", "reason": "modified"}]}',
     "error: --plan (or DSP_PLAN) is not a dry run ([plan] in the commit message)"),
])
def test_publish_plan_with_a_bad_plan_exits_2(repo, fake_gitlab, plan, error):
    result = invoke(repo, "publish", "plan", "--mr", str(MR), DSP_PLAN=plan, **fake_gitlab.environ())
    assert result.exit_code == 2 and result.stderr.startswith(error) and "Traceback" not in result.stderr
    assert fake_gitlab.notes == {}
