"""How a notebook hands its results (metrics, MLflow run id, artifacts) to Dagster and the CLI.

The notebook displays one output of its own MIME type (``report``); the asset reads it back from the
executed notebook's JSON (``read_report``). Plain JSON both ways, so neither the kernel nor the CLI pays
for importing a notebook-scraping library (scrapbook pulls in pandas).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

MIME_TYPE = "application/vnd.ds-pipelines.result+json"


def report(*, metrics: dict[str, float], mlflow_run_id: str | None = None, artifacts: dict[str, Path] | None = None,
           data: list[dict[str, str]] | None = None, device: str | None = None,
           uncertainty: dict[str, dict[str, Any]] | None = None) -> None:
    """Record the notebook's results; in plain Jupyter this shows them as text. ``data`` and ``device`` go
    into the run's reproducibility record (``ds_pipelines.results.reproducibility``); ``uncertainty`` is
    metric name to ``{"low", "high", "kind"}`` (``ds_pipelines.results.uncertainty``)."""
    from IPython.display import display

    result = {
        "metrics": {name: float(value) for name, value in metrics.items()},
        "mlflow_run_id": mlflow_run_id,
        "artifacts": {name: str(Path(p).resolve()) for name, p in (artifacts or {}).items()},
        "data": list(data or []),
        "device": device,
        "uncertainty": dict(uncertainty or {}),
    }
    display({MIME_TYPE: result, "text/plain": json.dumps(result, indent=2)}, raw=True)


def read_report(executed: Path) -> dict[str, Any]:
    """What the executed notebook recorded with ``report`` (the last one wins; empty if none)."""
    found: dict[str, Any] = {}
    for cell in json.loads(executed.read_text(encoding="utf-8")).get("cells", []):
        for output in cell.get("outputs", []):
            found = output.get("data", {}).get(MIME_TYPE, found)
    return found
