"""The project's image, built once per test session from this checkout (fixture ``project_image``).

Needs a Docker daemon, a Docker client that builds with BuildKit, and a base image. No registry is
assumed: the base is a Debian 12 root file system made with ``debootstrap`` (root and a Debian mirror
needed; kept as ``BASE_IMAGE`` below for the next run) or ``$DS_PIPELINES_TEST_BASE_IMAGE``, and uv's image
is made from the local ``uv`` binary. Python comes from the base's packages (``PYTHON_FROM=apt``). Anything
missing skips the tests that take the image, saying what to install (tests/required.py). The image is removed
at the end of the session; the base is kept, and BuildKit's cache stays with the daemon for the next build.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from pathlib import Path

import pytest
from required import require

from ds_pipelines.project.image import image_tag

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


@pytest.fixture(scope="session")
def project_image(tmp_path_factory):
    """The image built from this checkout on the Debian base, as a dict: docker (the client), command and env
    (to build more), base, tag, tmp (a folder), extra_tags (tags a test adds, removed with the image)."""
    docker = shutil.which("docker")
    if not docker or run(docker, "info", timeout=60).returncode != 0:
        require("no Docker daemon answers `docker info`: apt-get install docker.io, then start dockerd")
    command, env = buildkit_docker()
    tmp = tmp_path_factory.mktemp("image")
    base = ensure_base_image(command[0], tmp)
    ensure_uv_image(command[0], tmp)
    # Unique per session: another checkout's session on the same daemon builds and removes its own.
    tag = f"ds-pipelines-test/app:{image_tag(REPO)}-{uuid.uuid4().hex[:8]}"
    started = time.monotonic()
    build(command, env, REPO, tag, "--build-arg", f"BASE_IMAGE={base}", "--build-arg",
          f"IMAGE_TAG={image_tag(REPO)}")
    built_in_s = round(time.monotonic() - started, 1)
    print(f"\nbuilt {tag} in {built_in_s} s")
    built = {"build_s": built_in_s, "docker": command[0], "command": command, "env": env, "base": base, "tag": tag,
             "tmp": tmp, "extra_tags": []}
    yield built
    for name in [tag, *built["extra_tags"], UV_IMAGE]:
        run(command[0], "rmi", "--force", name, timeout=120)
