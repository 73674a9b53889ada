"""``ds-pipelines detect`` end to end: GitLab's variables in, a plan (JSON, dotenv, summary) out."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from gitrepo import (
    INFERENCE,
    INFERENCE_CONFIG,
    REGISTRY,
    TRAINING,
    TRAINING_CONFIG,
    GitRepo,
    make_project,
)

from ds_pipelines.cli.detect import detect

pytestmark = pytest.mark.timeout(60)  # a regex or git regression fails here, not after the global 15 minutes

GITLAB_VARIABLES = [
    "CI_PIPELINE_SOURCE", "CI_COMMIT_BEFORE_SHA", "CI_COMMIT_SHA", "CI_COMMIT_MESSAGE", "CI_COMMIT_TAG",
    "CI_MERGE_REQUEST_DIFF_BASE_SHA", "CI_DEFAULT_BRANCH", "SCORING_NOTEBOOK", "DS_PIPELINES_PROJECT_DIR",
]


@pytest.fixture
def repo(tmp_path) -> GitRepo:
    return make_project(tmp_path / "repo")


def invoke(repo: GitRepo, *args: str, **env: str):
    """Run detect in-process in ``repo``, with only the given GitLab variables set."""
    variables = {name: None for name in GITLAB_VARIABLES} | {"DS_PIPELINES_PROJECT_DIR": str(repo.root)} | env
    return CliRunner(env=variables).invoke(detect, list(args), catch_exceptions=False)


def plan_of(result) -> list[tuple[str, str]]:
    assert result.exit_code == 0, result.stderr
    return [(n["path"], n["reason"]) for n in json.loads(result.stdout)["notebooks"]]


def read_dotenv(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines())


def test_push_from_gitlab_variables(repo, tmp_path):
    before = repo.head()
    repo.touch(INFERENCE_CONFIG)
    after = repo.commit()
    repo.touch(TRAINING)
    repo.commit("later, not part of this pipeline")
    dotenv = tmp_path / "plan.env"
    result = invoke(repo, "--json", "--dotenv", str(dotenv), CI_PIPELINE_SOURCE="push", CI_COMMIT_BEFORE_SHA=before,
                    CI_COMMIT_SHA=after, CI_COMMIT_MESSAGE=f"tune\n\n[run {TRAINING}]\n")
    assert plan_of(result) == [(TRAINING, "override"), (INFERENCE, "config-changed")]
    assert json.loads(result.stdout) | {"notebooks": []} == {
        "notebooks": [], "skip": False, "skip_reason": None, "release": "none", "tag": None, "deferred": False,
        "dry_run": False, "would_run": [],
    }
    assert read_dotenv(dotenv) == {
        "DSP_NOTEBOOKS": f"{TRAINING} {INFERENCE}", "DSP_SKIP": "false", "DSP_SKIP_REASON": "",
        "DSP_RELEASE": "none", "DSP_TAG": "", "DSP_DEFERRED": "false", "DSP_DRY_RUN": "false",
    }
    assert result.stderr == ""


def test_notebooks_with_one_asset_name_in_two_folders_are_refused(tmp_path):
    repo = make_project(tmp_path / "repo", "notebooks/a/report.ipynb", "notebooks/b/report.ipynb")
    child = tmp_path / "child.yml"
    result = invoke(repo, "--json", "--child-pipeline", str(child), CI_COMMIT_BEFORE_SHA="0" * 40,
                    CI_COMMIT_SHA=repo.head())
    assert result.exit_code == 2
    assert ("error: notebooks/a/report.ipynb and notebooks/b/report.ipynb both become the Dagster asset 'report'"
            in result.stderr)
    assert not child.exists() and result.stdout == ""


def test_flags_override_the_variables(repo):
    before = repo.head()
    repo.touch(TRAINING)
    repo.commit()
    result = invoke(repo, "--json", "--before", before, "--after", "HEAD", "--message", "", "--source", "push",
                    CI_COMMIT_BEFORE_SHA="f" * 40, CI_COMMIT_SHA="e" * 40, CI_COMMIT_MESSAGE="[skip run]",
                    CI_PIPELINE_SOURCE="schedule")
    assert plan_of(result) == [(TRAINING, "modified")]


def test_first_push(repo):
    result = invoke(repo, "--json", CI_COMMIT_BEFORE_SHA="0" * 40, CI_COMMIT_SHA=repo.head())
    assert plan_of(result) == [(TRAINING, "modified"), (INFERENCE, "modified")]
    assert "warning: first push: comparing with the empty tree" in result.stderr


def test_force_push_warns_and_uses_the_parent(repo):
    repo.touch(INFERENCE)
    repo.commit()
    result = invoke(repo, "--json", "--before", "ab" * 20)
    assert plan_of(result) == [(INFERENCE, "modified")]
    assert f"warning: commit {'ab' * 20} (before) is not in the repository (a force push" in result.stderr


def test_merge_request_pipeline(repo):
    base = repo.diverge_feature_branch()
    result = invoke(repo, "--json", "--after", "feature", CI_PIPELINE_SOURCE="merge_request_event",
                    CI_MERGE_REQUEST_DIFF_BASE_SHA=base, CI_COMMIT_BEFORE_SHA="0" * 40)
    assert plan_of(result) == [(TRAINING, "config-changed")]


def test_schedule(repo, tmp_path):
    dotenv = tmp_path / "plan.env"
    result = invoke(repo, "--json", "--dotenv", str(dotenv), CI_PIPELINE_SOURCE="schedule",
                    CI_COMMIT_MESSAGE="[skip run]", SCORING_NOTEBOOK=TRAINING)
    assert plan_of(result) == [(TRAINING, "scheduled")]
    assert read_dotenv(dotenv)["DSP_NOTEBOOKS"] == TRAINING
    assert plan_of(invoke(repo, "--json", "--source", "schedule")) == [(INFERENCE, "scheduled")]


@pytest.mark.parametrize(("tag", "args", "release"), [
    ("v1.2.3", [], "production"),
    ("dev-1.2.3", [], "development"),
    ("v1.2.3-rc1", [], "none"),
    ("nightly", [], "none"),
    ("v1.2.3-rc1", ["--production-tag", r"v[0-9.]+-rc[0-9]+"], "production"),
    ("staging-7", ["--development-tag", r"staging-[0-9]+"], "development"),
])
def test_tag_pipeline(repo, tmp_path, tag, args, release):
    dotenv = tmp_path / "plan.env"
    result = invoke(repo, "--dotenv", str(dotenv), *args, CI_COMMIT_TAG=tag, CI_COMMIT_BEFORE_SHA="0" * 40)
    assert result.exit_code == 0
    assert f"Tag {tag!r}: {release} release." in result.stdout
    values = read_dotenv(dotenv)
    assert values == {"DSP_NOTEBOOKS": "", "DSP_SKIP": "true", "DSP_RELEASE": release, "DSP_TAG": tag,
                      "DSP_SKIP_REASON": f"tag pipeline ({release} release): notebooks run on pushes, not on tags",
                      "DSP_DEFERRED": "false", "DSP_DRY_RUN": "false"}


def test_summary_output(repo):
    before = repo.head()
    repo.touch(TRAINING_CONFIG)
    repo.touch(INFERENCE)
    repo.commit()
    result = invoke(repo, "--before", before)
    assert result.stdout.splitlines() == [
        "2 notebook(s) to run, in this order:",
        f"  {TRAINING}   (config-changed)",
        f"  {INFERENCE}  (modified)",
    ]
    skipped = invoke(repo, "--before", before, "--message", "wip [skip run]")
    assert skipped.stdout == "Nothing to run: [skip run] in the commit message.\n"


def test_help():
    result = CliRunner().invoke(detect, ["--help"])
    assert result.exit_code == 0
    for text in ("[run notebooks/x.ipynb]", "[skip run]", "CI_COMMIT_BEFORE_SHA", "CI_MERGE_REQUEST_DIFF_BASE_SHA",
                 "v1.2.3-rc1", "--dotenv", "2 for bad input"):
        assert text in result.stdout


BAD_MESSAGES = [
    ("[run ../outside.ipynb]", "[run ../outside.ipynb] in the commit message: '../outside.ipynb' leaves the repository"),
    ("[run notebooks/../../x.ipynb]", "'notebooks/../../x.ipynb' leaves the repository"),
    ("[run /etc/x.ipynb]", "'/etc/x.ipynb' is absolute; give the path relative to the repository root"),
    ("[run notebooks/README.md]", "'notebooks/README.md' is not a notebook (.ipynb)"),
    (f"[run {TRAINING_CONFIG}]", f"'{TRAINING_CONFIG}' is not a notebook"),
    ("[run other/x.ipynb]", "'other/x.ipynb' is not under notebooks/"),
    ("[run notebooks/.ipynb_checkpoints/a-checkpoint.ipynb]", "is not under notebooks/ (checkpoints excluded)"),
    ("[run notebooks/missing.ipynb]",
     f"notebook 'notebooks/missing.ipynb' does not exist (notebooks: {INFERENCE}, {TRAINING})"),
    ("fix [run]", "malformed '[run]' in the commit message: expected [run notebooks/<name>.ipynb]"),
    ("fix [run   ]", "malformed '[run   ]' in the commit message"),
]


@pytest.mark.parametrize(("message", "error"), BAD_MESSAGES)
def test_bad_overrides(repo, tmp_path, message, error):
    dotenv = tmp_path / "plan.env"
    result = invoke(repo, "--before", "HEAD", "--dotenv", str(dotenv), "--message", message)
    assert result.exit_code == 2
    assert result.stderr.startswith("error: ") and error in result.stderr
    assert result.stdout == "" and not dotenv.exists()


@pytest.mark.parametrize(("args", "env", "error"), [
    (["--after", "f" * 40], {}, f"commit '{'f' * 40}' (after) is not in the repository"),
    (["--after", "no-such-branch"], {}, "commit 'no-such-branch' (after) is not in the repository"),
    (["--before", "HEAD~5"], {}, "commit 'HEAD~5' (before) is not in the repository"),
    (["--before", "--output=/tmp/x"], {}, "commit '--output=/tmp/x' (before) is not in the repository"),
    (["--source", "merge_request_event"], {}, "merge-request pipeline without a base"),
    (["--source", "merge_request_event"], {"CI_MERGE_REQUEST_DIFF_BASE_SHA": "c" * 40}, f"commit '{'c' * 40}' (before)"),
    (["--production-tag", "v(", "--tag", "v1"], {}, "production tag pattern 'v(' is not a valid regular expression"),
    (["--source", "schedule", "--scoring-notebook", "../x.ipynb"], {}, "the scoring notebook: '../x.ipynb' leaves"),
])
def test_bad_arguments(repo, args, env, error):
    result = invoke(repo, *args, **env)
    assert result.exit_code == 2, result.output
    assert result.stderr.startswith("error: ") and error in result.stderr


def test_dotenv_in_a_missing_folder(repo, tmp_path):
    result = invoke(repo, "--before", "HEAD", "--dotenv", str(tmp_path / "missing" / "plan.env"))
    assert result.exit_code == 2
    assert "error: [Errno 2] No such file or directory" in result.stderr and "missing/plan.env" in result.stderr


def test_not_a_git_repository(tmp_path):
    folder = tmp_path / "plain"
    folder.mkdir()
    result = CliRunner().invoke(detect, ["--repo", str(folder), "--before", "HEAD"])
    assert result.exit_code == 2
    assert f"error: '{folder}' is not a git repository" in result.stderr


def test_symlink_leaving_the_repository(repo, tmp_path):
    outside = tmp_path / "outside.ipynb"
    outside.write_text("{}")
    before = repo.head()
    os.symlink(outside, repo.root / "notebooks/evil.ipynb")
    repo.commit()
    detected = invoke(repo, "--before", before)
    assert detected.exit_code == 2
    error = f"changed file: 'notebooks/evil.ipynb' is a symlink that leads outside notebooks/ (to '{outside}')"
    assert error in detected.stderr
    requested = invoke(repo, "--before", "HEAD", "--message", "[run notebooks/evil.ipynb]")
    assert requested.exit_code == 2
    assert "[run notebooks/evil.ipynb] in the commit message: 'notebooks/evil.ipynb' is a symlink" in requested.stderr


def test_symlink_to_a_config_is_no_notebook(repo):
    os.symlink("../configs/training_config.yaml", repo.root / "notebooks/sneaky.ipynb")
    result = invoke(repo, "--before", "HEAD", "--message", "[run notebooks/sneaky.ipynb]")
    assert result.exit_code == 2
    assert "'notebooks/sneaky.ipynb' is a symlink that leads outside notebooks/" in result.stderr


def test_symlink_loop(repo):
    os.symlink("loop.ipynb", repo.root / "notebooks/loop.ipynb")
    result = invoke(repo, "--before", "HEAD", "--message", "[run notebooks/loop.ipynb]")
    assert result.exit_code == 2
    assert "'notebooks/loop.ipynb' cannot be resolved" in result.stderr


def test_non_utf8_file_names(repo):
    before = repo.head()
    repo.write(b"data/r\xe9sum\xe9.csv", "a,b\n")
    repo.commit()
    assert plan_of(invoke(repo, "--json", "--before", before)) == []
    repo.write(b"notebooks/caf\xe9.ipynb")
    repo.commit()
    result = invoke(repo, "--before", before)
    assert result.exit_code == 2
    assert "error: changed file: file name 'notebooks/caf\\xe9.ipynb' is not valid UTF-8; rename it" in result.stderr


def test_notebook_name_unfit_for_dotenv(repo):
    before = repo.head()
    repo.write("notebooks/my analysis.ipynb")
    repo.commit()
    result = invoke(repo, "--before", before)
    assert result.exit_code == 2
    assert "'notebooks/my analysis.ipynb' has characters a pipeline cannot pass on" in result.stderr


def test_megabyte_commit_message(repo):
    message = "[run" * 250_000 + f"\n[run {TRAINING}]\n" + "x" * 1_000_000
    start = time.perf_counter()
    result = invoke(repo, "--json", "--before", "HEAD", CI_COMMIT_MESSAGE=message)
    assert time.perf_counter() - start < 2
    assert plan_of(result) == [(TRAINING, "override")]
    long_path = invoke(repo, "--before", "HEAD", "--message", f"[run notebooks/{'a' * 1_000_000}.ipynb]")
    assert long_path.exit_code == 2
    assert "error: [run ...] in the commit message: notebook 'notebooks/aaaa" in long_path.stderr
    assert len(long_path.stderr) < 1000


def test_console_script_in_a_subprocess(repo, tmp_path):
    """The installed ``ds-pipelines`` entry point, as a GitLab job runs it."""
    before = repo.head()
    repo.touch(TRAINING_CONFIG)
    after = repo.commit()
    dotenv = tmp_path / "plan.env"
    env = {k: v for k, v in os.environ.items() if k not in GITLAB_VARIABLES} | {
        "CI_PIPELINE_SOURCE": "push", "CI_COMMIT_BEFORE_SHA": before, "CI_COMMIT_SHA": after,
        "CI_COMMIT_MESSAGE": "tune training", "CI_DEFAULT_BRANCH": "main",
    }
    script = str(Path(sys.executable).parent / "ds-pipelines")
    ok = subprocess.run([script, "detect", "--dotenv", str(dotenv)], cwd=repo.root, env=env, capture_output=True, text=True)
    assert ok.returncode == 0, ok.stderr
    assert read_dotenv(dotenv)["DSP_NOTEBOOKS"] == TRAINING
    assert f"{TRAINING}  (config-changed)" in ok.stdout
    bad = subprocess.run([script, "detect", "--message", "[run ../x.ipynb]"],
                         cwd=repo.root, env=env, capture_output=True, text=True)
    assert bad.returncode == 2
    assert "error: [run ../x.ipynb] in the commit message: '../x.ipynb' leaves the repository" in bad.stderr


@pytest.mark.parametrize(("variables", "release"), [
    ({"CI_PIPELINE_SOURCE": "push"}, "none"),
    ({"CI_PIPELINE_SOURCE": "schedule"}, "none"),
    ({"CI_PIPELINE_SOURCE": "push", "CI_COMMIT_TAG": "v1.2.3"}, "production"),
], ids=["push", "schedule", "production-tag"])
def test_a_project_run_by_its_dagster_deployment_plans_nothing_in_ci(repo, tmp_path, variables, release):
    registry = yaml.safe_load((repo.root / REGISTRY).read_text())
    registry["triggers"]["orchestrator"] = "dagster"
    (repo.root / REGISTRY).write_text(yaml.safe_dump(registry))
    before = repo.head()
    repo.touch(TRAINING)
    after = repo.commit(f"retrain [run {INFERENCE}]")
    dotenv = tmp_path / "plan.env"

    result = invoke(repo, "--dotenv", str(dotenv), CI_COMMIT_BEFORE_SHA=before, CI_COMMIT_SHA=after, **variables)

    assert result.exit_code == 0, result.stderr
    assert "Nothing to run: triggers.orchestrator is dagster in configs/notebooks.yaml" in result.stdout
    values = read_dotenv(dotenv)
    assert (values["DSP_SKIP"], values["DSP_DEFERRED"], values["DSP_RELEASE"]) == ("true", "true", release)
    assert values["DSP_SKIP_REASON"].startswith("triggers.orchestrator is dagster in configs/notebooks.yaml: the Dagster deployment runs")


def test_an_unknown_orchestrator_is_named(repo):
    registry = yaml.safe_load((repo.root / REGISTRY).read_text())
    registry["triggers"]["orchestrator"] = "jenkins"
    (repo.root / REGISTRY).write_text(yaml.safe_dump(registry))
    result = invoke(repo, CI_PIPELINE_SOURCE="schedule")
    assert result.exit_code == 2
    assert "triggers.orchestrator" in result.stderr and "'gitlab-ci' or 'dagster'" in result.stderr


@pytest.mark.parametrize("by_env", [True, False])
def test_a_project_folder_that_does_not_exist_is_named_with_where_it_came_from(tmp_path, by_env):
    missing = tmp_path / "missing"
    if by_env:
        result = CliRunner(env={"DS_PIPELINES_PROJECT_DIR": str(missing)}).invoke(detect, ["--before", "HEAD"])
        named_by = f"DS_PIPELINES_PROJECT_DIR={missing}"
    else:
        result = CliRunner(env={"DS_PIPELINES_PROJECT_DIR": None}).invoke(detect, ["--repo", str(missing), "--before", "HEAD"])
        named_by = f"--repo {missing}"
    assert result.exit_code == 2
    assert f"error: {named_by}: the folder does not exist" in result.stderr
    assert "git repository" not in result.stderr
