"""``ds-pipelines run``: materialize notebooks through Dagster, one after another."""

from __future__ import annotations

import gc
import json
import os
import signal
import sys
import warnings
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

import click

from ds_pipelines.cli.options import load_project, project_dir_option
from ds_pipelines.errors import (
    AssetNameCollisionError,
    DsPipelinesError,
    NotebookNotFoundError,
    ProjectProblemsError,
)
from ds_pipelines.project import NotebookSpec, Project

if TYPE_CHECKING:
    from ds_pipelines.results.origin import Provenance

NOTEBOOKS_JOB = ("ds_pipelines.defs.notebooks.definitions", "notebooks_job")
"""Where the job that runs the notebooks is defined (module, function): dagstermill's kernels rebuild it."""


def _config_overrides(values: tuple[str, ...]) -> dict[str, Path]:
    overrides = {}
    for value in values:
        notebook, sep, file = value.partition("=")
        if not sep or not notebook or not file:
            raise click.BadParameter(f"expected NOTEBOOK=FILE, got {value!r}", param_hint="--config")
        overrides[notebook] = Path(file)
    return overrides


@click.command()
@click.argument("notebooks", nargs=-1)
@click.option("--all", "run_all", is_flag=True, help="Run every notebook of the project.")
@click.option(
    "--output-dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Leave the executed notebooks, metrics, artifacts and results.json here (layout: ds_pipelines/results/folder.py).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON on stdout (progress stays on stderr).")
@click.option(
    "--config",
    "config_overrides",
    multiple=True,
    metavar="NOTEBOOK=FILE",
    help="Use FILE instead of the notebook's config from configs/notebooks.yaml. Repeatable.",
)
@project_dir_option
def run(notebooks, run_all, output_dir, as_json, config_overrides, project_dir) -> None:
    """Run NOTEBOOKS (paths or asset names) as Dagster assets, upstream ones first.

    The whole project is validated before anything runs, as by `ds-pipelines check` but the definitions
    load. Stops at the first failing notebook, keeps its executed notebook, and exits 1; exits 2 for bad
    input (unknown notebook, invalid config or configs/notebooks.yaml, broken notebook file), listing
    every problem.
    """
    from ds_pipelines.execution import kernels
    from ds_pipelines.execution.instance import local_defaults_env, use_local_defaults
    from ds_pipelines.project.notebook_file import kernel_for
    from ds_pipelines.results.origin import current

    project = load_project(project_dir)
    overrides = _config_overrides(config_overrides)
    if not notebooks and not run_all:
        raise click.UsageError("give at least one notebook, or --all")
    origin = current()
    # The first notebook's kernel starts up and loads Dagster while the project is checked and the run set up
    # (ds_pipelines.execution.kernels), in the environment this process takes on once the checks pass. Bad
    # input kills it at once: nothing ran in it.
    notebook_env = {**local_defaults_env(project), **_notebook_env(origin)}
    first = _first_notebook(project, notebooks, run_all)
    if first is not None:
        kernels.start_early(project.root / first.path, kernels.JobPointer(*NOTEBOOKS_JOB),
                            kernel_name=kernel_for(first), cwd=project.root, env={**os.environ, **notebook_env})
    try:
        specs, configs = _checked_inputs(project, notebooks, run_all, overrides)
        use_local_defaults(project)
        os.environ.update(notebook_env)
        _run_checked(project, specs, configs, origin=origin, output_dir=output_dir, as_json=as_json)
    finally:
        kernels.discard_waiting()


def _notebook_env(origin: Provenance) -> dict[str, str]:
    """What the notebooks' kernels get in their environment on top of this process's."""
    from ds_pipelines.tracking.baselines import mlflow_run_context_env, run_tags

    return {
        "TQDM_DISABLE": os.environ.get("TQDM_DISABLE", "1"),  # papermill's bar would garble the per-cell progress lines
        # The notebooks' MLflow runs get the same origin (mlflow.start_run reads MLFLOW_RUN_CONTEXT): the
        # merge-request comment finds its baseline by branch.
        **mlflow_run_context_env(
            run_tags(origin.commit, origin.branch, origin.merge_request, origin.pipeline_url, origin.job_url,
                     pipeline_source=origin.trigger, protected_ref=origin.protected, project_id=origin.project_id),
            os.environ,
        ),
    }


def _first_notebook(project: Project, notebooks: tuple[str, ...], run_all: bool) -> NotebookSpec | None:
    """The notebook that will run first, or None where the arguments or the registry have problems (the
    checks report them)."""
    try:
        specs = project.notebooks() if run_all else project.in_run_order([project.find(nb) for nb in notebooks])
    except DsPipelinesError:
        return None
    return specs[0] if specs else None


def _checked_inputs(
    project: Project, notebooks: tuple[str, ...], run_all: bool, overrides: dict[str, Path],
) -> tuple[list[NotebookSpec], dict[str, dict]]:
    """The notebooks to run, in order, and their validated configs; ProjectProblemsError listing every problem."""
    from ds_pipelines.project.check import project_problems
    from ds_pipelines.project.notebook_file import notebook_problem, parameter_problem

    # Every problem before anything starts, unknown notebooks included: one failed run says all that is wrong.
    problems: list[DsPipelinesError] = []
    targets = {}
    for notebook in dict.fromkeys((*notebooks, *overrides)):
        try:
            path = project.path_of(notebook)
        except AssetNameCollisionError:
            continue  # project_problems reports the collision, naming both files
        if path is None:
            problems.append(NotebookNotFoundError(notebook, project.notebook_paths()))
        elif notebook in overrides:
            targets[path] = overrides[notebook]
    problems += project_problems(project, overrides=targets)
    if problems:
        raise ProjectProblemsError(problems)
    specs = project.notebooks() if run_all else project.in_run_order([project.find(nb) for nb in notebooks])
    configs = {spec.path: project.config_for(spec, targets.get(spec.path)) for spec in specs}
    # What the notebooks' files say about running them (language, kernel, parameter names), every problem.
    problems = [
        DsPipelinesError(problem) for spec in specs
        if (problem := notebook_problem(project.root, spec) or parameter_problem(
            project.root, spec, configs[spec.path], display=str(targets.get(spec.path) or spec.config or "")))
    ]
    if problems:
        raise ProjectProblemsError(problems)
    return specs, configs


def _run_checked(project: Project, specs: list[NotebookSpec], configs: dict[str, dict], *, origin: Provenance,
                 output_dir: Path | None, as_json: bool) -> None:
    """Run the checked notebooks, write and print the results; exit 1 when one failed, 128+N on signal N."""
    from ds_pipelines.execution import interrupts
    from ds_pipelines.execution.kernels import JobPointer
    from ds_pipelines.execution.runner import run_notebooks
    from ds_pipelines.masking import LineMasker, Masker, mask_json
    from ds_pipelines.results.folder import RunResults, run_status, write_results
    from ds_pipelines.results.origin import run_commit

    warnings.filterwarnings("ignore", message=r".*is currently in beta")  # dagstermill's own API notices
    started_at = datetime.now(timezone.utc)
    commit_sha, branch = run_commit(project.root, origin) or (None, None)
    # Branch too: the notebooks' reproducibility records name it (``results.reproducibility``).
    tags = {key: value for key, value in (("ds-pipelines/commit", commit_sha), ("ds-pipelines/branch", branch)) if value}
    tags.update(origin.run_tags())
    # The console is a CI job's log, readable by the project's members: what the notebooks print, their cells'
    # first lines and their errors are masked like everything ds-pipelines stores.
    secrets = Masker.from_env().env_values
    console = LineMasker(secrets)
    notebooks = run_notebooks(project, specs, job=JobPointer(*NOTEBOOKS_JOB), configs=configs, tags=tags,
                              on_line=lambda line: click.echo(console(line), err=True),
                              executed_notebook_urls=_artifact_urls(specs, output_dir, origin.job_url))
    run = RunResults(
        status=run_status(notebooks), started_at=started_at.isoformat(timespec="seconds"),
        finished_at=datetime.now(timezone.utc).isoformat(timespec="seconds"), commit_sha=commit_sha, branch=branch,
        notebooks=notebooks,
    )
    summary = run.to_dict()
    if output_dir:
        written = write_results(output_dir, run)
        click.echo(f"results written to {written.directory / 'results.json'}", err=True)
    # The run ids, commit and hashes the run itself wrote are no secrets: the summary shows them.
    own_ids = run.own_identifiers()
    if as_json:
        click.echo(json.dumps(mask_json(summary, secrets, frozenset(own_ids))[0], indent=2))
    else:
        _print_summary(summary, project, LineMasker(secrets, known_safe=own_ids))
    # The process ends here, and Dagster leaves a large object graph: the garbage collector's pass over it
    # at interpreter exit took ~0.5-1 s and frees nothing (results are written and closed by now).
    gc.freeze()
    signum = interrupts.received()
    if signum is not None:
        click.echo(f"Interrupted ({signal.Signals(signum).name}): the running notebook was stopped and its Dagster run "
                   "failed; later notebooks were not started.", err=True)
        sys.exit(128 + signum)
    if summary["status"] != "success":
        sys.exit(1)


def _artifact_urls(specs: list, output_dir: Path | None, job_url: str | None) -> dict[str, str]:
    """Where each executed notebook will be in a CI job's artifacts (the job keeps ``--output-dir``): the
    runs' link from a shared Dagster instance, whose UI cannot read the job's disk."""
    from ds_pipelines.cli.publish import job_artifacts
    from ds_pipelines.results.folder import executed_notebook_file

    artifacts = job_artifacts(job_url)
    if artifacts is None or output_dir is None:
        return {}
    urls = {spec.path: artifacts.url(executed_notebook_file(output_dir, spec.name)) for spec in specs}
    return {path: url for path, url in urls.items() if url}


def _check_status(check: dict) -> str:
    return "passed" if check["passed"] else "FAILED (blocking)" if check["blocking"] else "warning (non-blocking)"


def _print_summary(summary: dict, project: Project, console: Callable[[str], str]) -> None:
    """The run, a notebook at a time; each line through ``console`` (the masking of the console's lines)."""
    lines = []
    for entry in summary["notebooks"]:
        lines.append(f"{entry['notebook']}: {entry['status']}" + (f" in {entry['duration_s']:.1f} s" if entry["duration_s"] else ""))
        lines += [f"    {name:<28} {value:.4g}" for name, value in entry["metrics"].items()]
        lines += [f"    {name + ':':<28} {path}" for name, path in entry["artifacts"].items()]
        if entry["executed_notebook"]:
            lines.append(f"    {'executed notebook:':<28} {entry['executed_notebook']}")
        if entry["mlflow_run_id"]:
            lines.append(f"    {'MLflow run:':<28} {entry['mlflow_run_id']}")
        if entry["error"]:
            lines.append(f"    {'error:':<28} {entry['error']}")
        lines += [f"    {'check ' + check['name'] + ':':<28} {_check_status(check)}: {check['message']}" for check in entry["checks"]]
    for line in lines:
        click.echo(console(line))
    click.echo("Open the UIs with `uv run ds-pipelines ui` (Dagster) and `uv run ds-pipelines mlflow-ui` (MLflow).")
