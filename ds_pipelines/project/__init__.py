"""The project: its folder, notebooks, configs and their schemas, and the ``triggers:`` settings.

The bottom layer of ds-pipelines (only ``errors`` and ``files`` are below it): no Dagster, MLflow or GitLab
imports, so the CLI, the notebooks and the Dagster definitions all read a project the same way.
"""

from ds_pipelines.project.folder import (
    CHECKPOINTS_DIR,
    NOTEBOOKS_DIR,
    PROJECT_DIR_ENV,
    REGISTRY_FILE,
    STATE_DIR,
    NotebookSpec,
    Project,
    ProjectNotFoundError,
    asset_name,
    find_project_root,
)

__all__ = [
    "CHECKPOINTS_DIR", "NOTEBOOKS_DIR", "PROJECT_DIR_ENV", "REGISTRY_FILE", "STATE_DIR", "NotebookSpec", "Project",
    "ProjectNotFoundError", "asset_name", "find_project_root",
]
