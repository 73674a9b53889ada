"""How long the project's CI jobs took: the durations of its latest successful jobs of given names.

A dry run (``[plan]``) and ``ds-pipelines detect --explain`` expect a notebook to take about as long as its
child-pipeline job ``run-<name>`` took the last few times it succeeded.
"""

from __future__ import annotations

from collections.abc import Iterable

from ds_pipelines.gitlab.client import GitLabClient

_MAX_PER_PAGE = 100  # GitLab's limit
RUNS_PER_JOB = 5
"""Durations kept per job name: the latest few, so an old slow run soon stops counting."""
SCAN_LIMIT = 500
"""Successful jobs read at most (five pages), newest first: a job not among them counts as never run."""


def successful_job_durations(client: GitLabClient, names: Iterable[str], *, runs_per_job: int = RUNS_PER_JOB,
                             scan_limit: int = SCAN_LIMIT) -> dict[str, list[float]]:
    """Each name's durations in seconds, newest first, from the project's successful jobs of that name
    (at most ``runs_per_job`` each); a name with none maps to ``[]``. Reading stops once every name has
    ``runs_per_job`` durations or ``scan_limit`` jobs were read.
    API: https://docs.gitlab.com/api/jobs/#list-project-jobs
    """
    found: dict[str, list[float]] = {name: [] for name in names}
    if not found:
        return found
    with client.handling_errors("listing the project's successful CI jobs"):
        listed = client.project.jobs.list(scope="success", iterator=True, per_page=_MAX_PER_PAGE, **client.request_options)
        for count, job in enumerate(listed, start=1):
            durations = found.get(job.attributes.get("name"))
            duration = job.attributes.get("duration")
            if durations is not None and len(durations) < runs_per_job and isinstance(duration, (int, float)):
                durations.append(float(duration))
            if count >= scan_limit or all(len(d) >= runs_per_job for d in found.values()):
                break
    return found
