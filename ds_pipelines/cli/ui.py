"""``ds-pipelines ui`` and ``ds-pipelines mlflow-ui``: the Dagster and MLflow UIs on the embedded defaults."""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

import click

from ds_pipelines.cli.options import load_project, project_dir_option


def _exec(program: str, *args: str) -> None:
    """Replace this process with ``program`` from the same environment as ds-pipelines."""
    executable = shutil.which(program, path=os.path.dirname(sys.executable)) or shutil.which(program)
    if executable is None:
        raise click.ClickException(f"{program!r} is not installed in this environment")
    click.echo(f"$ {program} {' '.join(args)}", err=True)
    os.execv(executable, [executable, *args])


@click.command()
@click.option("--port", default=3000, show_default=True, help="Port of the Dagster UI.")
@project_dir_option
def ui(port: int, project_dir: Path | None) -> None:
    """Open the Dagster UI (``dagster dev``) on the project's local instance at http://127.0.0.1:PORT."""
    from ds_pipelines.execution.instance import open_instance, use_local_defaults

    project = load_project(project_dir)
    use_local_defaults(project)
    open_instance(project).dispose()  # sets the pool limits that the sensors' and schedule's runs share
    os.chdir(project.root)
    # This repository's workspace.yaml names the code location; another project loads the installed one.
    location = ["-w", "workspace.yaml"] if (project.root / "workspace.yaml").is_file() else ["-m", "ds_pipelines.definitions"]
    _exec("dagster", "dev", *location, "--host", "127.0.0.1", "--port", str(port))


@click.command("mlflow-ui")
@click.option("--port", default=5000, show_default=True, help="Port of the MLflow UI.")
@project_dir_option
def mlflow_ui(port: int, project_dir: Path | None) -> None:
    """Open the MLflow UI on the tracking store runs go to (``MLFLOW_TRACKING_URI``, default the local one)."""
    from ds_pipelines.tracking import tracking_uri

    _exec("mlflow", "ui", "--backend-store-uri", tracking_uri(load_project(project_dir)), "--host", "127.0.0.1", "--port", str(port))
