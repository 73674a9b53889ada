"""What to show about a failed notebook: the failing cell's source and the error."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from ds_pipelines.results.executed import own_code_cells
from ds_pipelines.results.folder import NotebookResult

_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass(frozen=True)
class Failure:
    notebook: str
    name: str
    cell: int | None
    source: str | None
    """The failing cell's source, when the executed notebook holds it."""
    error: str
    """One line: ``ValueError: message``."""


def describe_failure(result: NotebookResult, cells: Sequence[Mapping[str, Any]] = ()) -> Failure:
    """The failing cell and error of ``result`` (a failed notebook), from the cells of its executed notebook
    when given, else from results.json."""
    source, error = None, None
    own = own_code_cells(cells)
    if result.failed_cell and 0 < result.failed_cell <= len(own):
        cell = own[result.failed_cell - 1]
        source = _text(cell.get("source", ""))
        error = _error_line(cell)
    if error is None:
        error = next((line for line in (_error_line(c) for c in own) if line), None)
    if error is None:
        error = (result.error or "unknown error").strip().splitlines()[-1] if (result.error or "").strip() else "unknown error"
    return Failure(notebook=result.notebook, name=result.name, cell=result.failed_cell, source=source, error=error)


def _error_line(cell: Mapping[str, Any]) -> str | None:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            value = _ANSI.sub("", str(output.get("evalue", ""))).strip().splitlines()
            return f"{output.get('ename', 'Error')}: {value[0] if value else ''}".rstrip(": ")
    return None


def _text(source: str | list) -> str:
    return "".join(source) if isinstance(source, list) else str(source)
