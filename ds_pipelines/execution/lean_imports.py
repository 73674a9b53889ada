"""Less start-up for the processes that run notebooks: papermill without the cost of its HDFS client, and
imports the garbage collector leaves alone.

Importing papermill imports pyarrow, and with it numpy (about 0.3 s), for the one purpose of reading and
writing ``hdfs://`` paths, which ds-pipelines never gives it. Both ``ds-pipelines run`` and the notebook's kernel
pay that before the notebook's first cell. ``import_papermill`` imports papermill with pyarrow held back and
gives papermill's HDFS handler the same pyarrow classes, imported when it first uses them: an ``hdfs://`` path
still works, and a notebook that imports pyarrow itself gets it as usual. Called before anything imports
dagstermill (which imports papermill); where papermill or pyarrow is already loaded it changes nothing.
``tests/test_startup.py`` pins the papermill names this relies on.

Importing Dagster creates a few hundred thousand objects that live as long as the process: the garbage
collector would scan them again and again while they are created, and at every full collection after.
``long_lived_objects`` collects nothing while they are created, then moves them out of its way (``gc.freeze``):
about a quarter of the time the imports take. Objects created after it are collected as usual.

Free of Dagster imports: the kernel uses both before it imports Dagster.
"""

from __future__ import annotations

import gc
import importlib
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from importlib.abc import MetaPathFinder
from typing import Any

HELD_BACK = "pyarrow"
HDFS_CLASSES = ("HadoopFileSystem", "FileSelector")
"""The ``pyarrow.fs`` names papermill's HDFS handler calls (``papermill.iorw``'s globals)."""


def import_papermill() -> None:
    """Import papermill (see the module docstring); its HDFS handler imports pyarrow when first used."""
    if "papermill.iorw" in sys.modules or HELD_BACK in sys.modules:
        return
    with _held_back(HELD_BACK):
        iorw = importlib.import_module("papermill.iorw")
    for name in HDFS_CLASSES:
        setattr(iorw, name, _imported_on_call(name))


@contextmanager
def long_lived_objects() -> Iterator[None]:
    """What is created while it lasts lives as long as the process (see the module docstring)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        gc.freeze()
        if was_enabled:
            gc.enable()


def _imported_on_call(name: str) -> Callable[..., Any]:
    def construct(*args: Any, **kwargs: Any) -> Any:
        from pyarrow import fs

        return getattr(fs, name)(*args, **kwargs)

    construct.__name__ = construct.__qualname__ = name
    return construct


class _HoldBack(MetaPathFinder):
    def __init__(self, package: str):
        self.package = package

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        if fullname == self.package or fullname.startswith(self.package + "."):
            raise ImportError(f"{fullname} is held back while papermill is imported", name=fullname)
        return None


@contextmanager
def _held_back(package: str) -> Iterator[None]:
    """While it lasts, importing ``package`` raises ImportError, as if it were not installed."""
    finder = _HoldBack(package)
    sys.meta_path.insert(0, finder)
    try:
        yield
    finally:
        sys.meta_path.remove(finder)
