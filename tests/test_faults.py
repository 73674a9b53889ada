"""Faults leave nothing stuck or half-written, on real processes.

- the notebook's kernel killed mid-cell (what the OOM killer does): the run fails naming the notebook and
  the cell, and the executed notebook is kept;
- Ctrl-C (SIGINT) or SIGTERM on ``ds-pipelines run``: the Dagster run ends CANCELED or FAILURE, never stuck
  in STARTED, the kernel is stopped, and no results.json claims success;
- an MLflow URI on a closed local port: a clear error naming ``MLFLOW_TRACKING_URI`` within a bounded time;
- the disk filling while an output is written (a 1 MiB tmpfs): the temporary file is removed, the earlier
  output stays intact, and the error names the file.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from pathlib import Path

import dagster as dg
import pandas as pd
import pytest
import yaml
from gitrepo import notebook_json
from mlflow_serve import free_port
from required import require
from sandbox import CLI, Sandbox

from ds_pipelines.files import FileWriteError
from ds_pipelines.notebook.tables import write_table

pytestmark = pytest.mark.slow  # runs notebooks through Dagster

STARTED_TIMEOUT_S = 120


def project_with(root: Path, *cells: str) -> Path:
    (root / "configs").mkdir(parents=True)
    (root / "configs" / "notebooks.yaml").write_text(yaml.safe_dump({"notebooks": {}}))
    notebook = json.loads(notebook_json(cells[0]))
    for source in cells[1:]:
        notebook["cells"].append({**notebook["cells"][0], "source": [source]})
    (root / "notebooks").mkdir()
    (root / "notebooks" / "job.ipynb").write_text(json.dumps(notebook, indent=1))
    return root


def pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited: only its parent has not read its status yet.
    stat = Path(f"/proc/{pid}/stat")
    return not (stat.exists() and stat.read_text().split(")")[-1].split()[0] == "Z")


def wait_for_file(path: Path, process: subprocess.Popen) -> str:
    deadline = time.monotonic() + STARTED_TIMEOUT_S
    while not path.exists() or not path.read_text().strip():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, f"{path} never written"
        time.sleep(0.2)
    return path.read_text().strip()


def runs(sandbox: Sandbox) -> list[dg.DagsterRun]:
    with dg.DagsterInstance.from_config(sandbox.env["DAGSTER_HOME"]) as instance:
        return instance.get_runs()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupted_run_ends_its_dagster_run_and_its_kernel(sandbox: Sandbox, tmp_path: Path, sig):
    kernel_pid = tmp_path / "kernel.pid"
    project = project_with(tmp_path / "project", f"import os, time\nopen({str(kernel_pid)!r}, 'w').write(str(os.getpid()))\ntime.sleep(600)")
    sandbox.env["DS_PIPELINES_PROJECT_DIR"] = str(project)
    process = subprocess.Popen([str(CLI), "run", "notebooks/job.ipynb", "--output-dir", str(tmp_path / "results")],
                               env=sandbox.env, cwd=sandbox.root, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    pid = int(wait_for_file(kernel_pid, process))
    time.sleep(1)  # inside the cell's sleep
    process.send_signal(sig)
    _, stderr = process.communicate(timeout=120)

    assert process.returncode == 128 + sig, stderr[-3000:]
    assert f"Interrupted ({sig.name})" in stderr and "Traceback" not in stderr, stderr[-3000:]
    [run] = runs(sandbox)
    assert run.status in (dg.DagsterRunStatus.CANCELED, dg.DagsterRunStatus.FAILURE), run.status
    deadline = time.monotonic() + 30
    while pid_alive(pid) and time.monotonic() < deadline:
        time.sleep(0.5)
    assert not pid_alive(pid), "the notebook's kernel was left running"
    results = tmp_path / "results" / "results.json"
    assert not results.exists() or json.loads(results.read_text())["status"] != "success"


def test_a_killed_kernel_fails_the_run_naming_the_notebook_and_cell(sandbox: Sandbox, tmp_path: Path):
    project = project_with(tmp_path / "project", "x = 1", "import os, signal, sys\nprint('about to die')\nsys.stdout.flush()\nimport time; time.sleep(1)\nos.kill(os.getpid(), signal.SIGKILL)",
                           "print('never')")
    sandbox.env["DS_PIPELINES_PROJECT_DIR"] = str(project)
    result = sandbox.cli("run", "notebooks/job.ipynb", "--output-dir", str(tmp_path / "results"))

    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    summary = json.loads((tmp_path / "results" / "results.json").read_text())
    [notebook] = summary["notebooks"]
    assert notebook["status"] == "failed"
    assert "notebooks/job.ipynb" in notebook["error"] and "cell 2" in notebook["error"], notebook["error"]
    assert "kernel" in notebook["error"].lower(), notebook["error"]
    executed = tmp_path / "results" / notebook["executed_notebook"]
    assert "about to die" in executed.read_text()
    [run] = runs(sandbox)
    assert run.status == dg.DagsterRunStatus.FAILURE


def test_an_unreachable_mlflow_server_is_named_within_a_bounded_time(sandbox: Sandbox, tmp_path: Path):
    project = project_with(tmp_path / "project", "import mlflow\nfrom ds_pipelines import notebook as dsp\n"
                           "dsp.setup_mlflow('x')\nwith mlflow.start_run():\n    mlflow.log_metric('m', 1)")
    sandbox.env.update(DS_PIPELINES_PROJECT_DIR=str(project), MLFLOW_TRACKING_URI=f"http://127.0.0.1:{free_port()}")
    started = time.monotonic()
    result = sandbox.cli("run", "notebooks/job.ipynb", timeout=300)
    elapsed = time.monotonic() - started

    assert result.returncode in (1, 2), result.stderr[-3000:]
    assert "MLFLOW_TRACKING_URI" in result.stderr, result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert elapsed < 120, f"took {elapsed:.0f} s"


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MiB file system (tmpfs), mounted for the test: as full as a real disk gets."""
    mount = tmp_path / "small-disk"
    mount.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mount)],
                                           capture_output=True, check=False).returncode != 0:
        require("mounting a 1 MiB tmpfs needs root (CI runs as root)")
    try:
        yield mount
    finally:
        subprocess.run(["umount", str(mount)], check=True)


def test_a_full_disk_keeps_the_earlier_output_and_leaves_no_temporary_file(small_disk: Path):
    target = small_disk / "scores.csv"
    target.write_text("id,probability\n1,0.5\n")
    too_big = pd.DataFrame({"id": range(200_000), "probability": [0.123456789] * 200_000})  # ~4 MiB of CSV

    with pytest.raises(FileWriteError) as raised:
        write_table(too_big, target)

    assert str(target) in str(raised.value) and "No space left on device" in str(raised.value)
    assert "the earlier file is unchanged" in str(raised.value)
    assert target.read_text() == "id,probability\n1,0.5\n"
    assert sorted(p.name for p in small_disk.iterdir()) == ["scores.csv"], "the temporary file was removed"


def test_a_notebook_that_fills_the_disk_fails_naming_the_file(sandbox: Sandbox, tmp_path: Path, small_disk: Path):
    target = small_disk / "big.csv"
    target.write_text("earlier\n")
    project = project_with(tmp_path / "project", "import pandas as pd\nfrom ds_pipelines import notebook as dsp\n"
                           f"dsp.write_table(pd.DataFrame({{'x': range(300_000)}}), dsp.path({str(target)!r}))")
    sandbox.env["DS_PIPELINES_PROJECT_DIR"] = str(project)
    result = sandbox.cli("run", "notebooks/job.ipynb", "--output-dir", str(tmp_path / "results"))

    assert result.returncode == 1, result.stderr[-3000:]
    assert f"{target} cannot be written (No space left on device): the earlier file is unchanged" in result.stderr
    assert "Traceback" not in result.stderr
    assert target.read_text() == "earlier\n"
    assert sorted(p.name for p in small_disk.iterdir()) == ["big.csv"]
