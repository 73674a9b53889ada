"""What to show about a failed notebook: the failing cell's source and the error, read from the executed notebook."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass

from ds_pipelines.publish.results import NotebookResult

# dagstermill's injected cells; failed_cell numbers count the notebook's own code cells only
# (the same rule as ds_pipelines/defs/notebooks/execution.py, which this Dagster-free module cannot import).
INJECTED_TAGS = {"injected-parameters", "injected-teardown"}
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


def describe_failure(result: NotebookResult) -> Failure:
    """The failing cell and error of ``result`` (a failed notebook), from its executed notebook when it
    has one, else from results.json."""
    source, error = None, None
    cells = _own_code_cells(result)
    if result.failed_cell and 0 < result.failed_cell <= len(cells):
        cell = cells[result.failed_cell - 1]
        source = _text(cell.get("source", ""))
        error = _error_line(cell)
    if error is None:
        error = next((line for line in (_error_line(c) for c in cells) if line), None)
    if error is None:
        error = (result.error or "unknown error").strip().splitlines()[-1] if (result.error or "").strip() else "unknown error"
    return Failure(notebook=result.notebook, name=result.name, cell=result.failed_cell, source=source, error=error)


def _own_code_cells(result: NotebookResult) -> list[dict]:
    if result.executed_notebook is None:
        return []
    try:
        cells = json.loads(result.executed_notebook.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return []  # the executed notebook is an extra; results.json still says what failed
    return [
        cell for cell in cells
        if isinstance(cell, dict) and cell.get("cell_type") == "code"
        and not INJECTED_TAGS & set(cell.get("metadata", {}).get("tags", []))
    ]


def _error_line(cell: dict) -> str | None:
    for output in cell.get("outputs", []):
        if output.get("output_type") == "error":
            value = _ANSI.sub("", str(output.get("evalue", ""))).strip().splitlines()
            return f"{output.get('ename', 'Error')}: {value[0] if value else ''}".rstrip(": ")
    return None


def _text(source: str | list) -> str:
    return "".join(source) if isinstance(source, list) else str(source)
