"""``ds-pipelines detect``: which notebooks a GitLab pipeline runs (see ``ds_pipelines.triggers.rules``)."""

from __future__ import annotations

import json
import os
from pathlib import Path

import click
from click.core import ParameterSource

from ds_pipelines.errors import DsPipelinesError, ProjectProblemsError
from ds_pipelines.project import PROJECT_DIR_ENV, defaults
from ds_pipelines.triggers import rules

_BAD_INPUT = 2
_CHILD_HEADER = ("# Written by `ds-pipelines detect --child-pipeline` (ds_pipelines/triggers/child_pipeline.py): the\n"
                 "# notebooks this pipeline runs, one job each, on the runner of its device.\n")


@click.command()
@click.option("--repo", type=click.Path(file_okay=False, path_type=Path), default=".", show_default=True,
              envvar=PROJECT_DIR_ENV, show_envvar=True, help="Project folder, inside a git checkout.")
@click.option("--source", default="push", show_default=True, envvar="CI_PIPELINE_SOURCE", show_envvar=True,
              help="Pipeline source: push, merge_request_event, schedule, web, ...")
@click.option("--before", metavar="REV", help="Compare from this commit. Default: $CI_MERGE_REQUEST_DIFF_BASE_SHA "
              "for merge_request_event, else $CI_COMMIT_BEFORE_SHA; none or all zeros means a first push.")
@click.option("--after", metavar="REV", default="HEAD", show_default=True, envvar="CI_COMMIT_SHA", show_envvar=True,
              help="Compare up to this commit.")
@click.option("--message", default="", envvar="CI_COMMIT_MESSAGE", show_envvar=True,
              help="Commit message, read for [run notebooks/x.ipynb], [skip run] and [plan].")
@click.option("--tag", envvar="CI_COMMIT_TAG", show_envvar=True, help="Tag of a tag pipeline.")
@click.option("--default-branch", metavar="BRANCH", envvar="CI_DEFAULT_BRANCH", show_envvar=True,
              help="On a first push, compare with where the branch left this one, when it is fetched.")
@click.option("--scoring-notebook", metavar="PATH", envvar="SCORING_NOTEBOOK", show_envvar=True,
              help="The notebook a schedule runs. Default: triggers.schedule.notebook in configs/notebooks.yaml "
              f"({defaults.SCORING_NOTEBOOK} when unset).")
@click.option("--production-tag", metavar="REGEX", help="Full-match pattern of production release tags (deployed). "
              f"Default: triggers.production_tag in configs/notebooks.yaml ({defaults.PRODUCTION_TAG} when unset).")
@click.option("--development-tag", metavar="REGEX", help="Full-match pattern of development tags (not deployed). "
              f"Default: triggers.development_tag in configs/notebooks.yaml ({defaults.DEVELOPMENT_TAG} when unset).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON (with --explain: the explanation).")
@click.option("--explain", is_flag=True,
              help="Print every notebook: whether it runs (or would, in a [plan] dry run) and which rule decided, "
              "its runner, and its expected duration: the median of its latest successful run-<name> CI jobs, read "
              "from GitLab when CI_SERVER_URL (or GITLAB_URL), CI_PROJECT_ID (or GITLAB_PROJECT_ID) and GITLAB_TOKEN "
              "are set.")
@click.option("--dotenv", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the plan to FILE for GitLab's artifacts:reports:dotenv (DSP_NOTEBOOKS, DSP_SKIP, "
              "DSP_SKIP_REASON, DSP_RELEASE, DSP_TAG, DSP_DEFERRED, DSP_DRY_RUN).")
@click.option("--child-pipeline", "child_pipeline_file", type=click.Path(dir_okay=False, path_type=Path),
              help="Write the plan's child pipeline to FILE (GitLab CI YAML for trigger:include:artifact): one job "
              "per planned notebook, tagged $GPU_RUNNER or $CPU_RUNNER by its device (each defaults to "
              "$SCHEDULED_RUNNER in schedules, else $COMMIT_RUNNER), then the publishing jobs on $LIGHT_RUNNER; "
              "a plan that runs nothing has one job, on $LIGHT_RUNNER in --light-image; a [plan] dry run has one job, "
              "post-plan, on $LIGHT_RUNNER in --image, which posts the plan (ds-pipelines publish plan).")
@click.option("--image", envvar="IMAGE", show_envvar=True, default="$CI_REGISTRY_IMAGE:latest", show_default=True,
              help="Image of the child pipeline's notebook jobs (ds-pipelines' environment).")
@click.option("--light-image", envvar="LIGHT_IMAGE", show_envvar=True, default=defaults.LIGHT_IMAGE,
              show_default=True, help="Image of the child pipeline's job when nothing runs.")
@click.option("--results-dir", envvar="RESULTS_DIR", show_envvar=True, default="results", show_default=True,
              help="Folder under which each notebook job of the child pipeline keeps its results (DIR/<name>).")
@click.option("--artifacts-expire-in", metavar="DURATION", default="30 days", show_default=True,
              help="How long GitLab keeps the child pipeline's results (artifacts:expire_in).")
def detect(repo: Path, source: str, before: str | None, after: str, message: str, tag: str | None,
           default_branch: str | None, scoring_notebook: str | None, production_tag: str | None,
           development_tag: str | None,
           as_json: bool, explain: bool, dotenv: Path | None, child_pipeline_file: Path | None, image: str, light_image: str,
           results_dir: str, artifacts_expire_in: str) -> None:
    """Decide which notebooks a CI pipeline runs, from git changes and the commit message.

    \b
    - a notebook under notebooks/ added, modified or renamed runs (modified)
    - a change to a notebook's config file, as configs/notebooks.yaml
      maps them, runs that notebook (config-changed)
    - [run notebooks/x.ipynb] in the commit message, any number of times,
      runs that notebook too (override)
    - [skip run] in the commit message runs nothing, whatever else applies
    - [plan] in the commit message is a dry run: nothing runs; the child
      pipeline posts what would run (the rules above) to the merge request
    - a schedule runs the scoring notebook only (scheduled)
    - a tag runs nothing; v1.2.3 is a production release, dev-1.2.3 a
      development one, anything else (v1.2.3-rc1 too) no release
    - with triggers.orchestrator: dagster in configs/notebooks.yaml, the
      Dagster deployment runs all of it: nothing runs here, nothing is
      released (DSP_DEFERRED=true)

    \b
    Upstream notebooks run first (training before inference).
    With --explain, say so notebook by notebook, with runners and durations.
    Exit status: 0 with a plan (even an empty one), 2 for bad input.
    """
    import yaml

    from ds_pipelines.files import write_atomically
    from ds_pipelines.project import Project
    from ds_pipelines.project.settings import GITLAB_CI
    from ds_pipelines.triggers import child_pipeline
    from ds_pipelines.triggers.git_changes import changed_files

    if source == "merge_request_event":
        before = before or os.environ.get("CI_MERGE_REQUEST_DIFF_BASE_SHA") or None
    else:
        before = before or os.environ.get("CI_COMMIT_BEFORE_SHA") or None
    try:
        if source == "merge_request_event" and not before:
            raise rules.TriggerError(
                "merge-request pipeline without a base: pass --before or set CI_MERGE_REQUEST_DIFF_BASE_SHA"
            )
        if not repo.is_dir():
            from_env = click.get_current_context().get_parameter_source("repo") == ParameterSource.ENVIRONMENT
            named_by = f"{PROJECT_DIR_ENV}={repo}" if from_env else f"--repo {repo}"
            raise DsPipelinesError(f"{named_by}: the folder does not exist (expected the project, inside a git checkout)")
        # The same settings a Dagster deployment's sensors and schedule read: one answer for both.
        project = Project(root=repo.resolve())
        # Two notebooks with one asset name would be one child-pipeline job (and one asset): the plan is wrong.
        collisions = project.name_collisions()
        if collisions:
            raise ProjectProblemsError(collisions)
        triggers = project.triggers
        deferred = triggers.deferred(GITLAB_CI)
        changes = []
        if source != "schedule" and not tag and not deferred:  # the rules ignore changes there: spare the git calls
            changes = changed_files(
                repo, before, after,
                # GitLab knows a merge request's base: missing, it means a shallow clone, not a force push.
                force_push_fallback=source != "merge_request_event",
                default_branch=default_branch,
                warn=lambda text: click.echo(f"warning: {text}", err=True),
            )
        result = rules.plan(
            project, changes, message, source, tag,
            scoring_notebook or triggers.schedule.notebook or defaults.SCORING_NOTEBOOK,
            production_tag=production_tag or triggers.production_tag,
            development_tag=development_tag or triggers.development_tag,
            deferred=deferred,
        )
        if dotenv:
            dotenv.write_text(result.to_dotenv(), encoding="utf-8")
        if child_pipeline_file:
            config = child_pipeline.child_pipeline(
                result, {spec.path: spec for spec in project.notebooks()},
                child_pipeline.Runners.from_env(os.environ, source),
                image=image, source=source, merge_request_iid=os.environ.get("CI_MERGE_REQUEST_IID") or None,
                light_image=light_image, results_dir=results_dir, artifacts_expire_in=artifacts_expire_in,
            )
            text = _CHILD_HEADER + yaml.safe_dump(config, sort_keys=False, width=120)
            write_atomically(child_pipeline_file, lambda tmp: tmp.write_text(text, encoding="utf-8"))
        if explain:
            from ds_pipelines.cli.explain import explained

            explanation = explained(result, project, os.environ, child_pipeline.Runners.from_env(os.environ, source))
            click.echo(json.dumps(explanation.to_dict(), indent=2) if as_json else explanation.to_text())
            return
    except (DsPipelinesError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        raise SystemExit(_BAD_INPUT) from None
    click.echo(result.to_json() if as_json else _summary(result))


def _summary(result: rules.Plan) -> str:
    if result.dry_run:
        lines = [f"Dry run ([plan] in the commit message): nothing runs; {len(result.would_run)} notebook(s) would run:"]
        lines += [f"  {n.path}  ({n.reason})" for n in result.would_run]
    elif result.skip:
        lines = [f"Nothing to run: {result.skip_reason}."]
    else:
        width = max(len(n.path) for n in result.notebooks)
        lines = [f"{len(result.notebooks)} notebook(s) to run, in this order:"]
        lines += [f"  {n.path:<{width}}  ({n.reason})" for n in result.notebooks]
    if result.tag:
        lines.append(f"Tag {result.tag!r}: {result.release} release.")
    return "\n".join(lines)
