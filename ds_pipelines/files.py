"""Writing result files so that a failed run never leaves a half-written file that looks like a result."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_current_umask()


def write_atomically(target: Path, write: Callable[[Path], Any]) -> None:
    """``write`` fills a temporary file beside ``target``, which then replaces ``target`` in one rename."""
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        tmp.chmod(_FILE_MODE)  # mkstemp creates 0600; results are meant to be read by others
        tmp.replace(target)
    finally:
        tmp.unlink(missing_ok=True)


def write_json(target: Path, data: Any) -> None:
    write_atomically(target, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n"))
