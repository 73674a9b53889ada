"""What ``ds-pipelines run`` does before a notebook's first cell: the first kernel starts before the heavy
imports and the project's checks, bad input kills it at once, and papermill loads without pyarrow."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid
from pathlib import Path

import nbformat
import psutil
import pytest
import yaml

# Imported by the run, but only after the first kernel is on its way: each one delays the notebook.
LOADED_LATER = ["dagster", "dagstermill", "papermill", "sqlalchemy", "nbformat", "detect_secrets", "pyarrow", "numpy"]
# Runs the real CLI; records which of LOADED_LATER are loaded when it starts its first early kernel.
RECORDING_CLI = """\
import json, sys
from ds_pipelines.execution import kernels

record_file, watched = sys.argv[1], set(json.loads(sys.argv[2]))
started = kernels.start_early

def recording(*args, **kwargs):
    with open(record_file, "a") as record:
        record.write(json.dumps(sorted(watched & set(sys.modules))) + "\\n")
    return started(*args, **kwargs)

kernels.start_early = recording
from ds_pipelines.cli import main
sys.argv = ["ds-pipelines", *sys.argv[3:]]
main()
"""


def one_cell_project(root: Path, source: str = "print('ran')") -> Path:
    project = root / "project"
    (project / "notebooks").mkdir(parents=True)
    (project / "configs").mkdir()
    notebook = nbformat.v4.new_notebook()
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    notebook.cells = [nbformat.v4.new_code_cell(source)]
    nbformat.write(notebook, project / "notebooks" / "one.ipynb")
    return project


def test_papermill_loads_without_pyarrow_and_its_hdfs_handler_still_gets_it():
    code = (
        "import sys\n"
        "from ds_pipelines.execution.lean_imports import import_papermill\n"
        "import_papermill()\n"
        "import dagstermill, papermill.iorw as iorw\n"
        "print(sorted({'pyarrow', 'numpy'} & set(sys.modules)))\n"
        "print(type(iorw.papermill_io.get_handler('hdfs://host/n.ipynb')).__name__)\n"
        "selector = iorw.FileSelector('/n')  # what the handler calls to list a folder\n"
        "import pyarrow.fs\n"
        "print(isinstance(selector, pyarrow.fs.FileSelector))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["[]", "HDFSHandler", "True"]


def test_papermill_still_reads_its_hdfs_classes_from_module_globals():
    """``lean_imports`` replaces these globals of ``papermill.iorw``: the HDFS handler must still look them up
    when called, and they must still be pyarrow's (a plain import here, pyarrow loaded)."""
    import inspect

    import papermill.iorw as iorw
    import pyarrow.fs

    from ds_pipelines.execution.lean_imports import HDFS_CLASSES, HELD_BACK

    assert HELD_BACK == "pyarrow"
    source = inspect.getsource(iorw.HDFSHandler)
    for name in HDFS_CLASSES:
        assert getattr(iorw, name) is getattr(pyarrow.fs, name)
        assert f"{name}(" in source


def run_recording(sandbox, project: Path, *args: str, env: dict[str, str] | None = None) -> tuple[subprocess.CompletedProcess, list]:
    """``ds-pipelines run`` (through RECORDING_CLI), and what was loaded at each early kernel start."""
    record = sandbox.root / "loaded.jsonl"
    done = subprocess.run(
        [sys.executable, "-c", RECORDING_CLI, str(record), json.dumps(LOADED_LATER), "run", *args,
         "--project-dir", str(project)],
        env={**sandbox.env, **(env or {})}, cwd=sandbox.root, capture_output=True, text=True, timeout=600,
    )
    return done, [json.loads(line) for line in record.read_text().splitlines()] if record.exists() else []


@pytest.mark.slow  # runs a notebook
def test_the_first_kernel_starts_before_the_heavy_imports(sandbox):
    project = one_cell_project(sandbox.root)
    done, starts = run_recording(sandbox, project, "one")
    assert done.returncode == 0, done.stderr[-3000:]
    assert "| ran" in done.stderr
    assert starts and starts[0] == [], f"loaded before the first kernel started: {starts}"


@pytest.mark.slow  # starts a kernel
def test_bad_input_kills_the_kernel_started_early(sandbox):
    project = one_cell_project(sandbox.root)
    (project / "configs" / "one.yaml").write_text("- a list, where a mapping is expected\n")
    (project / "configs" / "notebooks.yaml").write_text(
        yaml.safe_dump({"notebooks": {"notebooks/one.ipynb": {"config": "configs/one.yaml"}}})
    )
    marker = uuid.uuid4().hex
    done, starts = run_recording(sandbox, project, "one", env={"DS_PIPELINES_TEST_MARKER": marker})
    assert done.returncode == 2, done.stderr[-3000:]
    assert "configs/one.yaml" in done.stderr and "Traceback" not in done.stderr
    assert len(starts) == 1, "the kernel was started before the checks found the bad config"
    assert not _processes_with(marker), "the kernel started for the run outlived it"


def _processes_with(marker: str) -> list[str]:
    """Command lines of the processes whose environment holds ``marker`` (what the CLI started inherits it)."""
    found = []
    for process in psutil.process_iter(["cmdline"]):
        try:
            if process.environ().get("DS_PIPELINES_TEST_MARKER") == marker:
                found.append(" ".join(process.info["cmdline"] or []))
        except (psutil.AccessDenied, psutil.NoSuchProcess, psutil.ZombieProcess):
            continue  # not ours, or gone
    return found


def test_long_lived_objects_are_frozen_and_collection_resumes_as_it_was():
    code = (
        "import gc\n"
        "from ds_pipelines.execution.lean_imports import long_lived_objects\n"
        "frozen = gc.get_freeze_count()\n"
        "with long_lived_objects():\n"
        "    during = gc.isenabled()\n"
        "    made = [[i] for i in range(1000)]\n"
        "print(during, gc.isenabled(), gc.get_freeze_count() >= frozen + 1000)\n"
        "try:\n"
        "    with long_lived_objects():\n"
        "        raise ValueError\n"
        "except ValueError:\n"
        "    print(gc.isenabled())\n"
        "gc.disable()\n"
        "with long_lived_objects():\n"
        "    pass\n"
        "print(gc.isenabled())\n"  # the caller's choice stands
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["False True True", "True", "False"]


def test_the_warm_up_leaves_the_notebook_a_collecting_garbage_collector(sandbox):
    """The kernel's warm-up loads Dagster with collection paused: the notebook after it must get it back,
    also when the warm-up fails (the injected cell reports that failure, not the warm-up)."""
    project = one_cell_project(sandbox.root)
    code = (
        "import gc, sys\n"
        "from ds_pipelines.execution.kernels import warm_up\n"
        "warm_up(*sys.argv[1:3])\n"
        "print(gc.isenabled(), 'dagstermill' in sys.modules, gc.get_freeze_count() > 100000)\n"
        "try:\n"
        "    warm_up('ds_pipelines.no_such_module', 'job')\n"
        "except ImportError:\n"
        "    print(gc.isenabled())\n"
    )
    done = subprocess.run([sys.executable, "-c", code, "ds_pipelines.defs.notebooks.definitions", "notebooks_job"],
                          env={**sandbox.env, "DS_PIPELINES_PROJECT_DIR": str(project)}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.splitlines() == ["True True True", "True"]


@pytest.mark.slow  # starts kernels
def test_nbclient_is_answered_when_it_connects_while_the_kernel_starts(sandbox):
    """The warm-up request goes out as the kernel starts; a client that connects while the kernel still starts
    up (nbclient's, on a loaded machine) raced it for the kernel's answers when both had one ZeroMQ identity,
    and the loser never heard back ("Kernel didn't respond in 120 seconds")."""
    from jupyter_core.utils import run_sync

    from ds_pipelines.execution import kernels

    notebook = one_cell_project(sandbox.root) / "notebooks" / "one.ipynb"
    for _ in range(3):  # the race went either way: the loser was this client about every other time
        kernels.start_early(notebook, kernels.JobPointer("ds_pipelines.no_such_module", "job"), kernel_name="python3",
                            cwd=sandbox.root, env=sandbox.env)
        kernel = kernels.take(notebook)
        assert kernel is not None
        try:
            client = kernel.manager.client()  # at once, as the kernel starts
            (warm_up,) = [handed for handed in kernel.manager.handed_out if handed is not client]
            assert warm_up.session.bsession != client.session.bsession
            client.start_channels()
            run_sync(client.wait_for_ready)(timeout=60)
        finally:
            kernel.kill()


# Prints for a minute from a thread: IOPub is never quiet meanwhile.
KEEPS_PRINTING = (
    "import threading, time\n"
    "def chatter():\n"
    "    for _ in range(1200):\n"
    "        print('.', end='', flush=True)\n"
    "        time.sleep(0.05)\n"
    "threading.Thread(target=chatter, daemon=True).start()\n"
)


@pytest.mark.slow  # starts a kernel
def test_a_kernel_started_early_is_ready_while_it_prints(sandbox):
    """jupyter_client's ``wait_for_ready`` waits for 0.2 s without IOPub messages, which never comes while the
    kernel prints; nbclient's client for a kernel started early is ready once the kernel answers, and then
    receives what the next cell prints."""
    import asyncio

    from jupyter_core.utils import run_sync

    from ds_pipelines.execution import kernels

    notebook = one_cell_project(sandbox.root) / "notebooks" / "one.ipynb"
    kernels.start_early(notebook, kernels.JobPointer("ds_pipelines.no_such_module", "job"), kernel_name="python3",
                        cwd=sandbox.root, env=sandbox.env)
    kernel = kernels.take(notebook)
    assert kernel is not None
    try:
        async def printing_then_ready() -> list[str]:
            starter = kernel.manager.client()
            starter.start_channels(iopub=False)
            started = starter.execute(KEEPS_PRINTING)
            assert (await starter.get_shell_msg(timeout=120))["parent_header"]["msg_id"] == started
            client = kernel.manager.client()  # as nbclient takes it
            assert isinstance(client, kernels.ReadyOnReplyClient)
            client.start_channels()
            await asyncio.wait_for(client.wait_for_ready(timeout=60), timeout=90)
            printed = []
            reply = await client.execute_interactive(
                "print('after ready')", timeout=60,
                output_hook=lambda msg: printed.append(msg["content"].get("text", ""))
                if msg["parent_header"].get("msg_id") and msg["msg_type"] == "stream" else None,
            )
            assert reply["content"]["status"] == "ok"
            return printed

        printed = run_sync(printing_then_ready)()
    finally:
        kernel.kill()
    assert "after ready\n" in printed
