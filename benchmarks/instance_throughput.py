"""How many runs an hour one Dagster instance records, on Postgres and on SQLite, side by side in one run.

Each of N worker processes (standing in for N run launchers' run workers, or N CI jobs) executes trivial
one-op Dagster runs against one shared instance for a fixed number of runs; the figure is runs recorded per
hour in all, for N = 1, 2, 4. A trivial run writes what every notebook run writes to the instance (the run
record, about 15 events, the materialization) without the notebook's own time, so it is the instance's
ceiling: a deployment's real limit is its notebooks, their pools and the machines that run them. The
machine is shared and noisy: compare the ratios within one run.

Postgres is a fresh cluster of the machine's PostgreSQL server on 127.0.0.1 (tests/postgres.py), or
``--postgres-url`` (an empty database: the benchmark creates Dagster's tables there).

    uv run python benchmarks/instance_throughput.py [--runs 40] [--workers 1 2 4] [--postgres-url URL]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import sys
import tempfile
import time
from contextlib import ExitStack
from pathlib import Path

import dagster as dg

from ds_pipelines.execution.instance import (
    INSTANCE_SETTINGS,
    POSTGRES_STORAGE,
    POSTGRES_URL_ENV,
)

REPO = Path(__file__).resolve().parent.parent


@dg.asset
def trivial_asset() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"value": 1.0})


def trivial_job() -> dg.JobDefinition:
    # In-process, as ds-pipelines runs notebooks: the run's own bookkeeping, not a step process's start-up.
    job = dg.define_asset_job("trivial", selection=[trivial_asset], executor_def=dg.in_process_executor)
    return dg.Definitions(assets=[trivial_asset], jobs=[job]).resolve_job_def("trivial")


QUIET = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


def worker(home: str, runs: int, start: multiprocessing.synchronize.Barrier) -> None:
    os.environ["DAGSTER_HOME"] = home
    job = dg.reconstructable(trivial_job)
    with dg.DagsterInstance.get() as instance:
        start.wait()
        for _ in range(runs):
            result = dg.execute_job(job, instance=instance, run_config=QUIET, raise_on_error=True)
            assert result.success


def runs_per_hour(home: Path, workers: int, runs: int) -> float:
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(workers + 1)
    processes = [context.Process(target=worker, args=(str(home), runs, start)) for _ in range(workers)]
    for process in processes:
        process.start()
    start.wait()
    began = time.perf_counter()
    for process in processes:
        process.join()
    elapsed = time.perf_counter() - began
    if any(process.exitcode != 0 for process in processes):
        raise SystemExit(f"a worker failed (exit codes {[p.exitcode for p in processes]})")
    return workers * runs / elapsed * 3600


def instance_home(root: Path, name: str, storage: str) -> Path:
    """A fresh instance, its tables created here: workers that started on an empty one would race to create
    them (what ``open_instance`` guards against), which is not what this measures."""
    home = root / name
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_SETTINGS + storage)
    dg.DagsterInstance.from_config(str(home)).dispose()
    return home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=40, help="runs per worker and setting (default 40)")
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2, 4], help="worker counts (default 1 2 4)")
    parser.add_argument("--postgres-url", help="an empty Postgres database (default: start a fresh local cluster)")
    args = parser.parse_args()

    with ExitStack() as stack:
        url = args.postgres_url
        if not url:
            sys.path.insert(0, str(REPO / "tests"))
            from postgres import PostgresUnavailable, running_postgres

            try:
                server = stack.enter_context(running_postgres())
            except PostgresUnavailable as missing:
                raise SystemExit(f"{missing}; or pass --postgres-url") from None
            url = server.url(server.new_database())
        os.environ[POSTGRES_URL_ENV] = url  # the workers inherit it; the instance's dagster.yaml reads it
        root = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="instance-throughput-")))
        print(f"{args.runs} trivial runs per worker; {os.cpu_count()} CPUs; runs recorded per hour, all workers together")
        print(f"{'workers':>8} {'SQLite':>10} {'Postgres':>10} {'Postgres/SQLite':>16}")
        for workers in args.workers:
            # A fresh instance per measurement: a growing event log would favour the first setting.
            sqlite = runs_per_hour(instance_home(root, f"sqlite-{workers}", ""), workers, args.runs)
            postgres = runs_per_hour(instance_home(root, f"postgres-{workers}", POSTGRES_STORAGE), workers, args.runs)
            print(f"{workers:>8} {sqlite:>10.0f} {postgres:>10.0f} {postgres / sqlite:>16.2f}")


if __name__ == "__main__":
    main()
