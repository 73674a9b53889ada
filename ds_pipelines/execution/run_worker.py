"""Executing a run that the deployment created and launched elsewhere: the GitLab job's half of ``gitlab_runs``.

``ds-pipelines execute-run RUN_ID`` (templates/notebooks.yml's ``dagster-run`` job) finds the run in the shared
instance, loads the job from this checkout's code location (its ``ds_pipelines`` and notebooks, not the
deployment's copies) and executes the stored run in this process, as Dagster's own run worker (``dagster api
execute_run``) does, but without its re-loading of the deployment's code pointer, which names the
deployment's folder. A run that is not waiting to start (already executed, canceled, or a GitLab job retried
after its run ended) is never executed again.

The one module that imports Dagster's internals for this: executing an existing run has no public API.
``tests/test_run_worker.py`` fails loudly when a Dagster upgrade moves them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import dagster as dg
from dagster._core.definitions.reconstruct import ReconstructableRepository
from dagster._core.execution.api import execute_run

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.execution.gitlab_runs import JOB_URL_TAG, run_notebooks
from ds_pipelines.execution.instance import executed_notebook_path, open_instance
from ds_pipelines.masking import Masker, mask_notebook_file
from ds_pipelines.project import Project
from ds_pipelines.results.folder import executed_notebook_url_tag

CODE_LOCATION = ("ds_pipelines.definitions", "defs")
"""The module and attribute of the code location (workspace.yaml's)."""


class RunNotExecutableError(DsPipelinesError):
    """The run does not exist in this instance, or is not waiting to start."""


def execute_stored_run(project: Project, run_id: str, *, output_dir: Path, job_url: str | None,
                       artifact_url: Callable[[str], str | None] | None, on_line: Callable[[str], None]) -> bool:
    """Execute run ``run_id``; True when it succeeded. Each notebook's executed copy, masked, is written to
    ``output_dir/<name>.ipynb``; ``artifact_url`` of that path is recorded on the run before it starts."""
    instance = open_instance(project)
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise RunNotExecutableError(
            f"run {run_id} is not in the Dagster instance this job opened: DAGSTER_POSTGRES_URL must name the "
            "deployment's database (a masked, protected CI/CD variable: it is only set on protected refs)")
    if run.status != dg.DagsterRunStatus.STARTING:
        raise RunNotExecutableError(
            f"run {run_id} is {run.status.value}, not waiting to start: it is not executed again (a GitLab job "
            "retried after its run ended, or a run already canceled)")
    # The steps that are notebook assets: a commit sensor's or the schedule's run has one op, which keeps the
    # results folder of its inner run itself (defs/triggers/notebook_runs).
    steps = run_notebooks(instance, run)
    names = steps & {spec.name for spec in project.notebooks()}
    tags = {JOB_URL_TAG: job_url} if job_url else {}
    if artifact_url:
        tags |= {executed_notebook_url_tag(name): url for name in names if (url := artifact_url(f"{name}.ipynb"))}
    if tags:
        instance.add_run_tags(run_id, tags)
    run = instance.get_run_by_id(run_id)
    on_line(f"▶ run {run_id} of {run.job_name}: {', '.join(sorted(steps)) or '(no steps)'}")
    job = ReconstructableRepository.for_module(*CODE_LOCATION, working_directory=str(project.root)) \
        .get_reconstructable_job(run.job_name)
    result = execute_run(job, run, instance)
    _keep_executed_notebooks(instance, run_id, names, output_dir)
    on_line(f"{'✔' if result.success else '✘'} run {run_id} {'succeeded' if result.success else 'failed'}")
    return result.success


def _keep_executed_notebooks(instance: dg.DagsterInstance, run_id: str, names: set[str], output_dir: Path) -> None:
    """The executed notebooks the assets kept with the instance, masked, for the job's artifacts."""
    output_dir.mkdir(parents=True, exist_ok=True)
    masker = Masker.from_env().trusting([run_id])
    for name in sorted(names):
        executed = executed_notebook_path(instance, name, run_id)
        if executed.is_file():
            mask_notebook_file(executed, output_dir / f"{name}.ipynb", masker.env_values, masker.known_safe)
