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
    # Two notebooks with one asset name would be a duplicate asset key, and Dagster would refuse the whole code
    # location: every other asset, sensor and schedule gone from the UI. Both are left out instead, and the
    # reason is logged at load and shown on the notebooks job's page (its description and metadata) in the UI;
    # `ds-pipelines check` and `ds-pipelines run` report it as an error.
    collisions = project.name_collisions()
    left_out = {path for collision in collisions for path in collision.paths}
    for collision in collisions:
        dg.get_dagster_logger().warning(f"notebooks left out of the code location: {collision}")
    reasons = "; ".join(str(collision) for collision in collisions)
    job = dg.define_asset_job(
        NOTEBOOKS_JOB, selection=dg.AssetSelection.groups(GROUP),
        description=f"The project's notebooks. Left out, as their asset names collide: {reasons}" if reasons else None,
        metadata={"left_out_notebooks": dg.MetadataValue.md("\n".join(f"- {c}" for c in collisions))} if reasons else None,
    )
    return dg.Definitions(
        assets=notebook_assets(project, leave_out=left_out),
        jobs=[job],
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
