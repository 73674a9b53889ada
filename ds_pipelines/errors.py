"""Errors that ds-pipelines reports to people: each names the file, key or value at fault."""

from __future__ import annotations

import difflib
import reprlib
from collections.abc import Iterable

# Parsed values are quoted in messages through this, never with a plain repr(): a YAML alias bomb parses
# cheaply into a structure whose repr() would be gigabytes.
_BOUNDED = reprlib.Repr()  # attributes, not arguments: Python 3.11's Repr takes none
_BOUNDED.maxlevel, _BOUNDED.maxstring, _BOUNDED.maxother, _BOUNDED.maxlong = 3, 120, 120, 60
_BOUNDED.maxlist = _BOUNDED.maxtuple = _BOUNDED.maxdict = _BOUNDED.maxset = 6
_MAX_SHOWN = 300


def shown(value: object) -> str:
    """``repr(value)``, cut short (``...``) where it is deep, long or wide, and at most _MAX_SHOWN characters:
    safe to put in a message."""
    text = _BOUNDED.repr(value)
    return text if len(text) <= _MAX_SHOWN else f"{text[:_MAX_SHOWN - 3]}..."


def unknown_key(key: object, allowed: Iterable[str]) -> str:
    """The problem of a key a mapping does not take: the keys it takes and, for a near miss (a typo, a key
    spelt as another tool spells it), the one meant."""
    allowed = list(allowed)
    meant = difflib.get_close_matches(key, allowed, n=1, cutoff=0.6) if isinstance(key, str) else []
    return f"unknown key (expected one of: {', '.join(allowed)})" + (f"; did you mean {meant[0]!r}?" if meant else "")


class DsPipelinesError(Exception):
    """Base class: the CLI prints these as ``error: <message>`` and exits non-zero, without a traceback."""


class ConfigError(DsPipelinesError):
    """A config file that cannot be read or does not match its schema."""

    def __init__(self, file: str, key: str | None, problem: str):
        self.file, self.key, self.problem = file, key, problem
        where = f"{file}: {key}" if key else file
        super().__init__(f"{where}: {problem}")


class NotebookNotFoundError(DsPipelinesError):
    def __init__(self, notebook: str, known: list[str]):
        listing = ", ".join(known) if known else "none"
        super().__init__(f"notebook {notebook!r} does not exist (notebooks of this project: {listing})")


class AssetNameCollisionError(DsPipelinesError):
    """Notebooks whose file names become the same Dagster asset name: the asset graph can hold only one."""

    def __init__(self, name: str, paths: list[str]):
        self.name, self.paths = name, tuple(paths)
        super().__init__(
            f"{' and '.join(self.paths)} both become the Dagster asset {name!r} (asset names keep the letters, digits "
            f"and _ of the file name): rename one of them"
        )


class ProjectProblemsError(DsPipelinesError):
    """Every problem ``ds-pipelines check`` found in a project, reported together."""

    def __init__(self, problems: list[DsPipelinesError]):
        self.problems = list(problems)
        # One problem a line, each with the CLI's "error: " in front as the first gets it (ds_pipelines.cli.main).
        super().__init__("\nerror: ".join(str(problem) for problem in self.problems))


class NotebookInputError(DsPipelinesError):
    """Raised inside a notebook when its input data or model does not fit its config."""
