"""``ds-pipelines check``: validate the whole project, every problem at once, before anything runs."""

from __future__ import annotations

import os
import warnings

import click

from ds_pipelines.cli.options import load_project, project_dir_option
from ds_pipelines.errors import ConfigError, DsPipelinesError, ProjectProblemsError
from ds_pipelines.project import PROJECT_DIR_ENV, Project


@click.command()
@project_dir_option
def check(project_dir) -> None:
    """Validate the whole project and report every problem at once.

    Checks configs/notebooks.yaml (notebook settings and triggers: cron, time zone, tag patterns, GPU limit,
    orchestrator, unknown keys), every notebook's config against its schema, that every notebook file is a
    valid notebook, that no two notebooks share an asset name, and that the Dagster definitions load. Exits 2
    listing each problem with its file, key and value; exits 0 with a summary when all is well. Made for a
    pre-commit hook or a pipeline's first job; `ds-pipelines run` makes the same checks but the last.
    """
    from ds_pipelines.project.check import project_problems

    project = load_project(project_dir)
    problems = project_problems(project)
    loading = definitions_problem(project, problems)
    if loading is not None:
        problems.append(loading)
    if problems:
        click.echo(f"{len(problems)} problem{'s' if len(problems) > 1 else ''} in the project {project.root}:", err=True)
        raise ProjectProblemsError(problems)
    names = [spec.name for spec in project.notebooks()]
    click.echo(f"{project.root}: {len(names)} notebook{'s' if len(names) != 1 else ''} ({', '.join(names) or 'none'}), "
               "their configs, configs/notebooks.yaml and the Dagster definitions are valid")


def definitions_problem(project: Project, reported: list[DsPipelinesError]) -> DsPipelinesError | None:
    """Why the code location (``ds_pipelines/definitions.py``, what ``dg dev`` loads) does not load for
    ``project``; None when it does, or when what stops it is a problem of a file ``reported`` already names."""
    import dagster as dg

    from ds_pipelines.definitions import defs

    # The code location finds its project as a deployment's does, from the environment: point it at this one.
    previous = os.environ.get(PROJECT_DIR_ENV)
    os.environ[PROJECT_DIR_ENV] = str(project.root)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # Dagster's beta and deprecation notices are not the project's problems
            dg.Definitions.validate_loadable(defs())
    except Exception as exc:  # noqa: BLE001 - any definition may raise anything: report it, not a traceback
        chain = _causes(exc)
        ours = next((error for error in chain if isinstance(error, DsPipelinesError)), None)
        if ours is None:
            # dg.load_defs says which domain failed (its first line), the innermost error why.
            where = f"{str(exc).splitlines()[0].rstrip(':')}: " if len(chain) > 1 and str(exc) else ""
            return DsPipelinesError(f"the Dagster definitions (ds_pipelines/definitions.py) do not load: {where}"
                                    f"{type(chain[-1]).__name__}: {chain[-1]}")
        # The definitions read the project's files as the checks above do, but stop at the first problem.
        if isinstance(ours, ConfigError) and any(isinstance(p, ConfigError) and p.file == ours.file for p in reported):
            return None
        return ours
    finally:
        if previous is None:
            os.environ.pop(PROJECT_DIR_ENV, None)
        else:
            os.environ[PROJECT_DIR_ENV] = previous
    return None



def _causes(exc: BaseException) -> list[BaseException]:
    """``exc`` and the errors behind it, outermost first: ``dg.load_defs`` wraps what a domain's definitions raised."""
    chain: list[BaseException] = []
    current: BaseException | None = exc
    while current is not None and all(current is not seen for seen in chain):
        chain.append(current)
        current = current.__cause__ or current.__context__
    return chain
