"""``ds-pipelines execute-run RUN_ID``: execute a run the Dagster deployment launched on GitLab (its CI job)."""

from __future__ import annotations

import os
import warnings
from collections.abc import Mapping
from pathlib import Path

import click

from ds_pipelines.cli.options import load_project, project_dir_option
from ds_pipelines.errors import DsPipelinesError

DEFAULT_OUTPUT_DIR = Path("results", "dagster-run")


@click.command("execute-run")
@click.argument("run_id")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_OUTPUT_DIR,
              show_default=True, help="Where the executed notebooks go, masked, one per notebook (NAME.ipynb), and the "
              "results folder of a commit sensor's or the schedule's run (NAME/): the job keeps this folder as "
              "its artifacts, and the run's materializations link the copies there.")
@click.option("--notebooks", "notebook_names", metavar="NAMES", default="",
              help="The run's notebooks as asset names, comma-separated ($DSP_DAGSTER_NOTEBOOKS): the first one's "
              "kernel starts while Dagster loads. What runs is the run's own selection.")
@project_dir_option
def execute_run(run_id: str, output_dir: Path, notebook_names: str, project_dir: Path | None) -> None:
    """Execute Dagster run RUN_ID, which the deployment created and launched on GitLab
    (deploy/dagster.yaml, run_launcher execute_on: gitlab), with this checkout's
    code location, against the deployment's instance (DAGSTER_POSTGRES_URL).

    templates/notebooks.yml's dagster-run job calls it with $DSP_DAGSTER_RUN_ID.
    The run's events, materializations and checks reach the Dagster UI as they
    happen. The notebooks' kernels get an allow-listed environment: no GitLab
    or Slack token and no CI variable of the job. A run that is not waiting to start (already executed or canceled) is
    not executed again: exit 2. Exit 1 when the run fails.
    """
    from ds_pipelines.cli.publish import job_artifacts
    from ds_pipelines.cli.run import NOTEBOOKS_JOB
    from ds_pipelines.execution import kernels
    from ds_pipelines.execution.instance import use_local_defaults
    from ds_pipelines.execution.lean_imports import import_papermill, long_lived_objects
    from ds_pipelines.project.notebook_file import kernel_for
    from ds_pipelines.project.run_environment import hide_environment

    warnings.filterwarnings("ignore", message=r".*is currently in beta")  # dagstermill's own API notices
    project = load_project(project_dir)
    use_local_defaults(project)
    os.environ.setdefault("TQDM_DISABLE", "1")  # papermill's bar would garble the job log
    # The kernels get the allow-list, and cannot read this process's whole environment through /proc either.
    hide_environment()
    kernels.restrict_kernel_environment(kernel_environment(os.environ))
    job = kernels.JobPointer(*NOTEBOOKS_JOB)
    first = _first_notebook(project, notebook_names)
    if first is not None:
        # As `ds-pipelines run` does: the kernel starts up while this process imports Dagster and opens the run.
        kernels.start_early(project.root / first.path, job, kernel_name=kernel_for(first), cwd=project.root)
    try:
        with long_lived_objects():
            import_papermill()  # before the job's definitions import dagstermill, which imports it
            from ds_pipelines.execution.gitlab_runs import JOB_RESULTS_DIR_ENV
            from ds_pipelines.execution.run_worker import execute_stored_run
        job_url = os.environ.get("CI_JOB_URL") or None
        folder = output_dir.resolve()
        # A commit sensor's or the schedule's run keeps its results folder there too (defs/triggers/notebook_runs).
        os.environ[JOB_RESULTS_DIR_ENV] = str(folder)
        artifacts = job_artifacts(job_url)
        artifact_url = (lambda name: artifacts.url(folder / name)) if artifacts else None
        succeeded = execute_stored_run(project, run_id, output_dir=folder, job_url=job_url, artifact_url=artifact_url,
                                       on_line=lambda line: click.echo(line, err=True))
    finally:
        kernels.shutdown_all()
    raise SystemExit(0 if succeeded else 1)


def kernel_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """What the notebooks' kernels get of this job's environment: the allow-list of a commit's run
    (``project.run_environment``: no GitLab or Slack token, no CI variable), the Postgres URL of the instance the
    run is recorded in, and the checkout's ``PYTHONPATH`` and ds-pipelines settings. The job's other variables
    (a protected ref's GITLAB_TOKEN) stay with this process, whose masker still knows them."""
    from ds_pipelines.project.run_environment import notebook_run_environment

    return {**notebook_run_environment(environ, postgres=True),
            **{name: value for name, value in environ.items() if name == "PYTHONPATH" or name.startswith("DS_PIPELINES_")}}


def _first_notebook(project, names: str):
    """The spec of the first of ``names`` in run order, or None (a name the project lacks is the run's problem)."""
    try:
        specs = project.in_run_order([project.find(name) for name in names.split(",") if name.strip()])
    except DsPipelinesError:
        return None
    return specs[0] if specs else None
