"""Reading an executed notebook in the terms of the notebook its author wrote.

dagstermill injects cells (its context first, a teardown last); a notebook's "code cell 3" counts the
author's own code cells only, the same for the run's failure message and for everything published.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

INJECTED_TAGS = frozenset({"injected-parameters", "injected-teardown"})


def own_code_cells(cells: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    """The author's code cells of a notebook (nbformat nodes or plain JSON), dagstermill's left out."""
    return [
        cell for cell in cells
        if isinstance(cell, Mapping) and cell.get("cell_type") == "code"
        and not INJECTED_TAGS & set((cell.get("metadata") or {}).get("tags", []))
    ]


def failed_cell_number(cells: Iterable[Mapping[str, Any]]) -> int:
    """The 1-based number of the first own code cell with an error output; 0 when none has one."""
    return next(
        (number for number, cell in enumerate(own_code_cells(cells), start=1)
         if any(output.get("output_type") == "error" for output in cell.get("outputs", []))),
        0,
    )
