"""``ds-pipelines publish mr|wiki``: a run's results on its merge request and in the project wiki.

The work is done by ``ds_pipelines.publishing``; this module holds the options and the failure policy
(best effort unless ``--strict``) that ``release`` shares. Every message is masked before it is printed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import click

from ds_pipelines.errors import DsPipelinesError

results_option = click.option(
    "--results", "results_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
    help="The results folder of the run (`ds-pipelines run --output-dir DIR`).",
)
job_url_option = click.option(
    "--job-url", metavar="URL", envvar="CI_JOB_URL", show_envvar=True,
    help="CI job whose artifacts hold the results folder: executed notebooks are linked there.",
)


def strict_option(what: str):
    return click.option(
        "--strict", is_flag=True,
        help=f"Fail when {what} cannot be published: exit 2 when GitLab is not configured, 1 when it refuses.",
    )


class Console:
    """Output with every secret of the environment masked (GitLab errors never hold the token, but
    MLflow's and a notebook's text may hold anything)."""

    def __init__(self):
        self._masker = None

    def mask(self, text: str) -> str:
        if self._masker is None:
            from ds_pipelines.publish import Masker

            self._masker = Masker.from_env(os.environ)
        return self._masker.mask(text)

    def echo(self, text: str) -> None:
        click.echo(self.mask(text))

    def warn(self, text: str) -> None:
        click.echo(f"warning: {self.mask(text)}", err=True)

    def error(self, text: str, exit_code: int) -> None:
        click.echo(f"error: {self.mask(text)}", err=True)
        raise SystemExit(exit_code)

    def give_up(self, what: str, exc: BaseException, *, strict: bool) -> None:
        """Report a publication that did not happen: a warning (best effort) or, with ``--strict`` or for
        errors that are not best effort, an error and its exit code."""
        from ds_pipelines.publishing import error_exit_code, strict_exit_code

        code = strict_exit_code(exc)
        if code is None:
            self.error(str(exc), error_exit_code(exc))
        if strict:
            self.error(f"{what}: {exc}", code)
        self.warn(f"{what}: {exc} (not failing: pass --strict for that)")

    @contextmanager
    def policy(self, what: str, *, strict: bool) -> Iterator[None]:
        """Run a publication under the failure policy (``give_up`` on any DsPipelinesError)."""
        try:
            yield
        except DsPipelinesError as exc:
            self.give_up(what, exc, strict=strict)


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI, else the project's local store (where `ds-pipelines run` tracks)."""
    from ds_pipelines.project import Project
    from ds_pipelines.tracking import tracking_uri as project_tracking_uri

    return project_tracking_uri(Project())


@click.group()
def publish() -> None:
    """Publish a run's results to GitLab: the merge-request comment and the wiki."""


@publish.command("mr")
@results_option
@click.option("--mr", "mr_iid", type=click.IntRange(min=1), metavar="IID",
              help="Merge request to comment on. Default: $CI_MERGE_REQUEST_IID.")
@click.option("--default-branch", metavar="BRANCH", envvar="CI_DEFAULT_BRANCH", show_envvar=True, default="main",
              show_default=True, help="Baselines are the latest successful MLflow runs on this branch.")
@job_url_option
@strict_option("the comment")
def merge_request(results_dir: Path, mr_iid: int | None, default_branch: str, job_url: str | None, strict: bool) -> None:
    """Comment a run's results on its merge request, one comment updated in place.

    \b
    The comment shows, per notebook, its status, the failing cell and error,
    its metrics against the baseline (the latest successful MLflow run on
    the default branch, MLFLOW_TRACKING_URI), its plots (uploaded to
    GitLab) and links (pipeline, job, MLflow run, executed notebook); the
    earlier commits of the merge request stay in a collapsed history.
    Secrets are masked and notebook text is escaped. Executed notebooks
    are never uploaded, only linked in the job's artifacts.

    \b
    GitLab from the environment: CI_SERVER_URL (or GITLAB_URL),
    CI_PROJECT_ID (or GITLAB_PROJECT_ID), GITLAB_TOKEN (or REPO_TOKEN).
    Best effort by default: no merge request, GitLab not configured or
    refusing is a warning and exit 0. With --strict: exit 2 when there is
    nothing to publish to, 1 when GitLab refuses. A bad results folder
    exits 2.
    """
    from ds_pipelines.publishing import publish_merge_request_comment

    console = Console()
    with console.policy("merge-request comment not published", strict=strict):
        outcome = publish_merge_request_comment(
            results_dir, mr_iid=mr_iid, default_branch=default_branch, env=os.environ,
            tracking_uri=tracking_uri(), job_url=job_url, warn=console.warn,
        )
        plots = f", {outcome.plots} plot{'s' if outcome.plots != 1 else ''}" if outcome.plots else ""
        console.echo(f"Merge-request comment {outcome.action} on !{outcome.mr_iid} (note {outcome.note_id}{plots}).")


@publish.command("wiki")
@results_option
@job_url_option
@strict_option("the wiki pages")
def wiki(results_dir: Path, job_url: str | None, strict: bool) -> None:
    """Add a run to the project wiki: a page per notebook and an index.

    \b
    model-runs/<notebook>  the notebook's runs, newest first (date, commit,
                           trigger, runner, image, duration, status, key
                           metrics, links); the last 50 are kept
    model-runs             every notebook page with its latest run
    Pages are read, the run merged in, and written back; a page with the
    same name that ds-pipelines did not write is left alone (an error).
    GitLab settings and the failure policy are those of `publish mr`.
    """
    from ds_pipelines.publishing import publish_wiki_pages

    console = Console()
    with console.policy("wiki not published", strict=strict):
        written = publish_wiki_pages(results_dir, env=os.environ, tracking_uri=tracking_uri(), job_url=job_url,
                                     warn=console.warn)
        for page in written:
            console.echo(f"Wiki page {page.slug} {page.action}.")
