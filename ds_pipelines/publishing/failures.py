"""The failed notebooks of a run, read from their executed notebooks: the failing cell's source and error."""

from __future__ import annotations

import json

from ds_pipelines.publishing.render.failure import Failure, describe_failure
from ds_pipelines.results.folder import NotebookResult, RunResults


def describe_failures(results: RunResults) -> dict[str, Failure]:
    """Each failed notebook's failure, by asset name."""
    return {nb.name: describe_failure(nb, _cells(nb)) for nb in results.failed}


def _cells(result: NotebookResult) -> list:
    if result.executed_notebook is None:
        return []
    try:
        cells = json.loads(result.executed_notebook.read_text(encoding="utf-8")).get("cells", [])
    except (OSError, UnicodeDecodeError, json.JSONDecodeError, AttributeError):
        return []  # the executed notebook is an extra; results.json still says what failed
    return cells if isinstance(cells, list) else []
