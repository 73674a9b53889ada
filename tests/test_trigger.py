"""The trigger rules, on real git repositories made in temporary folders."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time

import pytest
from gitrepo import (
    INFERENCE,
    INFERENCE_CONFIG,
    REGISTRY,
    TRAINING,
    TRAINING_CONFIG,
    GitRepo,
    make_project,
)

from ds_pipelines.project import Project
from ds_pipelines.project.defaults import (
    DEVELOPMENT,
    NO_RELEASE,
    PRODUCTION,
    TagPatternError,
    release_kind,
)
from ds_pipelines.triggers.git_changes import changed_files, parse_name_status
from ds_pipelines.triggers.rules import (
    CONFIG_CHANGED,
    DRY_RUN_REASON,
    MODIFIED,
    OVERRIDE,
    SCHEDULED,
    Change,
    Plan,
    PlannedNotebook,
    TriggerError,
    overrides,
    plan,
)

pytestmark = pytest.mark.timeout(60)  # a regex or git regression fails here, not after the global 15 minutes

EXTRA = "notebooks/extra.ipynb"
ZERO = "0" * 40


@pytest.fixture
def repo(tmp_path) -> GitRepo:
    return make_project(tmp_path / "repo", EXTRA)


def planned(repo: GitRepo, before: str | None, after: str = "HEAD", message: str = "", **kwargs) -> list[tuple[str, str]]:
    changes = changed_files(repo.root, before, after, **kwargs)
    return [(n.path, n.reason) for n in plan(Project(root=repo.root), changes, message).notebooks]


def _rename(old: str, new: str):
    def rename(r: GitRepo) -> None:
        (r.root / new).parent.mkdir(parents=True, exist_ok=True)
        r.git("mv", old, new)
    return rename


def _edit(*paths: str):
    def edit(r: GitRepo) -> None:
        for path in paths:
            if (r.root / path).exists():
                r.touch(path)
            else:
                r.write(path)
    return edit


PUSHES = [
    pytest.param(_edit(TRAINING), "", [(TRAINING, MODIFIED)], id="notebook modified"),
    pytest.param(_edit(INFERENCE_CONFIG), "", [(INFERENCE, CONFIG_CHANGED)], id="config changed"),
    pytest.param(_edit(INFERENCE, TRAINING_CONFIG), "", [(TRAINING, CONFIG_CHANGED), (INFERENCE, MODIFIED)],
                 id="upstream first, whatever the reasons"),
    pytest.param(_edit(TRAINING, TRAINING_CONFIG), "", [(TRAINING, MODIFIED)], id="one entry, first reason"),
    pytest.param(_edit("notebooks/a_new.ipynb", INFERENCE, TRAINING), "",
                 [("notebooks/a_new.ipynb", MODIFIED), (TRAINING, MODIFIED), (INFERENCE, MODIFIED)],
                 id="dependency order, then path order"),
    pytest.param(_edit("notebooks/sub/deep.ipynb"), "", [("notebooks/sub/deep.ipynb", MODIFIED)], id="nested notebook"),
    pytest.param(lambda r: r.git("rm", "-q", EXTRA), "", [], id="deleted notebook"),
    pytest.param(_rename(EXTRA, "notebooks/renamed.ipynb"), "", [("notebooks/renamed.ipynb", MODIFIED)], id="renamed"),
    pytest.param(_rename(EXTRA, "archive/extra.ipynb"), "", [], id="moved out of notebooks/"),
    pytest.param(_edit("notebooks/.ipynb_checkpoints/training_example-checkpoint.ipynb"), "", [], id="checkpoint"),
    pytest.param(_edit("notebooks/data.csv", "README.md", "src/x.py"), "", [], id="not notebooks"),
    pytest.param(_edit("other/x.ipynb"), "", [], id="notebook outside notebooks/"),
    pytest.param(_edit(REGISTRY), "", [], id="registry alone runs nothing"),
    pytest.param(_edit("README.md"), f"docs\n\n[run {INFERENCE}]", [(INFERENCE, OVERRIDE)], id="override"),
    pytest.param(_edit("README.md"), f"[run {TRAINING}] and\n[RUN   ./{EXTRA}  ]\n[run {TRAINING}]",
                 [(EXTRA, OVERRIDE), (TRAINING, OVERRIDE)], id="several overrides, normalized"),
    pytest.param(_edit(INFERENCE), f"[run {INFERENCE}]", [(INFERENCE, MODIFIED)], id="override of a modified one"),
    pytest.param(_edit(TRAINING), f"[run {INFERENCE}] [skip run]", [], id="skip wins"),
    pytest.param(_edit(TRAINING), "[Skip  Run] and a malformed [run]", [], id="skip wins over a malformed override"),
    pytest.param(_edit(TRAINING), "[running] [run-x] [skipped run]", [(TRAINING, MODIFIED)], id="look-alike markers"),
]


@pytest.mark.parametrize(("change", "message", "expected"), PUSHES)
def test_push(repo, change, message, expected):
    before = repo.head()
    change(repo)
    repo.commit()
    assert planned(repo, before, message=message) == expected


def test_renamed_and_edited_notebook_runs_under_its_new_path(repo):
    before = repo.head()
    repo.git("mv", EXTRA, "notebooks/renamed.ipynb")
    repo.touch("notebooks/renamed.ipynb")
    repo.commit()
    assert [c.path for c in changed_files(repo.root, before) if c.status != "D"] == ["notebooks/renamed.ipynb"]
    assert planned(repo, before) == [("notebooks/renamed.ipynb", MODIFIED)]


def test_rename_is_reported_with_old_path(repo):
    before = repo.head()
    repo.git("mv", EXTRA, "notebooks/renamed.ipynb")
    repo.commit()
    assert changed_files(repo.root, before) == [Change("R", "notebooks/renamed.ipynb", EXTRA)]


def test_push_of_several_commits_and_a_merge(repo):
    before = repo.head()
    repo.git("checkout", "-q", "-b", "feature")
    repo.touch(TRAINING)
    repo.commit("feature work")
    repo.git("checkout", "-q", "main")
    repo.touch(INFERENCE_CONFIG)
    repo.commit("main work")
    repo.git("merge", "-q", "--no-ff", "feature", "-m", "merge feature")
    assert planned(repo, before) == [(TRAINING, MODIFIED), (INFERENCE, CONFIG_CHANGED)]
    # The merge commit alone, against its first parent: what the feature brought.
    assert planned(repo, "HEAD^1") == [(TRAINING, MODIFIED)]


def test_first_push_compares_with_the_empty_tree(repo):
    notes = []
    result = planned(repo, ZERO, warn=notes.append)
    assert result == [(EXTRA, MODIFIED), (TRAINING, MODIFIED), (INFERENCE, MODIFIED)]
    assert planned(repo, None) == result
    assert "empty tree" in notes[0]


def test_first_push_of_a_branch_compares_with_the_default_branch(repo):
    repo.git("checkout", "-q", "-b", "feature")
    repo.touch(TRAINING_CONFIG)
    repo.commit()
    notes = []
    assert planned(repo, ZERO, default_branch="main", warn=notes.append) == [(TRAINING, CONFIG_CHANGED)]
    assert "main" in notes[0]
    # The default branch itself, or a branch without own commits: everything, as GitLab's rules:changes does.
    assert len(planned(repo, ZERO, "main", default_branch="main")) == 3


def test_force_push_falls_back_to_the_parent(repo):
    base = repo.head()
    repo.touch(TRAINING)
    rewritten = repo.commit("pushed, then rewritten")
    repo.git("reset", "-q", "--hard", base)
    repo.touch(INFERENCE_CONFIG)
    repo.commit("force-pushed")
    repo.git("reflog", "expire", "--expire=now", "--all")
    repo.git("gc", "-q", "--prune=now")
    with pytest.raises(subprocess.CalledProcessError):
        repo.git("cat-file", "-e", rewritten)
    notes = []
    assert planned(repo, rewritten, warn=notes.append) == [(INFERENCE, CONFIG_CHANGED)]
    assert rewritten in notes[0] and "force push" in notes[0]
    with pytest.raises(TriggerError, match=f"commit '{rewritten}' \\(before\\) is not in the repository"):
        changed_files(repo.root, rewritten, force_push_fallback=False)


def test_a_git_command_that_hangs_is_stopped_and_named(repo):
    # A FIFO as the repository's config: git blocks opening it, as on a hung network file system.
    config = repo.root / ".git" / "config"
    config.unlink()
    os.mkfifo(config)
    started = time.monotonic()
    with pytest.raises(TriggerError, match=r"^git rev-parse --git-dir in '.*repo' did not finish within 0.5 s: stopped"):
        changed_files(repo.root, None, git_timeout_s=0.5)
    assert time.monotonic() - started < 10


def test_shallow_clone_without_the_parent_compares_with_the_empty_tree(repo, tmp_path):
    repo.touch(TRAINING)
    repo.commit()
    clone = GitRepo(tmp_path / "clone")
    subprocess.run(["git", "clone", "-q", "--depth", "1", f"file://{repo.root}", str(clone.root)], check=True)
    notes = []
    assert len(planned(clone, "1" * 40, warn=notes.append)) == 3
    assert "with the empty tree instead" in notes[0]


def test_project_in_a_subfolder_of_the_repository(tmp_path):
    project = make_project(tmp_path / "mono" / "ds")
    (project.root / ".git").rename(tmp_path / "mono" / ".git")
    mono = GitRepo(tmp_path / "mono")
    before = mono.commit("the project moves into ds/")
    project.touch(TRAINING)
    mono.write(INFERENCE)  # mono/notebooks/...: outside the project
    mono.commit()
    assert planned(project, before) == [(TRAINING, MODIFIED)]


def test_merge_request_compares_with_the_diff_base(repo):
    base = repo.diverge_feature_branch()
    assert planned(repo, base, "feature") == [(TRAINING, CONFIG_CHANGED)]


def test_schedule_runs_the_scoring_notebook_only(repo):
    project = Project(root=repo.root)
    result = plan(project, [Change("M", TRAINING)], f"[skip run] [run {EXTRA}]", "schedule")
    assert result.notebooks == (PlannedNotebook(INFERENCE, SCHEDULED),)
    assert plan(project, source="schedule", scoring_notebook=TRAINING).notebooks == (PlannedNotebook(TRAINING, SCHEDULED),)
    with pytest.raises(TriggerError, match="the scoring notebook: notebook 'notebooks/nope.ipynb' does not exist"):
        plan(project, source="schedule", scoring_notebook="notebooks/nope.ipynb")


@pytest.mark.parametrize(("tag", "release"), [
    ("v1.2.3", PRODUCTION),
    ("v10.20.30", PRODUCTION),
    ("dev-1.2.3", DEVELOPMENT),
    ("v1.2.3-rc1", NO_RELEASE),
    ("v1.2", NO_RELEASE),
    ("release-1", NO_RELEASE),
    ("xv1.2.3", NO_RELEASE),
    (None, NO_RELEASE),
])
def test_tags(repo, tag, release):
    assert release_kind(tag) == release
    result = plan(Project(root=repo.root), [Change("M", TRAINING)], f"[run {INFERENCE}]", tag=tag)
    assert result.release == release
    assert result.skip == bool(tag)


def test_tag_patterns_are_configurable():
    assert release_kind("v1.2.3-rc1", production=r"v[0-9.]+(-rc[0-9]+)?") == PRODUCTION
    assert release_kind("1.2.3", production=r"[0-9.]+", development="never") == PRODUCTION
    with pytest.raises(TagPatternError, match=r"production tag pattern '\(' is not a valid regular expression"):
        release_kind("v1", production="(")


def test_skip_reasons(repo):
    project = Project(root=repo.root)
    assert plan(project, [Change("M", "README.md")]).skip_reason == "no notebook or notebook config changed"
    assert plan(project, [Change("M", TRAINING)], "x [skip run]").skip_reason == "[skip run] in the commit message"
    assert "production release" in plan(project, tag="v1.0.0").skip_reason


def test_gitlab_api_diffs_plan_like_git(repo):
    """What a sensor would do: changes from GitLab's compare API, no git."""
    diffs = [
        {"old_path": EXTRA, "new_path": "notebooks/renamed.ipynb", "renamed_file": True},
        {"old_path": TRAINING_CONFIG, "new_path": TRAINING_CONFIG},
        {"old_path": INFERENCE, "new_path": INFERENCE, "deleted_file": True},
    ]
    changes = [Change.from_gitlab_diff(d) for d in diffs]
    assert changes == [Change("R", "notebooks/renamed.ipynb", EXTRA), Change("M", TRAINING_CONFIG), Change("D", INFERENCE)]
    repo.git("mv", EXTRA, "notebooks/renamed.ipynb")
    result = plan(Project(root=repo.root), changes)
    expected = [("notebooks/renamed.ipynb", MODIFIED), (TRAINING, CONFIG_CHANGED)]
    assert [(n.path, n.reason) for n in result.notebooks] == expected


def test_parse_name_status_keeps_undecodable_names():
    out = b"M\0notebooks/a.ipynb\0R087\0notebooks/old.ipynb\0notebooks/caf\xe9.ipynb\0D\0x\0"
    changes = parse_name_status(out)
    assert changes[1] == Change("R", "notebooks/caf\udce9.ipynb", "notebooks/old.ipynb")
    assert changes[1].path.encode("utf-8", "surrogateescape") == b"notebooks/caf\xe9.ipynb"
    assert [c.status for c in changes] == ["M", "R", "D"]
    assert parse_name_status(b"") == []


@pytest.mark.parametrize("message", [
    "[run" * 250_000,
    "[run " + "a" * 1_000_000,
    "[run " + " " * 1_000_000 + "x",
    "[skip" + " " * 1_000_000,
    "[run\t" + "\t " * 500_000,
    ("x" * 999 + "\n") * 1000 + f"[run {TRAINING}]",
])
def test_megabyte_messages_are_read_in_linear_time(message):
    start = time.perf_counter()
    found = overrides(message)
    assert time.perf_counter() - start < 0.5
    assert found == ([TRAINING] if message.endswith("]") else [])


def test_plan_serializations():
    result = Plan((PlannedNotebook(TRAINING, MODIFIED), PlannedNotebook(INFERENCE, OVERRIDE)))
    assert result.to_dict() == {
        "notebooks": [{"path": TRAINING, "reason": MODIFIED}, {"path": INFERENCE, "reason": OVERRIDE}],
        "skip": False, "skip_reason": None, "release": "none", "tag": None, "deferred": False,
        "dry_run": False, "would_run": [],
    }
    assert result.to_dotenv() == (
        f"DSP_NOTEBOOKS={TRAINING} {INFERENCE}\nDSP_SKIP=false\nDSP_SKIP_REASON=\nDSP_RELEASE=none\nDSP_TAG=\n"
        "DSP_DEFERRED=false\nDSP_DRY_RUN=false\n"
    )
    assert Plan.from_dict(result.to_dict()) == result
    dry = Plan(skip_reason=DRY_RUN_REASON, dry_run=True, would_run=(PlannedNotebook(TRAINING, MODIFIED),))
    assert Plan.from_dict(json.loads(dry.to_json())) == dry
    assert "DSP_NOTEBOOKS=\nDSP_SKIP=true\n" in dry.to_dotenv() and dry.to_dotenv().endswith("DSP_DRY_RUN=true\n")


@pytest.mark.parametrize(("data", "error"), [
    ([], "expected a JSON object"),
    ({"notebooks": [{"path": TRAINING}]}, "'notebooks' must be a list of {path, reason} objects"),
    ({"would_run": "notebooks/x.ipynb"}, "'would_run' must be a list"),
    ({"dry_run": "yes"}, "'dry_run' has the wrong type (str)"),
])
def test_a_plan_read_back_is_checked(data, error):
    with pytest.raises(TriggerError, match=re.escape(error)):
        Plan.from_dict(data)


def test_plan_marker_makes_a_dry_run_of_what_would_run(repo):
    project = Project(root=repo.root)
    changes = [Change("M", TRAINING)]
    for marker in ("[plan]", "[PLAN]", "see [Plan] please"):
        result = plan(project, changes, marker)
        assert (result.dry_run, result.skip, result.notebooks) == (True, True, ())
        assert result.skip_reason == DRY_RUN_REASON
        assert [(n.path, n.reason) for n in result.would_run] == [(TRAINING, MODIFIED)]
    # [run ...] adds what the dry run plans, in run order (training before inference).
    forced = plan(project, changes, f"[plan] [run {INFERENCE}]")
    assert [(n.path, n.reason) for n in forced.would_run] == [(TRAINING, MODIFIED), (INFERENCE, OVERRIDE)]
    # Nothing changed: still a dry run, which would run nothing.
    idle = plan(project, [Change("M", "README.md")], "[plan]")
    assert (idle.dry_run, idle.would_run) == (True, ())
    # [skip run] wins: no dry run, nothing planned.
    skipped = plan(project, changes, "[plan] [skip run]")
    assert (skipped.dry_run, skipped.would_run, skipped.skip_reason) == (False, (), "[skip run] in the commit message")
    # A bad [run ...] is still bad input in a dry run.
    with pytest.raises(TriggerError, match="does not exist"):
        plan(project, changes, "[plan] [run notebooks/missing.ipynb]")
    # Not a marker: [plan] needs its brackets, and a plain [plans] is something else.
    for message in ("plan", "[plans]", "[plan ]"):
        assert not plan(project, changes, message).dry_run


def test_schedules_and_tags_ignore_the_plan_marker(repo):
    project = Project(root=repo.root)
    scheduled = plan(project, [], "[plan]", source="schedule", scoring_notebook=INFERENCE)
    assert (scheduled.dry_run, [(n.path, n.reason) for n in scheduled.notebooks]) == (False, [(INFERENCE, SCHEDULED)])
    tagged = plan(project, [], "[plan]", tag="v1.0.0")
    assert not tagged.dry_run and tagged.release == "production"


def test_dotenv_values_are_single_line_and_plain():
    result = Plan(skip_reason="tag 'a$b\"c`d\n' x", tag="a$b\"c`d\nDSP_SKIP=false")
    lines = result.to_dotenv().splitlines()
    keys = ["DSP_NOTEBOOKS", "DSP_SKIP", "DSP_SKIP_REASON", "DSP_RELEASE", "DSP_TAG", "DSP_DEFERRED", "DSP_DRY_RUN"]
    assert [line.split("=", 1)[0] for line in lines] == keys
    assert "DSP_SKIP=true" in lines
    assert "DSP_TAG=a_b_c_d_DSP_SKIP=false" in lines
    assert not any(c in result.to_dotenv() for c in "$\"`'")


def test_dotenv_over_gitlabs_limit_is_refused():
    many = Plan(tuple(PlannedNotebook(f"notebooks/notebook_{i:04}.ipynb", MODIFIED) for i in range(300)))
    with pytest.raises(TriggerError, match="over GitLab's 5120-byte limit"):
        many.to_dotenv()


def test_no_dagster_or_gitlab_imports(repo):
    code = (
        "import sys\nfrom pathlib import Path\n"
        "from ds_pipelines.triggers.git_changes import changed_files\nfrom ds_pipelines.triggers.rules import plan\n"
        "from ds_pipelines.project import Project\n"
        f"plan(Project(root=Path({str(repo.root)!r})), changed_files(Path({str(repo.root)!r}), None))\n"
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'dagster', 'dagstermill', 'gitlab', 'mlflow'}))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
