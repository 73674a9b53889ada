"""``ds-pipelines notify``: tell people about a run, from its results folder (``notify slack``)."""

from __future__ import annotations

import os
from pathlib import Path

import click

_DELIVERY_FAILED = 1
_BAD_INPUT = 2


@click.group()
def notify() -> None:
    """Tell people about a run, from the results folder that `ds-pipelines run` wrote."""


@notify.command()
@click.option("--results", "results_dirs", required=True, multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="The results folder of the run (`ds-pipelines run --output-dir DIR`); several folders of one "
              "pipeline (one per notebook job) are one run.")
@click.option("--always", is_flag=True, help="Post successful runs too (by default only failures are posted).")
@click.option("--project", metavar="NAME", envvar="CI_PROJECT_PATH", show_envvar=True,
              help="Project name shown in the message.")
@click.option("--strict", is_flag=True,
              help="Fail when Slack is not configured (exit 2) or the message cannot be delivered (exit 1).")
def slack(results_dirs: tuple[Path, ...], always: bool, project: str | None, strict: bool) -> None:
    """Post a failed run to Slack: each failed notebook with its cell, error and links.

    \b
    Where to post, from the environment:
      SLACK_WEBHOOK_URL                  an incoming webhook, or
      SLACK_BOT_TOKEN and SLACK_CHANNEL  a bot token with chat:write
                                         (SLACK_API_URL: another API base)
    Links (commit, merge request, pipeline, job) come from GitLab CI's
    variables. Secrets are masked and notebook text is escaped, so an
    error cannot ping @channel or post a secret.

    \b
    Best effort by default: not configured, or not delivered, is a message
    and exit 0, so a notification never fails a pipeline. With --strict:
    exit 2 when not configured, exit 1 when not delivered. A bad results
    folder exits 2.
    """
    from ds_pipelines import slack as slack_delivery
    from ds_pipelines.masking import Masker
    from ds_pipelines.publishing.failures import describe_failures
    from ds_pipelines.publishing.render.links import Links
    from ds_pipelines.publishing.render.slack import (
        alert_from_results,
        render_failure_alert,
    )
    from ds_pipelines.results.folder import load_results, merge_runs
    from ds_pipelines.results.origin import Provenance

    missing = slack_delivery.not_configured_message(os.environ)
    if missing:
        if strict:
            click.echo(f"error: {missing}", err=True)
            raise SystemExit(_BAD_INPUT)
        click.echo(f"{missing}: nothing posted.")
        return
    # Bad input: DsPipelinesError, exit 2 through main().
    results = merge_runs([load_results(directory) for directory in results_dirs])
    if results.status == "success" and not always:
        click.echo("The run succeeded: nothing posted to Slack (--always posts successes too).")
        return
    origin = Provenance.from_gitlab_ci(os.environ)
    alert = alert_from_results(results, origin=origin, links=Links.from_origin(origin),
                               failures=describe_failures(results), project=project or None)
    text = render_failure_alert(alert, masker=Masker.from_env())
    try:
        settings = slack_delivery.SlackSettings.from_env()
        slack_delivery.send(text, settings)
    except slack_delivery.SlackConfigError as exc:
        _give_up(f"Slack settings are wrong: {exc}", strict=strict, exit_code=_BAD_INPUT)
        return
    except slack_delivery.SlackError as exc:
        _give_up(f"could not post to Slack: {exc}", strict=strict, exit_code=_DELIVERY_FAILED)
        return
    if results.status == "success":
        what = "the successful run"
    else:
        what = f"the failure of {_count(len(results.failed))}" if results.failed else "the failed run"
    click.echo(f"Posted {what} to Slack ({settings.destination}).")


def _give_up(message: str, *, strict: bool, exit_code: int) -> None:
    if strict:
        click.echo(f"error: {message}", err=True)
        raise SystemExit(exit_code)
    click.echo(f"warning: {message} (not failing: pass --strict for that)", err=True)


def _count(notebooks: int) -> str:
    return f"{notebooks} notebook{'s' if notebooks != 1 else ''}"
