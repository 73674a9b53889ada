"""``ds-pipelines mask-secrets DIR``: mask a results folder in place before CI keeps it as artifacts."""

from __future__ import annotations

from pathlib import Path

import click

_BAD_INPUT = 2


@click.command("mask-secrets")
@click.argument("results_dir", metavar="DIR", type=click.Path(file_okay=False, path_type=Path))
@click.option("--files", "kept_files", metavar="FOLDER", multiple=True, type=click.Path(file_okay=False, path_type=Path),
              help="A folder of files the job keeps beside DIR (the files the run wrote), masked the same way; "
                   "one that does not exist holds nothing. Repeatable.")
def mask_secrets(results_dir: Path, kept_files: tuple[Path, ...]) -> None:
    """Mask secrets in a results folder, in place: every file in it (executed
    notebooks, results.json, metrics, artifacts, metrics.txt) and in each
    --files folder.

    \b
    Masked: values of secret environment variables (names with TOKEN,
    SECRET, PASSWORD, KEY, WEBHOOK, CREDENTIAL; GITLAB_TOKEN, REPO_TOKEN,
    MLFLOW_TRACKING_TOKEN, CI_JOB_TOKEN, SLACK_*), the password of any
    scheme://user:password@ value, what detect-secrets finds (GitLab,
    GitHub, Slack, AWS tokens, private keys, ...) and random tokens after
    a credential keyword; each becomes [MASKED]. The run ids, commit and
    hashes the run wrote stay readable.
    \b
    Text files are masked. A binary file (a model, a plot) is kept as it is
    when its strings hold no secret; one that holds a secret, or whose
    content cannot be checked (zip, gzip, Parquet, PDF, ...), is deleted
    so that it is not kept, with a note naming it.
    Prints how many occurrences were masked, never what. Exit 2 when DIR
    is not a results folder or a file in it cannot be masked.
    """
    from ds_pipelines.publishing.artifacts import mask_results_folder

    try:
        # A bad folder raises DsPipelinesError naming the file: main() prints it and exits 2.
        masked = mask_results_folder(results_dir, kept_files=kept_files)
    except (OSError, ValueError) as exc:
        # A metrics file that is not JSON, a file that cannot be written: CI then keeps nothing.
        click.echo(f"error: {results_dir} cannot be masked: {type(exc).__name__}: {exc}", err=True)
        raise SystemExit(_BAD_INPUT) from None
    for why in masked.left_out.values():
        click.echo(f"note: left out of the artifacts: {why}", err=True)
    count = masked.occurrences
    where = " and ".join(str(folder) for folder in (results_dir, *kept_files))
    click.echo(f"Masked {count} secret occurrence{'s' if count != 1 else ''} in {where}.")
