"""``ds-pipelines reproduce``: run a recorded result again at its commit, with its config and data."""

from __future__ import annotations

import json
import sys
import tempfile
from pathlib import Path

import click

from ds_pipelines.cli.options import load_project, project_dir_option


@click.command()
@click.argument("results_dir", required=False, type=click.Path(file_okay=False, path_type=Path))
@click.option("--mlflow-run", "mlflow_run", metavar="ID",
              help="Reproduce the notebook run recorded on this MLflow run (at MLFLOW_TRACKING_URI) instead of a results folder.")
@click.option("--notebook", "notebooks", multiple=True, metavar="NAME",
              help="Only this notebook of RESULTS_DIR (asset name or path). Repeatable. Default: every successful one.")
@click.option("--output-dir", type=click.Path(file_okay=False, path_type=Path),
              help="Keep the rerun's results folder here (default: a temporary folder, removed).")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON on stdout (progress stays on stderr).")
@project_dir_option
def reproduce(results_dir, mlflow_run, notebooks, output_dir, as_json, project_dir) -> None:
    """Run the notebooks of RESULTS_DIR (or of --mlflow-run ID) again and compare their metrics.

    Checks out the recorded commit from the project's git repository, verifies the notebook and every
    recorded input file against its sha256, reruns with the recorded config, and prints the metrics side by
    side. Exits 0 when every metric matches (exactly on CPU; within a relative 1e-4 on a GPU; timing metrics
    are not compared), 1 when a metric differs, an input changed or the rerun failed, 2 for bad input (no
    such folder or MLflow run, no reproducibility record, a commit the repository does not have).
    """
    from ds_pipelines.triggers import reproduce as library

    if (results_dir is None) == (mlflow_run is None):
        raise click.UsageError("give either RESULTS_DIR or --mlflow-run ID")
    if mlflow_run and notebooks:
        raise click.UsageError("--notebook applies to RESULTS_DIR only (an MLflow run holds one notebook)")
    project = load_project(project_dir)
    if mlflow_run:
        from ds_pipelines.tracking import tracking_uri

        recorded = library.from_mlflow_run(mlflow_run, tracking_uri=tracking_uri(project))
    else:
        recorded = library.from_results_folder(results_dir, tuple(notebooks))
    with tempfile.TemporaryDirectory(prefix="ds-pipelines-reproduce-") as workdir:
        outcome = library.reproduce(recorded, project_root=project.root, workdir=Path(workdir), output_dir=output_dir,
                                    on_line=lambda line: click.echo(line, err=True))
    if as_json:
        click.echo(json.dumps(outcome.to_dict(), indent=2))
    else:
        click.echo(library.render_table(outcome))
    sys.exit(0 if outcome.ok else 1)
