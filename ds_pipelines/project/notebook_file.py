"""What ds-pipelines reads from a notebook file: the notebook itself, the kernel it runs in, whether it can run,
its parameters cell.

A notebook saved with a merge conflict in it, or cut short, is no JSON; nbformat's own error is a traceback
without the file's name: ``read_notebook`` names the file and the spot where it is broken. The definitions
(an asset's description is the notebook's first heading) and ``ds-pipelines check`` read notebooks through it.

A notebook's metadata names the kernel of the machine it was last saved on (``conda-env-ml-py``, ``venv``,
``python3``), a name that means nothing on another machine. So a Python notebook runs in the project's own
Python environment (``PROJECT_KERNEL``: jupyter_client starts it with the interpreter that runs
ds-pipelines), whatever its metadata says, unless ``kernel:`` in ``configs/notebooks.yaml`` names another
installed kernel. A notebook in another language (R, Julia) cannot run: dagstermill's injected context and
the notebook API are Python.

``notebook_problem`` is the check; ``ds-pipelines run`` calls it before anything runs, and a notebook's
Dagster step before it starts a kernel.

A cell tagged ``parameters`` holds defaults, as papermill has it: they run, then a cell assigning the
config's top-level keys to variables of the same names (``parameters_cell``, ``parameter_problem``).
"""

from __future__ import annotations

import json
import keyword
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ds_pipelines.errors import ConfigError
from ds_pipelines.project.folder import REGISTRY_FILE, NotebookSpec

if TYPE_CHECKING:
    import nbformat

PARAMETERS_TAG = "parameters"
PROJECT_KERNEL = "python3"
"""The project's Python: jupyter_client runs the ``python3`` kernel with the running interpreter."""


def kernel_for(spec: NotebookSpec) -> str:
    """The kernel ``spec`` runs in: its ``kernel:`` override, else the project's Python."""
    return spec.kernel or PROJECT_KERNEL


def notebook_problem(root: Path, spec: NotebookSpec) -> str | None:
    """Why the notebook cannot run (naming it and its kernel), or None when it can."""
    try:
        metadata = json.loads((root / spec.path).read_text(encoding="utf-8")).get("metadata") or {}
    except (OSError, UnicodeDecodeError, ValueError, AttributeError) as exc:
        return f"{spec.path} cannot be read as a notebook: {exc}"
    kernelspec = metadata.get("kernelspec") or {}
    language = _language(metadata)
    if language is not None and language.lower() != "python":
        kernel = kernelspec.get("name") or kernelspec.get("display_name") or "none named"
        return f"{spec.path} is written in {language} for the kernel {kernel!r}: ds-pipelines runs Python notebooks only"
    if spec.kernel is not None:
        return _override_problem(spec)
    return None


def parameters_cell(cells: Sequence[Mapping[str, Any]]) -> int | None:
    """Index of the first cell tagged ``parameters`` (papermill's rule), None when there is none."""
    return next((index for index, cell in enumerate(cells)
                 if PARAMETERS_TAG in ((cell.get("metadata") or {}).get("tags") or [])), None)


def parameter_problem(root: Path, spec: NotebookSpec, config: Mapping[str, Any], *, display: str) -> str | None:
    """Why ``config`` (read from ``display``) cannot become the notebook's parameters, or None.

    Only a notebook with a parameters cell gets its config's keys as variables, so only there must each
    top-level key be a Python name.
    """
    bad = [key for key in config if not (key.isidentifier() and not keyword.iskeyword(key))]
    if not bad:
        return None
    try:
        cells = json.loads((root / spec.path).read_text(encoding="utf-8")).get("cells") or []
    except (OSError, UnicodeDecodeError, ValueError, AttributeError):
        return None  # notebook_problem reports an unreadable notebook
    if parameters_cell(cells) is None:
        return None
    return (f"{display}: {bad[0]}: not a Python name, so it cannot be a parameter of {spec.path} (its cell "
            "tagged 'parameters' gets each top-level key as a variable of that name)")


def _language(metadata: dict[str, Any]) -> str | None:
    """The notebook's language as its metadata says it; None when it says nothing."""
    for section in ("kernelspec", "language_info"):
        named = (metadata.get(section) or {}).get("language" if section == "kernelspec" else "name")
        if isinstance(named, str) and named.strip():
            return named.strip()
    return None


def _override_problem(spec: NotebookSpec) -> str | None:
    # Imported only for an override: the check of every other notebook reads no kernel specs.
    from jupyter_client.kernelspec import KernelSpecManager, NoSuchKernel

    key = f"{REGISTRY_FILE}: notebooks.{spec.path}.kernel"
    specs = KernelSpecManager()
    try:
        language = specs.get_kernel_spec(spec.kernel).language
    except NoSuchKernel:
        installed = ", ".join(sorted(specs.find_kernel_specs())) or "none"
        return f"{key}: no Jupyter kernel {spec.kernel!r} is installed (installed: {installed})"
    if (language or "").lower() != "python":
        return f"{key}: kernel {spec.kernel!r} runs {language}, not Python"
    return None


def read_notebook(file: Path, *, display: str) -> nbformat.NotebookNode:
    """The notebook in ``file`` (as nbformat 4), or a ConfigError naming ``display`` and what is wrong."""
    # nbformat is imported only to read a notebook: ``ds-pipelines run`` starts the first notebook's kernel
    # (``kernel_for``) before it reads any.
    import nbformat

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
