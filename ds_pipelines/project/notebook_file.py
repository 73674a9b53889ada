"""Reading a notebook file of the project, with an error that names the file and the spot where it is broken.

A notebook saved with a merge conflict in it, or cut short, is no JSON; nbformat's own error is a traceback
without the file's name. The definitions (an asset's description is the notebook's first heading) and
``ds-pipelines check`` read notebooks through here.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import nbformat

from ds_pipelines.errors import ConfigError


def read_notebook(file: Path, *, display: str) -> nbformat.NotebookNode:
    """The notebook in ``file`` (as nbformat 4), or a ConfigError naming ``display`` and what is wrong."""
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(display, None, f"cannot be read: {exc}") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(
            display, None, f"not valid JSON at line {exc.lineno}, column {exc.colno}: {exc.msg} (a notebook is a JSON file)"
        ) from None
    if not isinstance(data, dict) or not isinstance(data.get("nbformat"), int):
        raise ConfigError(display, None, "not a Jupyter notebook: expected a JSON object with 'nbformat' and 'cells'")
    # Notebooks from before nbformat 4.5 have no cell ids; nbformat warns that it adds them, which is no problem here.
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        try:
            nbformat.validate(data)
        except nbformat.ValidationError as exc:
            where = "/".join(str(part) for part in exc.absolute_path)
            raise ConfigError(display, where or None, f"not a valid notebook: {exc.message}") from None
        return nbformat.reads(text, as_version=4)
