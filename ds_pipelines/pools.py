"""Dagster concurrency pools: GPU notebooks share a configured number of slots; commit runs go one at a time.

Pool limits live in the Dagster instance, not in code. ``ds-pipelines run`` and ``ds-pipelines ui`` set them
from ``configs/notebooks.yaml`` on the instance they use; a deployment with its own instance sets them once
with ``dagster instance concurrency set gpu N`` (and ``commit_runs 1``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ds_pipelines.project import Project

if TYPE_CHECKING:
    import dagster as dg

GPU_POOL = "gpu"
"""Pool of the ``device: gpu`` notebooks; CPU notebooks belong to no pool and are never held back."""
COMMIT_RUNS_POOL = "commit_runs"
"""Pool of the commit sensor's runs: one at a time, so a push's notebooks run one after another."""


def pool_limits(project: Project) -> dict[str, int]:
    return {GPU_POOL: project.triggers.gpu_concurrency, COMMIT_RUNS_POOL: 1}


def apply_pool_limits(instance: dg.DagsterInstance, project: Project) -> None:
    """Set each pool's limit; a limit already in place is not rewritten.

    Dagster's SQLite storage checks for a pool's row and then inserts it without a lock: where other
    processes may do the same, call this under ``ds_pipelines.instance.open_instance``'s lock.
    """
    storage = instance.event_log_storage
    for pool, limit in pool_limits(project).items():
        if storage.get_concurrency_info(pool).slot_count != limit:
            storage.set_concurrency_slots(pool, limit)
