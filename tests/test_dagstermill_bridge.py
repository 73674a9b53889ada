"""The dagstermill internals that ``ds_pipelines.execution.dagstermill_bridge`` relies on, pinned, and the
notebook it hands papermill.

Keeping a parameters cell and choosing the kernel means calling dagstermill's own building blocks (they are
not public API). A dagstermill upgrade that changes them must fail here, loudly and by name, rather than as a
kernel that hangs or a notebook that runs without its injected context.
"""

from __future__ import annotations

import inspect

import dagstermill
import nbclient
import nbformat
import papermill
from dagstermill.engine import DagstermillEngine
from dagstermill.factory import get_papermill_parameters
from dagstermill.translator import DagsterTranslator
from papermill.engines import NBClientEngine

from ds_pipelines.execution.dagstermill_bridge import (
    CONTEXT,
    DAGSTERMILL_SERIES,
    PARAMETERS,
    run_layout,
    with_injected_cells,
)
from ds_pipelines.results.executed import failed_cell_number, own_code_cells

# What get_papermill_parameters returns for a run; DagsterTranslator turns it into the context cell.
CONTEXT_PARAMETERS = {
    "__dm_context": {"output_log_path": "x.log", "marshal_dir": "m", "run_config": {}},
    "__dm_executable_dict": {}, "__dm_pipeline_run_dict": "{}", "__dm_node_handle_kwargs": {},
    "__dm_instance_ref_dict": "{}", "__dm_step_key": "nb", "__dm_input_names": [],
}


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_dagstermill_is_the_series_the_bridge_was_written_for():
    assert dagstermill.__version__.startswith(DAGSTERMILL_SERIES), (
        f"dagstermill {dagstermill.__version__} is not {DAGSTERMILL_SERIES}x: check ds_pipelines/execution/"
        "dagstermill_bridge.py against its execute_notebook, then update DAGSTERMILL_SERIES"
    )


def test_the_dagstermill_functions_the_bridge_calls_keep_their_signatures():
    assert parameters(get_papermill_parameters) == ["step_context", "inputs", "output_log_path", "compute_descriptor"]
    assert parameters(DagsterTranslator.codify) == ["parameters", "comment"]
    assert "_reconstitute_job_context(" in DagsterTranslator.codify(CONTEXT_PARAMETERS)


def test_papermill_still_takes_a_kernel_manager_through_the_dagstermill_engine():
    assert issubclass(DagstermillEngine, NBClientEngine)
    signature = inspect.signature(papermill.execute_notebook)
    assert {"engine_name", "log_output", "start_timeout"} <= set(signature.parameters)
    # km= travels through **engine_kwargs to nbclient, which uses a kernel manager it is given.
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    engine = inspect.signature(NBClientEngine.execute_managed_notebook).parameters.values()
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in engine)
    assert "km" in inspect.signature(nbclient.NotebookClient.__init__).parameters
    # resources= (the kernel's working directory) is a trait nbclient reads when it starts the kernel.
    assert nbclient.NotebookClient.class_traits()["resources"] is not None


def notebook(*cells: nbformat.NotebookNode) -> nbformat.NotebookNode:
    nb = nbformat.v4.new_notebook()
    nb.cells = list(cells)
    return nb


def tagged(source: str, tag: str) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source)
    cell.metadata["tags"] = [tag]
    return cell


def test_the_parameters_cell_keeps_its_defaults_and_the_config_follows_it():
    nb = notebook(nbformat.v4.new_markdown_cell("# Title"), tagged("alpha = 1\nname = 'x'", "parameters"),
                  nbformat.v4.new_code_cell("print(alpha)"))
    ran = with_injected_cells(nb, CONTEXT_PARAMETERS, {"alpha": 2.5, "flags": {"on": True}})
    sources = [cell.source for cell in ran.cells]
    assert "_reconstitute_job_context(" in sources[0]
    assert sources[1:3] == ["# Title", "alpha = 1\nname = 'x'"]
    assert sources[3] == "# Parameters\nalpha = 2.5\nflags = {\"on\": True}\n"
    assert sources[4] == "print(alpha)"
    assert run_layout(nb.cells) == [CONTEXT, 0, 1, PARAMETERS, 2]
    assert [cell.source for cell in own_code_cells(ran.cells)] == ["alpha = 1\nname = 'x'", "print(alpha)"]
    assert nb.cells[1].source == "alpha = 1\nname = 'x'" and len(nb.cells) == 3  # the input is left alone


def test_without_a_parameters_cell_only_the_context_is_injected():
    nb = notebook(nbformat.v4.new_code_cell("x = 1"))
    assert run_layout(nb.cells) == [CONTEXT, 0]
    assert len(with_injected_cells(nb, CONTEXT_PARAMETERS, {"x": 2}).cells) == 2


def test_a_cell_injected_by_an_earlier_papermill_run_is_replaced():
    nb = notebook(tagged("x = 1", "parameters"), tagged("# Parameters\nx = 99\n", "injected-parameters"),
                  nbformat.v4.new_code_cell("1 / 0"))
    ran = with_injected_cells(nb, CONTEXT_PARAMETERS, {})
    assert [cell.source for cell in ran.cells[1:]] == ["x = 1", "# Parameters\n", "1 / 0"]
    ran.cells[3].outputs = [nbformat.v4.new_output("error", ename="ZeroDivisionError", evalue="", traceback=[])]
    assert failed_cell_number(ran.cells) == 2  # the author's second code cell, injected ones not counted
