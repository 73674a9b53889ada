"""deploy/: runs launched the deployment's way, each in its own container of the project image.

As deploy/compose.yaml runs them, from the session's image (tests/images.py) with deploy/dagster.yaml unchanged:
a code location (``dagster api grpc``), ``dagster-daemon run`` and ``dagster-webserver`` in containers, on the
test's PostgreSQL server (tests/postgres.py). A run is launched through the webserver's GraphQL API, waits in
the queue, and the daemon's run launcher (ds_pipelines.execution.docker_launcher) starts its container. What
differs from compose, and why: every container uses the host network (containers reach only 127.0.0.1 here),
so the workspace names 127.0.0.1 and the code location's container context gives the runs ``network_mode:
host`` instead of compose's network; the project is a small one mounted at /project (a CPU notebook and a GPU
notebook, each a cell), and the storage volume has a name of the test's own.

There is no GPU and no NVIDIA runtime here: the GPU notebook's container is created with the device request
and cannot start, and that run must fail with Docker's reason instead of hanging.

The commit sensor runs in the code location's container, against a GitLab API served on 127.0.0.1 whose
repository is a folder of the host (mounted read-only at the same path, where ``http_url_to_repo`` says;
the image's git config trusts it, though another user owns it there). As compose does, the code location
and every run mount the storage volume at the project's state folder (here ``/project/.ds-pipelines``, for
compose ``/app/.ds-pipelines``): the checkout a sensor makes reaches the run's container only through it.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import time
import urllib.request
import uuid
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster_webserver import answers
from fake_gitlab import FakeGitLab
from gitrepo import INFERENCE, make_project, notebook_json
from images import REPO, run

from ds_pipelines.execution.docker_launcher import COMMIT_MOUNT, COMMIT_VOLUME_LABEL, COMMIT_VOLUME_PREFIX
from ds_pipelines.execution.instance import POSTGRES_STORAGE, POSTGRES_URL_ENV
from ds_pipelines.project import STATE_DIR

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1500)]  # builds the image, starts four containers

IMAGE_USER = 10001
POLL_INTERVAL_S = 5
START_TIMEOUT_S = 240
RUN_TIMEOUT_S = 480
"""Queue, container start, `dagster api execute_run`, a notebook kernel: about 1-2 minutes on two busy cores."""
MLFLOW_URI = "sqlite:////app/.ds-pipelines/mlflow.db"
PLANTED = "DS_TEST_DEPLOYMENT_MARKER"
READ_EVERY_ENVIRONMENT = """\
import glob, os
print('working in', os.getcwd())
# The sensor's checkouts and mirror, which another commit's notebook could otherwise change.
for folder in ('/project/.ds-pipelines/checkouts', '/project/.ds-pipelines/checkouts/mirror.git/objects'):
    try:
        open(folder + '/planted.py', 'w').write('planted')
        print('planted' + ' in', folder)  # in two parts: the notebook's source is in the printed file too
    except OSError as error:
        print('cannot plant in', folder, type(error).__name__, error.strerror)
# What a commit's code can read of the environments of the processes in its container (the run worker's).
for path in sorted(glob.glob('/proc/[0-9]*/environ')):
    command = open(path.replace('environ', 'cmdline'), 'rb').read().decode(errors='replace').replace('\\0', ' ')[:200]
    try:
        print(path, command, '::', open(path, 'rb').read().decode(errors='replace').replace('\\0', ' '))
    except OSError as error:
        print(path, 'refused:', type(error).__name__)
"""
FINISHED = {dg.DagsterRunStatus.SUCCESS, dg.DagsterRunStatus.FAILURE, dg.DagsterRunStatus.CANCELED}
CPU_CELL = """\
import os
from ds_pipelines import notebook as dsp
# Passed to the run's container by name (deploy/dagster.yaml's env_vars) from the daemon's environment.
assert os.environ["MLFLOW_TRACKING_URI"] == {uri!r}, os.environ.get("MLFLOW_TRACKING_URI")
config = dsp.load_config()
dsp.report(metrics={{"answer": config["answer"], "uid": os.getuid()}})
"""
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchPipelineExecution(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message stack }
    ... on RunConfigValidationInvalid { errors { message } }
    ... on InvalidSubsetError { message }
  }
}
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def device_project(root: Path) -> Path:
    (root / "notebooks").mkdir(parents=True)
    (root / "notebooks/cpu_note.ipynb").write_text(notebook_json(CPU_CELL.format(uri=MLFLOW_URI)))
    (root / "notebooks/gpu_note.ipynb").write_text(notebook_json("print('never starts here')"))
    (root / "configs").mkdir()
    registry = {"notebooks": {"notebooks/gpu_note.ipynb": {"device": "gpu"}},
                # This deployment runs pushed commits (the commit sensor), polling the test's GitLab often.
                "triggers": {"orchestrator": "dagster", "poll_interval_s": POLL_INTERVAL_S}}
    (root / "configs/notebooks.yaml").write_text(yaml.safe_dump(registry))
    for path in [root, *root.rglob("*")]:
        os.chown(path, IMAGE_USER, IMAGE_USER)
    return root


class Deployment:
    def __init__(self, docker: str, url: str, home: Path, webserver_port: int, label: str, names: list[str],
                 gitlab: FakeGitLab, repo, project: Path):
        self.docker, self.url, self.home, self.webserver_port = docker, url, home, webserver_port
        self.label, self.names = label, names
        self.gitlab, self.repo, self.project = gitlab, repo, project

    def logs(self) -> str:
        return "\n".join(f"--- {name}:\n" + (lambda r: (r.stdout + r.stderr)[-2500:])(run(self.docker, "logs", name, timeout=60))
                         for name in self.names)

    def launch(self, asset: str, run_config: dict) -> str:
        params = {
            "selector": {"repositoryLocationName": "ds_pipelines", "repositoryName": "__repository__",
                         "pipelineName": "notebooks", "assetSelection": [{"path": [asset]}]},
            "runConfigData": run_config,
        }
        request = urllib.request.Request(
            f"http://127.0.0.1:{self.webserver_port}/graphql", method="POST",
            data=json.dumps({"query": LAUNCH, "variables": {"params": params}}).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=120) as response:
            answer = json.loads(response.read())
        launched = answer["data"]["launchPipelineExecution"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        return launched["run"]["runId"]

    def instance(self) -> dg.DagsterInstance:
        os.environ[POSTGRES_URL_ENV] = self.url  # the test's own instance folder reads it
        return dg.DagsterInstance.from_config(str(self.home))

    def wait_finished(self, run_id: str) -> dg.DagsterRun:
        deadline = time.monotonic() + RUN_TIMEOUT_S
        with self.instance() as instance:
            while True:
                found = instance.get_run_by_id(run_id)
                if found and found.status in FINISHED:
                    return found
                assert time.monotonic() < deadline, (
                    f"run {run_id} not finished after {RUN_TIMEOUT_S} s ({found and found.status}):\n{self.logs()}")
                time.sleep(2)

    def events(self, run_id: str) -> str:
        with self.instance() as instance:
            return "\n".join(repr(entry) for entry in instance.all_logs(run_id))


def wait_until(what: str, ready, deployment: Deployment) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while not ready():
        assert time.monotonic() < deadline, f"no {what} after {START_TIMEOUT_S} s:\n{deployment.logs()}"
        time.sleep(2)


@pytest.fixture(scope="module")
def deployment(project_image, postgres, tmp_path_factory):
    docker, image = project_image["docker"], project_image["tag"]
    uid = uuid.uuid4().hex[:10]
    label = f"ds-pipelines-test-deployment={uid}"
    tmp = tmp_path_factory.mktemp("deployment")
    project = device_project(tmp / "project")
    url = postgres.url(postgres.new_database())
    volume = f"ds-pipelines-test-storage-{uid}"
    state = f"/project/{STATE_DIR}"  # the project's state folder, on the storage volume as in compose
    repo = make_project(tmp / "repo")
    gitlab = FakeGitLab(repo=repo.root).__enter__()
    grpc_port, webserver_port = free_port(), free_port()

    # The host's view of the instance: the same database.
    home = tmp / "host-home"
    home.mkdir()
    (home / "dagster.yaml").write_text(POSTGRES_STORAGE)
    # What the containers mount: deploy/dagster.yaml as it is, and the workspace of the host network.
    config = tmp / "config"
    config.mkdir()
    shutil.copy(REPO / "deploy/dagster.yaml", config / "dagster.yaml")
    workspace = yaml.safe_load((REPO / "deploy/workspace.yaml").read_text())
    workspace["load_from"][0]["grpc_server"].update(host="127.0.0.1", port=grpc_port)
    (config / "workspace.yaml").write_text(yaml.safe_dump(workspace))
    for path in config.iterdir():
        path.chmod(0o644)
    run_context = {"docker": {
        # Stands for the deployment's credentials, which no commit's code may read: not in the allow-list, and
        # neither a secret's name nor value, so that no masking of the executed notebook could hide a leak.
        "env_vars": ["DS_PIPELINES_PROJECT_DIR=/project", f"{PLANTED}=held-by-the-run-worker"],
        "container_kwargs": {
            "network_mode": "host",
            "labels": {"ds-pipelines-test-deployment": uid},
            "volumes": {volume: {"bind": "/app/.ds-pipelines", "mode": "rw"}, str(project): {"bind": "/project", "mode": "rw"},
                        # The project's state folder on a volume, as in compose, and the code location's
                        # checkouts on another, which no run may write (deploy/dagster.yaml).
                        f"{volume}-state": {"bind": state, "mode": "rw"},
                        f"{volume}-checkouts": {"bind": f"{state}/checkouts", "mode": "ro"}},
        },
    }}
    socket_gid = os.stat("/var/run/docker.sock").st_gid
    instance_mounts = ["-v", f"{config / 'dagster.yaml'}:/opt/dagster/home/dagster.yaml:ro",
                       "-v", f"{config / 'workspace.yaml'}:/opt/dagster/workspace.yaml:ro",
                       "-v", f"{volume}:/app/.ds-pipelines", "-v", "/var/run/docker.sock:/var/run/docker.sock",
                       "--group-add", str(socket_gid),
                       "-e", "DAGSTER_HOME=/opt/dagster/home", "-e", f"{POSTGRES_URL_ENV}={url}"]
    containers = {
        f"ds-test-user-code-{uid}": [
            "-v", f"{project}:/project", "-v", f"{volume}-state:{state}", "-v", f"{volume}-checkouts:{state}/checkouts",
            "-e", "DS_PIPELINES_PROJECT_DIR=/project",
            "-e", f"{POSTGRES_URL_ENV}={url}",
            "-v", f"{repo.root}:{repo.root}:ro",
            *[arg for name, value in gitlab.environ().items() for arg in ("-e", f"{name}={value}")],
            "-e", f"DAGSTER_CURRENT_IMAGE={image}", "-e", f"DAGSTER_CONTAINER_CONTEXT={json.dumps(run_context)}",
            image, "dagster", "api", "grpc", "-m", "ds_pipelines.definitions", "-a", "defs", "-h", "127.0.0.1",
            "-p", str(grpc_port)],
        f"ds-test-daemon-{uid}": [
            *instance_mounts, "-e", f"MLFLOW_TRACKING_URI={MLFLOW_URI}",
            image, "dagster-daemon", "run", "-w", "/opt/dagster/workspace.yaml"],
        f"ds-test-webserver-{uid}": [
            *instance_mounts,
            image, "dagster-webserver", "-h", "127.0.0.1", "-p", str(webserver_port), "-w", "/opt/dagster/workspace.yaml"],
    }
    deployment = Deployment(docker, url, home, webserver_port, label, list(containers), gitlab, repo, project)
    try:
        for name, folder in ((volume, "/app/.ds-pipelines"), (f"{volume}-state", "/app/.ds-pipelines"),
                             (f"{volume}-checkouts", "/app/.ds-pipelines/checkouts")):
            assert run(docker, "volume", "create", name, timeout=60).returncode == 0
            # Mounted first where the image has the folder, owned by its user: the empty volume takes that owner.
            made = run(docker, "run", "--rm", "--network", "none", "-v", f"{name}:{folder}", image, "true", timeout=120)
            assert made.returncode == 0, made.stderr
        started = time.monotonic()
        for name, args in containers.items():
            made = run(docker, "run", "-d", "--name", name, "--network", "host", "--label", label, *args, timeout=120)
            assert made.returncode == 0, made.stderr
            if "user-code" in name:
                wait_until("gRPC server", lambda n=name: run(docker, "exec", n, "dagster", "api", "grpc-health-check",
                                                            "-p", str(grpc_port), timeout=60).returncode == 0, deployment)
        wait_until("webserver", lambda: answers(f"http://127.0.0.1:{webserver_port}/server_info"), deployment)
        deployment.start_s = round(time.monotonic() - started, 1)
        yield deployment
    finally:
        os.environ.pop(POSTGRES_URL_ENV, None)
        listed = run(docker, "ps", "-aq", "--filter", f"label={label}", timeout=60).stdout.split()
        listed += run(docker, "ps", "-aq", "--filter", f"label=ds-pipelines-test-deployment={uid}", timeout=60).stdout.split()
        if listed:
            run(docker, "rm", "-f", *sorted(set(listed)), timeout=120)
        # With the commit volumes the launcher made, which carry the runs' container labels.
        commit_volumes = run(docker, "volume", "ls", "-q", "--filter", f"label=ds-pipelines-test-deployment={uid}", timeout=60).stdout.split()
        run(docker, "volume", "rm", "-f", volume, f"{volume}-state", f"{volume}-checkouts", *commit_volumes, timeout=60)
        gitlab.__exit__(None, None, None)


def inspect(docker: str, container: str) -> dict:
    shown = run(docker, "inspect", container, timeout=60)
    assert shown.returncode == 0, shown.stderr
    return json.loads(shown.stdout)[0]


def running_container(deployment: Deployment, run_id: str) -> dict:
    """``docker inspect`` of the run's container, found by its label as soon as the daemon created it."""
    deadline = time.monotonic() + RUN_TIMEOUT_S
    while not (found := run(deployment.docker, "ps", "-aq", "--filter", f"label=dagster/run_id={run_id}", timeout=60).stdout.split()):
        assert time.monotonic() < deadline, f"no container for run {run_id}:\n{deployment.logs()}"
        time.sleep(0.2)
    return inspect(deployment.docker, found[0])


def test_a_launched_run_materializes_its_notebook_in_its_own_container(deployment, project_image):
    started = time.monotonic()
    run_id = deployment.launch("cpu_note", {"ops": {"cpu_note": {"config": {"answer": 42}}}})
    container = running_container(deployment, run_id)  # inspected while it runs: Docker removes it on exit
    finished = deployment.wait_finished(run_id)
    took = round(time.monotonic() - started, 1)
    print(f"\ndeployment up in {deployment.start_s} s; the launched run took {took} s")

    assert finished.status == dg.DagsterRunStatus.SUCCESS, deployment.events(run_id)[-4000:] + deployment.logs()
    assert container["Id"] == finished.tags["docker/container_id"]
    assert container["Config"]["Image"] == project_image["tag"]
    assert container["Config"]["Labels"]["dagster/run_id"] == run_id
    assert not container["HostConfig"]["DeviceRequests"], "a CPU run asks for no GPU"
    assert container["HostConfig"]["NetworkMode"] == "host"
    env = dict(item.split("=", 1) for item in container["Config"]["Env"])
    assert env["MLFLOW_TRACKING_URI"] == MLFLOW_URI and env[POSTGRES_URL_ENV] == deployment.url
    # Gone once it exited (deploy/dagster.yaml's auto_remove): nothing left that shows the credentials above.
    wait_until("the finished run's container removed",
               lambda: not run(deployment.docker, "ps", "-aq", "--filter", f"label=dagster/run_id={run_id}",
                               timeout=60).stdout.strip(), deployment)
    with deployment.instance() as instance:
        materialization = instance.get_latest_materialization_event(dg.AssetKey("cpu_note"))
    assert materialization is not None and materialization.run_id == run_id
    metadata = materialization.asset_materialization.metadata
    assert metadata["answer"].value == 42
    assert metadata["uid"].value == 10001, "the notebook ran as the image's user"
    # Kept in the storage volume that deploy/dagster.yaml names, where the webserver reads it.
    assert metadata["executed_notebook"].value.startswith("/app/.ds-pipelines/dagster/storage/")


def test_a_gpu_notebooks_container_asks_for_the_gpus_and_fails_clearly_without_them(deployment):
    started = time.monotonic()
    run_id = deployment.launch("gpu_note", {})
    finished = deployment.wait_finished(run_id)
    print(f"\nthe GPU run failed after {round(time.monotonic() - started, 1)} s")

    assert finished.status == dg.DagsterRunStatus.FAILURE
    # Docker removed the container it could not start (auto_remove); the request it refused is in the error
    # below, and tests/test_docker_launcher.py checks what the launcher asks for.
    assert not run(deployment.docker, "ps", "-aq", "--filter", f"label=dagster/run_id={run_id}", timeout=60).stdout.strip()
    events = deployment.events(run_id)
    assert "kept for inspection" not in events
    assert "Docker could not create or start the container" in events, events[-4000:]
    assert "NVIDIA Container Toolkit" in events
    assert 'could not select device driver \\"nvidia\\"' in events or 'could not select device driver "nvidia"' in events, events[-4000:]


def test_a_pushed_commit_runs_in_its_own_container_from_the_code_locations_checkout(deployment):
    gitlab, repo = deployment.gitlab, deployment.repo
    # The first tick only records where main is: push once the sensor has listed main's commits.
    wait_until("the commit sensor's first tick", lambda: any("/repository/commits" in path for _, path in gitlab.requests), deployment)
    time.sleep(POLL_INTERVAL_S)
    # A device: cpu notebook (training's device: gpu would ask this host for GPUs it lacks, as above).
    repo.write(INFERENCE, notebook_json("print('pushed to the container deployment')\n" + READ_EVERY_ENVIRONMENT))
    pushed = repo.commit("score in the deployment")

    deadline = time.monotonic() + RUN_TIMEOUT_S
    with deployment.instance() as instance:
        while not (runs := instance.get_runs(filters=dg.RunsFilter(job_name="commit_notebook", tags={"ds-pipelines/commit": pushed, "ds-pipelines/notebook": INFERENCE}))):
            assert time.monotonic() < deadline, f"no commit run of {pushed[:12]}:\n{deployment.logs()}"
            time.sleep(2)
    finished = deployment.wait_finished(runs[0].run_id)

    assert finished.status == dg.DagsterRunStatus.SUCCESS, deployment.events(finished.run_id)[-4000:] + deployment.logs()
    assert "docker/container_id" in finished.tags, "launched in a container of its own"
    with deployment.instance() as instance:
        records = instance.fetch_materializations(dg.AssetKey("inference_example"), limit=1).records
        inner = instance.get_run_by_id(records[0].run_id) if records else None
    # The notebook ran from the sensor's checkout in the run's container, and its run is in Postgres.
    assert inner is not None and inner.tags["ds-pipelines/commit"] == pushed, deployment.events(finished.run_id)[-4000:]
    executed = records[0].asset_materialization.metadata["executed_notebook"].value
    # Kept by that run's instance folder in the storage volume, which the webserver mounts too.
    assert executed.startswith(f"/project/{STATE_DIR}/dagster-postgres/storage/"), executed
    [user_code] = [name for name in deployment.names if "user-code" in name]  # it mounts the state volume too
    shown = run(deployment.docker, "exec", user_code, "cat", executed, timeout=60)
    assert shown.returncode == 0, shown.stderr
    printed = shown.stdout
    # The run worker and its step process hold the variable; the notebook, run as the same user, reads none of them.
    assert "pushed to the container deployment" in printed and "MLFLOW_TRACKING_URI=" in printed, "its own is readable"
    assert "refused: PermissionError" in printed and f"{PLANTED}=" not in printed, printed
    # It ran in its commit's own volume, and could change neither the checkouts nor the mirror.
    assert f"working in {COMMIT_MOUNT}" in printed, printed
    assert "planted in" not in printed and printed.count("Read-only file system") == 2, printed
    volumes = run(deployment.docker, "volume", "ls", "-q", "--filter", f"label={COMMIT_VOLUME_LABEL}={pushed}", timeout=60)
    assert volumes.stdout.split() == [COMMIT_VOLUME_PREFIX + pushed], volumes
    # Its container held no GitLab token: the code location's sensor published it once it ended.
    wait_until("the run's wiki page, published by the code location",
               lambda: pushed[:7] in gitlab.wiki.get("model-runs/inference_example", {}).get("content", ""), deployment)
    assert not (deployment.project / STATE_DIR / "checkouts").exists(), "the checkout went through the volume"
