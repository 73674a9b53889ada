"""GPU notebooks share the configured number of GPU slots across runs; CPU notebooks are never held back.

Three ``ds-pipelines run`` processes start at once against one fresh Dagster instance. Each notebook marks
when it started, runs for at least ``MIN_RUN_S``, waits for the notebooks it should overlap with, if the
limits are right, to start too (at most ``RENDEZVOUS_TIMEOUT_S``), and logs its interval. So notebooks that
may run at once meet however slowly their processes start, and two GPU notebooks let through together by a
broken limit of 1 would overlap by seconds.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from gitrepo import notebook_json
from sandbox import CLI, Sandbox

pytestmark = pytest.mark.slow  # runs notebooks through the CLI, three at once

RENDEZVOUS_TIMEOUT_S = 90
MIN_RUN_S = 3
CELL = """\
import pathlib, time
folder = pathlib.Path({folder!r})
start = time.time()
(folder / "{name}.started").touch()
met = lambda: all(any((folder / f"{{n}}.started").exists() for n in group) for group in {waits!r})
while time.time() < start + {min_run} or (time.time() < start + {timeout} and not met()):
    time.sleep(0.1)
with open(folder / "intervals.log", "a") as log:
    log.write(f"{name} {{start}} {{time.time()}}\\n")
"""


def pool_project(root: Path, gpu_concurrency: int) -> Path:
    """Notebooks gpu_a, gpu_b (``device: gpu``) and cpu_c; returns the folder of their markers and log."""
    folder = root / "rendezvous"
    folder.mkdir(parents=True)
    # Each GPU notebook waits for cpu_c, and for the other GPU notebook where both may run at once;
    # cpu_c waits for either GPU notebook.
    waits = {
        "gpu_a": [["cpu_c"]] + ([["gpu_b"]] if gpu_concurrency >= 2 else []),
        "gpu_b": [["cpu_c"]] + ([["gpu_a"]] if gpu_concurrency >= 2 else []),
        "cpu_c": [["gpu_a", "gpu_b"]],
    }
    (root / "notebooks").mkdir()
    for name, groups in waits.items():
        cell = CELL.format(folder=str(folder), name=name, min_run=MIN_RUN_S, timeout=RENDEZVOUS_TIMEOUT_S, waits=groups)
        (root / "notebooks" / f"{name}.ipynb").write_text(notebook_json(cell))
    (root / "configs").mkdir()
    registry = {
        "notebooks": {f"notebooks/{name}.ipynb": {"device": "gpu"} for name in ("gpu_a", "gpu_b")},
        "triggers": {"gpu_concurrency": gpu_concurrency},
    }
    (root / "configs" / "notebooks.yaml").write_text(yaml.safe_dump(registry))
    return folder


def run_together(sandbox: Sandbox, project: Path, *notebooks: str) -> None:
    processes = [
        subprocess.Popen([str(CLI), "run", notebook, "--project-dir", str(project)], env=sandbox.env, cwd=project,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for notebook in notebooks
    ]
    outputs = [process.communicate(timeout=2 * RENDEZVOUS_TIMEOUT_S + 180)[0] for process in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]


def intervals(folder: Path) -> dict[str, tuple[float, float]]:
    lines = [line.split() for line in (folder / "intervals.log").read_text().splitlines()]
    return {name: (float(start), float(end)) for name, start, end in lines}


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@pytest.mark.parametrize("gpu_concurrency", [1, 2])
def test_gpu_notebooks_wait_for_a_slot_cpu_notebooks_do_not(sandbox: Sandbox, gpu_concurrency: int):
    project = sandbox.root / "project"
    folder = pool_project(project, gpu_concurrency)

    run_together(sandbox, project, "gpu_a", "gpu_b", "cpu_c")

    ran = intervals(folder)
    assert set(ran) == {"gpu_a", "gpu_b", "cpu_c"}
    assert overlap(ran["gpu_a"], ran["gpu_b"]) == (gpu_concurrency == 2)
    assert any(overlap(ran["cpu_c"], ran[gpu]) for gpu in ("gpu_a", "gpu_b"))
