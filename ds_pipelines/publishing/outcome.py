"""Which publishing errors are best effort, and the exit codes the commands share.

Publishing is a side channel of a pipeline: by default a comment, wiki page or release that cannot be
written is a warning, never a failed job. ``--strict`` turns those into exit codes: 2 when there is
nothing to publish to (GitLab not configured, no merge request), 1 when GitLab or the wiki refused.
Anything else is not best effort (``error_exit_code``): a missing or invalid results folder, an unknown
tag or model is bad input (2); a model the MLflow registry could not promote is a failure (1).
"""

from __future__ import annotations

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.gitlab import GitLabConfigError, GitLabError
from ds_pipelines.publishing.render.wiki import WikiError
from ds_pipelines.tracking.registry import RegistryError

FAILED_EXIT = 1
BAD_INPUT_EXIT = 2


class NotConfiguredError(DsPipelinesError):
    """There is nowhere to publish to: no merge request, or GitLab's settings are missing."""


def strict_exit_code(exc: BaseException) -> int | None:
    """The exit code ``exc`` gets under ``--strict`` when it is a best-effort failure; None when it is not
    best effort (see ``error_exit_code``)."""
    if isinstance(exc, (NotConfiguredError, GitLabConfigError)):
        return BAD_INPUT_EXIT
    if isinstance(exc, (GitLabError, WikiError)):
        return FAILED_EXIT
    return None


def error_exit_code(exc: BaseException) -> int:
    """The exit code of an error that is not best effort, strict or not."""
    return FAILED_EXIT if isinstance(exc, RegistryError) else BAD_INPUT_EXIT
