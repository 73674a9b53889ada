"""GPU notebooks share the configured number of GPU slots across runs; CPU notebooks are never held back.

Two ``ds-pipelines run`` processes start at once against one Dagster instance; each notebook records when
its cell ran, and the intervals show what overlapped.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
import yaml
from conftest import CLI, Sandbox
from gitrepo import notebook_json

SLEEP_S = 4


def pool_project(root: Path, gpu_concurrency: int) -> Path:
    cell = (
        "import time, pathlib\nstart = time.time()\ntime.sleep({sleep})\n"
        "with open({log!r}, 'a') as log:\n    log.write(f'{{pathlib.Path.cwd().name}} {name} {{start}} {{time.time()}}\\n')"
    )
    (root / "configs").mkdir(parents=True)
    log = root / "intervals.log"
    for name in ("gpu_a", "gpu_b", "cpu_c"):
        (root / "notebooks").mkdir(exist_ok=True)
        (root / "notebooks" / f"{name}.ipynb").write_text(notebook_json(cell.format(sleep=SLEEP_S, log=str(log), name=name)))
    registry = {
        "notebooks": {f"notebooks/{name}.ipynb": {"device": "gpu"} for name in ("gpu_a", "gpu_b")},
        "triggers": {"gpu_concurrency": gpu_concurrency},
    }
    (root / "configs" / "notebooks.yaml").write_text(yaml.safe_dump(registry))
    return log


def run_together(sandbox: Sandbox, project: Path, *notebooks: str) -> None:
    processes = [
        subprocess.Popen([str(CLI), "run", notebook, "--project-dir", str(project)], env=sandbox.env, cwd=project,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        for notebook in notebooks
    ]
    outputs = [process.communicate(timeout=300)[0] for process in processes]
    for process, output in zip(processes, outputs):
        assert process.returncode == 0, output[-3000:]


def intervals(log: Path) -> dict[str, tuple[float, float]]:
    lines = [line.split() for line in log.read_text().splitlines()]
    return {name: (float(start), float(end)) for _, name, start, end in lines}


def overlap(a: tuple[float, float], b: tuple[float, float]) -> bool:
    return a[0] < b[1] and b[0] < a[1]


@pytest.mark.parametrize("gpu_concurrency", [1, 2])
def test_gpu_notebooks_wait_for_a_slot_cpu_notebooks_do_not(sandbox: Sandbox, gpu_concurrency: int):
    project = sandbox.root / "project"
    log = pool_project(project, gpu_concurrency)

    run_together(sandbox, project, "gpu_a", "gpu_b", "cpu_c")

    ran = intervals(log)
    assert set(ran) == {"gpu_a", "gpu_b", "cpu_c"}
    assert overlap(ran["gpu_a"], ran["gpu_b"]) == (gpu_concurrency == 2)
    assert any(overlap(ran["cpu_c"], ran[gpu]) for gpu in ("gpu_a", "gpu_b"))
