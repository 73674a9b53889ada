"""Materialize notebook assets through Dagster, one after another, and describe what happened.

The job is given as a ``JobPointer`` (the Dagster definitions sit above this layer): each notebook runs as
its own Dagster run of that job, with the notebook's asset selected and its config as run config.
"""

from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from ds_pipelines.execution import interrupts, kernels
from ds_pipelines.execution.heartbeat import WORKER_TAG, Heartbeat, new_worker_id
from ds_pipelines.execution.instance import open_instance
from ds_pipelines.execution.lean_imports import import_papermill, long_lived_objects
from ds_pipelines.project import NotebookSpec, Project
from ds_pipelines.project.notebook_file import kernel_for
from ds_pipelines.results.checks import (
    CHECKS_METADATA_KEY,
    CheckOutcome,
    blocking_failures,
    failure_summary,
)
from ds_pipelines.results.folder import EXECUTED_NOTEBOOK_URL_TAG, NotebookResult
from ds_pipelines.results.reproducibility import CONFIG_METADATA_KEY, METADATA_KEY
from ds_pipelines.results.uncertainty import checked

# Progress and errors are printed by ds-pipelines itself; the full Dagster log is in the instance.
QUIET_DAGSTER_CONSOLE = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


class CellProgress(logging.Handler):
    """Turns papermill's log lines into progress: code cells as they start, and what the notebook prints."""

    # Warnings that Dagster's own modules print in every kernel: noise to a notebook author.
    NOISE = re.compile(r"BetaWarning|PreviewWarning|was never awaited|Enable tracemalloc|TqdmWarning")

    def __init__(self, emit_line: Callable[[str], None], cells: list, layout: list[int | str]):
        """``layout``: the notebook as it runs, as ``dagstermill_bridge.run_layout`` gives it."""
        super().__init__(logging.INFO)
        self.emit_line = emit_line
        self.layout = layout
        code = [i for i in layout if isinstance(i, int) and cells[i].cell_type == "code"]
        self.code_number = {index: number for number, index in enumerate(code, start=1)}
        self.first_lines = {i: (cells[i].source.strip().splitlines() or [""])[0] for i in code}
        self.total = len(code)
        self.skip_continuation = False

    def emit(self, record: logging.LogRecord) -> None:
        message = record.getMessage()
        if message.startswith("Executing Cell "):
            # papermill counts from 1, the injected cells included.
            running = int(message.removeprefix("Executing Cell ").rstrip("-") or 0) - 1
            index = self.layout[running] if 0 <= running < len(self.layout) else None
            if index in self.code_number:
                self.emit_line(f"cell {self.code_number[index]}/{self.total}: {self.first_lines[index][:70]}")
            return
        if message.startswith(("Ending Cell", "Executing notebook with kernel", "Input Notebook", "Output Notebook")):
            return
        for line in message.rstrip().splitlines():
            if self.NOISE.search(line):
                self.skip_continuation = True
                continue
            if self.skip_continuation and line.startswith("  "):
                continue
            self.skip_continuation = False
            if line.strip():
                self.emit_line(f"| {line}")


def run_notebooks(
    project: Project,
    specs: list[NotebookSpec],
    *,
    job: kernels.JobPointer,
    configs: Mapping[str, dict[str, Any]],
    tags: Mapping[str, str],
    on_line: Callable[[str], None],
    executed_notebook_urls: Mapping[str, str] | None = None,
) -> list[NotebookResult]:
    """Run ``specs`` in order, each as its own Dagster run of ``job``; stop at the first failure (the
    notebooks after it are ``not-run``). ``executed_notebook_urls`` (by notebook path) become each run's
    ``EXECUTED_NOTEBOOK_URL_TAG``."""
    # Before importing Dagster: the first notebook's kernel starts up while this process sets up the run.
    if specs:
        kernels.start_early(project.root / specs[0].path, job, kernel_name=kernel_for(specs[0]), cwd=project.root)
    try:
        return _run_in_order(project, specs, job=job, configs=configs, tags=tags, on_line=on_line,
                             executed_notebook_urls=executed_notebook_urls or {})
    finally:
        kernels.shutdown_all()


def _run_in_order(
    project: Project,
    specs: list[NotebookSpec],
    *,
    job: kernels.JobPointer,
    configs: Mapping[str, dict[str, Any]],
    tags: Mapping[str, str],
    on_line: Callable[[str], None],
    executed_notebook_urls: Mapping[str, str],
) -> list[NotebookResult]:
    with long_lived_objects():
        import_papermill()  # before the job's definitions import dagstermill, which imports it
        import dagster as dg
        import nbformat

        from ds_pipelines.execution.dagstermill_bridge import run_layout
        from ds_pipelines.results.handover import read_report

        instance = open_instance(project)
        reconstructable_job = dg.reconstructable(job.load())
    results = [NotebookResult(notebook=spec.path, name=spec.name) for spec in specs]
    papermill_log = logging.getLogger("papermill")
    papermill_log.setLevel(logging.INFO)
    worker = new_worker_id()
    # Beats while the runs execute: a process killed mid-run leaves runs that the deployment fails, freeing
    # their pool slots (execution.heartbeat).
    with Heartbeat(instance, worker, on_problem=on_line):
        for index, spec in enumerate(specs):
            kernels.wait_for_exits()  # the previous notebook's kernel exited while Dagster recorded its step
            # Only the first notebook gets an early kernel (started above): an early kernel for a later notebook
            # sometimes never answered nbclient under load ("Kernel didn't respond in 120 seconds"), so later
            # notebooks start theirs the usual way.
            cells = nbformat.read(project.root / spec.path, as_version=4).cells
            progress = CellProgress(lambda line: on_line(f"  {line}"), cells, run_layout(cells))
            on_line(f"▶ {spec.path} ({progress.total} code cells)")
            papermill_log.addHandler(progress)
            started = time.monotonic()
            try:
                run = dg.execute_job(
                    reconstructable_job,
                    instance=instance,
                    asset_selection=[dg.AssetKey(spec.name)],
                    run_config={**QUIET_DAGSTER_CONSOLE, "ops": {spec.name: {"config": configs[spec.path]}}},
                    tags={**tags, WORKER_TAG: worker,
                          **({EXECUTED_NOTEBOOK_URL_TAG: url} if (url := executed_notebook_urls.get(spec.path)) else {})},
                    raise_on_error=False,
                )
            finally:
                papermill_log.removeHandler(progress)
            ran = replace(results[index], duration_s=round(time.monotonic() - started, 2), dagster_run_id=run.run_id)
            # A failed blocking check fails the run after the materialization was recorded: its results count too.
            materialized = run.asset_materializations_for_node(spec.name)
            if materialized:
                ran = _materialized(ran, materialized[0].metadata, read_report)
                _print_checks(ran.checks, on_line)
            if run.success:
                results[index] = replace(ran, status="success")
                on_line(f"✔ {spec.path} succeeded in {ran.duration_s:.1f} s")
                if interrupts.received():
                    break  # interrupted as it finished: the notebooks after it are not started
                continue
            if materialized and blocking_failures(ran.checks):
                results[index] = failed = replace(ran, status="failed", error=failure_summary(ran.checks))
            else:
                results[index] = failed = _failed(ran, run)
            on_line(f"✘ {spec.path} failed after {failed.duration_s:.1f} s: {failed.error}")
            if failed.executed_notebook:
                on_line(f"  executed notebook kept at {failed.executed_notebook}")
            break
    return results


def _materialized(result: NotebookResult, metadata: Mapping[str, Any], read_report: Callable[[Path], dict]) -> NotebookResult:
    """``result`` with what the notebook's materialization recorded: its metrics, files, record and checks."""
    executed = Path(metadata["executed_notebook"].value)
    handed_over = read_report(executed)
    return replace(
        result, executed_notebook=executed, metrics=handed_over.get("metrics", {}),
        uncertainty=checked(handed_over.get("uncertainty", {}), handed_over.get("metrics", {}), str(executed)),
        mlflow_run_id=handed_over.get("mlflow_run_id"),
        artifacts={name: Path(path) for name, path in handed_over.get("artifacts", {}).items()},
        reproducibility=metadata[METADATA_KEY].value if METADATA_KEY in metadata else None,
        config=metadata[CONFIG_METADATA_KEY].value if CONFIG_METADATA_KEY in metadata else None,
        checks=[CheckOutcome.from_dict(outcome, f"{result.name}'s check outcomes")
                for outcome in (metadata[CHECKS_METADATA_KEY].value if CHECKS_METADATA_KEY in metadata else [])],
    )


def _print_checks(outcomes: list[CheckOutcome], on_line: Callable[[str], None]) -> None:
    for outcome in outcomes:
        if outcome.status == "warning":
            on_line(f"  warning: non-blocking check {outcome.name} failed: {outcome.message}")
        else:
            on_line(f"  check {outcome.name}: {outcome.status} ({outcome.message})")


def _failed(result: NotebookResult, run) -> NotebookResult:
    """``result`` as failed, with the error (and cell, and executed notebook) that Dagster's run recorded."""
    failures = run.get_step_failure_events()
    if not failures:
        return replace(result, status="failed", error=f"Dagster run {run.run_id} failed before the notebook ran")
    data = failures[0].step_failure_data
    user = data.user_failure_data
    if user is None:
        return replace(result, status="failed", error=data.error.message.strip() if data.error else "unknown error")
    metadata = {key: value.value for key, value in user.metadata.items()}
    executed = metadata.get("executed_notebook")
    return replace(result, status="failed", error=user.description, failed_cell=metadata.get("failed_cell"),
                   executed_notebook=Path(executed) if executed else None)
