"""The container image's tags: a content hash for builds, release names for tagged releases.

Free of Dagster imports, so ``ds-pipelines image-tag`` answers in CI before anything heavy loads.

An image is rebuilt only when what it is made of changes: ``IMAGE_FILES`` are exactly the files that
define the environment (the Dockerfile, what it may see, the dependencies and their lock). Notebooks,
configs and the package's code are copied in a last, cheap layer and are not part of the hash: CI jobs
run the checkout's code inside the image, so a code change needs no new image.

Tag scheme (``$CI_REGISTRY_IMAGE`` is GitLab's registry path of the project):

- ``$CI_REGISTRY_IMAGE:<image_tag()>``: every build of a protected ref, e.g. ``:3f2a9c1d0b7e``; CI jobs run
  in it. The build arguments are part of the hash: another ``BASE_IMAGE`` is another image.
- ``$CI_REGISTRY_IMAGE:<image_tag()>-<branch slug>``: the build of an unprotected branch. Any Developer can
  push such a branch, so its image never takes (nor replaces) the shared tag that protected refs run.
- ``dev-1.2.3`` (a development release): ``:staging-dev-1.2.3`` and the moving ``:staging``.
- ``v1.2.3`` (a production release): ``:v1.2.3`` and the moving ``:production``.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from pathlib import Path

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.project.defaults import DEVELOPMENT, PRODUCTION, release_kind

IMAGE_FILES: tuple[str, ...] = ("Dockerfile", ".dockerignore", "pyproject.toml", "uv.lock")
"""Paths, relative to the project root, whose content defines the image (and nothing else does)."""

_SLUG = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
TAG_LENGTH = 12
"""Hex digits kept of the sha256: 48 bits, ample for the images of one project, short enough to read."""

# Part of the hash: changing how tags are computed must never reuse an image built under the old rule.
_SCHEME = b"ds-pipelines-image-tag/2\n"


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


def image_tag(root: Path, build_args: Mapping[str, str] | None = None, *, unprotected_ref: str | None = None) -> str:
    """Hex digest over the path and content of every file in ``IMAGE_FILES`` under ``root`` and over every
    build argument (``NAME=VALUE``), then ``-<unprotected_ref>`` (a branch slug) for a ref that is not
    protected.

    Only paths relative to ``root``, bytes and arguments enter the hash: the same files give the same tag in
    any folder, at any modification time.
    """
    if unprotected_ref is not None and not _SLUG.fullmatch(unprotected_ref):
        raise DsPipelinesError(f"--unprotected-ref {unprotected_ref!r} is not a ref slug (lowercase letters, digits and "
                               "'-', at most 63, as GitLab's CI_COMMIT_REF_SLUG)")
    digest = hashlib.sha256(_SCHEME)
    for name, value in sorted((build_args or {}).items()):
        digest.update(f"arg\0{len(name)}\0{name}\0{len(value)}\0".encode())
        digest.update(value.encode())
    for path in IMAGE_FILES:
        file = root / path
        if not file.is_file():
            raise ImageFileMissingError(root, path)
        content = file.read_bytes()
        # Lengths delimit the fields, so no two different file sets can hash the same stream.
        digest.update(f"{path}\0{len(content)}\0".encode())
        digest.update(content)
    tag = digest.hexdigest()[:TAG_LENGTH]
    return f"{tag}-{unprotected_ref}" if unprotected_ref is not None else tag


def release_tags(git_tag: str) -> list[str]:
    """Image tags of a release: its own name, then the moving tag of its kind (see the module docstring)."""
    kind = release_kind(git_tag)
    if kind == PRODUCTION:
        return [git_tag, "production"]
    if kind == DEVELOPMENT:
        return [f"staging-{git_tag}", "staging"]
    raise NotAReleaseError(git_tag)
