"""``ds-pipelines publish mr|wiki|plan``: a run's results on its merge request and in the project wiki, a
dry run's plan on its merge request.

The work is done by ``ds_pipelines.publishing``; this module reads its inputs from GitLab CI's variables
(the run's origin, the GitLab client, the masker, the job whose artifacts hold the results) and holds the
failure policy (best effort unless ``--strict``) that ``release`` and ``notify`` share. Every message is
masked before it is printed.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import click

from ds_pipelines.cli.options import load_project, project_dir_option
from ds_pipelines.errors import DsPipelinesError

MR_IID_ENV = "CI_MERGE_REQUEST_IID"
PROJECT_DIR_CI_ENV = "CI_PROJECT_DIR"

job_url_option = click.option(
    "--job-url", metavar="URL", envvar="CI_JOB_URL", show_envvar=True,
    help="CI job whose artifacts hold the results folder: executed notebooks are linked there.",
)

# publish mr|wiki: a child pipeline's notebook jobs keep one results folder each; they publish as one run.
results_folders_option = click.option(
    "--results", "results_dirs", required=True, multiple=True, type=click.Path(file_okay=False, path_type=Path),
    help="The results folder of the run (`ds-pipelines run --output-dir DIR`); several folders of one pipeline "
    "(one per notebook job) publish as one run.",
)
job_urls_option = click.option(
    "--job-url", "job_urls", metavar="URL", multiple=True, envvar="CI_JOB_URL", show_envvar=True,
    help="CI job whose artifacts hold the results folder: executed notebooks are linked there. With several "
    "--results: one URL for all, or one per folder, in the same order.",
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
            from ds_pipelines.masking import Masker

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
        from ds_pipelines.publishing.outcome import error_exit_code, strict_exit_code

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


def tracking_uri(project_dir: Path | None) -> str:
    """MLFLOW_TRACKING_URI, else the project's local store (where `ds-pipelines run` tracks). A tracking server
    needs no project: results downloaded from CI publish from any folder."""
    from ds_pipelines.tracking import TRACKING_URI_ENV
    from ds_pipelines.tracking import tracking_uri as project_tracking_uri

    return os.environ.get(TRACKING_URI_ENV) or project_tracking_uri(load_project(project_dir))


def gitlab_client(*, comments_only: bool = False):
    """The GitLab client of GitLab CI's variables (or GITLAB_URL...); GitLabConfigError naming what to set.
    ``comments_only``: with the note-only token ``GITLAB_NOTE_TOKEN`` when that is set."""
    from ds_pipelines.gitlab import GitLabClient, GitLabSettings
    from ds_pipelines.gitlab.settings import NOTE_TOKEN_VARIABLE

    environ = dict(os.environ)
    if comments_only and environ.get(NOTE_TOKEN_VARIABLE):
        environ["GITLAB_TOKEN"] = environ[NOTE_TOKEN_VARIABLE]
    return GitLabClient(GitLabSettings.from_env(environ))


def job_artifacts(job_url: str | None):
    """The CI job whose artifacts hold the results folder. Its checkout: CI_PROJECT_DIR, else here; a
    CI_PROJECT_DIR that is no folder here names the runner's container path, not where this job runs (a
    container job run in a shell, as gitlab-ci-local does), so here it is."""
    from ds_pipelines.publishing.links import JobArtifacts

    if not job_url:
        return None
    checkout = os.environ.get(PROJECT_DIR_CI_ENV)
    return JobArtifacts(job_url, Path(checkout) if checkout and Path(checkout).is_dir() else Path.cwd())


def load_run(results_dirs: tuple[Path, ...]):
    """The run of one or more results folders (``results.folder.merge_runs``)."""
    from ds_pipelines.results.folder import load_results, merge_runs

    return merge_runs([load_results(directory) for directory in results_dirs])


def artifacts_of(results_dirs: tuple[Path, ...], job_urls: tuple[str, ...]):
    """Where each results folder's files are linked: one job for all folders, or one job per folder."""
    from ds_pipelines.publishing.links import ArtifactsOfJobs

    if len(job_urls) <= 1:
        return job_artifacts(job_urls[0] if job_urls else None)
    if len(job_urls) != len(results_dirs):
        raise DsPipelinesError(f"{len(job_urls)} --job-url for {len(results_dirs)} --results: expected one job URL, "
                               "or one per results folder in the same order")
    return ArtifactsOfJobs(tuple((directory, job_artifacts(url)) for directory, url in zip(results_dirs, job_urls)))


def merge_request_iid(explicit: int | None, env: Mapping[str, str]) -> int:
    """``explicit`` (``--mr``), else ``CI_MERGE_REQUEST_IID``; NotConfiguredError when neither is set."""
    from ds_pipelines.publishing.outcome import NotConfiguredError

    if explicit is not None:
        return explicit
    raw = (env.get(MR_IID_ENV) or "").strip()
    if not raw:
        raise NotConfiguredError(
            f"no merge request to comment on: {MR_IID_ENV} is not set (not a merge-request pipeline); pass --mr IID"
        )
    if not raw.isdigit() or int(raw) < 1:
        raise DsPipelinesError(f"{MR_IID_ENV}={raw!r} is not a merge-request number (expected a positive integer)")
    return int(raw)


@click.group()
def publish() -> None:
    """Publish a run's results to GitLab (the merge-request comment and the wiki), or a dry run's plan."""


@publish.command("mr")
@results_folders_option
@click.option("--mr", "mr_iid", type=click.IntRange(min=1), metavar="IID",
              help="Merge request to comment on. Default: $CI_MERGE_REQUEST_IID.")
@click.option("--default-branch", metavar="BRANCH", envvar="CI_DEFAULT_BRANCH", show_envvar=True, default="main",
              show_default=True, help="Baselines are the latest successful MLflow runs on this branch.")
@job_urls_option
@strict_option("the comment")
@project_dir_option
def merge_request(results_dirs: tuple[Path, ...], mr_iid: int | None, default_branch: str, job_urls: tuple[str, ...], strict: bool,
                  project_dir: Path | None) -> None:
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
    from ds_pipelines.masking import Masker
    from ds_pipelines.publishing.merge_request import publish_merge_request_comment
    from ds_pipelines.results.origin import Provenance

    console = Console()
    with console.policy("merge-request comment not published", strict=strict):
        results = load_run(results_dirs)
        outcome = publish_merge_request_comment(
            results, mr_iid=merge_request_iid(mr_iid, os.environ), client=gitlab_client(comments_only=True),
            masker=Masker.from_env(os.environ).trusting(results.own_identifiers()),
            origin=Provenance.from_gitlab_ci(os.environ),
            tracking_uri=tracking_uri(project_dir), default_branch=default_branch,
            artifacts=artifacts_of(results_dirs, job_urls),
            warn=console.warn,
        )
        plots = f", {outcome.plots} plot{'s' if outcome.plots != 1 else ''}" if outcome.plots else ""
        console.echo(f"Merge-request comment {outcome.action} on !{outcome.mr_iid} (note {outcome.note_id}{plots}).")


@publish.command("wiki")
@results_folders_option
@job_urls_option
@strict_option("the wiki pages")
@project_dir_option
def wiki(results_dirs: tuple[Path, ...], job_urls: tuple[str, ...], strict: bool, project_dir: Path | None) -> None:
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
    from ds_pipelines.execution.instance import POSTGRES_URL_ENV, shared_lock
    from ds_pipelines.masking import Masker
    from ds_pipelines.publishing.wiki import publish_wiki_pages, wiki_lock_name
    from ds_pipelines.results.origin import Provenance

    console = Console()
    with console.policy("wiki not published", strict=strict):
        results = load_run(results_dirs)
        client = gitlab_client()
        written = publish_wiki_pages(
            results, client=client, masker=Masker.from_env(os.environ).trusting(results.own_identifiers()),
            origin=Provenance.from_gitlab_ci(os.environ), tracking_uri=tracking_uri(project_dir),
            artifacts=artifacts_of(results_dirs, job_urls), warn=console.warn,
            lock=shared_lock(wiki_lock_name(client), os.environ.get(POSTGRES_URL_ENV)),
        )
        for page in written:
            console.echo(f"Wiki page {page.slug} {page.action}.")


@publish.command("plan")
@click.option("--plan", "plan_json", metavar="JSON", required=True, envvar="DSP_PLAN", show_envvar=True,
              help="The dry run's plan, as `ds-pipelines detect --json` prints it for a [plan] commit (the child "
              "pipeline's post-plan job sets it).")
@click.option("--mr", "mr_iid", type=click.IntRange(min=1), metavar="IID",
              help="Merge request to post the plan on. Default: $CI_MERGE_REQUEST_IID.")
@click.option("--gpu-runner", metavar="TAG", help="Runner tag of device: gpu notebooks ('' for none). Default: "
              "$GPU_RUNNER, else $COMMIT_RUNNER (the child pipeline passes what detect resolved).")
@click.option("--cpu-runner", metavar="TAG", help="Runner tag of device: cpu notebooks ('' for none). Default: "
              "$CPU_RUNNER, else $COMMIT_RUNNER.")
@strict_option("the plan")
@project_dir_option
def plan_comment(plan_json: str, mr_iid: int | None, gpu_runner: str | None, cpu_runner: str | None, strict: bool,
                 project_dir: Path | None) -> None:
    """Print a [plan] dry run's plan and post it on its merge request.

    \b
    Every notebook: whether it would run and which rule decided, the
    runner of its device (GPU_RUNNER, CPU_RUNNER), and its expected
    duration: the median of its latest successful run-<name> CI jobs,
    read from GitLab ("unknown (no earlier successful run)" without one).
    The plan goes into the merge request's one comment, updated in place;
    the results it showed stay in its collapsed history. Nothing runs.
    GitLab settings and the failure policy are those of `publish mr`.
    A --plan that is not the JSON of a dry run's plan exits 2.
    """
    import json

    from ds_pipelines.cli.explain import explained
    from ds_pipelines.publishing.plan import publish_plan_comment
    from ds_pipelines.results.origin import CHILD_SOURCE_ENV, Provenance
    from ds_pipelines.triggers.child_pipeline import Runners
    from ds_pipelines.triggers.explain import duration_text
    from ds_pipelines.triggers.rules import Plan, TriggerError

    console = Console()
    try:
        plan = Plan.from_dict(json.loads(plan_json))
    except json.JSONDecodeError as exc:
        console.error(f"--plan (or DSP_PLAN) is not JSON: {exc}", 2)
    except TriggerError as exc:
        console.error(f"--plan (or DSP_PLAN): {exc}", 2)
    if not plan.dry_run:
        console.error("--plan (or DSP_PLAN) is not a dry run ([plan] in the commit message): what ran is "
                      "published by `ds-pipelines publish mr`", 2)
    source = os.environ.get(CHILD_SOURCE_ENV) or os.environ.get("CI_PIPELINE_SOURCE") or "push"
    runners = Runners.from_env(os.environ, source)
    runners = Runners(gpu=runners.gpu if gpu_runner is None else gpu_runner or None,
                      cpu=runners.cpu if cpu_runner is None else cpu_runner or None)
    explanation = explained(plan, load_project(project_dir), os.environ, runners)
    console.echo(explanation.to_text())
    total = explanation.expected_total_s
    with console.policy("plan not posted", strict=strict):
        iid = merge_request_iid(mr_iid, os.environ)
        note_id, action = publish_plan_comment(
            explanation.lines, summary=explanation.summary, durations_note=explanation.durations_note,
            expected_total=duration_text(total) if total is not None else None,
            mr_iid=iid, client=gitlab_client(comments_only=True), origin=Provenance.from_gitlab_ci(os.environ),
        )
        console.echo(f"Plan {action} in the merge-request comment on !{iid} (note {note_id}).")
