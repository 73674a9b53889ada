"""GitLab, for the CLI, CI jobs and Dagster sensors: settings from the environment, a client whose writes
survive retries, and the repository's read side. No Dagster imports here: a Dagster resource wraps it.
"""

from ds_pipelines.gitlab.client import MAX_RETRIES, TIMEOUT_S, GitLabClient
from ds_pipelines.gitlab.errors import (
    GitLabAuthError,
    GitLabConfigError,
    GitLabError,
    GitLabNotFoundError,
)
from ds_pipelines.gitlab.settings import GitLabSettings, missing_gitlab_variables

__all__ = [
    "MAX_RETRIES",
    "TIMEOUT_S",
    "GitLabAuthError",
    "GitLabClient",
    "GitLabConfigError",
    "GitLabError",
    "GitLabNotFoundError",
    "GitLabSettings",
    "missing_gitlab_variables",
]
