"""The Dockerfile builds, runs every notebook as a non-root user, and a code change reuses the dependencies.

Needs a Docker daemon, a Docker client that builds with BuildKit, and a base image. No registry is
assumed: the base is a Debian 12 root file system made with ``debootstrap`` (root and a Debian mirror
needed; kept as ``BASE_IMAGE`` below for the next run) or ``$DS_PIPELINES_TEST_BASE_IMAGE``, and uv's image
is made from the local ``uv`` binary. Python comes from the base's packages (``PYTHON_FROM=apt``).

``./run-tests`` installs docker.io and debootstrap and starts dockerd where it can. Anything still missing
skips these tests, saying what to install; with ``CI=true`` (``.ci/run``) it fails them (tests/required.py).
Measured on 2 busy cores: debootstrap 45 s (first run only), build 55-120 s, notebooks 35-65 s, the
rebuild after a config edit 4 s; 2-4 minutes in all.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import uuid
from pathlib import Path

import pytest
import yaml
from gitrepo import INFERENCE, INFERENCE_CONFIG, make_project
from required import require

from ds_pipelines.project.image import IMAGE_FILES, image_tag

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]  # builds an image and runs notebooks in it

REPO = Path(__file__).resolve().parent.parent
BASE_IMAGE = "ds-pipelines-test/debian-bookworm:base"
UV_IMAGE = "ds-pipelines-test/uv:local"
# Extra certificate authorities of this machine (a TLS-inspecting proxy, a company CA): the base trusts
# them as the real base of such a company would, and the Dockerfile makes uv use the base's store.
LOCAL_CAS = Path("/usr/local/share/ca-certificates")


def run(*args: str, timeout: float = 600, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run(args, check=False, capture_output=True, text=True, timeout=timeout, **kwargs)


def buildkit_docker() -> tuple[list[str], dict[str, str]]:
    """The first docker client on PATH that builds with BuildKit: buildx, or a client older than 23
    (which has BuildKit built in); newer clients without buildx only have the legacy builder."""
    env = dict(os.environ, DOCKER_BUILDKIT="1")
    seen = set()
    for folder in os.environ.get("PATH", "").split(os.pathsep):
        docker = shutil.which("docker", path=folder)
        if not docker or os.path.realpath(docker) in seen:
            continue
        seen.add(os.path.realpath(docker))
        if run(docker, "buildx", "version", timeout=30).returncode == 0:
            return [docker, "buildx", "build", "--load"], env
        version = run(docker, "version", "--format", "{{.Client.Version}}", timeout=30).stdout.strip()
        if version and int(version.split(".")[0]) < 23:
            return [docker, "build"], env
    require("no docker client that builds with BuildKit (buildx, or docker < 23): install docker-buildx")


def ensure_base_image(docker: str, tmp: Path) -> str:
    base = os.environ.get("DS_PIPELINES_TEST_BASE_IMAGE")
    if base:
        return base
    if run(docker, "image", "inspect", BASE_IMAGE, timeout=30).returncode == 0:
        return BASE_IMAGE
    debootstrap = shutil.which("debootstrap") or shutil.which("debootstrap", path="/usr/sbin")
    if not debootstrap or os.geteuid() != 0:
        require("no base image: set DS_PIPELINES_TEST_BASE_IMAGE, or run as root with debootstrap (apt-get install debootstrap)")
    rootfs = tmp / "rootfs"
    made = run(debootstrap, "--variant=minbase", "bookworm", str(rootfs), "http://deb.debian.org/debian")
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    if LOCAL_CAS.is_dir():
        shutil.copytree(LOCAL_CAS, rootfs / LOCAL_CAS.relative_to("/"), dirs_exist_ok=True)
    import_tar(docker, rootfs, BASE_IMAGE)
    shutil.rmtree(rootfs, ignore_errors=True)
    return BASE_IMAGE


def ensure_uv_image(docker: str, tmp: Path) -> None:
    """uv's image holds its binary at /uv: the Dockerfile copies it from there."""
    # uv's own wheel knows where its binary is; a `uv` on PATH may be a wrapper script (pyenv's shims).
    found = run("python3", "-c", "import uv; print(uv.find_uv_bin())", timeout=30)
    candidates = [found.stdout.strip() if found.returncode == 0 else None, shutil.which("uv")]
    uv = next((c for c in candidates if c and is_executable_binary(Path(c))), None)
    if not uv:
        require("no uv binary (an ELF executable) to put in the uv image: pip install uv")
    folder = tmp / "uv-image"
    folder.mkdir()
    shutil.copy2(uv, folder / "uv")
    import_tar(docker, folder, UV_IMAGE)


def is_executable_binary(file: Path) -> bool:
    with file.open("rb") as handle:
        return handle.read(4) == b"\x7fELF"


def import_tar(docker: str, folder: Path, name: str) -> None:
    """``docker import`` the folder as an image's whole file system (tar keeps owners, modes, devices)."""
    tar = subprocess.Popen(["tar", "-C", str(folder), "-c", "."], stdout=subprocess.PIPE)
    imported = subprocess.run([docker, "import", "-", name], check=False, stdin=tar.stdout, capture_output=True,
                              text=True, timeout=600)
    tar.stdout.close()
    assert tar.wait(timeout=60) == 0 and imported.returncode == 0, imported.stderr


def build(command: list[str], env: dict[str, str], context: Path, tag: str, *args: str) -> str:
    built = run(*command, "--progress=plain", "--build-arg", f"UV_IMAGE={UV_IMAGE}", "--build-arg",
                "PYTHON_FROM=apt", "-t", tag, *args, str(context), env=env, timeout=900)
    assert built.returncode == 0, built.stderr[-5000:]
    return built.stderr


def step_was_cached(log: str, command: str) -> bool:
    """Whether BuildKit's plain log reports the step running ``command`` as CACHED."""
    steps = re.findall(rf"^#(\d+) \[[^\]]*\] RUN .*{re.escape(command)}", log, re.MULTILINE)
    assert steps, f"no step running {command!r} in the build log"
    return all(re.search(rf"^#{step} CACHED$", log, re.MULTILINE) for step in steps)


@pytest.fixture(scope="module")
def image(tmp_path_factory):
    """The image built from this checkout on the Debian base; removed afterwards (the base is kept, and
BuildKit's cache, uv's downloads included, stays with the daemon for the next build)."""
    docker = shutil.which("docker")
    if not docker or run(docker, "info", timeout=60).returncode != 0:
        require("no Docker daemon answers `docker info`: apt-get install docker.io, then start dockerd")
    command, env = buildkit_docker()
    tmp = tmp_path_factory.mktemp("image")
    base = ensure_base_image(command[0], tmp)
    ensure_uv_image(command[0], tmp)
    tag = f"ds-pipelines-test/app:{image_tag(REPO)}"
    build(command, env, REPO, tag, "--build-arg", f"BASE_IMAGE={base}", "--build-arg",
          f"IMAGE_TAG={image_tag(REPO)}")
    built = {"docker": command[0], "command": command, "env": env, "base": base, "tag": tag, "tmp": tmp,
             "extra_tags": []}
    yield built
    for name in [tag, *built["extra_tags"], UV_IMAGE]:
        run(command[0], "rmi", "--force", name, timeout=120)


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
