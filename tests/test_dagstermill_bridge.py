"""The dagstermill internals that ``ds_pipelines.execution.dagstermill_bridge`` relies on, pinned.

Running a notebook in a kernel started early means calling dagstermill's own building blocks (they are not
public API). A dagstermill upgrade that changes them must fail here, loudly and by name, rather than as a
kernel that hangs or a notebook that runs without its injected context.
"""

from __future__ import annotations

import inspect

import dagstermill
import nbclient
import papermill
from dagstermill.engine import DagstermillEngine
from dagstermill.factory import (
    execute_notebook,
    get_papermill_parameters,
    replace_parameters,
)
from papermill.engines import NBClientEngine

from ds_pipelines.execution.dagstermill_bridge import DAGSTERMILL_SERIES


def parameters(function) -> list[str]:
    return list(inspect.signature(function).parameters)


def test_dagstermill_is_the_series_the_bridge_was_written_for():
    assert dagstermill.__version__.startswith(DAGSTERMILL_SERIES), (
        f"dagstermill {dagstermill.__version__} is not {DAGSTERMILL_SERIES}x: check ds_pipelines/execution/"
        "dagstermill_bridge.py against its execute_notebook, then update DAGSTERMILL_SERIES"
    )


def test_the_dagstermill_functions_the_bridge_calls_keep_their_signatures():
    assert parameters(execute_notebook) == [
        "step_context", "name", "save_notebook_on_failure", "notebook_path", "output_notebook_dir", "inputs",
    ]
    assert parameters(get_papermill_parameters) == ["step_context", "inputs", "output_log_path", "compute_descriptor"]
    assert parameters(replace_parameters) == ["context", "nb", "parameters"]


def test_papermill_still_takes_a_kernel_manager_through_the_dagstermill_engine():
    assert issubclass(DagstermillEngine, NBClientEngine)
    signature = inspect.signature(papermill.execute_notebook)
    assert {"engine_name", "log_output", "start_timeout"} <= set(signature.parameters)
    # km= travels through **engine_kwargs to nbclient, which uses a kernel manager it is given.
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in signature.parameters.values())
    engine = inspect.signature(NBClientEngine.execute_managed_notebook).parameters.values()
    assert any(p.kind is inspect.Parameter.VAR_KEYWORD for p in engine)
    assert "km" in inspect.signature(nbclient.NotebookClient.__init__).parameters
