"""``ds-pipelines mask-secrets DIR``: mask a results folder in place before CI keeps it as artifacts."""

from __future__ import annotations

from pathlib import Path

import click

_BAD_INPUT = 2


@click.command("mask-secrets")
@click.argument("results_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
def mask_secrets(results_dir: Path) -> None:
    """Mask secrets in a results folder, in place: executed notebooks, results.json and metrics files.

    \b
    Masked: values of secret environment variables (names with TOKEN,
    SECRET, PASSWORD, KEY, WEBHOOK, CREDENTIAL; GITLAB_TOKEN, REPO_TOKEN,
    MLFLOW_TRACKING_TOKEN, CI_JOB_TOKEN, SLACK_*) and what detect-secrets
    finds (GitLab, GitHub, Slack, AWS tokens, private keys, ...); each
    becomes [MASKED]. Models, scores and plots are not touched.
    Prints how many occurrences were masked, never what. Exit 2 when DIR
    is not a results folder or a file in it cannot be masked.
    """
    from ds_pipelines.publishing.artifacts import mask_results_folder

    try:
        # A bad folder raises DsPipelinesError naming the file: main() prints it and exits 2.
        count = mask_results_folder(results_dir)
    except (OSError, ValueError) as exc:
        # A metrics file that is not JSON, a file that cannot be written: CI then keeps nothing.
        click.echo(f"error: {results_dir} cannot be masked: {type(exc).__name__}: {exc}", err=True)
        raise SystemExit(_BAD_INPUT) from None
    click.echo(f"Masked {count} secret occurrence{'s' if count != 1 else ''} in {results_dir}.")
