"""Options several commands share, and how they become the library's inputs."""

from __future__ import annotations

from pathlib import Path

import click

from ds_pipelines.project import PROJECT_DIR_ENV, Project, find_project_root

project_dir_option = click.option(
    "--project-dir", type=click.Path(file_okay=False, path_type=Path), metavar="DIR",
    help=f"Project folder holding notebooks/ and configs/. Default: ${PROJECT_DIR_ENV}, else the nearest folder "
    "at or above the current one that holds configs/notebooks.yaml.",
)


def load_project(project_dir: Path | None) -> Project:
    """The project of ``--project-dir``, else found from where the command runs (ProjectNotFoundError)."""
    return Project(find_project_root(project_dir))
