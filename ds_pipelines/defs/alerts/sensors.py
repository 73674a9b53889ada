"""Post every failed run of this code location to Slack.

The message names the run (id, job, Dagster UI link), the notebook, the error (the failed steps' errors,
else the run's failure message) and the links the run's GitLab tags carry. Secrets are masked and every
string the run carries is escaped for Slack, so a notebook's error cannot ping ``@channel`` or leak a token.
"""

# No "from __future__ import annotations": Dagster reads the sensor's resource annotation at runtime.
import dagster as dg

from ds_pipelines.defs.alerts.resources import SlackNotifierResource
from ds_pipelines.provenance import TAG_PREFIX
from ds_pipelines.publish.escape import slack_link
from ds_pipelines.publish.masking import Masker
from ds_pipelines.publish.safe import SafeText

SENSOR_NAME = "slack_on_run_failure"
RESOURCE_KEY = "slack_notifier"
NOTEBOOK_TAG = f"{TAG_PREFIX}notebook"
LINK_TAGS = (
    ("Commit", f"{TAG_PREFIX}commit-url"),
    ("Merge request", f"{TAG_PREFIX}merge-request-url"),
    ("Pipeline", f"{TAG_PREFIX}pipeline-url"),
    ("Job", f"{TAG_PREFIX}job-url"),
)
ERROR_LINES = 15
"""Lines of error shown per failed step; the rest is in the Dagster UI."""


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
    text = failure_message(context, run_url=slack_notifier.run_url(context.dagster_run.run_id), masker=Masker.from_env())
    # A SlackError (never holding the webhook URL or the token) fails this tick, so it shows in the UI.
    settings = slack_notifier.post(text)
    context.log.info(f"posted the failure of run {context.dagster_run.run_id} to Slack ({settings.destination})")
    return None


def failure_message(context: dg.RunFailureSensorContext, *, run_url: str | None, masker: Masker) -> str:
    """The Slack mrkdwn text for the failed run of ``context``."""
    safe = SafeText(masker)
    run = context.dagster_run
    tags = run.tags
    step_failures = context.get_step_failure_events()
    # Linked, the short id the UI shows; unlinked, the whole id, to search for in the UI.
    run_label = slack_link(run.run_id[:8], run_url) if run_url else safe.slack(run.run_id)
    lines = [f":x: *Dagster run failed*: job {safe.slack(run.job_name)} · run {run_label}"]
    notebook = tags.get(NOTEBOOK_TAG)
    if notebook:
        lines.append(f"*Notebook:* {safe.slack(notebook)}")
    elif step_failures:
        steps = ", ".join(safe.slack(event.step_key) for event in step_failures if event.step_key)
        lines.append(f"*Failed step{'s' if len(step_failures) > 1 else ''}:* {steps}")
    errors = [_step_error(event) for event in step_failures] or [context.failure_event.message or "unknown error"]
    for error in errors:
        lines.append(safe.slack_block(error, max_lines=ERROR_LINES))
    links = " · ".join(slack_link(label, tags.get(tag)) for label, tag in LINK_TAGS if tags.get(tag))
    if links:
        lines.append(links)
    return "\n".join(lines)


def _step_error(event: dg.DagsterEvent) -> str:
    """A failed step's error: a ``dg.Failure``'s description (the notebook asset's names the cell and
    the error), else the exception's message."""
    data = event.step_failure_data
    user = data.user_failure_data
    if user is not None and user.description:
        return user.description
    error = data.error
    # Dagster wraps an op's exception ("Error occurred while executing op ..."): the cause is the user's.
    while error is not None and error.cause is not None and (error.cls_name or "").startswith("Dagster"):
        error = error.cause
    if error is not None and error.message.strip():
        return error.message.strip()
    return event.message or "unknown error"
