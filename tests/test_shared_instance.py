"""``DAGSTER_POSTGRES_URL``: every ds-pipelines process keeps its Dagster runs in one shared Postgres database.

Against the real PostgreSQL server of the machine image (fixture ``postgres``, tests/postgres.py): a run of
``ds-pipelines run`` lands there with its GitLab tags, materialization and metrics, and a database that
cannot be used is a clear error naming the variable, with the password hidden, before any run exists.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from pathlib import Path

import dagster as dg
import psycopg2
import pytest
import yaml

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.execution.instance import (
    INSTANCE_SETTINGS,
    POSTGRES_STORAGE,
    POSTGRES_URL_ENV,
    check_postgres,
    shown_postgres_url,
    use_local_defaults,
)
from ds_pipelines.project import PROJECT_DIR_ENV, STATE_DIR, Project
from ds_pipelines.results.folder import EXECUTED_NOTEBOOK_URL_TAG

ROLE_PASSWORD = "s3cret-Role-Pw"
JOB_URL = "https://gitlab.example.com/group/project/-/jobs/4242"


def postgres_home(root: Path) -> Path:
    """A DAGSTER_HOME on Postgres, as deploy/dagster.yaml and the local default with the variable set write it."""
    home = root / "dagster-postgres"
    home.mkdir()
    (home / "dagster.yaml").write_text(INSTANCE_SETTINGS + POSTGRES_STORAGE)
    return home


def test_with_the_variable_set_the_local_default_is_on_postgres(tmp_path: Path, monkeypatch):
    monkeypatch.setenv(PROJECT_DIR_ENV, "restored-after-the-test")
    monkeypatch.delenv("DAGSTER_HOME", raising=False)
    monkeypatch.setenv(POSTGRES_URL_ENV, "postgresql://u:p@127.0.0.1:5432/dagster")
    home = use_local_defaults(Project(tmp_path))
    assert home == tmp_path / STATE_DIR / "dagster-postgres"
    settings = yaml.safe_load((home / "dagster.yaml").read_text())
    # The URL is read from the environment when the instance opens: the password is never written down.
    assert settings["storage"] == {"postgres": {"postgres_url": {"env": POSTGRES_URL_ENV}}}
    assert "p@127" not in (home / "dagster.yaml").read_text()
    assert settings["concurrency"]["pools"]["default_limit"] == 1

    monkeypatch.delenv("DAGSTER_HOME")
    monkeypatch.delenv(POSTGRES_URL_ENV)
    assert use_local_defaults(Project(tmp_path)) == tmp_path / STATE_DIR / "dagster", "unset: SQLite, as before"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("not a url at all", "DAGSTER_POSTGRES_URL is not a database URL: expected postgresql://"),
        ("mysql://me:hunter2@127.0.0.1/dagster", "DAGSTER_POSTGRES_URL=mysql://me:***@127.0.0.1/dagster is not a Postgres URL"),
        ("postgres://me:hunter2@127.0.0.1/dagster", "DAGSTER_POSTGRES_URL=postgres://me:***@127.0.0.1/dagster is not a Postgres URL"),
    ],
    ids=["garbage", "other-database", "old-scheme"],
)
def test_a_value_that_is_no_postgres_url_is_named(url, expected):
    with pytest.raises(DsPipelinesError) as raised:
        check_postgres(url)
    assert expected in str(raised.value)
    assert "hunter2" not in str(raised.value)


def test_the_shown_url_hides_the_password():
    assert shown_postgres_url("postgresql://me:pa%40ss@db.internal:5432/dagster") == "postgresql://me:***@db.internal:5432/dagster"


@pytest.mark.slow
@pytest.mark.parametrize("problem", ["closed-port", "wrong-password", "no-connect-privilege", "no-create-privilege", "no-database"])
def test_a_database_that_cannot_be_used_fails_the_run_before_it_starts(sandbox, postgres, tmp_path, problem):
    database = postgres.new_database()
    role = postgres.new_role(ROLE_PASSWORD)
    password = ROLE_PASSWORD
    if problem == "closed-port":
        url = postgres.url(database, user=role, password=password).replace(str(postgres.port), str(_closed_port()))
    elif problem == "wrong-password":
        password = "Wrong-Pw-123"
        url = postgres.url(database, user=role, password=password)
    elif problem == "no-connect-privilege":
        postgres.execute(f'REVOKE CONNECT ON DATABASE "{database}" FROM PUBLIC')
        url = postgres.url(database, user=role, password=password)
    elif problem == "no-create-privilege":
        # PostgreSQL 15: only the database owner may create tables in its public schema.
        url = postgres.url(database, user=role, password=password)
    else:
        url = postgres.url("no_such_database", user=role, password=password)
    sandbox.env.update(DAGSTER_HOME=str(postgres_home(tmp_path)), **{POSTGRES_URL_ENV: url})

    result = sandbox.cli("run", "training_example", "--config", f"training_example={sandbox.training_config()}",
                         "--output-dir", str(sandbox.root / "results"))

    assert result.returncode == 2, result.stderr[-3000:]
    message = result.stderr
    assert f"{POSTGRES_URL_ENV}=postgresql://{role}:***@127.0.0.1:" in message, message[-2000:]
    assert password not in message and password not in result.stdout
    assert "Traceback" not in message
    assert {
        "closed-port": "Connection refused",
        "wrong-password": "password authentication failed",
        "no-connect-privilege": "permission denied for database",
        "no-create-privilege": "permission denied for schema public",
        "no-database": 'database "no_such_database" does not exist',
    }[problem] in message, message[-2000:]
    assert not (sandbox.root / "results").exists()
    assert postgres.tables(database) == set(), "nothing of Dagster's (no run, no table) is left half-created"


@pytest.mark.slow
def test_a_run_lands_in_postgres_with_its_gitlab_tags_and_materialization(sandbox, postgres, tmp_path):
    database = postgres.new_database()
    url = postgres.url(database)
    home = postgres_home(tmp_path)
    sandbox.env.update(
        DAGSTER_HOME=str(home), CI_PROJECT_DIR=str(sandbox.root), CI_JOB_URL=JOB_URL, CI_COMMIT_SHA="a" * 40,
        CI_PIPELINE_URL="https://gitlab.example.com/group/project/-/pipelines/77", CI_MERGE_REQUEST_IID="12",
        CI_PIPELINE_SOURCE="merge_request_event", **{POSTGRES_URL_ENV: url},
    )

    result = sandbox.cli("run", "training_example", "--config", f"training_example={sandbox.training_config()}",
                         "--output-dir", "results")

    assert result.returncode == 0, result.stderr[-3000:]
    assert "runs" in postgres.tables(database)
    os.environ[POSTGRES_URL_ENV] = url  # the instance's dagster.yaml reads it
    try:
        with dg.DagsterInstance.from_config(str(home)) as instance:
            [run] = instance.get_runs()
            materialization = instance.get_latest_materialization_event(dg.AssetKey("training_example"))
    finally:
        del os.environ[POSTGRES_URL_ENV]
    assert run.status == dg.DagsterRunStatus.SUCCESS
    assert {key: run.tags[key] for key in ("ds-pipelines/commit", "ds-pipelines/merge-request", "ds-pipelines/job-url")} == {
        "ds-pipelines/commit": "a" * 40, "ds-pipelines/merge-request": "12", "ds-pipelines/job-url": JOB_URL,
    }
    expected_url = f"{JOB_URL}/artifacts/file/results/training_example/training_example.ipynb"
    assert run.tags[EXECUTED_NOTEBOOK_URL_TAG] == expected_url
    metadata = materialization.asset_materialization.metadata
    assert metadata["executed_notebook_url"].value == expected_url
    assert (sandbox.root / "results/training_example/training_example.ipynb").is_file(), "the link's target is kept"
    assert 0.5 < metadata["roc_auc"].value <= 1.0


def _closed_port() -> int:
    from mlflow_serve import free_port

    return free_port()


ROLE_SQL = Path(__file__).resolve().parent.parent / "deploy" / "postgres-init" / "sql" / "dagster-role.sql"


def test_the_deployments_database_role_runs_dagster_and_nothing_more(postgres, tmp_path, monkeypatch):
    """deploy/postgres-init's role, created by psql from its SQL as the postgres image does, is no superuser
    and is enough for a Dagster instance on Postgres: it creates the storage and records a run."""
    psql = shutil.which("psql")
    if psql is None:
        pytest.skip("psql is not installed (apt-get install postgresql-client)")
    database, role = postgres.new_database(), f"dagster_app_{uuid.uuid4().hex[:8]}"  # roles are the server's
    done = subprocess.run(
        [psql, "--no-psqlrc", "-v", "ON_ERROR_STOP=1", "-v", f"role={role}", "-v", "password=app-password-1",
         "-v", f"dbname={database}", "-f", str(ROLE_SQL), postgres.url(database)],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    url = postgres.url(database, user=role, password="app-password-1")
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(POSTGRES_STORAGE)
    monkeypatch.setenv(POSTGRES_URL_ENV, url)

    @dg.op
    def one() -> int:
        return 1

    @dg.job
    def tiny() -> None:
        one()

    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert tiny.execute_in_process(instance=instance).success
        assert len(instance.get_runs()) == 1
    [(superuser, create_role, create_db)] = postgres.execute(
        f"SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = '{role}'")
    assert (superuser, create_role, create_db) == (False, False, False)
    connection = psycopg2.connect(url)
    try:
        with connection.cursor() as cursor, pytest.raises(psycopg2.errors.InsufficientPrivilege):
            cursor.execute("CREATE ROLE intruder")
    finally:
        connection.close()
