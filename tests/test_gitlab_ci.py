"""The GitLab pipeline (.gitlab-ci.yml and the component templates/notebooks.yml), offline.

Schema checks with check-jsonschema (GitLab's schema, bundled), and real pipelines run by gitlab-ci-local
(see tests/ci_helpers.py), child pipelines included (``run-notebooks`` triggers the one detect wrote): a push
that changes the training notebook trains it and keeps the executed notebook with secrets masked, ``[skip run]``
runs nothing and its child pulls no big image, a schedule runs the scoring notebook (also when it targets a
production tag, where it records the run and releases nothing), a ``v1.2.3`` tag runs auto-release (GitLab
release, MLflow alias ``production``), and only production tags plan a release. The child pipeline's own jobs
(tags by device, needs, publishing) are checked in tests/test_child_pipeline.py.
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import mlflow
import pandas as pd
import pytest
import xgboost
import yaml
from ci_helpers import (
    COMPONENT,
    OFFLINE,
    PROJECT,
    RELEASE_TAG,
    CiProject,
    job_environment,
    missing_tools,
)
from fake_gitlab import FakeGitLab
from gitrepo import INFERENCE, INFERENCE_CONFIG, TRAINING
from required import require
from sklearn.datasets import load_breast_cancer

from ds_pipelines.project import defaults
from ds_pipelines.tracking.baselines import run_tags

CHECK_JSONSCHEMA = Path(sys.executable).parent / "check-jsonschema"
JOB_NAMES = {"build-container", "detect-notebooks", "run-notebooks", "release-image", "auto-release", "secret_detection",
             "refuse-fork-merge-request", "dagster-run", "release-version"}
CHILD_PIPELINE = "notebooks-pipeline.yml"


@pytest.fixture(scope="module")
def tools() -> None:
    """gitlab-ci-local, Node.js and rsync (./run-tests installs them where it can): without them the pipeline
    tests skip saying what to install, or fail with CI=true (tests/required.py)."""
    missing = missing_tools()
    if missing:
        require("cannot run .gitlab-ci.yml offline; install: " + "; ".join(missing))


@pytest.fixture
def project(tools, tmp_path) -> CiProject:
    return CiProject.create(tmp_path)


def when(jobs: dict[str, dict]) -> dict[str, str]:
    return {name: job["when"] for name, job in jobs.items()}


def gitlab_variables(fake: FakeGitLab) -> dict[str, str]:
    """The pipeline variables that point jobs at the fake GitLab (the token goes through the environment)."""
    return {"CI_SERVER_URL": fake.url, "CI_PROJECT_ID": str(fake.project_id)}


def component_documents() -> tuple[dict, str]:
    """The component's ``spec:inputs`` header, and the text of its jobs document."""
    header, jobs = COMPONENT.read_text().split("\n---\n", 1)
    return yaml.safe_load(header), jobs


# --- Static checks --------------------------------------------------------------------------------------------


def test_ci_files_validate_against_gitlab_schema(tmp_path):
    spec, jobs = component_documents()
    (tmp_path / "component-spec.yml").write_text(yaml.safe_dump(spec))
    (tmp_path / "component-jobs.yml").write_text(jobs)
    files = [PROJECT / ".gitlab-ci.yml", tmp_path / "component-spec.yml", tmp_path / "component-jobs.yml"]
    result = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.gitlab-ci", "--data-transform", "gitlab-ci", *map(str, files)],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    # The schema is strict: a misspelt key would have failed above, as this one does.
    (tmp_path / "typo.yml").write_text("job:\n  script: [x]\n  artefacts: {paths: [results/]}\n")
    typo = subprocess.run(
        [str(CHECK_JSONSCHEMA), "--builtin-schema", "vendor.gitlab-ci", "--data-transform", "gitlab-ci", str(tmp_path / "typo.yml")],
        check=False, capture_output=True, text=True, timeout=120,
    )
    assert typo.returncode == 1 and "artefacts" in typo.stdout


@pytest.mark.parametrize(("name", "kind"), [("production-tag", defaults.PRODUCTION), ("development-tag", defaults.DEVELOPMENT)])
def test_release_tag_inputs_agree_with_the_trigger_rules(name, kind):
    spec, _ = component_documents()
    rule = spec["spec"]["inputs"][name]["default"]
    assert rule.startswith("/") and rule.endswith("/"), rule
    pattern = re.compile(rule[1:-1])
    tags = ["v1.2.3", "v10.20.300", "v1.2.3-rc1", "dev-1.2.3", "dev-1.2.3-rc1", "1.2.3", "v1.2", "xv1.2.3",
            "v1.2.3.4", "V1.2.3", "xdev-1.2.3", "dev-1.2"]
    for tag in tags:
        by_ci = pattern.search(tag) is not None  # GitLab's =~ searches: the pattern must anchor itself
        assert by_ci == (defaults.release_kind(tag) == kind), tag


def test_missing_tools_say_what_to_install(tmp_path):
    missing = missing_tools(path=str(tmp_path))  # an empty PATH: no rsync, no node
    assert any(m.startswith("rsync") and "apt-get install rsync" in m for m in missing), missing
    assert any(m.startswith("Node.js") and "apt-get install nodejs" in m for m in missing), missing


# --- Planned pipelines (gitlab-ci-local --list-json) ----------------------------------------------------------


@pytest.mark.slow
def test_push_pipeline_plan(project):
    jobs = project.jobs(OFFLINE)
    assert set(jobs) == JOB_NAMES
    assert when(jobs) == {
        "build-container": "never", "detect-notebooks": "on_success", "run-notebooks": "on_success",
        "release-image": "never", "auto-release": "never", "secret_detection": "never",
        "refuse-fork-merge-request": "never", "dagster-run": "never", "release-version": "never",
    }
    assert [n["job"] for n in jobs["run-notebooks"]["needs"]] == ["detect-notebooks"]


@pytest.mark.slow
def test_a_pipeline_of_a_dagster_run_runs_its_job_only(project):
    """As the deployment's run launcher creates it (ds_pipelines/execution/gitlab_runs.py): also on a release tag,
    nothing is detected, published or released; the image is still built when it is missing."""
    dagster_run = {"CI_PIPELINE_SOURCE": "api", "DSP_DAGSTER_RUN_ID": "0c1d", "DSP_DAGSTER_NOTEBOOKS": "training_example",
                   "DSP_DAGSTER_DEVICE": "gpu", "SECRET_DETECTION_DISABLED": "true"}
    for extra in ({}, {"CI_COMMIT_TAG": "v1.2.3"}):
        planned = project.jobs({**dagster_run, **extra})
        assert {name: job["when"] for name, job in planned.items() if job["when"] != "never"} == {
            "build-container": "on_success", "dagster-run": "on_success"}, extra
    assert [n["job"] for n in planned["dagster-run"]["needs"]] == ["build-container"]


@pytest.mark.slow
def test_a_dagster_runs_job_runs_only_a_commit_of_its_refs_history(project):
    """The run's commit (DSP_DAGSTER_COMMIT) is checked out only when the pipeline's ref contains it: a commit
    of another branch, or a fork's, never runs with the protected ref's variables."""
    project.git("checkout", "-q", "-b", "elsewhere")
    project.write("elsewhere.txt", "not on main\n")
    elsewhere = project.commit("a commit main does not contain")
    project.git("checkout", "-q", "main")
    result = project.gitlab_ci_local("dagster-run", variables={
        **OFFLINE, "CI_PIPELINE_SOURCE": "api", "DSP_DAGSTER_RUN_ID": "0c1d", "DSP_DAGSTER_NOTEBOOKS": "training_example",
        "DSP_DAGSTER_DEVICE": "cpu", "DSP_DAGSTER_COMMIT": elsewhere})
    log = result.stdout + result.stderr
    assert result.returncode != 0
    assert f"error: commit {elsewhere} is not in the history of main" in log
    assert "execute-run" not in project.log("dagster-run").split("is not in the history")[1], "nothing ran after it"

    # A commit of main's history that is not its head (a re-execution of an older run) is checked out and run.
    older = project.head()
    project.write("later.txt", "main moved on\n")
    project.commit("main moved on")
    result = project.gitlab_ci_local("dagster-run", variables={
        **OFFLINE, "CI_PIPELINE_SOURCE": "api", "DSP_DAGSTER_RUN_ID": "0c1d", "DSP_DAGSTER_NOTEBOOKS": "training_example",
        "DSP_DAGSTER_DEVICE": "cpu", "DSP_DAGSTER_COMMIT": older})
    log = project.log("dagster-run")
    assert f"Executing commit {older}" in log, log[-3000:]
    # The checkout's execute-run got that far: this test has no deployment instance holding run 0c1d.
    assert "run 0c1d is not in the Dagster instance" in log and result.returncode != 0


@pytest.mark.slow
def test_docker_and_secret_detection_jobs_when_enabled(project):
    jobs = project.jobs({})  # BUILD_CONTAINER's default, and GitLab's secret detection on
    assert jobs["build-container"]["when"] == "on_success" and jobs["build-container"]["stage"] == "build"
    assert jobs["secret_detection"]["when"] == "on_success" and jobs["secret_detection"]["stage"] == "test"
    assert jobs["secret_detection"]["allow_failure"] is True


@pytest.mark.slow
def test_merge_request_pipelines_are_scanned_for_secrets(project):
    # GitLab sets no CI_COMMIT_BRANCH in merge-request pipelines: the template's branch rule does not apply.
    merge_request = {"BUILD_CONTAINER": "false", "CI_PIPELINE_SOURCE": "merge_request_event"}
    jobs = project.jobs(merge_request, unset=("CI_COMMIT_BRANCH",))
    assert jobs["secret_detection"]["when"] == "on_success" and jobs["secret_detection"]["needs"] == []
    # It is AST_ENABLE_MR_PIPELINES (set in .gitlab-ci.yml) that puts it there.
    without = project.jobs({**merge_request, "AST_ENABLE_MR_PIPELINES": "false"}, unset=("CI_COMMIT_BRANCH",))
    assert without["secret_detection"]["when"] == "never"


@pytest.mark.slow
def test_only_notebook_runs_are_cancelled_and_shared_state_is_written_one_pipeline_at_a_time(project):
    config = project.preview(OFFLINE)
    assert config["workflow"]["auto_cancel"] == {"on_new_commit": "interruptible"}
    jobs = {name: job for name, job in config.items() if isinstance(job, dict) and ("script" in job or "trigger" in job)}
    # The notebook jobs (interruptible, results for Developers only, the wiki's resource group) are the
    # child's: tests/test_child_pipeline.py. Here: nothing is cancelled, the child decides the pipeline's status.
    assert not any(job.get("interruptible") for job in jobs.values())
    assert jobs["run-notebooks"]["trigger"] == {
        "include": [{"artifact": CHILD_PIPELINE, "job": "detect-notebooks"}], "strategy": "depend",
        "forward": {"pipeline_variables": True},
    }
    assert jobs["detect-notebooks"]["artifacts"]["paths"] == [CHILD_PIPELINE]
    # Image and model in one group: two close tags release in order (oldest_first, set through the API).
    assert {name: job["resource_group"] for name, job in jobs.items() if "resource_group" in job} == {
        "release-image": "production", "auto-release": "production",
    }


@pytest.mark.slow
def test_detect_publishing_and_releases_run_on_the_light_runner(project):
    config = project.preview(OFFLINE)
    tags = {name: job.get("tags") for name, job in config.items() if isinstance(job, dict) and "script" in job}
    assert tags == {
        "build-container": ["$COMMIT_RUNNER"], "detect-notebooks": ["$LIGHT_RUNNER"], "release-image": ["$COMMIT_RUNNER"],
        "auto-release": ["$LIGHT_RUNNER"], "secret_detection": None, "refuse-fork-merge-request": ["$LIGHT_RUNNER"],
        "release-version": ["$LIGHT_RUNNER"],
        # GPU_RUNNER or CPU_RUNNER by the Dagster run's device, through its rules' variables.
        "dagster-run": ["$DSP_RUNNER_TAG"],
    }
    variables = yaml.safe_load((PROJECT / ".gitlab-ci.yml").read_text())["variables"]
    # Compatibility: COMMIT_RUNNER alone still moves every job (device runners default to it in detect).
    assert variables["LIGHT_RUNNER"]["value"] == "$COMMIT_RUNNER"
    assert variables["GPU_RUNNER"]["value"] == variables["CPU_RUNNER"]["value"] == ""


FORK_MERGE_REQUEST = {"CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_IID": "12",
                      "CI_MERGE_REQUEST_PROJECT_ID": "7", "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "99",
                      "CI_MERGE_REQUEST_SOURCE_PROJECT_PATH": "someone/project"}


@pytest.mark.slow
def test_a_fork_merge_request_runs_nothing_with_the_projects_secrets_and_says_why(project):
    planned = project.jobs({**FORK_MERGE_REQUEST, "SECRET_DETECTION_DISABLED": "true"}, unset=("CI_COMMIT_BRANCH",))
    assert {name: job["when"] for name, job in planned.items() if job["when"] != "never"} == {
        "refuse-fork-merge-request": "on_success"}  # no image build, no detect, no notebook
    result = project.gitlab_ci_local("refuse-fork-merge-request", variables=FORK_MERGE_REQUEST, env=job_environment(),
                                     unset=("CI_COMMIT_BRANCH",))
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert ("error: merge request !12 comes from the fork someone/project: its notebooks do not run with this "
            "project's credentials") in output
    # A merge request from a branch of the project itself plans as before.
    own = project.jobs({**OFFLINE, **FORK_MERGE_REQUEST, "CI_MERGE_REQUEST_SOURCE_PROJECT_ID": "7"}, unset=("CI_COMMIT_BRANCH",))
    assert own["run-notebooks"]["when"] == "on_success" and own["refuse-fork-merge-request"]["when"] == "never"


def test_tag_pipelines_take_a_build_cache_only_from_a_protected_image():
    """release-image builds the released image: a cache from an image any branch could push would poison it."""
    _, jobs = component_documents()
    script = "\n".join(yaml.safe_load(jobs)["release-image"]["script"])
    cache_lines = [line for line in script.splitlines() if "--cache-from" in line]
    assert cache_lines == ['if [ "$CI_COMMIT_REF_PROTECTED" = true ]; then CACHE_FROM="--cache-from $IMAGE"; fi']
    # build-container: unprotected refs get their own tag; every build argument goes into the tag.
    build = "\n".join(yaml.safe_load(jobs)["build-container"]["script"])
    assert 'if [ "$CI_COMMIT_REF_PROTECTED" != true ]; then UNPROTECTED="--unprotected-ref $CI_COMMIT_REF_SLUG"; fi' in build
    assert "TAG=$(ds-pipelines image-tag $BUILD_ARGS ${UNPROTECTED:-})" in build and "docker build $BUILD_ARGS" in build
    # The jobs after it run the image by digest, as the release notes name the released one.
    assert build.splitlines()[-1] == 'echo "IMAGE=$IMAGE@$DIGEST" > image.env'
    assert 'echo "RELEASE_IMAGE=$1@${pushed#*@}" > release.env' in script


@pytest.mark.slow
def test_merge_request_pipeline_plan(project):
    jobs = project.jobs({**OFFLINE, "CI_PIPELINE_SOURCE": "merge_request_event"})
    assert jobs["run-notebooks"]["when"] == "on_success"  # its child comments (tests/test_child_pipeline.py)


@pytest.mark.slow
@pytest.mark.parametrize(("tag", "release"), [("v1.2.3", "production"), ("dev-1.2.3", "development"), ("v1.2.3-rc1", "none")])
def test_only_production_tags_plan_a_release(project, tag, release):
    project.git("tag", tag)
    variables = {"CI_COMMIT_TAG": tag, "CI_COMMIT_REF_NAME": tag}
    tag_pipeline = {"unset": ("CI_COMMIT_BRANCH",)}  # GitLab sets no branch in tag pipelines
    deployed = "on_success" if release == "production" else "never"
    image_tagged = "never" if release == "none" else "on_success"
    jobs = project.jobs({**OFFLINE, **variables}, **tag_pipeline)
    assert jobs["detect-notebooks"]["when"] == "on_success"
    assert jobs["auto-release"]["when"] == deployed
    assert jobs["run-notebooks"]["when"] == "never"
    with_docker = project.jobs({**variables, "SECRET_DETECTION_DISABLED": "true"}, **tag_pipeline)
    assert with_docker["release-image"]["when"] == image_tagged  # :vX.Y.Z + :production, or :staging-...
    assert with_docker["build-container"]["when"] == "on_success"

    # detect-notebooks, really run, agrees: auto-release checks its DSP_RELEASE before releasing.
    result = project.gitlab_ci_local("detect-notebooks", variables={**OFFLINE, **variables}, **tag_pipeline, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    plan = project.dotenv("detect-notebooks", "plan.env")
    assert (plan["DSP_RELEASE"], plan["DSP_TAG"], plan["DSP_SKIP"]) == (release, tag, "true")


def test_a_production_tag_that_is_not_the_package_version_releases_nothing(project):
    """``init`` pins the component and the image to the package's version: this repository's v-tags must be it."""
    version = tomllib.loads((project.root / "pyproject.toml").read_text())["project"]["version"]
    wrong = "v9.99.0" if version != "9.99.0" else "v9.98.0"
    tag_pipeline = {"unset": ("CI_COMMIT_BRANCH",)}
    printed = {}
    for tag, passes in ((wrong, False), (f"v{version}", True)):
        project.git("tag", tag)
        variables = {**OFFLINE, "CI_COMMIT_TAG": tag, "CI_COMMIT_REF_NAME": tag}
        result = project.gitlab_ci_local("release-version", variables=variables, **tag_pipeline, timeout=300)
        printed[tag] = result.stdout + result.stderr
        assert (result.returncode == 0) is passes, printed[tag]
    assert f'error: tag {wrong} releases ds-pipelines, but pyproject.toml says version = "{version}"' in printed[wrong]
    assert f"tag v{version} is the package's version {version}" in printed[f"v{version}"]
    preview = project.preview(OFFLINE)  # the merged configuration: needs do not depend on the tag
    for job in ("release-image", "auto-release"):
        needs = [need["job"] if isinstance(need, dict) else need for need in preview[job]["needs"]]
        assert "release-version" in needs and "build-container" in needs, (job, needs)
    assert [need.get("optional", False) for need in preview["auto-release"]["needs"] if need["job"] == "release-version"] == [False]
    assert set(need["job"] for need in preview["auto-release"]["needs"]) >= {"detect-notebooks", "release-image"}
    assert project.jobs({**OFFLINE, "CI_COMMIT_TAG": "dev-1.2.3", "CI_COMMIT_REF_NAME": "dev-1.2.3"},
                        **tag_pipeline)["release-version"]["when"] == "never"


# --- Pipelines that run -----------------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_push_changing_the_training_notebook_trains_it_and_keeps_it_masked(project, fake_gitlab):
    # A notebook that prints the job's GitLab token (shaped like a real one): a mistake CI must not publish.
    project.edit_notebook(TRAINING, {
        "cell_type": "code", "execution_count": None, "metadata": {}, "outputs": [],
        "source": ["import os\n", "print('publishing with', os.environ['GITLAB_TOKEN'])"],
    })
    pushed = project.push("Print the publishing token")

    result = project.gitlab_ci_local(variables={**OFFLINE, **pushed, **gitlab_variables(fake_gitlab)},
                                     env=job_environment(GITLAB_TOKEN=fake_gitlab.token))

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert re.search(r"PASS\s+detect-notebooks", output) and re.search(r"PASS\s+run-notebooks", output), output[-3000:]
    assert re.search(r"PASS\s+\[run-notebooks\] -> run-training_example", output), output[-3000:]
    plan = project.dotenv("detect-notebooks", "plan.env")
    assert (plan["DSP_NOTEBOOKS"], plan["DSP_SKIP"]) == (TRAINING, "false")

    results = project.child_results("training_example")
    summary = json.loads((results / "results.json").read_text())
    assert summary["status"] == "success"
    assert [(n["notebook"], n["status"]) for n in summary["notebooks"]] == [(TRAINING, "success")]
    training = summary["notebooks"][0]
    metrics = json.loads((results / training["metrics_file"]).read_text())
    assert metrics["roc_auc"] > 0.9 and metrics["n_trials"] == 4
    executed = (results / training["executed_notebook"]).read_text()
    assert "publishing with" in executed  # the cell ran and its output was kept...
    assert fake_gitlab.token not in executed  # ...with the token masked before GitLab keeps the artifact
    assert fake_gitlab.token not in (results / "results.json").read_text()
    # The project's quality checks ran on the trained model, and the job keeps GitLab's metrics report beside them.
    assert {check["name"]: check["passed"] for check in training["checks"]} == {"roc_auc_min": True, "roc_auc_vs_baseline": True}
    report = (results / "metrics.txt").read_text()
    assert f"training_example_roc_auc {metrics['roc_auc']!r}\n" in report
    assert "training_example_check_roc_auc_min_passed 1.0\n" in report and report.endswith("# EOF\n")

    # The child's write-to-wiki recorded the run, from the notebook job's artifacts, without the token, and
    # links the executed notebook in that job's artifacts.
    page = fake_gitlab.wiki[f"model-runs/{training['name']}"]
    assert pushed["CI_COMMIT_SHA"][:7] in page["content"]
    assert "/artifacts/file/results/training_example/training_example/training_example.ipynb" in page["content"]
    assert fake_gitlab.token not in json.dumps(fake_gitlab.wiki)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_skip_run_commit_runs_no_notebook(project):
    project.edit_notebook(TRAINING, {"cell_type": "markdown", "metadata": {}, "source": ["Work in progress."]})
    pushed = project.push(f"Edit {TRAINING}, not ready to train\n\n[skip run]\n")

    result = project.gitlab_ci_local(variables={**OFFLINE, **pushed})

    assert result.returncode == 0, (result.stdout + result.stderr)[-5000:]
    plan = project.dotenv("detect-notebooks", "plan.env")
    assert (plan["DSP_NOTEBOOKS"], plan["DSP_SKIP"]) == ("", "true")
    # The child pipeline is one job in the small image: no notebook job, no publishing, no big image.
    child = yaml.safe_load((project.artifacts("detect-notebooks") / CHILD_PIPELINE).read_text())
    assert [name for name, job in child.items() if isinstance(job, dict)] == ["no-notebook-to-run"]
    assert child["no-notebook-to-run"]["image"] == "python:3.11-alpine"
    assert "Nothing to run: [skip run] in the commit message." in project.log("no-notebook-to-run")
    assert not (project.artifacts("no-notebook-to-run") / "results").exists()


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_plan_commit_on_a_merge_request_runs_nothing_and_posts_the_plan(project, fake_gitlab):
    base = project.head()
    for seconds in (95, 105):  # the training notebook's earlier successful jobs
        fake_gitlab.add_job("run-training_example", duration=seconds)
    project.edit_notebook(TRAINING, {"cell_type": "markdown", "metadata": {}, "source": ["A new feature."]})
    pushed = project.push("Add a feature: how long would training take?\n\n[plan]\n")
    merge_request = {"CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_DIFF_BASE_SHA": base,
                     "CI_MERGE_REQUEST_IID": "5", "GPU_RUNNER": "gpu-runner"}

    result = project.gitlab_ci_local(variables={**OFFLINE, **pushed, **merge_request, **gitlab_variables(fake_gitlab)},
                                     unset=("CI_COMMIT_BRANCH",), env=job_environment(GITLAB_TOKEN=fake_gitlab.token))

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    plan = project.dotenv("detect-notebooks", "plan.env")
    assert (plan["DSP_DRY_RUN"], plan["DSP_SKIP"], plan["DSP_NOTEBOOKS"]) == ("true", "true", "")
    # The child pipeline is the one job that posts the plan: no notebook ran, nothing was kept or published.
    child = yaml.safe_load((project.artifacts("detect-notebooks") / CHILD_PIPELINE).read_text())
    assert [name for name, job in child.items() if isinstance(job, dict)] == ["post-plan"]
    assert re.search(r"PASS\s+\[run-notebooks\] -> post-plan", output), output[-3000:]
    assert "run-training_example" not in output and "publish-metrics-comment" not in output
    assert not list((project.root / ".gitlab-ci-local" / "artifacts").glob("*/results"))
    assert fake_gitlab.wiki == {}
    log = project.log("post-plan")
    assert f"  {TRAINING}  [would run]" in log and "expected: about 1 min 40 s (median of the last 2 successful runs)" in log
    # The merge request's one comment lists the plan: notebooks, reasons, runner and expected duration.
    [note] = fake_gitlab.notes[5]
    body = note["body"]
    assert f"## 🗺️ Plan for [{pushed['CI_COMMIT_SHA'][:8]}]" in body and "dry run, nothing executed" in body
    training = next(line for line in body.splitlines() if line.startswith(f"| `{TRAINING}`"))
    assert training == (f"| `{TRAINING}` | ▶️ would run | the notebook changed \\(modified\\) | GPU runner \\(tag gpu\\-runner\\) "
                        "| about 1 min 40 s \\(median of the last 2 successful runs\\) |")
    inference = next(line for line in body.splitlines() if line.startswith(f"| `{INFERENCE}`"))
    assert "⏭️ not run" in inference and "unknown" not in inference


def commit_scoring_inputs(project: CiProject) -> None:
    """A small model and 60 rows to score, committed and pushed: a schedule scores with what is deployed."""
    data = load_breast_cancer(as_frame=True).frame
    model = xgboost.XGBClassifier(n_estimators=5, max_depth=2).fit(data.drop(columns=["target"]), data["target"])
    (project.root / "models").mkdir()
    model.save_model(project.root / "models/model.json")
    (project.root / "data").mkdir()
    data.head(60).rename_axis("row_id").reset_index().to_csv(project.root / "data/to_score.csv", index=False)
    project.edit_yaml(INFERENCE_CONFIG, lambda config: (config["model"].update(path="models/model.json"),
                                                         config["input"].update(path="data/to_score.csv")))
    project.push("Score the committed data")


def scored_rows(project: CiProject) -> tuple[dict, pd.DataFrame]:
    """The scoring notebook job's one notebook entry in results.json, and the scores it kept."""
    results = project.child_results("inference_example")
    summary = json.loads((results / "results.json").read_text())
    assert [(n["notebook"], n["status"]) for n in summary["notebooks"]] == [(INFERENCE, "success")]
    scoring = summary["notebooks"][0]
    assert (results / scoring["executed_notebook"]).is_file()
    return scoring, pd.read_csv(results / scoring["artifacts"]["scores"])


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_schedule_runs_the_scoring_notebook(project, fake_gitlab):
    commit_scoring_inputs(project)

    # A schedule's commit message belongs to an old push: its [skip run] does not apply.
    schedule = {**OFFLINE, "CI_PIPELINE_SOURCE": "schedule", "CI_COMMIT_MESSAGE": "old push [skip run]"}
    assert project.jobs(schedule)["run-notebooks"]["when"] == "on_success"

    result = project.gitlab_ci_local(variables={**schedule, **gitlab_variables(fake_gitlab)},
                                     env=job_environment(GITLAB_TOKEN=fake_gitlab.token))

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert re.search(r"PASS\s+\[run-notebooks\] -> run-inference_example", output), output[-3000:]
    assert project.dotenv("detect-notebooks", "plan.env")["DSP_NOTEBOOKS"] == INFERENCE
    scoring, scores = scored_rows(project)
    assert len(scores) == 60 and list(scores.columns) == ["id", "probability", "label"]
    assert f"model-runs/{scoring['name']}" in fake_gitlab.wiki  # write-to-wiki recorded the scheduled run


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_jobs_and_notebook_kernels_run_the_commits_ds_pipelines(project):
    """The image (here: the interpreter running the tests, whose ds_pipelines is an editable install of this
    checkout, not of the CI project) provides only the environment: a commit's change to the package is what
    its pipeline runs, in the ds-pipelines command and in the notebook's kernel."""
    commit_scoring_inputs(project)
    package = project.root / "ds_pipelines"
    with (package / "cli" / "__init__.py").open("a") as cli:
        cli.write('\nprint(f"ds-pipelines of this commit: {__file__}", file=sys.stderr)\n')
    with (package / "results" / "handover.py").open("a") as handover:
        handover.write(
            "\n_report = report\n\n\n"
            "def report(*, metrics, **rest):\n"
            "    _report(metrics={**metrics, 'code_of_this_commit': 1.0}, **rest)\n"
        )
    project.push("Change ds_pipelines")

    result = project.gitlab_ci_local(variables={**OFFLINE, "CI_PIPELINE_SOURCE": "schedule"})

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    for job in ("detect-notebooks", "run-inference_example"):
        assert re.search(rf"ds-pipelines of this commit: \S*/{job}/ds_pipelines/cli/__init__\.py", project.log(job)), project.log(job)[-3000:]
    scoring, _ = scored_rows(project)
    assert scoring["metrics"]["code_of_this_commit"] == 1.0  # reported by the kernel, through the commit's notebook API


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_schedule_on_a_production_tag_scores_records_and_releases_nothing(project, fake_gitlab):
    """The seed's production scoring: a pipeline schedule that targets the release tag."""
    commit_scoring_inputs(project)
    project.git("tag", "v1.2.3")
    schedule = {"CI_PIPELINE_SOURCE": "schedule", "CI_COMMIT_TAG": "v1.2.3", "CI_COMMIT_REF_NAME": "v1.2.3"}
    on_the_tag = ("CI_COMMIT_BRANCH",)  # GitLab sets no branch when a schedule targets a tag
    assert when(project.jobs({**OFFLINE, **schedule}, unset=on_the_tag)) == {
        "build-container": "never", "detect-notebooks": "on_success", "run-notebooks": "on_success",
        "release-image": "never", "auto-release": "never", "secret_detection": "never",
        "refuse-fork-merge-request": "never", "dagster-run": "never", "release-version": "never",
    }
    with_docker = project.jobs({**schedule, "SECRET_DETECTION_DISABLED": "true"}, unset=on_the_tag)
    assert (with_docker["build-container"]["when"], with_docker["release-image"]["when"]) == ("on_success", "never")

    result = project.gitlab_ci_local(variables={**OFFLINE, **schedule, **gitlab_variables(fake_gitlab)},
                                     env=job_environment(GITLAB_TOKEN=fake_gitlab.token), unset=on_the_tag)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert re.search(r"PASS\s+\[run-notebooks\] -> run-inference_example", output), output[-3000:]
    assert re.search(r"PASS\s+\[run-notebooks\] -> write-to-wiki", output), output[-3000:]
    assert "auto-release" not in output and "release-image" not in output
    plan = project.dotenv("detect-notebooks", "plan.env")
    assert (plan["DSP_NOTEBOOKS"], plan["DSP_TAG"]) == (INFERENCE, "v1.2.3")
    scoring, scores = scored_rows(project)
    assert len(scores) == 60
    page = fake_gitlab.wiki[f"model-runs/{scoring['name']}"]["content"]
    assert project.head()[:7] in page
    assert fake_gitlab.releases == {}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_production_tag_releases_the_model_trained_from_the_tagged_commit(project, fake_gitlab, tmp_path):
    # Two versions of the configured model in a real store: the tagged commit's, and a newer one that a
    # feature branch's commit trained afterwards. The release must not take the newest.
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    model_name = yaml.safe_load((project.root / "configs/training_config.yaml").read_text())["mlflow"]["registered_model_name"]
    client = mlflow.MlflowClient(tracking_uri)
    experiment = client.create_experiment("training")
    client.create_registered_model(model_name)

    def trained(commit: str, branch: str, roc_auc: float) -> str:
        # Tagged as the protected training job of project 7 (FakeGitLab's) tags its run.
        run = client.create_run(experiment, tags=run_tags(commit, branch, None, None, None, pipeline_source="push",
                                                          protected_ref="true", project_id=str(fake_gitlab.project_id)))
        client.log_metric(run.info.run_id, "roc_auc", roc_auc)
        client.set_terminated(run.info.run_id)
        return client.create_model_version(model_name, f"runs:/{run.info.run_id}/model", run_id=run.info.run_id).version

    project.git("tag", RELEASE_TAG)
    released = trained(project.head(), "main", 0.912)
    project.git("checkout", "-q", "-b", "feature")
    feature = project.commit("Feature work")
    newer = trained(feature, "feature", 0.987)
    project.git("checkout", "-q", "main")  # the tagged commit, which the tag pipeline checks out
    # RELEASE_IMAGE stands in for release-image's dotenv report (no registry here): auto-release passes it on.
    image = f"registry.example.com/group/project:{RELEASE_TAG}@sha256:{'ab' * 32}"
    tag = {"CI_COMMIT_TAG": RELEASE_TAG, "CI_COMMIT_REF_NAME": RELEASE_TAG, "MLFLOW_TRACKING_URI": tracking_uri,
           "RELEASE_IMAGE": image}

    result = project.gitlab_ci_local(variables={**OFFLINE, **tag, **gitlab_variables(fake_gitlab)},
                                     env=job_environment(GITLAB_TOKEN=fake_gitlab.token), unset=("CI_COMMIT_BRANCH",))

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert re.search(r"PASS\s+auto-release", output), output[-3000:]
    assert int(newer) > int(released)
    assert client.get_model_version_by_alias(model_name, "production").version == released
    description = fake_gitlab.releases[RELEASE_TAG]["description"]
    assert model_name in description and "0.912" in description and "0.987" not in description
    assert f"Image: `{image}`" in description
