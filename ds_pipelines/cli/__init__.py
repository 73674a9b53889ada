"""The ``ds-pipelines`` command: a thin click layer over the library.

Command modules import heavy libraries (Dagster, MLflow) inside the command functions, so ``--help``
and quick commands start fast.
"""

from __future__ import annotations

import sys

import click

from ds_pipelines.cli.check import check
from ds_pipelines.cli.detect import detect
from ds_pipelines.cli.execute_run import execute_run
from ds_pipelines.cli.image_tag import image_tag
from ds_pipelines.cli.init import init
from ds_pipelines.cli.mask import mask_secrets
from ds_pipelines.cli.notify import notify
from ds_pipelines.cli.publish import publish
from ds_pipelines.cli.release import release
from ds_pipelines.cli.reproduce import reproduce
from ds_pipelines.cli.run import run
from ds_pipelines.cli.ui import mlflow_ui, ui
from ds_pipelines.errors import DsPipelinesError


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="ds-pipelines")
def cli() -> None:
    """Run Jupyter notebooks, unchanged, as Dagster pipelines tracked in MLflow.

    Start with `ds-pipelines check`: it validates the whole project (configs, configs/notebooks.yaml, notebook
    files, asset names, the Dagster definitions) and lists every problem at once.
    """


cli.add_command(check)
cli.add_command(run)
cli.add_command(detect)
cli.add_command(ui)
cli.add_command(mlflow_ui)
cli.add_command(image_tag)
cli.add_command(notify)
cli.add_command(publish)
cli.add_command(release)
cli.add_command(reproduce)
cli.add_command(mask_secrets)
cli.add_command(execute_run)
cli.add_command(init)


def main() -> None:
    """Entry point: errors meant for people are printed without a traceback."""
    try:
        cli.main(standalone_mode=False)
    except click.exceptions.Abort:
        click.echo("Aborted.", err=True)
        sys.exit(130)
    except click.ClickException as exc:
        exc.show()
        sys.exit(exc.exit_code)
    except DsPipelinesError as exc:
        # Bad input (unknown notebook, invalid config): nothing ran.
        click.echo(f"error: {exc}", err=True)
        sys.exit(2)
