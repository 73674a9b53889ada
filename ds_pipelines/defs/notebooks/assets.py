"""Every notebook of the project as a dagstermill asset, with no Python written per notebook."""

import os
import time

import dagster as dg
from papermill.exceptions import PapermillExecutionError

from ds_pipelines.defs.notebooks.config_schema import config_schema
from ds_pipelines.defs.notebooks.resources import MLflowResource
from ds_pipelines.execution.dagstermill_bridge import (
    KernelDiedError,
    cell_failure,
    execute_notebook_step,
)
from ds_pipelines.execution.instance import DEVICE_TAG, GPU_POOL, executed_notebook_path
from ds_pipelines.project import NotebookSpec, Project, asset_name
from ds_pipelines.project.notebook_file import (
    kernel_for,
    notebook_problem,
    read_notebook,
)
from ds_pipelines.project.quality_checks import QualityCheck
from ds_pipelines.results.checks import (
    CHECKS_METADATA_KEY,
    CheckOutcome,
    blocking_failures,
    evaluate,
)
from ds_pipelines.results.folder import EXECUTED_NOTEBOOK_URL_TAG, executed_notebook_url_tag
from ds_pipelines.results.handover import read_report
from ds_pipelines.results.origin import Provenance, run_commit
from ds_pipelines.results.reproducibility import (
    CONFIG_METADATA_KEY,
    METADATA_KEY,
    commit_state,
    gather,
)
from ds_pipelines.results.uncertainty import checked

GROUP = "notebooks"
UNCERTAINTY_METADATA_KEY = "uncertainty"
"""Materialization metadata: metric name to ``{low, high, kind}`` (``results.uncertainty``)."""
DEFAULT_BRANCH_ENV = "CI_DEFAULT_BRANCH"


def describe(project: Project, spec: NotebookSpec) -> str:
    """The registry's description, else the notebook's first markdown heading, never a bare file path."""
    if spec.description:
        return spec.description
    for cell in read_notebook(project.root / spec.path, display=spec.path).cells:
        if cell.cell_type == "markdown" and cell.source.strip():
            return cell.source.strip().lstrip("# ").strip()
    return f"Notebook {spec.path}"


def notebook_asset(project: Project, spec: NotebookSpec) -> dg.AssetsDefinition:
    notebook = project.root / spec.path
    model = project.schema_model(spec)
    defaults = project.config_for(spec)
    # A notebook without a schema takes any config (an empty one by default).
    schema = config_schema(model, defaults) if model else dg.Field(dg.Permissive(), default_value=defaults, is_required=False)

    @dg.asset(
        name=spec.name,
        group_name=GROUP,
        description=describe(project, spec),
        deps=[asset_name(upstream) for upstream in spec.after],
        kinds={"jupyter", "python"},
        config_schema=schema,
        metadata={"notebook": spec.path, "config_file": spec.config or "(none: empty config)", "device": spec.device},
        # The device tag tells the deployment's run launcher to give the run's container the GPUs.
        op_tags={"notebook_path": str(notebook), DEVICE_TAG: spec.device},
        pool=GPU_POOL if spec.device == "gpu" else None,
        # Dagster fails the step after recording the materialization when a blocking check fails with ERROR.
        check_specs=[dg.AssetCheckSpec(check.name, asset=spec.name, blocking=check.blocking, description=check.describe())
                     for check in spec.checks],
    )
    def _notebook(context: dg.AssetExecutionContext, mlflow: MLflowResource) -> dg.MaterializeResult:
        executed = executed_notebook_path(context.instance, spec.name, context.run.run_id)
        # A CI job's run: the copy in its artifacts, which a shared instance's UI can open.
        kept_at = context.run.tags.get(executed_notebook_url_tag(spec.name)) or context.run.tags.get(EXECUTED_NOTEBOOK_URL_TAG)
        kept = {"executed_notebook_url": dg.MetadataValue.url(kept_at)} if kept_at else {}
        # `ds-pipelines run` checked this before it started; a run from the UI or a sensor is checked here.
        problem = notebook_problem(project.root, spec)
        if problem:
            raise dg.Failure(description=problem)
        # Before the notebook runs: its own writes are not changes to the code it ran from.
        sha, branch = run_commit(project.root, Provenance.from_run_tags(context.run.tags)) or (None, None)
        commit = commit_state(project.root, sha, branch)
        started = time.monotonic()
        config = context.op_execution_context.op_config or {}
        try:
            # The project root as working directory: relative paths resolve as in Jupyter opened there.
            execute_notebook_step(context, notebook=notebook, keep_as=executed, kernel_name=kernel_for(spec),
                                  cwd=project.root, parameters=config)
        except (PapermillExecutionError, KernelDiedError) as exc:
            failure = exc.failure if isinstance(exc, KernelDiedError) else cell_failure(executed, exc)
            raise dg.Failure(
                description=failure.describe(spec.path),
                metadata={
                    "executed_notebook": dg.MetadataValue.path(str(executed)),
                    **kept,
                    "failed_cell": failure.cell,
                    "failed_cell_source": failure.source_line,
                    "error": failure.error,
                },
            ) from None
        result = read_report(executed)
        record = gather(root=project.root, notebook=notebook, config=config, commit=commit,
                        data=result.get("data", []), device=result.get("device")).to_dict()
        run_id = result.get("mlflow_run_id")
        if run_id:
            mlflow.log_executed_notebook(run_id=run_id, path=executed)
            mlflow.log_uncertainty(run_id=run_id, uncertainty=result.get("uncertainty", {}))
            mlflow.log_reproducibility(run_id=run_id, payload={
                "notebook": spec.path, "name": spec.name, "metrics": result.get("metrics", {}), "config": config,
                "reproducibility": record,
            })
        context.log.info(f"executed notebook kept at {executed}")
        outcomes = evaluate_checks(project, spec.checks, result, mlflow)
        if run_id and any(check.blocking for check in spec.checks):
            mlflow.tag_blocking_checks(run_id=run_id, passed=not blocking_failures(outcomes))
        return dg.MaterializeResult(
            metadata={
                "executed_notebook": dg.MetadataValue.notebook(str(executed)),
                **kept,
                "duration_s": round(time.monotonic() - started, 2),
                **{name: dg.MetadataValue.float(value) for name, value in result.get("metrics", {}).items()},
                # Beside the values, so a run's page in the UI shows how far each metric may move by chance.
                **({UNCERTAINTY_METADATA_KEY: dg.MetadataValue.json(result["uncertainty"])} if result.get("uncertainty") else {}),
                **({"mlflow_run_id": run_id} if run_id else {}),
                METADATA_KEY: dg.MetadataValue.json(record),
                CONFIG_METADATA_KEY: dg.MetadataValue.json(dict(config)),
                **{f"artifact_{name}": dg.MetadataValue.path(path) for name, path in result.get("artifacts", {}).items()},
                **({CHECKS_METADATA_KEY: dg.MetadataValue.json([o.to_dict() for o in outcomes])} if outcomes else {}),
            },
            check_results=[check_result(outcome) for outcome in outcomes],
        )

    return _notebook


def evaluate_checks(project: Project, checks: tuple[QualityCheck, ...], result: dict, mlflow: MLflowResource) -> list[CheckOutcome]:
    """Each check on what the notebook reported; the baseline (the notebook's latest MLflow run on the default
    branch, as the merge-request comment finds it) is looked up only when a check compares with it."""
    if not checks:
        return []
    metrics = result.get("metrics", {})
    uncertainty = checked(result.get("uncertainty", {}), metrics, "dsp.report")
    baseline, no_baseline = None, ""
    if any(check.no_worse_than_baseline for check in checks):
        default_branch = os.environ.get(DEFAULT_BRANCH_ENV) or project.triggers.branches[0]
        baseline, no_baseline = mlflow.baseline_values(result.get("mlflow_run_id"), default_branch)
    return [evaluate(check, metrics, uncertainty, baseline, no_baseline=no_baseline) for check in checks]


def check_result(outcome: CheckOutcome) -> dg.AssetCheckResult:
    """A blocking check fails with ERROR (the run fails), a non-blocking one with WARN."""
    values = {key: value for key, value in (("value", outcome.value), ("min", outcome.min), ("max", outcome.max),
                                            ("baseline", outcome.baseline)) if value is not None}
    return dg.AssetCheckResult(
        check_name=outcome.name,
        passed=outcome.passed,
        severity=dg.AssetCheckSeverity.ERROR if outcome.blocking else dg.AssetCheckSeverity.WARN,
        description=outcome.message,
        metadata={
            "metric": outcome.metric,
            **{key: dg.MetadataValue.float(float(value)) for key, value in values.items()},
            **({"baseline_run_id": outcome.baseline_run_id} if outcome.baseline_run_id else {}),
            "message": outcome.message,
        },
    )


def notebook_assets(project: Project, leave_out: set[str] = frozenset()) -> list[dg.AssetsDefinition]:
    """An asset per notebook of the project, but those whose paths are in ``leave_out``."""
    return [notebook_asset(project, spec) for spec in project.notebooks() if spec.path not in leave_out]
