"""The notebooks as Dagster assets, and the job ``ds-pipelines run`` executes them with.

``notebooks_job`` builds only the notebooks: dagstermill's kernel reconstructs it for every notebook run.
"""

from __future__ import annotations

import dagster as dg

from ds_pipelines.defs.notebooks.assets import GROUP, notebook_assets
from ds_pipelines.defs.notebooks.resources import MLflowResource
from ds_pipelines.project import Project

NOTEBOOKS_JOB = "notebooks"


def build_definitions(project: Project) -> dg.Definitions:
    return dg.Definitions(
        assets=notebook_assets(project),
        jobs=[dg.define_asset_job(NOTEBOOKS_JOB, selection=dg.AssetSelection.groups(GROUP))],
        resources={"mlflow": MLflowResource()},
        # Notebooks run one after another anyway; in-process saves a worker process start per step.
        executor=dg.in_process_executor,
    )


def notebooks_job() -> dg.JobDefinition:
    """The job ``ds-pipelines run`` executes; module-level so dagstermill's kernel can reconstruct it."""
    return build_definitions(Project()).resolve_job_def(NOTEBOOKS_JOB)


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Project())
