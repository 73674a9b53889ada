"""The notebooks as Dagster assets, and the job ``ds-pipelines run`` executes them with.

``notebooks_job`` builds only the notebooks: dagstermill's kernel reconstructs it for every notebook run.
"""

from __future__ import annotations

import functools
from pathlib import Path

import dagster as dg

from ds_pipelines.defs.notebooks.assets import GROUP, notebook_assets
from ds_pipelines.defs.notebooks.resources import MLflowResource
from ds_pipelines.project import NOTEBOOKS_DIR, REGISTRY_FILE, Project

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
    """The job ``ds-pipelines run`` executes; module-level so dagstermill's kernel can reconstruct it.

    Dagster asks for it several times per run (``ds-pipelines run`` five times for one notebook), and building
    it reads and validates every notebook and config: it is built again only when a file it is built from
    changed, or for another project.
    """
    project = Project()
    return _notebooks_job(project.root, _source_files(project.root))


@functools.lru_cache(maxsize=8)
def _notebooks_job(root: Path, source_files: tuple[tuple[str, int, int], ...]) -> dg.JobDefinition:
    return build_definitions(Project(root)).resolve_job_def(NOTEBOOKS_JOB)


def _source_files(root: Path) -> tuple[tuple[str, int, int], ...]:
    """Path, modification time and size of the files the job is built from: the notebooks, the registry, and
    each notebook's config and schema file."""
    paths = {root / REGISTRY_FILE, *(root / NOTEBOOKS_DIR).rglob("*")}
    for spec in Project(root).notebooks():
        if spec.config:
            paths.add(root / spec.config)
        if spec.schema and ".py:" in spec.schema:  # FILE.py:Class, a file of the project
            paths.add(root / spec.schema.partition(":")[0])
    files = []
    for path in sorted(paths):
        if path.is_file():
            stat = path.stat()
            files.append((str(path), stat.st_mtime_ns, stat.st_size))
    return tuple(files)


@dg.definitions
def defs() -> dg.Definitions:
    return build_definitions(Project())
