"""Post every failed run of this code location to Slack.

The alert names the run (job, run id linked to the Dagster UI), each failed step (for a notebook: its
path, the failing cell and the error, from the failure the notebook asset raises), and the links the run's
GitLab tags carry. It is rendered by the same function as ``ds-pipelines notify slack``'s
(``publishing.render.slack``): secrets masked, every string the run carries escaped for Slack.
"""

# No "from __future__ import annotations": Dagster reads the sensor's resource annotation at runtime.
import dagster as dg

from ds_pipelines.defs.alerts.resources import SlackNotifierResource
from ds_pipelines.masking import Masker
from ds_pipelines.publishing.render.slack import (
    FailedNotebook,
    FailureAlert,
    render_failure_alert,
)
from ds_pipelines.results.origin import TAG_PREFIX, Provenance

SENSOR_NAME = "slack_on_run_failure"
RESOURCE_KEY = "slack_notifier"
NOTEBOOK_TAG = f"{TAG_PREFIX}notebook"


@dg.run_failure_sensor(
    name=SENSOR_NAME,
    description="Posts every failed run of this code location to Slack (SLACK_WEBHOOK_URL, or SLACK_BOT_TOKEN "
    "and SLACK_CHANNEL); skips with a message when neither is set.",
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def slack_on_run_failure(context: dg.RunFailureSensorContext, slack_notifier: SlackNotifierResource):
    missing = slack_notifier.missing()
    if missing:
        return dg.SkipReason(f"{missing} in the code location's environment: run {context.dagster_run.run_id} not posted")
    alert = failure_alert(context, run_url=slack_notifier.run_url(context.dagster_run.run_id))
    # A SlackError (never holding the webhook URL or the token) fails this tick, so it shows in the UI.
    settings = slack_notifier.post(render_failure_alert(alert, masker=Masker.from_env()))
    context.log.info(f"posted the failure of run {context.dagster_run.run_id} to Slack ({settings.destination})")
    return None


def failure_alert(context: dg.RunFailureSensorContext, *, run_url: str | None) -> FailureAlert:
    """The alert of the failed run of ``context``."""
    run = context.dagster_run
    origin = Provenance.from_run_tags(run.tags)
    notebook = run.tags.get(NOTEBOOK_TAG)
    failures = [_failed_step(event, notebook) for event in context.get_step_failure_events()]
    if not failures:
        failures = [FailedNotebook(label=run.job_name, notebook=notebook, error=context.failure_event.message or "unknown error")]
    # Linked, the short id the UI shows; unlinked, the whole id, to search for in the UI.
    run_label = run.run_id[:8] if run_url else run.run_id
    links = [("Commit", origin.commit_url), ("Merge request", origin.merge_request_url),
             ("Pipeline", origin.pipeline_url), ("Job", origin.job_url)]
    return FailureAlert(
        title="Dagster run failed",
        where=[("job ", run.job_name, None), ("run ", run_label, run_url)],
        links=[(label, url) for label, url in links if url],
        failures=failures,
    )


def _failed_step(event: dg.DagsterEvent, notebook: str | None) -> FailedNotebook:
    """A failed step: a ``dg.Failure``'s description and metadata (the notebook asset's name the cell and the
    error), else the exception's message."""
    data = event.step_failure_data
    user = data.user_failure_data
    label = event.step_key or "step"
    if user is not None and user.description:
        metadata = {key: value.value for key, value in user.metadata.items()}
        cell = metadata.get("failed_cell")
        return FailedNotebook(label=label, notebook=notebook, cell=cell if isinstance(cell, int) else None,
                              error=str(metadata.get("error") or user.description), source=metadata.get("failed_cell_source") or None)
    error = data.error
    # Dagster wraps an op's exception ("Error occurred while executing op ..."): the cause is the user's.
    while error is not None and error.cause is not None and (error.cls_name or "").startswith("Dagster"):
        error = error.cause
    message = error.message.strip() if error is not None and error.message.strip() else (event.message or "unknown error")
    return FailedNotebook(label=label, notebook=notebook, error=message)
