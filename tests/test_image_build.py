"""The Dockerfile builds, runs every notebook as a non-root user, and a code change reuses the dependencies.

The image is the session's ``project_image`` (tests/images.py: how it is built without a registry), shared
with tests/test_docker_deployment.py.

``./run-tests`` installs docker.io and debootstrap and starts dockerd where it can. Anything still missing
skips these tests, saying what to install; with ``CI=true`` (``.ci/run``) it fails them (tests/required.py).
Measured on 2 busy cores: debootstrap 45 s (first run only), build 55-120 s, notebooks 35-65 s, the
rebuild after a config edit 4 s; 2-4 minutes in all.
"""

from __future__ import annotations

import json
import re
import shutil
import uuid

import pytest
import yaml
from gitrepo import INFERENCE, INFERENCE_CONFIG, make_project
from images import REPO, build, run

from ds_pipelines.project.image import IMAGE_FILES, image_tag

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # builds an image and runs notebooks in it


@pytest.fixture
def image(project_image):
    return project_image


def step_was_cached(log: str, command: str) -> bool:
    """Whether BuildKit's plain log reports the step running ``command`` as CACHED."""
    steps = re.findall(rf"^#(\d+) \[[^\]]*\] RUN .*{re.escape(command)}", log, re.MULTILINE)
    assert steps, f"no step running {command!r} in the build log"
    return all(re.search(rf"^#{step} CACHED$", log, re.MULTILINE) for step in steps)


def test_image_runs_every_notebook_as_non_root(image, tmp_path):
    config = yaml.safe_load((REPO / "configs/training_config.yaml").read_text())
    config["optuna"].update(n_trials=3, timeout=120, cv_folds=3)
    config["model"]["device"] = "cpu"
    small = tmp_path / "training.yaml"
    small.write_text(yaml.safe_dump(config))
    small.chmod(0o644)  # the container's user is not the owner
    ran = run(image["docker"], "run", "--rm", "-v", f"{small}:/app/configs/training_config.yaml:ro", image["tag"],
              "ds-pipelines", "run", "--all", "--json", timeout=600)
    assert ran.returncode == 0, ran.stderr[-5000:]
    results = json.loads(ran.stdout)
    assert results["status"] == "success"
    by_name = {nb["name"]: nb for nb in results["notebooks"]}
    assert set(by_name) == {"training_example", "inference_example"}
    assert all(nb["status"] == "success" for nb in by_name.values())
    assert by_name["training_example"]["metrics"]["n_trials"] == 3  # the mounted config was used
    assert by_name["training_example"]["artifacts"]["model"] == "/app/outputs/training/xgb_model.json"
    assert 0.5 < by_name["inference_example"]["metrics"]["roc_auc"] <= 1.0


def test_image_defaults(image):
    user = run(image["docker"], "run", "--rm", image["tag"], "id", "-u", timeout=120)
    assert user.returncode == 0, user.stderr
    assert user.stdout.strip() == "10001"
    default = run(image["docker"], "run", "--rm", image["tag"], timeout=120)
    assert default.returncode == 0, default.stderr
    assert "Usage: ds-pipelines" in default.stdout and "image-tag" in default.stdout
    python = run(image["docker"], "run", "--rm", image["tag"], "python", "-c",
                 "import sys, ds_pipelines; print(sys.version_info[:2], ds_pipelines.__file__)", timeout=120)
    assert python.stdout.strip() == "(3, 11) /app/ds_pipelines/__init__.py", python.stderr
    labels = json.loads(run(image["docker"], "image", "inspect", "--format", "{{json .Config.Labels}}",
                            image["tag"], timeout=60).stdout)
    assert labels["io.ds-pipelines.image-tag"] == image_tag(REPO)
    assert labels["org.opencontainers.image.base.name"] == image["base"]


def test_code_change_reuses_dependency_layer(image):
    """A notebook or config edit rebuilds only the code layer, and keeps the image tag."""
    context = image["tmp"] / "edited"
    context.mkdir()
    for path in [*IMAGE_FILES, "README.md", "workspace.yaml"]:
        shutil.copy2(REPO / path, context / path)
    for folder in ("ds_pipelines", "notebooks", "configs"):
        shutil.copytree(REPO / folder, context / folder, ignore=shutil.ignore_patterns("__pycache__"))
    # Unique per run: the daemon's build cache outlives the test, and an edit built before would be cached.
    edit = f"# edited by test_code_change_reuses_dependency_layer {uuid.uuid4().hex}"
    with (context / "configs/inference_config.yaml").open("a") as config:
        config.write(f"\n{edit}\n")
    assert image_tag(context) == image_tag(REPO)
    tag = f"{image['tag']}-edited"
    image["extra_tags"].append(tag)
    log = build(image["command"], image["env"], context, tag, "--build-arg", f"BASE_IMAGE={image['base']}")
    assert step_was_cached(log, "uv sync --no-dev --no-install-project")
    assert not step_was_cached(log, "compileall")
    shown = run(image["docker"], "run", "--rm", tag, "tail", "-1", "configs/inference_config.yaml", timeout=120)
    assert shown.stdout.strip() == edit


def test_ci_job_runs_the_checkout_in_the_image(image, tmp_path):
    """As a GitLab job: a checkout owned by another user, its code first on PYTHONPATH, git readable."""
    repo = make_project(tmp_path / "checkout")
    shutil.copytree(REPO / "ds_pipelines", repo.root / "ds_pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    before = repo.commit("the package")
    repo.touch(INFERENCE_CONFIG)
    repo.commit("retune inference")
    job = ('python -c "import ds_pipelines; print(ds_pipelines.__file__)" '
           f"&& ds-pipelines detect --json --before {before} --after HEAD")
    ran = run(image["docker"], "run", "--rm", "-v", f"{repo.root}:/builds/p:ro", "-w", "/builds/p",
              "-e", "PYTHONPATH=/builds/p", image["tag"], "bash", "-c", job, timeout=120)
    assert ran.returncode == 0, ran.stderr
    module, plan = ran.stdout.split("\n", 1)
    assert module == "/builds/p/ds_pipelines/__init__.py"
    assert [(n["path"], n["reason"]) for n in json.loads(plan)["notebooks"]] == [(INFERENCE, "config-changed")]
