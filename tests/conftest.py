"""Shared fixtures: every test runs against its own Dagster instance, MLflow store and output folder.

The helpers behind them live in sandbox.py; the ``fake_gitlab``, ``fake_slack``, ``postgres`` and ``project_image``
fixtures come from fake_gitlab.py, fake_slack.py, postgres.py and images.py, loaded as plugins below, so test modules take them without
importing them.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from sandbox import Sandbox, make_sandbox

pytest_plugins = ["fake_gitlab", "fake_slack", "postgres", "images"]


@pytest.fixture
def sandbox(tmp_path: Path) -> Sandbox:
    return make_sandbox(tmp_path)


@pytest.fixture(scope="session")
def trained(tmp_path_factory) -> tuple[Sandbox, subprocess.CompletedProcess]:
    """Training then inference through the real CLI, once for every test that reads their results."""
    box = make_sandbox(tmp_path_factory.mktemp("trained"))
    result = box.cli(
        "run", "notebooks/inference_example.ipynb", "notebooks/training_example.ipynb",
        "--config", f"training_example={box.training_config()}",
        "--config", f"inference_example={box.inference_config()}",
        "--output-dir", str(box.root / "results"), "--json",
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return box, result


@pytest.hookimpl(tryfirst=True)  # before -m deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """A test that takes ``trained``, directly or through another fixture, is slow however it is marked."""
    for item in items:
        if "trained" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
