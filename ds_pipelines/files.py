"""Writing result files so that a failed run never leaves a half-written file that looks like a result."""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from ds_pipelines.errors import DsPipelinesError


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_FILE_MODE = 0o666 & ~_current_umask()


class FileWriteError(DsPipelinesError, OSError):
    """A result file that could not be written (disk full, no permission): nothing was replaced."""


def write_atomically(target: Path, write: Callable[[Path], Any]) -> None:
    """``write`` fills a temporary file beside ``target``, which then replaces ``target`` in one rename.

    When writing fails for a reason of the system (a full disk, a quota, no permission), the temporary file
    is removed and ``target`` keeps what it held: a FileWriteError names it and says so.
    """
    with atomic_target(target) as tmp:
        write(tmp)


@contextmanager
def atomic_target(target: Path) -> Iterator[Path]:
    """A temporary file beside ``target`` to fill inside the ``with`` block; it replaces ``target`` in one
    rename when the block ends without an error, and is removed when it raises (the error passes through)."""
    existed = target.exists()
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp_name = tempfile.mkstemp(dir=target.parent, prefix=f".{target.name}.", suffix=target.suffix)
    except OSError as exc:
        raise FileWriteError(f"{target} cannot be written: {exc.strerror or exc}") from None
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        yield tmp
        tmp.chmod(_FILE_MODE)  # mkstemp creates 0600; results are meant to be read by others
        tmp.replace(target)
    except OSError as exc:
        kept = "the earlier file is unchanged" if existed else "no file was left there"
        raise FileWriteError(f"{target} cannot be written ({exc.strerror or exc}): {kept}") from None
    finally:
        tmp.unlink(missing_ok=True)


def write_json(target: Path, data: Any) -> None:
    write_atomically(target, lambda tmp: tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n"))
