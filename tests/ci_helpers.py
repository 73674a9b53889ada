"""Run this project's .gitlab-ci.yml offline with gitlab-ci-local, in a git repository in a tmp folder.

The repository holds this project's CI files, package, notebooks and configs (training with a small Optuna budget),
an ``origin`` remote (a bare repository) with ``origin/main``, and GitLab's secret-detection template read
from ci-tools/includes (gitlab-ci-local cannot fetch it offline). Jobs run in the shell
(``--force-shell-executor``), each in its own copy of the repository (``--shell-isolation``), with the
``ds-pipelines`` of the interpreter running the tests on PATH: its environment stands in for the image's,
and as in the image its editable ds_pipelines gives way to the checkout's (PYTHONPATH, set by the jobs).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import yaml
from gitrepo import TRAINING_CONFIG, GitRepo
from sandbox import SMALL_OPTUNA

PROJECT = Path(__file__).resolve().parent.parent
CI_TOOLS = PROJECT / "ci-tools"
GITLAB_CI_LOCAL = CI_TOOLS / "node_modules" / ".bin" / "gitlab-ci-local"
GITLAB_CI_LOCAL_VERSION = "4.60.0"
INCLUDES = CI_TOOLS / "includes"
COMPONENT = PROJECT / "templates" / "notebooks.yml"
# The package too: CI jobs run the commit's ds_pipelines, as they do in this repository.
RELEASE_TAG = "v" + tomllib.loads((PROJECT / "pyproject.toml").read_text())["project"]["version"]
"""A production tag of this repository: the package's version (its release-version job refuses any other)."""
PROJECT_FILES = (".gitlab-ci.yml", ".gitignore", "pyproject.toml", "templates", "notebooks", "configs", "ds_pipelines")
STATE_DIR = ".gitlab-ci-local"

# Pipelines here never build an image (no docker daemon) nor run GitLab's analyzer image.
OFFLINE = {"BUILD_CONTAINER": "false", "SECRET_DETECTION_DISABLED": "true"}
# The test process's own settings must not reach the jobs: they use the defaults of their checkout.
_PRIVATE_PREFIXES = ("CI_", "MLFLOW_", "DS_PIPELINES_", "DAGSTER_", "GITLAB_", "SLACK_")
_PRIVATE_NAMES = {"CI", "REPO_TOKEN", "DAGSTER_HOME"}


def missing_tools(path: str | None = None) -> list[str]:
    """What must be installed to run gitlab-ci-local, each with how to install it; empty when all is there."""
    missing = []
    if not shutil.which("rsync", path=path):
        missing.append("rsync (gitlab-ci-local copies artifacts with it): apt-get install rsync")
    if not shutil.which("node", path=path):
        missing.append("Node.js 20 or later: apt-get install nodejs")
    if not GITLAB_CI_LOCAL.is_file():
        missing.append(f"gitlab-ci-local {GITLAB_CI_LOCAL_VERSION}: npm ci --prefix ci-tools")
    elif shutil.which("node", path=path):
        version = subprocess.run([str(GITLAB_CI_LOCAL), "--version"], check=False, capture_output=True, text=True, timeout=60,
                                 env={**os.environ, "PATH": path or os.environ.get("PATH", "")})
        if version.stdout.strip() != GITLAB_CI_LOCAL_VERSION:
            missing.append(f"gitlab-ci-local {GITLAB_CI_LOCAL_VERSION} (found {version.stdout.strip() or version.stderr.strip()!r}): "
                           "npm ci --prefix ci-tools")
    return missing


def job_environment(**extra: str) -> dict[str, str]:
    """The environment of gitlab-ci-local and so of shell jobs: ours without private settings, our venv first."""
    env = {key: value for key, value in os.environ.items()
           if not key.startswith(_PRIVATE_PREFIXES) and key not in _PRIVATE_NAMES}
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    env.update(GIT_CONFIG_GLOBAL=os.devnull, GIT_CONFIG_NOSYSTEM="1", **extra)
    return env


class CiProject(GitRepo):
    """A repository of this project, pushed to a local ``origin``, whose pipelines gitlab-ci-local runs."""

    @classmethod
    def create(cls, root: Path) -> CiProject:
        repo = cls.start(root)
        for name in PROJECT_FILES:
            source = PROJECT / name
            if source.is_dir():
                shutil.copytree(source, repo.root / name, ignore=shutil.ignore_patterns(".ipynb_checkpoints", "__pycache__"))
            else:
                shutil.copy(source, repo.root / name)
        repo.edit_yaml(TRAINING_CONFIG, lambda config: config["optuna"].update(SMALL_OPTUNA))
        shutil.copytree(INCLUDES, repo.root / STATE_DIR / "includes")
        repo.publish()
        return repo

    @classmethod
    def start(cls, root: Path) -> CiProject:
        """An empty repository on branch main, in ``root/project``; fill it, then ``publish``."""
        repo = cls(root / "project")
        repo.root.mkdir(parents=True)
        repo.git("init", "-q", "-b", "main")
        return repo

    def publish(self) -> None:
        """Commit everything as "initial" and push it to a new bare ``origin`` (``origin/main`` its HEAD)."""
        self.commit("initial")
        origin = self.root.parent / "origin.git"
        subprocess.run(["git", "init", "-q", "--bare", "-b", "main", str(origin)], check=True, env=job_environment())
        self.git("remote", "add", "origin", str(origin))
        self.git("push", "-q", "origin", "main")
        self.git("remote", "set-head", "origin", "main")

    def edit_yaml(self, path: str, change) -> None:
        file = self.root / path
        data = yaml.safe_load(file.read_text())
        change(data)
        file.write_text(yaml.safe_dump(data, sort_keys=False))

    def edit_notebook(self, path: str, *cells: dict) -> None:
        """Append cells to a notebook (kept valid nbformat 4)."""
        file = self.root / path
        notebook = json.loads(file.read_text())
        notebook["cells"].extend(cells)
        file.write_text(json.dumps(notebook, indent=1))

    def push(self, message: str) -> dict[str, str]:
        """Commit everything and push it; returns the variables GitLab gives that push's pipeline."""
        before = self.head()
        after = self.commit(message)
        self.git("push", "-q", "origin", "HEAD")
        return {"CI_COMMIT_BEFORE_SHA": before, "CI_COMMIT_SHA": after, "CI_COMMIT_MESSAGE": message}

    def gitlab_ci_local(self, *args: str, variables: dict[str, str], env: dict[str, str] | None = None,
                        unset: tuple[str, ...] = (), timeout: float = 600,
                        helper_image: str | None = None) -> subprocess.CompletedProcess:
        """gitlab-ci-local in this repository; ``variables`` as pipeline variables (--variable).

        They reach the child pipeline too, as GitLab forwards them (``trigger: forward: pipeline_variables``,
        which gitlab-ci-local ignores): its child pipelines get only the trigger job's variables, but read
        the variables file of --home, as every pipeline it runs does."""
        command = self.gitlab_ci_local_command(*args, variables=variables, unset=unset, helper_image=helper_image)
        return subprocess.run(command, check=False,
                              cwd=self.root, env=env or job_environment(), capture_output=True, text=True, timeout=timeout)

    def gitlab_ci_local_command(self, *args: str, variables: dict[str, str], unset: tuple[str, ...] = (),
                                helper_image: str | None = None) -> list[str]:
        """The command line of ``gitlab_ci_local`` (run it in ``root``), its variables file written.

        Jobs run in the shell unless ``helper_image`` is given: then each runs in its ``image:`` on the local
        Docker daemon (never pulled when present), on the host network (servers of the test listen on
        127.0.0.1), with ``helper_image`` (bash and rsync) copying the checkout and the artifacts."""
        home = self.root.parent / "gcl-home"
        forwarded = {name: {"type": "variable", "values": {"*": value}} for name, value in variables.items()}
        (home / STATE_DIR).mkdir(parents=True, exist_ok=True)
        (home / STATE_DIR / "variables.yml").write_text(yaml.safe_dump({"global": forwarded}))
        command = [str(GITLAB_CI_LOCAL), "--home", str(home), "--no-color", "--max-job-name-padding", "0"]
        if helper_image:
            command += ["--network", "host", "--helper-image", helper_image, "--pull-policy", "if-not-present"]
        else:
            command += ["--force-shell-executor", "--shell-isolation"]
        for name, value in variables.items():
            command += ["--variable", f"{name}={value}"]
        for name in unset:
            command += ["--unset-variable", name]
        return [*command, *args]

    def jobs(self, variables: dict[str, str], unset: tuple[str, ...] = ()) -> dict[str, dict]:
        """The pipeline gitlab-ci-local plans, by job name (``when`` is "never" for jobs left out)."""
        listing = self.gitlab_ci_local("--list-json", variables=variables, unset=unset, timeout=120)
        assert listing.returncode == 0, listing.stdout + listing.stderr
        # Warnings (an overridden predefined variable) may come first on stdout.
        listed = listing.stdout[listing.stdout.index("\n[") + 1:] if not listing.stdout.startswith("[") else listing.stdout
        return {job["name"]: job for job in json.loads(listed)}

    def preview(self, variables: dict[str, str]) -> dict:
        """The configuration gitlab-ci-local runs (--preview): includes merged, component inputs filled in,
        ``extends`` resolved; it shows the keys --list-json leaves out (interruptible, artifacts, ...)."""
        preview = self.gitlab_ci_local("--preview", variables=variables, timeout=120)
        assert preview.returncode == 0, preview.stdout + preview.stderr
        return yaml.safe_load(preview.stdout)

    def artifacts(self, job: str) -> Path:
        return self.root / STATE_DIR / "artifacts" / job

    def child_results(self, name: str) -> Path:
        """The results folder that the child pipeline's job of notebook ``name`` kept."""
        return self.artifacts(f"run-{name}") / "results" / name

    def dotenv(self, job: str, name: str) -> dict[str, str]:
        """A job's ``artifacts:reports:dotenv`` file, as the jobs that need it receive it."""
        report = self.artifacts(job) / ".gitlab-ci-reports" / "dotenv" / name
        return dict(line.split("=", 1) for line in report.read_text().splitlines() if line)

    def log(self, job: str) -> str:
        return (self.root / STATE_DIR / "output" / f"{job}.log").read_text()
