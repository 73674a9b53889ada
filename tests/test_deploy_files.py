"""deploy/compose.yaml, deploy/dagster.yaml and deploy/workspace.yaml fit together and hold no secret.

The structure is checked here without Docker, and a Compose client (``./run-tests`` installs one) validates the
file too: the ``docker compose`` plugin, else docker-compose 1.x (which does not know the Compose spec's
top-level ``name``, so that key is left out for it). tests/test_docker_deployment.py runs the deployment.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import yaml
from required import require

REPO = Path(__file__).resolve().parent.parent
DEPLOY = REPO / "deploy"
SECRET_NAMES = {"DAGSTER_POSTGRES_URL", "MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_TOKEN", "GITLAB_URL", "GITLAB_TOKEN",
                "GITLAB_PROJECT_ID", "SLACK_WEBHOOK_URL"}
SERVICES = {"postgres", "user-code", "webserver", "daemon"}
COMPOSE_ENV = {"DOCKER_GID": "999", "POSTGRES_PASSWORD": "x", "DAGSTER_DB_PASSWORD": "y",
               "DAGSTER_POSTGRES_URL": "postgresql://dagster_app:y@postgres/dagster"}


def load(name: str) -> dict:
    return yaml.safe_load((DEPLOY / name).read_text())


def names(environment: list[str]) -> dict[str, str | None]:
    return {item.split("=", 1)[0]: item.split("=", 1)[1] if "=" in item else None for item in environment}


def test_the_instance_is_on_postgres_and_passes_settings_by_name():
    instance = load("dagster.yaml")
    assert instance["storage"] == {"postgres": {"postgres_url": {"env": "DAGSTER_POSTGRES_URL"}}}
    assert instance["run_coordinator"]["class"] == "QueuedRunCoordinator"
    assert instance["concurrency"]["pools"]["granularity"] == "op", "slots claimed in Postgres by every step"
    monitoring = instance["run_monitoring"]
    assert monitoring["enabled"] and monitoring["max_resume_run_attempts"] == 0, "dead containers fail, never resume"
    assert monitoring["free_slots_after_run_end_seconds"] <= 60 and monitoring["poll_interval_seconds"] <= 60
    launcher = instance["run_launcher"]
    assert (launcher["module"], launcher["class"]) == ("ds_pipelines.execution.run_launcher", "NotebookRunLauncher")
    assert launcher["config"]["execute_on"] == "docker", "GitLab's runners only when turned on"
    assert launcher["config"]["gitlab"]["pending_timeout_s"] == 1800
    env_vars = launcher["config"]["env_vars"]
    assert SECRET_NAMES <= set(env_vars)
    assert all("=" not in name for name in env_vars), "names only: values come from the daemon's environment"
    # The run's container gets the instance from the launcher's command: its files go to the image's writable folder.
    for key in ("local_artifact_storage", "compute_logs"):
        assert instance[key]["config"]["base_dir"].startswith("/app/.ds-pipelines/")
    volumes = launcher["config"]["container_kwargs"]["volumes"]
    compose = load("compose.yaml")
    assert volumes[compose["volumes"]["storage"]["name"]] == {"bind": "/app/.ds-pipelines", "mode": "rw"}
    # The sensor's checkouts: written by the code location only, read-only in every run's container.
    assert volumes[compose["volumes"]["checkouts"]["name"]] == {"bind": "/app/.ds-pipelines/checkouts", "mode": "ro"}
    assert "checkouts:/app/.ds-pipelines/checkouts" in compose["services"]["user-code"]["volumes"]
    assert set(volumes) == {compose["volumes"]["storage"]["name"], compose["volumes"]["checkouts"]["name"]}


def test_compose_runs_the_image_of_a_variable_with_healthchecks():
    compose = load("compose.yaml")
    services = compose["services"]
    assert set(services) == SERVICES
    for name in SERVICES - {"postgres"}:
        assert services[name]["image"] == "${DS_PIPELINES_IMAGE:-ds-pipelines:latest}", name
        assert "DAGSTER_POSTGRES_URL" in names(services[name]["environment"]), name
        assert names(services[name]["environment"])["DAGSTER_POSTGRES_URL"] is None, f"{name}: by name, no value"
    for name in SERVICES:
        assert services[name]["healthcheck"]["test"], name
    assert services["user-code"]["command"][:5] == ["dagster", "api", "grpc", "-m", "ds_pipelines.definitions"]
    assert names(services["user-code"]["environment"])["DAGSTER_CURRENT_IMAGE"] == "${DS_PIPELINES_IMAGE:-ds-pipelines:latest}"
    assert SECRET_NAMES <= set(names(services["daemon"]["environment"])), "the daemon passes them on to the runs"
    for name in ("webserver", "daemon"):
        assert "./dagster.yaml:/opt/dagster/home/dagster.yaml:ro" in services[name]["volumes"]
        assert names(services[name]["environment"])["DAGSTER_HOME"] == "/opt/dagster/home"
        assert services[name]["depends_on"]["user-code"]["condition"] == "service_healthy"
    workspace = load("workspace.yaml")
    grpc = workspace["load_from"][0]["grpc_server"]
    assert (grpc["host"], str(grpc["port"])) == ("user-code", services["user-code"]["command"][-1])
    text = "\n".join((DEPLOY / name).read_text() for name in ("compose.yaml", "dagster.yaml", "workspace.yaml"))
    assert "glpat-" not in text and "hooks.slack.com" not in text and "password@" not in text


def compose_client() -> list[str] | None:
    docker = shutil.which("docker")
    if docker and subprocess.run([docker, "compose", "version"], capture_output=True, check=False).returncode == 0:
        return [docker, "compose"]
    legacy = shutil.which("docker-compose")
    return [legacy] if legacy else None


def test_compose_config_validates(tmp_path):
    client = compose_client()
    if client is None:
        require("no Compose client (docker compose plugin or docker-compose): apt-get install docker-compose")
    compose = DEPLOY / "compose.yaml"
    if client[0].endswith("docker-compose"):
        for name in ("dagster.yaml", "workspace.yaml"):
            shutil.copy(DEPLOY / name, tmp_path / name)
        data = load("compose.yaml")
        del data["name"]
        compose = tmp_path / "compose.yaml"
        compose.write_text(yaml.safe_dump(data, sort_keys=False))
    done = subprocess.run([*client, "-f", str(compose), "config"], capture_output=True, text=True, check=False,
                          env={"PATH": "/usr/bin:/bin", **COMPOSE_ENV}, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "image: ds-pipelines:latest" in done.stdout
    missing = subprocess.run([*client, "-f", str(compose), "config"], capture_output=True, text=True, check=False,
                             env={"PATH": "/usr/bin:/bin"}, timeout=120)
    assert missing.returncode != 0 and "DOCKER_GID" in missing.stderr, "the socket's group must be given"
