"""Asking git about the work tree a project folder is in (its HEAD, whether it is dirty, its top level).

Always with a time limit: a blocked network file system or a stale ``index.lock`` must not hang a run, a
reproduce or the recording of a result. No answer in time is "unknown", as no git at all is.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

GIT_TIMEOUT_S = 30
"""A local question to git; longer is a hang."""


def ask_git(root: Path, *args: str, timeout_s: float = GIT_TIMEOUT_S) -> subprocess.CompletedProcess | None:
    """``git ARGS`` run in ``root`` (text output); None when git is not installed or did not answer within
    ``timeout_s``."""
    try:
        return subprocess.run(["git", *args], cwd=root, capture_output=True, text=True, timeout=timeout_s, check=False)
    except (OSError, subprocess.TimeoutExpired):
        return None
