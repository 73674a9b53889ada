"""Run one notebook through dagstermill and keep the executed notebook, also when it fails.

The one module that touches dagstermill's internals (``dagstermill.factory``, ``dagstermill.engine``):
running a notebook in a kernel that ``ds-pipelines run`` started early means doing what dagstermill's
``execute_notebook`` does with papermill's ``km=`` argument, which dagstermill does not expose.
``DAGSTERMILL_SERIES`` is the release series this was written against; ``tests/test_dagstermill_bridge.py``
fails on any other, and on any change to the signatures used here.
"""

from __future__ import annotations

import logging
import tempfile
import uuid
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import nbformat
import papermill
from dagstermill.engine import DagstermillEngine
from dagstermill.factory import (
    execute_notebook,
    get_papermill_parameters,
    replace_parameters,
)
from papermill.engines import papermill_engines
from papermill.exceptions import PapermillExecutionError
from papermill.iorw import load_notebook_node, write_ipynb

from ds_pipelines.execution import kernels
from ds_pipelines.masking import (
    Masker,
    MaskingLogFilter,
    mask_notebook_file,
    mask_strings,
)
from ds_pipelines.results.executed import failed_cell_number

DAGSTERMILL_SERIES = "0.29."


@dataclass(frozen=True)
class CellFailure:
    """Where and how a notebook failed, in the terms of the notebook the user wrote."""

    cell: int
    """1-based number among the notebook's own code cells (dagstermill's injected cells not counted)."""
    source_line: str
    error: str

    def describe(self, notebook: str) -> str:
        return f"{notebook} failed in code cell {self.cell} ({self.source_line!r}): {self.error}"


def execute_notebook_step(context: dg.AssetExecutionContext, *, name: str, notebook: Path, keep_as: Path) -> Path:
    """Execute ``notebook`` with dagstermill's context injected; the executed copy is moved to ``keep_as``.

    Runs in the kernel ``ds-pipelines run`` started early for the notebook when there is one
    (``ds_pipelines.execution.kernels``), else in one started here, as dagstermill does.

    Raises ``PapermillExecutionError`` when a cell fails, after keeping the executed notebook. Secrets are
    masked in the kept notebook and in papermill's log records (see ``ds_pipelines.masking``).
    """
    keep_as.parent.mkdir(parents=True, exist_ok=True)
    early_kernel = kernels.take(notebook)
    # What the notebook prints reaches papermill's logger (the console, Dagster's event log) and the executed
    # notebook: both are masked before anything else sees them.
    secrets = Masker.from_env().env_values
    papermill_log = logging.getLogger("papermill")
    masking = MaskingLogFilter(secrets)
    papermill_log.addFilter(masking)
    with tempfile.TemporaryDirectory(prefix="ds-pipelines-") as scratch:
        try:
            if early_kernel is None:
                execute_notebook(
                    context.get_step_execution_context(),
                    name=name,
                    save_notebook_on_failure=False,
                    notebook_path=str(notebook),
                    output_notebook_dir=scratch,
                    inputs={},
                )
            else:
                _execute_in(early_kernel, context, notebook=notebook, output_dir=Path(scratch))
        finally:
            papermill_log.removeFilter(masking)
            # papermill writes the output notebook before raising, so a failed run is kept too.
            for written in Path(scratch).glob("*-out.ipynb"):
                mask_notebook_file(written, keep_as, secrets)
    return keep_as


def _execute_in(kernel: kernels.EarlyKernel, context: dg.AssetExecutionContext, *, notebook: Path, output_dir: Path) -> None:
    """What dagstermill's ``execute_notebook`` does, in a kernel that ``ds-pipelines run`` started early.

    The same injected context cell, engine and notebook files; only the kernel is handed to papermill.
    """
    step_context = context.get_step_execution_context()
    prefix = str(uuid.uuid4())
    parameterized = output_dir / f"{prefix}-inter.ipynb"
    try:
        parameters = get_papermill_parameters(step_context, {}, str(output_dir / f"{prefix}.log"), "asset")
        write_ipynb(replace_parameters(step_context, load_notebook_node(str(notebook)), parameters), str(parameterized))
        papermill_engines.register("dagstermill", DagstermillEngine)
        papermill.execute_notebook(
            input_path=str(parameterized),
            output_path=str(output_dir / f"{prefix}-out.ipynb"),
            engine_name="dagstermill",
            log_output=True,
            start_timeout=120,
            km=kernel.manager,
        )
    finally:
        kernel.request_shutdown()  # ``ds-pipelines run`` reaps it once Dagster has recorded the step


def cell_failure(executed: Path, error: PapermillExecutionError) -> CellFailure:
    # papermill puts an error banner above the cells, so its cell_index does not match the file: find
    # the cell that holds the error output instead.
    cells = nbformat.read(executed, as_version=4).cells if executed.exists() else []
    failed = failed_cell_number(cells)
    source = (error.source or "").strip().splitlines()
    # The error and the cell's first line go into Dagster's event log and the console: masked like the notebook.
    (source_line, message), _ = mask_strings([source[0] if source else "", f"{error.ename}: {error.evalue}"],
                                             Masker.from_env().env_values)
    return CellFailure(cell=failed, source_line=source_line, error=message)
