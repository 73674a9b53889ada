"""The child pipeline ``ds-pipelines detect --child-pipeline`` writes: one job per planned notebook, on the
runner of its device, ``needs:`` following ``after:``; a plan that runs nothing pulls no big image.

Checked three ways: the YAML's jobs, GitLab's CI schema (check-jsonschema's bundled copy), and gitlab-ci-local
running the generated file as a pipeline of its own (the notebooks really run, in order).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from ci_helpers import CiProject, job_environment, missing_tools
from click.testing import CliRunner
from gitrepo import (
    INFERENCE,
    INFERENCE_CONFIG,
    TRAINING,
    GitRepo,
    make_project,
    notebook_json,
)
from required import require

from ds_pipelines.cli.detect import detect
from ds_pipelines.results.origin import Provenance
from ds_pipelines.triggers.child_pipeline import NOTHING_TO_RUN_JOB, PLAN_JOB
from ds_pipelines.triggers.rules import Plan

CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
REPORT = "notebooks/report.ipynb"  # a third notebook, cpu, after nothing
IMAGE = "registry.example.com/group/project:3f2a9c"
# Every variable detect reads for the child pipeline, unset unless a test sets it.
VARIABLES = ["CI_PIPELINE_SOURCE", "CI_COMMIT_BEFORE_SHA", "CI_COMMIT_SHA", "CI_COMMIT_MESSAGE", "CI_COMMIT_TAG",
             "CI_MERGE_REQUEST_DIFF_BASE_SHA", "CI_DEFAULT_BRANCH", "SCORING_NOTEBOOK", "IMAGE", "LIGHT_IMAGE",
             "RESULTS_DIR", "GPU_RUNNER", "CPU_RUNNER", "LIGHT_RUNNER", "COMMIT_RUNNER", "SCHEDULED_RUNNER"]
RUNNERS = {"COMMIT_RUNNER": "small", "SCHEDULED_RUNNER": "nightly", "GPU_RUNNER": "gpu", "CPU_RUNNER": "cpu",
           "LIGHT_RUNNER": "light"}


@pytest.fixture
def repo(tmp_path) -> GitRepo:
    return make_project(tmp_path / "repo", REPORT)


def child(repo: GitRepo, out: Path, message: str, **env: str) -> dict:
    """detect's child pipeline for a push whose commit message is ``message``."""
    variables = {name: None for name in VARIABLES} | {"DS_PIPELINES_PROJECT_DIR": str(repo.root),
                                                      "CI_COMMIT_BEFORE_SHA": repo.head(), "CI_COMMIT_MESSAGE": message} | env
    result = CliRunner(env=variables).invoke(detect, ["--child-pipeline", str(out)], catch_exceptions=False)
    assert result.exit_code == 0, result.stderr
    text = out.read_text()
    assert text.startswith("# Written by `ds-pipelines detect --child-pipeline`")
    return yaml.safe_load(text)


def jobs_of(config: dict) -> dict[str, dict]:
    """The notebook jobs (or the one job of an empty plan)."""
    return {name: job for name, job in config.items() if isinstance(job, dict) and "script" in job
            and job["stage"] == "execute"}


def publishing_of(config: dict) -> dict[str, dict]:
    return {name: job for name, job in config.items() if isinstance(job, dict) and job.get("stage") == "notify"}


def schema_check(*files: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.gitlab-ci", "--data-transform", "gitlab-ci", *map(str, files)],
        check=False, capture_output=True, text=True, timeout=120,
    )


def test_each_notebook_runs_on_the_runner_of_its_device_after_its_upstream(repo, tmp_path):
    config = child(repo, tmp_path / "child.yml", f"[run {INFERENCE}] [run {REPORT}] [run {TRAINING}]",
                   IMAGE=IMAGE, **RUNNERS)

    jobs = jobs_of(config)
    # Run order in the file too: training (upstream of inference) first.
    assert list(jobs) == ["run-training_example", "run-inference_example", "run-report"]
    assert {name: job["tags"] for name, job in jobs.items()} == {
        "run-training_example": ["gpu"], "run-inference_example": ["cpu"], "run-report": ["cpu"],
    }
    assert {name: job["needs"] for name, job in jobs.items()} == {
        "run-training_example": [],
        "run-inference_example": [{"job": "run-training_example", "artifacts": True}],
        "run-report": [],
    }
    # Inference starts whatever training did, and runs only when training says it succeeded.
    assert {name: job.get("when", "on_success") for name, job in jobs.items()} == {
        "run-training_example": "on_success", "run-inference_example": "always", "run-report": "on_success",
    }
    assert jobs["run-inference_example"]["script"][1] == (
        'if [ "${DSP_SUCCEEDED_training_example:-}" != true ]; then '
        "echo 'Not run: notebooks/training_example.ipynb did not succeed.'; exit 0; fi")
    # What training wrote in its checkout (the model, the held-out set) is copied into inference's.
    assert jobs["run-inference_example"]["script"][2] == "cp -a results/training_example.files/. ."
    keep, mask, success, last = jobs["run-training_example"]["script"][-4:]
    assert keep.startswith('if [ "$status" = 0 ]; then mkdir -p results/training_example.files && find . -type f')
    # What it wrote is masked with its results folder before either is kept; neither is kept if masking fails.
    assert mask.startswith('if ! ds-pipelines mask-secrets "$RESULTS_DIR" --files results/training_example.files; then')
    assert mask.endswith('rm -rf "$RESULTS_DIR" results/training_example.files; exit 1; fi')
    assert success == 'if [ "$status" = 0 ]; then echo "DSP_SUCCEEDED_training_example=true" >> notebook-job.env; fi'
    assert last == 'exit "$status"'
    assert jobs["run-training_example"]["artifacts"]["paths"] == ["results/training_example/", "results/training_example.files/"]
    assert {job["image"] for job in jobs.values()} == {IMAGE}
    inference = jobs["run-inference_example"]
    assert inference["variables"] == {"DSP_NOTEBOOK": INFERENCE, "DSP_REASON": "override",
                                      "RESULTS_DIR": "results/inference_example"}
    assert inference["artifacts"]["paths"] == ["results/inference_example/", "results/inference_example.files/"]
    # Its URL, for the publishing jobs' links into its artifacts; the metrics report `ds-pipelines run` leaves in its
    # results folder, for GitLab's merge-request metrics widget.
    assert inference["artifacts"]["reports"] == {"dotenv": "notebook-job.env", "metrics": "results/inference_example/metrics.txt"}
    assert inference["script"][0] == 'echo "DSP_JOB_URL_inference_example=$CI_JOB_URL" > notebook-job.env'
    assert inference["artifacts"]["access"] == "developer" and inference["artifacts"]["when"] == "always"
    assert inference["interruptible"] is True
    script = "\n".join(inference["script"])
    assert 'ds-pipelines run "$DSP_NOTEBOOK" --output-dir "$RESULTS_DIR"' in script
    assert 'ds-pipelines mask-secrets "$RESULTS_DIR"' in script
    # Runs and pages name the parent's pipeline source: a child's own is parent_pipeline.
    assert config["variables"] == {"DSP_PIPELINE_SOURCE": "push"}


def test_publishing_runs_on_the_light_runner_after_every_notebook_job(repo, tmp_path):
    config = child(repo, tmp_path / "child.yml", f"[run {INFERENCE}] [run {REPORT}] [run {TRAINING}]",
                   IMAGE=IMAGE, **RUNNERS)
    publishing = publishing_of(config)
    assert set(publishing) == {"write-to-wiki", "notify-slack"}  # no merge request: no comment
    notebook_jobs = [{"job": name, "artifacts": True} for name in jobs_of(config)]
    for job in publishing.values():
        assert job["tags"] == ["light"] and job["needs"] == notebook_jobs and job["allow_failure"] is True
    assert (publishing["write-to-wiki"]["when"], publishing["write-to-wiki"]["resource_group"]) == ("always", "wiki")
    assert publishing["notify-slack"]["when"] == "on_failure"
    # The folders that exist (a notebook whose upstream failed kept none), each linked in its own job.
    wiki = publishing["write-to-wiki"]["script"]
    assert wiki[1] == ('if [ -f results/training_example/results.json ]; then set -- "$@" --results '
                       'results/training_example --job-url "$DSP_JOB_URL_training_example"; fi')
    assert wiki[-1] == 'ds-pipelines publish wiki "$@"'
    assert publishing["notify-slack"]["script"][-1] == 'ds-pipelines notify slack "$@"'
    assert "--job-url" not in "\n".join(publishing["notify-slack"]["script"])


def test_a_merge_request_gets_its_comment(repo, tmp_path):
    base = repo.head()
    repo.touch(TRAINING)
    repo.commit()
    config = child(repo, tmp_path / "child.yml", "", CI_PIPELINE_SOURCE="merge_request_event",
                   CI_MERGE_REQUEST_DIFF_BASE_SHA=base, CI_MERGE_REQUEST_IID="7", **RUNNERS)
    comment = publishing_of(config)["publish-metrics-comment"]
    assert (comment["when"], comment["allow_failure"], comment["tags"]) == ("always", True, ["light"])
    assert comment["script"][-1] == 'ds-pipelines publish mr --mr 7 "$@"'
    assert config["variables"] == {"DSP_PIPELINE_SOURCE": "merge_request_event", "DSP_MERGE_REQUEST_IID": "7"}
    # In the child, whose own source is parent_pipeline, runs and pages name the merge request.
    origin = Provenance.from_gitlab_ci({"CI_PIPELINE_SOURCE": "parent_pipeline", **config["variables"],
                                        "CI_PROJECT_URL": "https://gitlab.example.com/g/p"})
    assert (origin.trigger, origin.merge_request) == ("merge_request_event", "7")
    assert origin.merge_request_url == "https://gitlab.example.com/g/p/-/merge_requests/7"


def test_a_notebook_whose_upstream_is_not_planned_starts_at_once(repo, tmp_path):
    jobs = jobs_of(child(repo, tmp_path / "child.yml", f"[run {INFERENCE}]", **RUNNERS))
    assert list(jobs) == ["run-inference_example"]
    assert jobs["run-inference_example"]["needs"] == []


@pytest.mark.parametrize(("source", "runner"), [("push", "small"), ("merge_request_event", "small"), ("schedule", "nightly")])
def test_device_runners_default_to_the_pipelines_runner(repo, tmp_path, source, runner):
    env = {"CI_PIPELINE_SOURCE": source, "COMMIT_RUNNER": "small", "SCHEDULED_RUNNER": "nightly", "SCORING_NOTEBOOK": TRAINING}
    if source == "merge_request_event":
        env["CI_MERGE_REQUEST_DIFF_BASE_SHA"] = repo.head()
    repo.touch(TRAINING)
    repo.touch(INFERENCE_CONFIG)
    before = repo.head()
    repo.commit()
    config = child(repo, tmp_path / "child.yml", "", CI_COMMIT_BEFORE_SHA=before, **env)
    jobs = jobs_of(config)
    assert jobs and {tuple(job["tags"]) for job in jobs.values()} == {(runner,)}


def test_without_runner_variables_jobs_carry_no_tags(repo, tmp_path):
    jobs = jobs_of(child(repo, tmp_path / "child.yml", f"[run {TRAINING}]"))
    assert "tags" not in jobs["run-training_example"]
    # The image detect was not told about is the component's default, expanded by GitLab.
    assert jobs["run-training_example"]["image"] == "$CI_REGISTRY_IMAGE:latest"


def test_a_skipped_plan_pulls_no_big_image_and_takes_no_gpu(repo, tmp_path):
    repo.touch(TRAINING)
    before = repo.head()
    repo.commit()
    config = child(repo, tmp_path / "child.yml", "[skip run]", CI_COMMIT_BEFORE_SHA=before, IMAGE=IMAGE, **RUNNERS)
    jobs = jobs_of(config)
    assert [name for name, job in config.items() if isinstance(job, dict)] == [NOTHING_TO_RUN_JOB]
    nothing = jobs[NOTHING_TO_RUN_JOB]
    assert (nothing["image"], nothing["tags"]) == ("python:3.11-alpine", ["light"])
    assert nothing["script"] == ["echo 'Nothing to run: [skip run] in the commit message.'"]
    assert IMAGE not in json.dumps(config) and "gpu" not in json.dumps(config)


def test_a_dry_run_only_posts_its_plan(repo, tmp_path):
    base = repo.head()
    repo.touch(TRAINING)
    repo.commit()
    config = child(repo, tmp_path / "child.yml", f"[plan] [run {REPORT}]", CI_PIPELINE_SOURCE="merge_request_event",
                   CI_MERGE_REQUEST_DIFF_BASE_SHA=base, CI_MERGE_REQUEST_IID="7", IMAGE=IMAGE, **RUNNERS)
    # One job: no notebook job, no publishing of results, no GPU runner.
    assert [name for name, job in config.items() if isinstance(job, dict)] == [PLAN_JOB]
    assert config["stages"] == ["execute"]
    job = config[PLAN_JOB]
    # With the runner tags the notebook jobs would carry.
    assert (job["image"], job["tags"], job["script"]) == (
        IMAGE, ["light"], ["ds-pipelines publish plan --mr 7 --gpu-runner gpu --cpu-runner cpu"])
    assert "ds-pipelines run" not in json.dumps(config)  # and its one job is on the light runner, above
    plan = Plan.from_dict(json.loads(job["variables"]["DSP_PLAN"]))
    assert plan.dry_run and plan.notebooks == ()
    assert [(n.path, n.reason) for n in plan.would_run] == [(REPORT, "override"), (TRAINING, "modified")]  # path order
    assert {k: v for k, v in job["variables"].items() if k != "DSP_PLAN"} == {
        "DSP_PIPELINE_SOURCE": "merge_request_event", "DSP_MERGE_REQUEST_IID": "7"}
    # A push without a merge request: the job prints the plan (publish plan then says there is no merge request).
    pushed = child(repo, tmp_path / "push.yml", "[plan]", GPU_RUNNER="gpu runner")
    assert pushed[PLAN_JOB]["script"] == ["ds-pipelines publish plan --gpu-runner 'gpu runner' --cpu-runner ''"]
    assert schema_check(tmp_path / "child.yml", tmp_path / "push.yml").returncode == 0


def test_the_light_image_and_results_folder_are_settings(repo, tmp_path):
    config = child(repo, tmp_path / "skip.yml", "[skip run]", LIGHT_IMAGE="busybox:1.36")
    assert jobs_of(config)[NOTHING_TO_RUN_JOB]["image"] == "busybox:1.36"
    jobs = jobs_of(child(repo, tmp_path / "run.yml", f"[run {REPORT}]", RESULTS_DIR="out/"))
    assert jobs["run-report"]["variables"]["RESULTS_DIR"] == "out/report"


def test_generated_pipelines_validate_against_gitlab_schema(repo, tmp_path):
    child(repo, tmp_path / "run.yml", f"[run {INFERENCE}] [run {TRAINING}]", IMAGE=IMAGE, **RUNNERS)
    child(repo, tmp_path / "skip.yml", "[skip run]", **RUNNERS)
    result = schema_check(tmp_path / "run.yml", tmp_path / "skip.yml")
    assert result.returncode == 0, result.stdout + result.stderr
    # The schema is strict: a misspelt key fails, as here.
    (tmp_path / "typo.yml").write_text((tmp_path / "run.yml").read_text().replace("interruptible:", "interuptible:"))
    typo = schema_check(tmp_path / "typo.yml")
    assert typo.returncode == 1 and "interuptible" in typo.stdout


def test_bad_input_leaves_no_child_pipeline(repo, tmp_path):
    out = tmp_path / "child.yml"
    variables = {name: None for name in VARIABLES} | {"DS_PIPELINES_PROJECT_DIR": str(repo.root),
                                                      "CI_COMMIT_MESSAGE": "[run notebooks/missing.ipynb]"}
    result = CliRunner(env=variables).invoke(detect, ["--child-pipeline", str(out)], catch_exceptions=False)
    assert result.exit_code == 2
    assert "notebook 'notebooks/missing.ipynb' does not exist" in result.stderr
    assert not out.exists() and list(tmp_path.iterdir()) == [repo.root]


# --- The generated pipeline, run by gitlab-ci-local ------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_child_pipeline_runs_the_notebooks_in_order(tmp_path):
    missing = missing_tools()
    if missing:
        require("cannot run the child pipeline offline; install: " + "; ".join(missing))
    # Each job in its own copy of the repository (--shell-isolation): inference scores with the model and the
    # held-out set training wrote under outputs/ in its job, which only the jobs' artifacts carry over.
    project = CiProject.create(tmp_path)
    child_file = project.root / "child-pipeline.yml"
    result = subprocess.run(
        [str(Path(sys.executable).parent / "ds-pipelines"), "detect", "--child-pipeline", str(child_file)],
        cwd=project.root, capture_output=True, text=True, timeout=120,
        env=job_environment(CI_PIPELINE_SOURCE="push", CI_COMMIT_BEFORE_SHA=project.head(),
                            CI_COMMIT_MESSAGE=f"[run {INFERENCE}] [run {TRAINING}]", GPU_RUNNER="gpu", CPU_RUNNER="cpu"),
    )
    assert result.returncode == 0, result.stderr

    run = project.gitlab_ci_local("--file", child_file.name, variables={}, timeout=540)

    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-5000:]
    assert re.search(r"PASS\s+run-training_example", output) and re.search(r"PASS\s+run-inference_example", output), output[-3000:]
    # needs: inference starts only once training has finished.
    assert output.index("run-training_example finished") < output.index("run-inference_example starting"), output[-3000:]
    for name, notebook in (("training_example", TRAINING), ("inference_example", INFERENCE)):
        results = project.artifacts(f"run-{name}") / "results" / name
        summary = json.loads((results / "results.json").read_text())
        assert [(n["notebook"], n["status"]) for n in summary["notebooks"]] == [(notebook, "success")]
        assert (results / summary["notebooks"][0]["executed_notebook"]).is_file()
    trained = project.artifacts("run-training_example") / "results" / "training_example.files" / "outputs" / "training"
    assert {"xgb_model.json", "holdout.csv"} <= {path.name for path in trained.iterdir()}
    assert not list((project.artifacts("run-training_example") / "results" / "training_example.files").rglob("__pycache__"))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_failed_notebook_stops_its_downstream_and_is_still_published(tmp_path, fake_gitlab, fake_slack):
    missing = missing_tools()
    if missing:
        require("cannot run the child pipeline offline; install: " + "; ".join(missing))
    project = CiProject.create(tmp_path)
    broken, downstream = "notebooks/broken.ipynb", "notebooks/after_broken.ipynb"
    project.write(broken, notebook_json("raise ValueError('broken on purpose')"))
    project.write(downstream, notebook_json("print('never runs')"))
    project.edit_yaml("configs/notebooks.yaml", lambda registry: registry["notebooks"].update({downstream: {"after": [broken]}}))
    project.push("A notebook that fails, and one after it")
    child_file = project.root / "child-pipeline.yml"
    detect = subprocess.run(
        [str(Path(sys.executable).parent / "ds-pipelines"), "detect", "--child-pipeline", str(child_file)],
        cwd=project.root, capture_output=True, text=True, timeout=120,
        env=job_environment(CI_PIPELINE_SOURCE="push", CI_COMMIT_BEFORE_SHA=project.head(),
                            CI_COMMIT_MESSAGE=f"[run {downstream}] [run {broken}]"),
    )
    assert detect.returncode == 0, detect.stderr

    run = project.gitlab_ci_local("--file", child_file.name, timeout=540,
                                  variables={"CI_SERVER_URL": fake_gitlab.url, "CI_PROJECT_ID": str(fake_gitlab.project_id)},
                                  env=job_environment(GITLAB_TOKEN=fake_gitlab.token, **fake_slack.webhook_environ()))

    output = run.stdout + run.stderr
    assert run.returncode != 0, output[-3000:]  # the failed notebook fails the (child) pipeline
    assert re.search(r"FAIL\s+run-broken", output), output[-3000:]
    # Its downstream starts (so that publishing starts after it) and stops at once, keeping nothing.
    assert "Not run: notebooks/broken.ipynb did not succeed." in project.log("run-after_broken")
    assert "never runs" not in project.log("run-after_broken")
    assert not (project.artifacts("run-after_broken") / "results").exists()
    assert re.search(r"PASS\s+write-to-wiki", output) and re.search(r"PASS\s+notify-slack", output), output[-3000:]
    # The wiki records the failed run from the one folder there is, linked in the failed job's artifacts.
    page = fake_gitlab.wiki["model-runs/broken"]["content"]
    assert "failed" in page or "❌" in page
    assert "/artifacts/file/results/broken/broken/broken.ipynb" in page
    assert "model-runs/after_broken" not in fake_gitlab.wiki
    [alert] = fake_slack.texts
    assert "broken" in alert and "ValueError" in alert
