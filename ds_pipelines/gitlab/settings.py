"""Where GitLab is and who we are there, read from the environment (GitLab CI's variables or our own)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

from ds_pipelines.gitlab.errors import TOKEN_VARIABLES, GitLabConfigError

# Each setting, the variables it is read from (first one set wins) and how messages name them.
# GitLab CI sets CI_SERVER_URL and CI_PROJECT_ID in every job; elsewhere set GITLAB_URL and GITLAB_PROJECT_ID.
URL_VARIABLES = ("CI_SERVER_URL", "GITLAB_URL")
PROJECT_VARIABLES = ("CI_PROJECT_ID", "GITLAB_PROJECT_ID")
TOKEN_VARIABLE_NAMES = ("GITLAB_TOKEN", "REPO_TOKEN")
NOTE_TOKEN_VARIABLE = "GITLAB_NOTE_TOKEN"
"""A token that can only comment (a Reporter-role project access token): the merge-request comment and plan
jobs of every branch use it when set, so they never hold GITLAB_TOKEN, which writes the wiki and releases."""
_SETTINGS = {
    "url": (URL_VARIABLES, "CI_SERVER_URL (or GITLAB_URL)"),
    "project_id": (PROJECT_VARIABLES, "CI_PROJECT_ID (or GITLAB_PROJECT_ID)"),
    "token": (TOKEN_VARIABLE_NAMES, TOKEN_VARIABLES),
}


@dataclass(frozen=True)
class GitLabSettings:
    """GitLab's base URL (``https://gitlab.example.com``), the project (numeric id or ``group/project``
    path) and an access token with the ``api`` scope. ``repr``/``str`` show the token as ``***``."""

    url: str
    project_id: str
    token: str

    def __repr__(self) -> str:
        return f"GitLabSettings(url={self.url!r}, project_id={self.project_id!r}, token='***')"

    __str__ = __repr__

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> GitLabSettings:
        """Read the settings; raises GitLabConfigError naming every variable still to set, or a bad URL."""
        environ = os.environ if environ is None else environ
        missing = missing_gitlab_variables(environ)
        if missing:
            raise GitLabConfigError(f"GitLab is not configured: set {', '.join(missing)}")
        values = {name: _first(environ, variables)[1] for name, (variables, _) in _SETTINGS.items()}
        url_variable = _first(environ, URL_VARIABLES)[0]
        url = values["url"].rstrip("/")
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise GitLabConfigError(
                f"{url_variable}={values['url']!r} is not a GitLab URL: expected http(s)://host[:port][/path]"
            )
        return cls(url=url, project_id=values["project_id"], token=values["token"])


def missing_gitlab_variables(environ: Mapping[str, str] | None = None) -> list[str]:
    """What is still to set, e.g. ``["GITLAB_TOKEN (or REPO_TOKEN)"]``; empty when GitLab is configured.

    For callers that skip GitLab work with a message instead of failing (sensors, optional CI steps).
    """
    environ = os.environ if environ is None else environ
    return [shown for variables, shown in _SETTINGS.values() if _first(environ, variables)[1] is None]


def _first(environ: Mapping[str, str], variables: tuple[str, ...]) -> tuple[str | None, str | None]:
    """The first variable set to something other than blanks (an empty CI variable counts as unset)."""
    for variable in variables:
        value = (environ.get(variable) or "").strip()
        if value:
            return variable, value
    return None, None
