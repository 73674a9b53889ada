"""Tools some tests need beyond the Python packages: gitlab-ci-local with Node.js and rsync
(tests/test_gitlab_ci.py), a Docker daemon and debootstrap (tests/test_image_build.py), a PostgreSQL server
(tests/postgres.py).

``./run-tests`` installs them where it can (as root or with passwordless sudo: ci-tools/install-test-tools).
Where one is still missing, ``require`` skips the test, saying what to install; in CI (``CI=true``, as
``.ci/run`` runs) it fails the test instead, so a CI machine that lost a tool cannot pass by skipping.
"""

from __future__ import annotations

import os

import pytest

INSTALL_HINT = "./run-tests installs what is missing when it runs as root or with passwordless sudo"


def in_ci() -> bool:
    return os.environ.get("CI") == "true"


def require(missing: str | None) -> None:
    """Nothing when ``missing`` is empty; else skip the test (fail it when ``CI=true``), saying what is missing
    and how to install it."""
    if not missing:
        return
    if in_ci():
        pytest.fail(f"CI=true, so this cannot be skipped: {missing} ({INSTALL_HINT})", pytrace=False)
    pytest.skip(f"{missing} ({INSTALL_HINT})")
