"""A team's own repository on ds-pipelines: only notebooks, configs and the ``.gitlab-ci.yml`` that
``ds-pipelines init`` wrote, no ``ds_pipelines/`` folder and no Dockerfile. Its merge-request pipeline runs
through gitlab-ci-local with every job in the image the suite builds (the ds-pipelines image the component
names), on the local Docker daemon: detect, the child pipeline's training job, and the merge-request comment
on the loopback GitLab.

GitLab resolves ``include: component:`` from its catalog, which gitlab-ci-local cannot reach offline: the
test swaps that one line for ``include: local:`` of a copy of templates/notebooks.yml, keeping the inputs
``init`` wrote, and fills in the image that ``<group>`` stands for.

gitlab-ci-local copies the checkout and the artifacts in and out of the job containers with a helper image
that needs bash and rsync; it is made from the suite's Debian base (kept for the next run, as the base is).
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess

import pytest
import yaml
from ci_helpers import COMPONENT, CiProject, job_environment, missing_tools
from gitrepo import PROJECT, TRAINING, TRAINING_CONFIG
from images import run
from required import require
from sandbox import CLI, SMALL_OPTUNA

from ds_pipelines.project.image import image_tag

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

HELPER_IMAGE = "ds-pipelines-test/gitlab-ci-local-helper:rsync"
MERGE_REQUEST = "3"


@pytest.fixture(scope="module")
def helper_image(project_image) -> str:
    docker = project_image["docker"]
    if run(docker, "image", "inspect", HELPER_IMAGE, timeout=30).returncode != 0:
        context = project_image["tmp"] / "helper-image"
        context.mkdir(exist_ok=True)
        (context / "Dockerfile").write_text(
            f"FROM {project_image['base']}\n"
            "RUN apt-get update && apt-get install -y --no-install-recommends rsync && rm -rf /var/lib/apt/lists/*\n")
        built = run(*project_image["command"], "--progress=plain", "-t", HELPER_IMAGE, str(context),
                    env=project_image["env"], timeout=600)
        assert built.returncode == 0, built.stderr[-3000:]
    return HELPER_IMAGE


@pytest.fixture
def consumer(tmp_path, project_image) -> CiProject:
    """The repository after `ds-pipelines init`, with the component included from a local copy."""
    missing = missing_tools()
    if missing:
        require("cannot run .gitlab-ci.yml offline; install: " + "; ".join(missing))
    repo = CiProject.start(tmp_path)
    (repo.root / "notebooks").mkdir()
    shutil.copy(PROJECT / TRAINING, repo.root / TRAINING)
    (repo.root / "configs").mkdir()
    shutil.copy(PROJECT / TRAINING_CONFIG, repo.root / TRAINING_CONFIG)
    repo.edit_yaml(TRAINING_CONFIG, lambda config: config["optuna"].update(SMALL_OPTUNA))
    # The training notebook reads its config through the parameters cell: it names no file itself.
    (repo.root / "configs/notebooks.yaml").write_text(yaml.safe_dump(
        {"notebooks": {TRAINING: {"config": TRAINING_CONFIG, "schema": "training", "device": "cpu"}}}))
    initialised = subprocess.run([str(CLI), "init", str(repo.root)], capture_output=True, text=True,
                                 timeout=120, env=job_environment())
    assert initialised.returncode == 0, initialised.stdout + initialised.stderr

    ci_file = repo.root / ".gitlab-ci.yml"
    written = ci_file.read_text()
    component = re.search(r"^  - component: (\S+)$", written, re.MULTILINE)
    assert component and component.group(1).startswith("$CI_SERVER_FQDN/<group>/ds-pipelines/notebooks@"), written
    shutil.copytree(COMPONENT.parent, repo.root / "templates")
    ci_file.write_text(written.replace(component.group(0), "  - local: templates/notebooks.yml")
                       .replace(re.search(r"\$CI_REGISTRY/<group>/ds-pipelines:\S+", written).group(0), project_image["tag"]))
    with (repo.root / ".gitignore").open("a") as ignore:
        ignore.write(".gitlab-ci-local/\n")
    repo.publish()
    return repo


def test_a_merge_request_in_a_repository_of_notebooks_trains_in_the_image_and_comments(consumer, helper_image,
                                                                                       fake_gitlab, project_image):
    assert not (consumer.root / "ds_pipelines").exists() and not (consumer.root / "Dockerfile").exists()
    base = consumer.head()
    consumer.git("checkout", "-q", "-b", "more-trials")
    consumer.edit_yaml(TRAINING_CONFIG, lambda config: config["optuna"].update(n_trials=5))
    pushed = consumer.push("Five trials")
    variables = {
        **pushed, "CI_PIPELINE_SOURCE": "merge_request_event", "CI_MERGE_REQUEST_DIFF_BASE_SHA": base,
        "CI_MERGE_REQUEST_IID": MERGE_REQUEST, "CI_MERGE_REQUEST_SOURCE_BRANCH_NAME": "more-trials", "CI_SERVER_URL": fake_gitlab.url,
        "CI_PROJECT_ID": str(fake_gitlab.project_id), "GITLAB_TOKEN": fake_gitlab.token,
    }

    result = consumer.gitlab_ci_local(variables=variables, unset=("CI_COMMIT_BRANCH",), helper_image=helper_image,
                                      timeout=1100)

    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:]
    for job in ("detect-notebooks", r"\[run-notebooks\] -> run-training_example",
                r"\[run-notebooks\] -> publish-metrics-comment"):
        assert re.search(rf"PASS\s+{job}", output), (job, output[-4000:])
    # Every job ran in the ds-pipelines image, and with its package: the repository has none.
    assert re.search(rf"detect-notebooks starting {re.escape(project_image['tag'])}", output), output[-4000:]
    assert re.search(rf"run-training_example starting {re.escape(project_image['tag'])}", output), output[-4000:]
    plan = consumer.dotenv("detect-notebooks", "plan.env")
    assert (plan["DSP_NOTEBOOKS"], plan["DSP_SKIP"]) == (TRAINING, "false")

    results = consumer.child_results("training_example")
    summary = json.loads((results / "results.json").read_text())
    assert [(n["notebook"], n["status"]) for n in summary["notebooks"]] == [(TRAINING, "success")]
    metrics = json.loads((results / summary["notebooks"][0]["metrics_file"]).read_text())
    assert metrics["n_trials"] == 5 and metrics["roc_auc"] > 0.9

    [note] = fake_gitlab.notes[int(MERGE_REQUEST)]
    body = note["body"]
    assert f"Notebook results for [{pushed['CI_COMMIT_SHA'][:8]}]" in body and "`training_example` succeeded" in body
    assert re.search(r"^\| `n_trials` \| 5 \|", body, re.MULTILINE), body
    # The record tells the commit was clean (the notebook's own outputs/ are no change to it), names the
    # merge request's branch, and shows the image's tag: none of it taken for a secret.
    assert f"**commit** `{pushed['CI_COMMIT_SHA'][:8]}` (more\\-trials, clean)" in body, body
    assert f"**image** `ds-pipelines:{image_tag(PROJECT)}`" in body, body
    assert "[MASKED]" not in body and fake_gitlab.token not in body
    assert (consumer.root / ".gitignore").read_text().splitlines()[:3] == [".ds-pipelines/", "results/", "outputs/"]
