"""The environment a notebook run started for a commit gets: an allow-list, never the deployment's whole one.

A commit sensor's run and a ``ds-pipelines reproduce`` rerun execute code from a commit (a branch, a merge
request, a recorded SHA) in a process that the deployment starts. That code can read every variable it is
given, so it is given only what ``ds-pipelines run`` needs: the system's basics, the GPU's, MLflow's (the run
logs to the team's MLflow), the Dagster instance's folder, and the Postgres URL only when that instance keeps
its runs in Postgres. GitLab and Slack tokens, CI's variables and anything else stay behind.

A deployment that needs more (an S3 artifact store's ``AWS_*`` keys) names the variables in
``DS_PIPELINES_PASS_ENV`` (comma separated): read from the deployment's environment, never from a commit's
files, which the code being run could have written.
"""

from __future__ import annotations

from collections.abc import Mapping

PASS_ENV = "DS_PIPELINES_PASS_ENV"
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
    extra = {name.strip() for name in environ.get(PASS_ENV, "").split(",") if name.strip()}
    passed = {
        name: value for name, value in environ.items()
        if name in _NAMES or name.startswith(_PREFIXES) or name in extra
    }
    if postgres and POSTGRES_URL_ENV in environ:
        passed[POSTGRES_URL_ENV] = environ[POSTGRES_URL_ENV]
    return passed
