"""Errors of the GitLab layer: messages built here, never copied from python-gitlab, so no token leaks."""

from __future__ import annotations

from ds_pipelines.errors import DsPipelinesError

TOKEN_VARIABLES = "GITLAB_TOKEN (or REPO_TOKEN)"
"""How messages name the variables that hold the token."""


class GitLabError(DsPipelinesError):
    """A GitLab request that failed: names the operation and the HTTP status or the connection problem."""

    def __init__(self, message: str, *, status: int | None = None):
        super().__init__(message)
        self.status = status
        """The HTTP status GitLab answered with; None for connection problems and bad settings."""


class GitLabConfigError(GitLabError):
    """GitLab settings missing or malformed: names the environment variables to set."""


class GitLabAuthError(GitLabError):
    """GitLab refused the token (401) or the token may not do this (403)."""


class GitLabNotFoundError(GitLabError):
    """The project, page, commit or ref does not exist (404), or the token may not see it."""
