"""Runs that start at the same moment on one fresh Dagster instance, on SQLite or on Postgres.

Every ``ds-pipelines run`` opens the instance and writes the pool limits before its notebooks run, so runs
started together race to create the same tables and rows: each must succeed, and each pool must end with
exactly its configured number of slots. On Postgres the processes do not share the lock file (each has its
own instance folder, as CI jobs on different machines would).
"""

from __future__ import annotations

import multiprocessing
import os
from pathlib import Path

import dagster as dg
import pytest
import yaml

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.execution.instance import (
    COMMIT_RUNS_POOL,
    GPU_POOL,
    INSTANCE_SETTINGS,
    POSTGRES_STORAGE,
    POSTGRES_URL_ENV,
    RUN_EVENT_LOG_INDEX,
    RUN_EVENT_LOGS,
    open_instance,
)
from ds_pipelines.project import Project

PROCESSES = 6


def open_together(dagster_home: str, project_dir: str, start: multiprocessing.synchronize.Barrier) -> None:
    os.environ["DAGSTER_HOME"] = dagster_home
    start.wait()
    with open_instance(Project(Path(project_dir))) as instance:
        instance.get_runs(limit=1)


@pytest.mark.slow
@pytest.mark.parametrize("storage", ["sqlite", "postgres"])
@pytest.mark.parametrize("gpu_concurrency", [1, 3])
def test_runs_that_start_together_on_a_fresh_instance_all_get_it(tmp_path: Path, gpu_concurrency: int, storage: str,
                                                                 request, monkeypatch):
    (tmp_path / "configs").mkdir()
    (tmp_path / "notebooks").mkdir()
    (tmp_path / "configs" / "notebooks.yaml").write_text(yaml.safe_dump({"triggers": {"gpu_concurrency": gpu_concurrency}}))
    homes = [tmp_path / "dagster"] * PROCESSES
    if storage == "postgres":
        server = request.getfixturevalue("postgres")
        monkeypatch.setenv(POSTGRES_URL_ENV, server.url(server.new_database()))  # spawned processes inherit it
        homes = [tmp_path / f"dagster-{index}" for index in range(PROCESSES)]
    for home in homes:
        home.mkdir(exist_ok=True)
        (home / "dagster.yaml").write_text(INSTANCE_SETTINGS + (POSTGRES_STORAGE if storage == "postgres" else ""))
    dagster_home = homes[0]

    context = multiprocessing.get_context("spawn")
    start = context.Barrier(PROCESSES)
    processes = [context.Process(target=open_together, args=(str(home), str(tmp_path), start)) for home in homes]
    for process in processes:
        process.start()
    for process in processes:
        process.join(timeout=120)
    assert [process.exitcode for process in processes] == [0] * PROCESSES

    with dg.DagsterInstance.from_config(str(dagster_home)) as instance:
        storage = instance.event_log_storage
        assert storage.get_concurrency_info(GPU_POOL).slot_count == gpu_concurrency
        assert storage.get_concurrency_info(COMMIT_RUNS_POOL).slot_count == 1


def test_without_dagster_home_the_error_names_it(tmp_path: Path, monkeypatch):
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    with pytest.raises(DsPipelinesError, match="DAGSTER_HOME is not set"):
        open_instance(Project(tmp_path))


def test_a_dagster_home_that_is_not_a_folder_is_named(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("DAGSTER_HOME", str(tmp_path / "missing"))
    with pytest.raises(DsPipelinesError, match=r"DAGSTER_HOME=.*missing is not a folder"):
        open_instance(Project(tmp_path))


def test_a_runs_event_log_commits_without_waiting_for_the_disk_and_the_rest_as_dagster_writes_it(tmp_path: Path,
                                                                                                  monkeypatch):
    import sqlalchemy

    home = tmp_path / "dagster"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_SETTINGS)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.delenv(POSTGRES_URL_ENV, raising=False)
    with open_instance(Project(tmp_path)) as instance:
        # Where Dagster's SQLite storage puts a run's event log: the folder the setting applies to.
        assert Path(instance.event_log_storage.path_for_shard("some-run")).parent == home / RUN_EVENT_LOGS

    def synchronous(database: Path) -> int:
        with sqlalchemy.create_engine(f"sqlite:///{database}").connect() as connection:
            return connection.execute(sqlalchemy.text("PRAGMA synchronous")).scalar()

    assert synchronous(home / RUN_EVENT_LOGS / "some-run.db") == 0  # OFF
    assert synchronous(home / RUN_EVENT_LOGS / RUN_EVENT_LOG_INDEX) == 2  # SQLite's default, FULL
    assert synchronous(home / "history" / "runs.db") == 2
    assert synchronous(tmp_path / "elsewhere.db") == 2


@pytest.mark.parametrize("settings", [None, INSTANCE_SETTINGS], ids=["no-dagster-yaml", "sqlite-dagster-yaml"])
def test_a_postgres_url_that_the_instance_would_ignore_is_an_error_before_anything_runs(sandbox, settings):
    home = sandbox.root / "home"
    home.mkdir()
    if settings is not None:
        (home / "dagster.yaml").write_text(settings)
    sandbox.env.update(DAGSTER_HOME=str(home), DAGSTER_POSTGRES_URL="postgresql://dagster:pw@127.0.0.1:1/dagster")

    result = sandbox.cli("run", "notebooks/training_example.ipynb", "--output-dir", str(sandbox.root / "out"))

    assert result.returncode == 2 and "Traceback" not in result.stderr, result.stderr[-2000:]
    assert f"error: DAGSTER_POSTGRES_URL is set, but DAGSTER_HOME ({home}) would ignore it" in result.stderr
    assert "Unset DAGSTER_HOME" in result.stderr and "storage: postgres" in result.stderr
    assert "pw@" not in result.stderr
    assert sorted(path.name for path in home.iterdir()) == ([] if settings is None else ["dagster.yaml"])  # no runs
    assert not (sandbox.root / "out").exists()


def test_an_instance_configured_for_postgres_is_taken_as_it_is(tmp_path: Path):
    from ds_pipelines.execution.instance import configures_postgres

    deployment = tmp_path / "deployment"
    deployment.mkdir()
    (deployment / "dagster.yaml").write_text((Path(__file__).parent.parent / "deploy" / "dagster.yaml").read_text())
    literal = tmp_path / "literal"
    literal.mkdir()
    (literal / "dagster.yaml").write_text(yaml.safe_dump({"run_storage": {
        "module": "dagster_postgres.run_storage", "class": "PostgresRunStorage",
        "config": {"postgres_url": "postgresql://u:p@127.0.0.1/d"}}}))
    sqlite = tmp_path / "sqlite"
    sqlite.mkdir()
    (sqlite / "dagster.yaml").write_text(INSTANCE_SETTINGS)

    assert configures_postgres(deployment) and configures_postgres(literal)
    assert not configures_postgres(sqlite) and not configures_postgres(tmp_path / "missing")
