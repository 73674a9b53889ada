"""Pool limits written by runs that start at the same moment on one fresh Dagster instance.

Every ``ds-pipelines run`` writes the pool limits before its notebooks run, so runs started together race to
create the same rows; each must succeed, and the pool must end with exactly its configured number of slots.
"""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import dagster as dg
import pytest
import yaml

from ds_pipelines.pools import COMMIT_RUNS_POOL, GPU_POOL, apply_pool_limits
from ds_pipelines.project import Project

WRITERS = 8


def write_limits(dagster_home: str, project_dir: str, start: multiprocessing.synchronize.Barrier) -> None:
    with dg.DagsterInstance.from_config(dagster_home) as instance:
        start.wait()
        apply_pool_limits(instance, Project(Path(project_dir)))


@pytest.mark.parametrize("gpu_concurrency", [1, 3])
def test_runs_that_start_together_set_each_limit_once(tmp_path: Path, gpu_concurrency: int):
    (tmp_path / "configs").mkdir()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "configs" / "notebooks.yaml").write_text(yaml.safe_dump({"triggers": {"gpu_concurrency": gpu_concurrency}}))
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    dg.DagsterInstance.from_config(str(dagster_home)).dispose()  # the storage exists; its rows do not yet

    context = multiprocessing.get_context("spawn")
    start = context.Barrier(WRITERS)
    writers = [context.Process(target=write_limits, args=(str(dagster_home), str(tmp_path), start)) for _ in range(WRITERS)]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(timeout=120)
    assert [writer.exitcode for writer in writers] == [0] * WRITERS

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        storage = instance.event_log_storage
        assert storage.get_concurrency_info(GPU_POOL).slot_count == gpu_concurrency
        assert storage.get_concurrency_info(COMMIT_RUNS_POOL).slot_count == 1
