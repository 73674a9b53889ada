"""One orchestrator per commit: GitLab CI and a Dagster deployment watching the same project never both run.

``triggers.orchestrator`` in configs/notebooks.yaml picks who runs pushed commits, release tags and scheduled
scoring. For the same pushes, the commit sensor (a tick against a GitLab API served on 127.0.0.1) and CI's
``ds-pipelines detect`` (the command of CI's detect job) together run each ``<sha>:<notebook>`` exactly once,
whichever is chosen; the tag sensor and ``auto-release`` (through gitlab-ci-local) release a tag once.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections import Counter
from pathlib import Path

import dagster as dg
import pytest
import yaml
from ci_helpers import OFFLINE, RELEASE_TAG, CiProject, missing_tools
from fake_gitlab import FakeGitLab
from gitrepo import INFERENCE, REGISTRY, TRAINING, TRAINING_CONFIG, make_project
from required import require
from sandbox import CLI

from ds_pipelines.defs.triggers.releases import tag_sensor
from ds_pipelines.defs.triggers.resources import GitLabResource
from ds_pipelines.defs.triggers.sensors import commit_sensor
from ds_pipelines.project import PROJECT_DIR_ENV, Project


def set_orchestrator(root: Path, orchestrator: str) -> None:
    registry = yaml.safe_load((root / REGISTRY).read_text())
    registry["triggers"]["orchestrator"] = orchestrator
    (root / REGISTRY).write_text(yaml.safe_dump(registry, sort_keys=False))


def sensor_tick(sensor, fake: FakeGitLab, cursor: str | None):
    resource = GitLabResource(url=fake.url, project_id=str(fake.project_id), token=fake.token)
    with dg.build_sensor_context(cursor=cursor, resources={"gitlab": resource}, instance=dg.DagsterInstance.ephemeral()) as context:
        return sensor(Project())(context)


@pytest.mark.parametrize("orchestrator", ["gitlab-ci", "dagster"])
def test_each_commit_notebook_runs_once_between_ci_and_the_commit_sensor(tmp_path: Path, monkeypatch, orchestrator):
    repo = make_project(tmp_path / "repo")
    set_orchestrator(repo.root, orchestrator)
    repo.commit(f"orchestrator: {orchestrator}")
    # The deployment runs from its own clone of the project, with the same settings.
    deployment = tmp_path / "deployment"
    subprocess.run(["git", "clone", "-q", str(repo.root), str(deployment)], check=True)
    monkeypatch.setenv(PROJECT_DIR_ENV, str(deployment))

    with FakeGitLab(repo=repo.root) as fake:
        first = sensor_tick(commit_sensor, fake, None)
        pushes = []
        for message, changed in [("retrain", TRAINING_CONFIG), (f"[run {INFERENCE}] score too", TRAINING)]:
            before = repo.head()
            repo.touch(changed)
            pushes.append((before, repo.commit(message), message))
        ticked = sensor_tick(commit_sensor, fake, first.cursor if isinstance(first, dg.SensorResult) else None)

    runs = Counter()
    if isinstance(ticked, dg.SensorResult):
        runs.update(request.run_key for request in ticked.run_requests)
    else:
        assert orchestrator == "gitlab-ci", ticked.skip_message
        assert "triggers.orchestrator is gitlab-ci" in ticked.skip_message
    for before, after, message in pushes:
        detected = subprocess.run(
            [str(CLI), "detect", "--repo", str(repo.root), "--source", "push", "--before", before, "--after", after,
             "--message", message, "--json"], capture_output=True, text=True, check=True,
        )
        runs.update(f"{after}:{entry['path']}" for entry in json.loads(detected.stdout)["notebooks"])

    expected = {f"{pushes[0][1]}:{TRAINING}", f"{pushes[1][1]}:{TRAINING}", f"{pushes[1][1]}:{INFERENCE}"}
    assert runs == Counter(expected), f"orchestrator {orchestrator}: {runs}"


@pytest.mark.parametrize("orchestrator", ["gitlab-ci", "dagster"])
def test_the_tag_sensor_releases_only_for_a_dagster_orchestrator(tmp_path: Path, monkeypatch, orchestrator):
    repo = make_project(tmp_path / "repo")
    set_orchestrator(repo.root, orchestrator)
    repo.commit(f"orchestrator: {orchestrator}")
    monkeypatch.setenv(PROJECT_DIR_ENV, str(repo.root))
    with FakeGitLab(repo=repo.root) as fake:
        first = sensor_tick(tag_sensor, fake, None)
        repo.git("tag", "v1.2.3")
        result = sensor_tick(tag_sensor, fake, getattr(first, "cursor", None))
    if orchestrator == "dagster":
        assert [request.run_key for request in result.run_requests] == ["release:v1.2.3"]
    else:
        assert isinstance(result, dg.SkipReason) and "triggers.orchestrator is gitlab-ci" in result.skip_message


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_auto_release_stands_down_when_the_deployment_releases(tmp_path: Path):
    require("; ".join(missing_tools()))
    project = CiProject.create(tmp_path)
    set_orchestrator(project.root, "dagster")
    project.push("The Dagster deployment runs this project")
    project.git("tag", RELEASE_TAG)
    tag = {"CI_COMMIT_TAG": RELEASE_TAG, "CI_COMMIT_REF_NAME": RELEASE_TAG,
           "MLFLOW_TRACKING_URI": f"sqlite:///{tmp_path / 'mlflow.db'}"}

    result = project.gitlab_ci_local(variables={**OFFLINE, **tag}, unset=("CI_COMMIT_BRANCH",))

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-5000:]
    assert re.search(r"PASS\s+auto-release", output), output[-3000:]
    log = project.log("auto-release")
    assert "Not released here: triggers.orchestrator is dagster in configs/notebooks.yaml" in log
    assert "Model " not in log, "nothing was promoted"
    assert project.dotenv("detect-notebooks", "plan.env")["DSP_DEFERRED"] == "true"
