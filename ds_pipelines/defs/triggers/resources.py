"""GitLab as a Dagster resource: the sensors' view of the repository, and the place its token lives."""

from __future__ import annotations

import os
from collections.abc import Mapping

import dagster as dg

from ds_pipelines.gitlab.client import GitLabClient
from ds_pipelines.gitlab.settings import (
    PROJECT_VARIABLES,
    TOKEN_VARIABLE_NAMES,
    URL_VARIABLES,
    GitLabSettings,
    missing_gitlab_variables,
)
from ds_pipelines.masking import Masker
from ds_pipelines.project import Project
from ds_pipelines.project.settings import DAGSTER


class GitLabResource(dg.ConfigurableResource):
    """The GitLab project the sensors watch. Fields left empty mean GitLab is not configured here."""

    url: str | None = None
    project_id: str | None = None
    token: str | None = None

    def missing(self) -> list[str]:
        """The variables to set, phrased for a person; empty when GitLab is configured."""
        known = {URL_VARIABLES[0]: self.url, PROJECT_VARIABLES[0]: self.project_id, TOKEN_VARIABLE_NAMES[0]: self.token}
        return missing_gitlab_variables({name: value for name, value in known.items() if value})

    def client(self) -> GitLabClient:
        return GitLabClient(GitLabSettings(url=self.url, project_id=self.project_id, token=self.token))

    def masker(self) -> Masker:
        """The masker of this process's secrets, the token included under the name GitLab CI gives it."""
        return Masker.from_env({**os.environ, TOKEN_VARIABLE_NAMES[0]: self.token or ""})


def left_to_gitlab_ci(project: Project) -> dg.SkipReason | None:
    """What a commit or tag sensor returns when the project leaves commits and tags to GitLab CI
    (``triggers.orchestrator``): checked before GitLab's settings, which such a deployment need not have."""
    reason = project.triggers.deferred(DAGSTER)
    return dg.SkipReason(reason) if reason else None


def not_configured(gitlab: GitLabResource) -> dg.SkipReason | None:
    """What a sensor returns when GitLab is not configured: the variables to set."""
    missing = gitlab.missing()
    return dg.SkipReason(f"GitLab is not configured: set {', '.join(missing)}") if missing else None


def gitlab_resource(environ: Mapping[str, str] | None = None) -> GitLabResource:
    """The resource for this deployment: each setting through ``dg.EnvVar`` of the first variable that is
    set, so the token is read at run time and never stored in Dagster's config or run records."""
    env = os.environ if environ is None else environ

    def first_set(names: tuple[str, ...]) -> dg.EnvVar | None:
        return next((dg.EnvVar(name) for name in names if env.get(name)), None)

    return GitLabResource(url=first_set(URL_VARIABLES), project_id=first_set(PROJECT_VARIABLES), token=first_set(TOKEN_VARIABLE_NAMES))
