"""Run one notebook through dagstermill and keep the executed notebook, also when it fails.

The one module that touches dagstermill's internals (``dagstermill.factory``, ``dagstermill.engine``,
``dagstermill.translator``): this does what dagstermill's ``execute_notebook`` does, with three changes it
does not offer. A tagged ``parameters`` cell keeps its defaults and is followed by a cell assigning the
config's keys, as papermill does (dagstermill replaces that cell with its context cell, so the defaults
never ran); the kernel is the one ``ds_pipelines.project.notebook_file`` chooses, not the one the notebook's
metadata names, and may be one ``ds-pipelines run`` started early (papermill's ``km=``); the kernel starts in
the project root. ``DAGSTERMILL_SERIES`` is the release series this was written against;
``tests/test_dagstermill_bridge.py`` fails on any other, and on any change to the signatures used here.
"""

from __future__ import annotations

import copy
import logging
import tempfile
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dagster as dg
import nbformat
import papermill
from dagstermill.engine import DagstermillEngine
from dagstermill.factory import get_papermill_parameters
from dagstermill.translator import DagsterTranslator
from nbclient.exceptions import DeadKernelError
from papermill.engines import papermill_engines
from papermill.exceptions import PapermillExecutionError
from papermill.iorw import load_notebook_node, write_ipynb
from papermill.translators import PythonTranslator

from ds_pipelines.execution import interrupts, kernels
from ds_pipelines.masking import (
    Masker,
    MaskingLogFilter,
    mask_notebook_file,
    mask_strings,
)
from ds_pipelines.project.notebook_file import parameters_cell
from ds_pipelines.results.executed import failed_cell_number, own_code_cells

DAGSTERMILL_SERIES = "0.29."
INJECTED_TAG = "injected-parameters"
"""The tag of both injected cells, as dagstermill and papermill name theirs: ``results.executed`` skips them."""
CONTEXT, PARAMETERS = "context", "parameters"
"""The injected cells in ``run_layout``."""
# A kernel that dies on start-up from a ZeroMQ port taken by another kernel starting at the same moment (several
# runs of a deployment at once) is retried, as dagstermill's own execute_notebook does.
_KERNEL_START_RACE = "Kernel died before replying to kernel_info"
_KERNEL_START_TRIES = 3


@dataclass(frozen=True)
class CellFailure:
    """Where and how a notebook failed, in the terms of the notebook the user wrote."""

    cell: int
    """1-based number among the notebook's own code cells (dagstermill's injected cells not counted)."""
    source_line: str
    error: str

    def describe(self, notebook: str) -> str:
        return f"{notebook} failed in code cell {self.cell} ({self.source_line!r}): {self.error}"


def run_layout(cells: list) -> list[int | str]:
    """The notebook as it runs, cell by cell: the index of one of ``cells``, or ``CONTEXT`` / ``PARAMETERS``
    for an injected one. dagstermill's context comes first, so every cell can read the run's config; the
    parameters follow a cell tagged ``parameters``. A cell injected by an earlier papermill run, saved with
    the notebook, is left out, as papermill replaces it."""
    tagged = parameters_cell(cells)
    layout: list[int | str] = [CONTEXT]
    for index, cell in enumerate(cells):
        if INJECTED_TAG in (cell.get("metadata") or {}).get("tags", []):
            continue
        layout.append(index)
        if index == tagged:
            layout.append(PARAMETERS)
    return layout


def with_injected_cells(nb: nbformat.NotebookNode, context_parameters: Mapping[str, Any],
                        parameters: Mapping[str, Any]) -> nbformat.NotebookNode:
    """``nb`` as ``run_layout`` says: dagstermill's context cell, and papermill's cell assigning ``parameters``."""
    injected = {
        CONTEXT: DagsterTranslator.codify(dict(context_parameters)),
        PARAMETERS: PythonTranslator.codify(dict(parameters), "Parameters"),
    }
    nb = copy.deepcopy(nb)
    cells = []
    for entry in run_layout(nb.cells):
        if isinstance(entry, int):
            cells.append(nb.cells[entry])
            continue
        cell = nbformat.v4.new_code_cell(source=injected[entry])
        cell.metadata["tags"] = [INJECTED_TAG]
        cells.append(cell)
    nb.cells = cells
    return nb


def execute_notebook_step(context: dg.AssetExecutionContext, *, notebook: Path, keep_as: Path, kernel_name: str,
                          cwd: Path, parameters: Mapping[str, Any]) -> Path:
    """Execute ``notebook`` with dagstermill's context injected; the executed copy is moved to ``keep_as``.

    ``parameters`` (the run's config) override the defaults of a cell tagged ``parameters``. Runs in the
    kernel ``ds-pipelines run`` started early for the notebook when there is one
    (``ds_pipelines.execution.kernels``), else in a ``kernel_name`` kernel started in ``cwd``.

    Raises ``PapermillExecutionError`` when a cell fails, ``KernelDiedError`` when the kernel dies, both after
    keeping the executed notebook. Secrets are
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
            with interrupts.interrupting_kernels():
                _execute(context, notebook=notebook, output_dir=Path(scratch), kernel_name=kernel_name, cwd=cwd,
                         parameters=parameters, early_kernel=early_kernel)
        except DeadKernelError:
            died = True
        else:
            died = False
        finally:
            papermill_log.removeFilter(masking)
            # papermill writes the output notebook before raising, so a failed run is kept too.
            for written in Path(scratch).glob("*-out.ipynb"):
                mask_notebook_file(written, keep_as, secrets)
    if died:
        raise KernelDiedError(_last_started_cell(keep_as))
    return keep_as


class KernelDiedError(Exception):
    """The notebook's kernel process ended while a cell ran: killed (the OOM killer, ``kill -9``) or crashed
    in native code. No error output says which cell: ``cell`` is the last one that started."""

    def __init__(self, failure: CellFailure):
        super().__init__(failure.error)
        self.failure = failure


def _last_started_cell(executed: Path) -> CellFailure:
    cells = nbformat.read(executed, as_version=4).cells if executed.exists() else []
    started = [(number, cell) for number, cell in enumerate(own_code_cells(cells), start=1)
               if (cell.get("metadata", {}).get("papermill") or {}).get("start_time")]
    number, cell = started[-1] if started else (0, {"source": ""})
    source = cell["source"].strip().splitlines()
    (source_line,), _ = mask_strings([source[0] if source else ""], Masker.from_env().env_values)
    return CellFailure(cell=number, source_line=source_line,
                       error="the kernel died while this cell ran (killed, e.g. by the out-of-memory killer, or crashed)")


def _execute(context: dg.AssetExecutionContext, *, notebook: Path, output_dir: Path, kernel_name: str, cwd: Path,
             parameters: Mapping[str, Any], early_kernel: kernels.EarlyKernel | None) -> None:
    """What dagstermill's ``execute_notebook`` does: the same context cell, engine and notebook files."""
    step_context = context.get_step_execution_context()
    prefix = str(uuid.uuid4())
    parameterized = output_dir / f"{prefix}-inter.ipynb"
    try:
        context_parameters = get_papermill_parameters(step_context, {}, str(output_dir / f"{prefix}.log"), "asset")
        write_ipynb(with_injected_cells(load_notebook_node(str(notebook)), context_parameters, parameters), str(parameterized))
        papermill_engines.register("dagstermill", DagstermillEngine)
        for attempt in range(1, _KERNEL_START_TRIES + 1):
            try:
                papermill.execute_notebook(
                    input_path=str(parameterized),
                    output_path=str(output_dir / f"{prefix}-out.ipynb"),
                    engine_name="dagstermill",
                    log_output=True,
                    start_timeout=120,
                    kernel_name=kernel_name,
                    # nbclient starts the kernel there; papermill's cwd= would change this whole process's folder.
                    resources={"metadata": {"path": str(cwd)}},
                    # A kernel of nbclient's own is a quiet one too (kernels.QuietKernelManager).
                    **({"km": early_kernel.manager} if early_kernel else {"kernel_manager_class": kernels.QuietKernelManager}),
                )
                return
            except RuntimeError as exc:
                if early_kernel or _KERNEL_START_RACE not in str(exc) or attempt == _KERNEL_START_TRIES:
                    raise
                context.log.warning(f"kernel start-up failed (attempt {attempt}/{_KERNEL_START_TRIES}), retrying: {exc}")
                time.sleep(1)
    finally:
        if early_kernel:
            early_kernel.request_shutdown()  # ``ds-pipelines run`` reaps it once Dagster has recorded the step


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
