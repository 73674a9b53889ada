"""A results folder made fit to keep as CI artifacts: every secret masked in place.

Run before the folder is kept as a CI artifact or logged anywhere (``ds-pipelines mask-secrets``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from ds_pipelines.masking import Masker, mask_json_file, mask_notebook_file
from ds_pipelines.results.folder import RESULTS_FILE, load_results


def mask_results_folder(directory: Path, env: Mapping[str, str] | None = None) -> int:
    """Mask, in place, what a results folder holds in text: executed notebooks, results.json (errors,
    metric names) and metrics files. The notebooks' own artifacts (models, scores, plots) are not touched.
    Returns the occurrences masked."""
    results = load_results(directory)
    env_values = Masker.from_env(env).env_values
    total = 0
    for nb in results.notebooks:
        if nb.executed_notebook is not None:
            total += mask_notebook_file(nb.executed_notebook, nb.executed_notebook, env_values)
        if nb.metrics_file is not None:
            total += mask_json_file(nb.metrics_file, env_values)
    return total + mask_json_file(Path(directory) / RESULTS_FILE, env_values)
