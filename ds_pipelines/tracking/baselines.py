"""The baseline a notebook's metrics are compared with: its latest successful MLflow run on the default branch.

Runs are told apart by MLflow run tags that ds-pipelines sets (``run_tags``):

=============================  ==========================================================
``ds-pipelines.branch``        branch the run's commit was built for (MR: source branch)
``ds-pipelines.commit``        commit SHA
``ds-pipelines.merge_request`` merge-request IID, for merge-request pipelines
``ds-pipelines.pipeline_url``  CI pipeline
``ds-pipelines.job_url``       CI job
``ds-pipelines.notebook``      notebook path (optional; restricts baselines when experiments are shared)
``ds-pipelines.blocking_checks`` ``failed`` when a blocking quality check failed the run (never a baseline)
``ds-pipelines.pipeline_source`` how the pipeline started (``CI_PIPELINE_SOURCE``; the sensor's: ``push``...)
``ds-pipelines.protected_ref`` ``true`` when the run's ref is protected (``CI_COMMIT_REF_PROTECTED``)
``ds-pipelines.project_id``    the GitLab project whose job made the run (``CI_PROJECT_ID``)
``ds-pipelines.reproduces``    set on a ``ds-pipelines reproduce`` rerun (never a baseline, never released)
=============================  ==========================================================

``ds-pipelines run`` passes them to every run a notebook starts through MLflow's ``MLFLOW_RUN_CONTEXT``
environment variable (``mlflow_run_context_env``), which ``mlflow.start_run`` reads in the notebook's kernel, so the
notebooks need no change.

The baseline is searched in the experiment of the notebook's own run (the run id is in results.json):
the newest FINISHED run whose branch tag is the default branch, other than the run itself and other than runs
whose blocking quality checks failed (the notebook finished, but its run did not pass).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.tracking.links import shown_uri
from ds_pipelines.tracking.uncertainty import uncertainty_from_tags

TAG_PREFIX = "ds-pipelines."
BRANCH_TAG = TAG_PREFIX + "branch"
COMMIT_TAG = TAG_PREFIX + "commit"
MERGE_REQUEST_TAG = TAG_PREFIX + "merge_request"
PIPELINE_URL_TAG = TAG_PREFIX + "pipeline_url"
JOB_URL_TAG = TAG_PREFIX + "job_url"
NOTEBOOK_TAG = TAG_PREFIX + "notebook"
BLOCKING_CHECKS_TAG = TAG_PREFIX + "blocking_checks"
"""``passed`` or ``failed``: set after the notebook's quality checks ran, when it has blocking ones."""
PIPELINE_SOURCE_TAG = TAG_PREFIX + "pipeline_source"
PROTECTED_REF_TAG = TAG_PREFIX + "protected_ref"
PROJECT_ID_TAG = TAG_PREFIX + "project_id"
REPRODUCES_TAG = TAG_PREFIX + "reproduces"
RUN_CONTEXT_ENV = "MLFLOW_RUN_CONTEXT"
MAX_RUNS_SCANNED = 1000
"""How far back (newest first) an experiment is searched for a baseline."""


class BaselineError(DsPipelinesError):
    """The notebook's own MLflow run cannot be found, so there is nothing to compare."""


@dataclass(frozen=True)
class Baseline:
    run_id: str
    metrics: dict[str, float]
    branch: str
    commit_sha: str | None = None
    started_at: str | None = None
    tags: dict[str, str] = field(default_factory=dict)
    uncertainty: dict[str, dict] = field(default_factory=dict)
    """Metric name to ``{"low", "high", "kind"}``, from the run's uncertainty tags (``tracking.uncertainty``)."""


def run_tags(
    commit_sha: str | None,
    branch: str | None,
    mr_iid: str | int | None,
    pipeline_url: str | None,
    job_url: str | None,
    *,
    notebook: str | None = None,
    pipeline_source: str | None = None,
    protected_ref: str | None = None,
    project_id: str | None = None,
) -> dict[str, str]:
    """The MLflow run tags that identify where a run comes from (absent values are left out)."""
    values = {
        PIPELINE_SOURCE_TAG: pipeline_source,
        PROTECTED_REF_TAG: protected_ref,
        PROJECT_ID_TAG: project_id,
        COMMIT_TAG: commit_sha,
        BRANCH_TAG: branch,
        MERGE_REQUEST_TAG: None if mr_iid is None else str(mr_iid),
        PIPELINE_URL_TAG: pipeline_url,
        JOB_URL_TAG: job_url,
        NOTEBOOK_TAG: notebook,
    }
    return {tag: value for tag, value in values.items() if value not in (None, "")}


def mlflow_run_context_env(tags: Mapping[str, str], env: Mapping[str, str]) -> dict[str, str]:
    """``{"MLFLOW_RUN_CONTEXT": ...}`` to add to the notebook kernel's environment: ``tags`` merged over any
    run context already set there. ``mlflow.start_run`` adds these tags to every run it creates."""
    existing = env.get(RUN_CONTEXT_ENV)
    merged: dict[str, str] = {}
    if existing:
        try:
            loaded = json.loads(existing)
        except json.JSONDecodeError:
            raise DsPipelinesError(f"{RUN_CONTEXT_ENV} is set but is not a JSON object of tags: {existing[:80]!r}") from None
        if not isinstance(loaded, dict):
            raise DsPipelinesError(f"{RUN_CONTEXT_ENV} is set but is not a JSON object of tags: {existing[:80]!r}")
        merged.update({str(key): str(value) for key, value in loaded.items()})
    merged.update(tags)
    return {RUN_CONTEXT_ENV: json.dumps(merged, sort_keys=True)}


def find_baseline(run_id: str, default_branch: str, *, tracking_uri: str | None = None) -> Baseline | None:
    """The latest FINISHED run on ``default_branch`` in ``run_id``'s experiment, or None ("no baseline yet")."""
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=tracking_uri)
    try:
        current = client.get_run(run_id)
    except MlflowException:
        raise BaselineError(
            f"MLflow run {run_id!r} (from results.json) does not exist at {shown_uri(client.tracking_uri)}: "
            "is MLFLOW_TRACKING_URI the server the notebooks logged to?"
        ) from None
    notebook = current.data.tags.get(NOTEBOOK_TAG)
    page_token, scanned = None, 0
    while scanned < MAX_RUNS_SCANNED:
        # Tags and status are checked here rather than in a filter string: MLflow-compatible servers
        # (GitLab's) do not all support tag filters.
        page = client.search_runs(
            experiment_ids=[current.info.experiment_id],
            order_by=["attributes.start_time DESC"],
            max_results=min(100, MAX_RUNS_SCANNED - scanned),
            page_token=page_token,
        )
        for run in page:
            tags = run.data.tags
            if (
                run.info.run_id != run_id
                and run.info.status == "FINISHED"
                and tags.get(BRANCH_TAG) == default_branch
                and (notebook is None or tags.get(NOTEBOOK_TAG) == notebook)
                and tags.get(BLOCKING_CHECKS_TAG) != "failed"
            ):
                return Baseline(
                    run_id=run.info.run_id,
                    metrics=dict(run.data.metrics),
                    branch=default_branch,
                    commit_sha=tags.get(COMMIT_TAG),
                    started_at=_iso(run.info.start_time),
                    tags={key: value for key, value in tags.items() if key.startswith(TAG_PREFIX)},
                    uncertainty=uncertainty_from_tags(tags),
                )
        scanned += len(page)
        page_token = page.token
        if not page_token or not page:
            return None
    return None


def _iso(millis: int | None) -> str | None:
    if millis is None:
        return None
    return datetime.fromtimestamp(millis / 1000, tz=timezone.utc).isoformat(timespec="seconds")


def tag_blocking_checks(run_id: str, passed: bool, *, tracking_uri: str | None = None) -> None:
    """Mark MLflow run ``run_id`` with its blocking quality checks' verdict (``BLOCKING_CHECKS_TAG``)."""
    from mlflow.tracking import MlflowClient

    MlflowClient(tracking_uri=tracking_uri).set_tag(run_id, BLOCKING_CHECKS_TAG, "passed" if passed else "failed")
