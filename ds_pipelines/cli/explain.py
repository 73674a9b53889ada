"""A plan explained for people, shared by ``detect --explain`` and ``publish plan``: the durations of earlier
runs read from GitLab when it is configured and python-gitlab is installed (detect's light image has
neither), else a note saying what is missing."""

from __future__ import annotations

from collections.abc import Mapping

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.project import Project
from ds_pipelines.triggers.child_pipeline import Runners, job_name
from ds_pipelines.triggers.explain import DURATIONS_SOURCE, Explanation, explain
from ds_pipelines.triggers.rules import Plan


def explained(plan: Plan, project: Project, environ: Mapping[str, str], runners: Runners) -> Explanation:
    """``plan`` over every notebook of ``project``; GitLab's settings from ``environ``."""
    specs = project.notebooks()
    planned = {n.path for n in (plan.would_run if plan.dry_run else plan.notebooks)}
    durations, note = durations_of([job_name(spec) for spec in specs if spec.path in planned], environ)
    return explain(plan, specs, runners, durations, note)


def durations_of(job_names: list[str], environ: Mapping[str, str]) -> tuple[dict[str, list[float]] | None, str]:
    """The latest successful durations of each job, and where they come from; None and why when unread."""
    if not job_names:
        return {}, DURATIONS_SOURCE
    try:
        from ds_pipelines.gitlab import (
            GitLabClient,
            GitLabSettings,
            missing_gitlab_variables,
        )
        from ds_pipelines.gitlab.jobs import successful_job_durations
    except ImportError as exc:  # the light image of detect-notebooks: click, pydantic, pyyaml, nbformat only
        return None, f"not read, python-gitlab is not installed here ({exc}); they would be {DURATIONS_SOURCE}"
    missing = missing_gitlab_variables(environ)
    if missing:
        return None, f"not read, GitLab is not configured (set {', '.join(missing)}); they would be {DURATIONS_SOURCE}"
    try:
        client = GitLabClient(GitLabSettings.from_env(environ))
        return successful_job_durations(client, job_names), DURATIONS_SOURCE
    except DsPipelinesError as exc:  # GitLab refusing or down: the plan still stands, without durations
        return None, f"not read: {exc}"
