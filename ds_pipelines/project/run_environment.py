"""The environment a notebook run started for a commit gets: an allow-list, never the deployment's whole one.

A commit sensor's run and a ``ds-pipelines reproduce`` rerun execute code from a commit (a branch, a merge
request, a recorded SHA) in a process that the deployment starts. That code can read every variable it is
given, so it is given only what ``ds-pipelines run`` needs: the system's basics, the GPU's, MLflow's (the run
logs to the team's MLflow), the Dagster instance's folder, and the Postgres URL only when that instance keeps
its runs in Postgres. GitLab and Slack tokens, CI's variables and anything else stay behind.

A deployment that needs more (an S3 artifact store's ``AWS_*`` keys) names the variables in
``DS_PIPELINES_PASS_ENV`` (comma separated): read from the deployment's environment, never from a commit's
files, which the code being run could have written.

An allow-list alone is no wall: a process may read the environment of any process of its user
(``/proc/<pid>/environ``), its parent's included. So every process that holds the deployment's credentials and
starts a commit's code hides its own environment first (``hide_environment``): the code location's processes
(which execute the runs), the daemon and the webserver (which load the run launcher), ``ds-pipelines
execute-run`` and ``reproduce``.
"""

from __future__ import annotations

import ctypes
import sys
from collections.abc import Iterable, Mapping

PASS_ENV = "DS_PIPELINES_PASS_ENV"
COMMIT_NOTEBOOK_JOB = "commit_notebook"
SCHEDULED_NOTEBOOK_JOB = "scheduled_notebook"
COMMIT_DIR_ENV = "DS_PIPELINES_COMMIT_DIR"
"""Set by the deployment's run launcher in a commit run's container: the folder, on a volume of that commit's
own, where the run copies the commit's files from the sensor's checkout and runs them."""
FOLDER_RUN_JOBS = frozenset({COMMIT_NOTEBOOK_JOB, SCHEDULED_NOTEBOOK_JOB})
"""The jobs whose one op runs ``ds-pipelines run`` in the project folder that the run's config names (the
commit sensor's and the schedule's, ``defs/triggers/notebook_runs``)."""
DAGSTER_HOME_ENV = "DAGSTER_HOME"
POSTGRES_URL_ENV = "DAGSTER_POSTGRES_URL"

_NAMES = frozenset({
    "PATH", "HOME", "USER", "LOGNAME", "SHELL", "LANG", "LANGUAGE", "TZ", "TERM", "TMPDIR", "TMP", "TEMP",
    "VIRTUAL_ENV", "SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
    "OMP_NUM_THREADS", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE", DAGSTER_HOME_ENV,
})
# Locale, the GPU runtime, XDG folders (Jupyter's), MLflow's client settings and credentials.
_PREFIXES = ("LC_", "CUDA_", "NVIDIA_", "XDG_", "MLFLOW_")


def notebook_run_environment(environ: Mapping[str, str], *, postgres: bool) -> dict[str, str]:
    """The allow-listed part of ``environ``; ``postgres`` adds ``DAGSTER_POSTGRES_URL`` (the instance stores
    its runs there)."""
    extra = _passed_on(environ)
    passed = {name: value for name, value in environ.items() if _allowed(name, extra)}
    if postgres and POSTGRES_URL_ENV in environ:
        passed[POSTGRES_URL_ENV] = environ[POSTGRES_URL_ENV]
    return passed


def runs_commit_code(job_name: str) -> bool:
    """Whether a run of the job ``job_name`` may execute a commit's code, so that its container gets
    ``commit_run_container_variables`` only: every run of ``FOLDER_RUN_JOBS``. Decided by the job, never by a
    tag: a commit's code holds the instance's Postgres URL and can create runs in its database, which the
    daemon then launches, with whatever tags it wrote."""
    return job_name in FOLDER_RUN_JOBS


def commit_run_container_variables(variables: Iterable[str], environ: Mapping[str, str]) -> list[str]:
    """Of the variables a run's container is to get (names, or ``NAME=value``), those the container of a run
    of a commit's code may hold: the allow-list, the instance's ``DAGSTER_POSTGRES_URL`` and the ds-pipelines
    settings (``DS_PIPELINES_*``). Not GitLab's or Slack's: processes of the container that run no
    ds-pipelines code (its init, Dagster's log capture) hold the container's whole environment, readable by
    the commit's code through ``/proc``. Such a run publishes nothing itself (``defs/triggers/published``)."""
    extra = _passed_on(environ)
    kept = []
    for variable in variables:
        name = variable.split("=", 1)[0]
        if _allowed(name, extra) or name == POSTGRES_URL_ENV or name.startswith("DS_PIPELINES_"):
            kept.append(variable)
    return kept


def _passed_on(environ: Mapping[str, str]) -> set[str]:
    return {name.strip() for name in environ.get(PASS_ENV, "").split(",") if name.strip()}


def _allowed(name: str, extra: set[str]) -> bool:
    return name in _NAMES or name.startswith(_PREFIXES) or name in extra


_PR_SET_DUMPABLE, _PR_GET_DUMPABLE = 4, 3


def hide_environment() -> bool:
    """Make this process non-dumpable (Linux ``prctl(PR_SET_DUMPABLE, 0)``): processes of the same user, such
    as a commit's notebook run, can then neither read its environment (``/proc/<pid>/environ`` becomes root's)
    nor attach a debugger to it. It also turns off its core dumps. Processes it starts are dumpable again
    (the kernel resets the flag at ``exec``), with only the environment they were given. False where the
    system has no such call (not Linux)."""
    if not sys.platform.startswith("linux"):
        return False
    libc = ctypes.CDLL(None, use_errno=True)
    return libc.prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0) == 0


def environment_hidden() -> bool:
    """Whether ``hide_environment`` holds for this process."""
    if not sys.platform.startswith("linux"):
        return False
    return ctypes.CDLL(None, use_errno=True).prctl(_PR_GET_DUMPABLE, 0, 0, 0, 0) == 0
