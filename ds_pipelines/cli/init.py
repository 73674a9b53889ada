"""``ds-pipelines init``: make an existing git repository with notebooks a ds-pipelines project."""

from __future__ import annotations

from pathlib import Path

import click


@click.command()
@click.argument("directory", metavar="[DIR]", required=False, default=".",
                type=click.Path(file_okay=False, path_type=Path))
@click.option("--dry-run", is_flag=True, help="Print each file and what would be written; write nothing.")
def init(directory: Path, dry_run: bool) -> None:
    """Set up an existing git repository with notebooks as a ds-pipelines project.

    Writes configs/notebooks.yaml listing every notebook under notebooks/ (device: cpu; config: the YAML file
    a notebook's code names, or configs/<name>.yaml with the defaults of its cell tagged 'parameters'), a
    .gitlab-ci.yml including the CI/CD component at this version with every job in the ds-pipelines image of
    that version, and appends .ds-pipelines/, results/ and the folders the configs write to to .gitignore
    (the one file it appends to). It never overwrites a file: one that exists is left alone and
    reported. Bad input (no git work tree, no notebooks, a broken notebook, a config that is no YAML mapping)
    exits 2 with nothing written. DIR defaults to the current folder.
    """
    from ds_pipelines.project.init import apply_init, plan_init

    plan = plan_init(directory)
    if not dry_run:
        apply_init(plan)
    for line in plan.describe(dry_run=dry_run):
        click.echo(line)
