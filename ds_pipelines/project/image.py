"""The container image's tags: a content hash for builds, release names for tagged releases.

Free of Dagster imports, so ``ds-pipelines image-tag`` answers in CI before anything heavy loads.

An image is rebuilt only when what it is made of changes: ``IMAGE_FILES`` are exactly the files that
define the environment (the Dockerfile, what it may see, the dependencies and their lock). Notebooks,
configs and the package's code are copied in a last, cheap layer and are not part of the hash: CI jobs
run the checkout's code inside the image, so a code change needs no new image.

Tag scheme (``$CI_REGISTRY_IMAGE`` is GitLab's registry path of the project):

- ``$CI_REGISTRY_IMAGE:<image_tag()>``: every build, e.g. ``:3f2a9c1d0b7e``; CI jobs run in it.
- ``dev-1.2.3`` (a development release): ``:staging-dev-1.2.3`` and the moving ``:staging``.
- ``v1.2.3`` (a production release): ``:v1.2.3`` and the moving ``:production``.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.project.defaults import DEVELOPMENT, PRODUCTION, release_kind

IMAGE_FILES: tuple[str, ...] = ("Dockerfile", ".dockerignore", "pyproject.toml", "uv.lock")
"""Paths, relative to the project root, whose content defines the image (and nothing else does)."""

TAG_LENGTH = 12
"""Hex digits kept of the sha256: 48 bits, ample for the images of one project, short enough to read."""

# Part of the hash: changing how tags are computed must never reuse an image built under the old rule.
_SCHEME = b"ds-pipelines-image-tag/1\n"


class ImageFileMissingError(DsPipelinesError):
    """A file that defines the image is not in the project."""

    def __init__(self, root: Path, path: str):
        super().__init__(
            f"{path}: not found in {root} (the image tag is computed from {', '.join(IMAGE_FILES)})"
        )


class NotAReleaseError(DsPipelinesError):
    """A git tag that is neither a production nor a development release."""

    def __init__(self, tag: str):
        super().__init__(
            f"tag {tag!r} is no release: expected a production tag like v1.2.3 or a development tag "
            "like dev-1.2.3"
        )


def image_tag(root: Path) -> str:
    """Hex digest over the path and content of every file in ``IMAGE_FILES`` under ``root``.

    Only paths relative to ``root`` and bytes enter the hash: the same files give the same tag in any
    folder, at any modification time.
    """
    digest = hashlib.sha256(_SCHEME)
    for path in IMAGE_FILES:
        file = root / path
        if not file.is_file():
            raise ImageFileMissingError(root, path)
        content = file.read_bytes()
        # Lengths delimit the fields, so no two different file sets can hash the same stream.
        digest.update(f"{path}\0{len(content)}\0".encode())
        digest.update(content)
    return digest.hexdigest()[:TAG_LENGTH]


def release_tags(git_tag: str) -> list[str]:
    """Image tags of a release: its own name, then the moving tag of its kind (see the module docstring)."""
    kind = release_kind(git_tag)
    if kind == PRODUCTION:
        return [git_tag, "production"]
    if kind == DEVELOPMENT:
        return [f"staging-{git_tag}", "staging"]
    raise NotAReleaseError(git_tag)
