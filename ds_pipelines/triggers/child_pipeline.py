"""The child pipeline of a plan: one GitLab CI job per planned notebook, on a runner for its device.

Pure: a ``Plan`` (``ds_pipelines.triggers.rules``), the project's notebook specs and the runner tags in, a
GitLab CI configuration (a dict, ready for YAML) out. ``ds-pipelines detect --child-pipeline FILE`` writes
it; GitLab runs it with ``trigger: include: artifact``, or gitlab-ci-local as a pipeline of its own.

- A ``device: gpu`` notebook's job carries the GPU runner's tag, a ``device: cpu`` one the CPU runner's.
- ``needs:`` follows ``after:`` between planned notebooks (training before inference); a notebook whose
  upstream is not planned starts at once. Each job runs in its own checkout, where one job running both
  notebooks had one folder: the files a notebook job writes in the project (inference reads the model and
  held-out set training wrote under ``outputs/``) are kept as ``<results-dir>/<name>.files/`` and copied into
  the checkouts of the jobs that need it. A notebook whose upstream did not succeed does not run:
  its job still starts (``when: always``, so that every job finishes and the publishing jobs after them all
  start, whatever a runner makes of skipped jobs), sees no ``DSP_SUCCEEDED_<upstream>`` from the upstream's
  dotenv report and stops at once, successfully, keeping nothing.
- Each job runs ``ds-pipelines run <notebook> --output-dir <results-dir>/<name>``, then masks secrets in
  what it keeps, the results folder and ``<name>.files/`` (also after a failure; a binary file that cannot
  be masked is left out, named in the job log; nothing unmasked is kept if masking fails), and keeps them for
  members with the Developer role or more, and declares the folder's ``metrics.txt`` as its metrics report
  (``artifacts:reports:metrics``, the merge-request metrics widget).
- Then, on the light runner, the publishing jobs read every folder the notebook jobs kept, as one run:
  ``publish mr`` (merge requests), ``publish wiki`` and, after a failure, ``notify slack``; a parent pipeline
  cannot read a child's artifacts, so they are here rather than in the parent.
- A plan that runs nothing has one job only (GitLab wants at least one): it says why on the light runner, in
  the light image, so a skipped plan pulls no multi-GB image and occupies no GPU.
- A dry run (``[plan]``) has one job only, ``post-plan`` on the light runner: ``ds-pipelines publish plan``
  reads the plan from ``DSP_PLAN`` (JSON), looks up the notebooks' durations in GitLab, prints the plan and
  posts it to the merge request. It runs in the project's image, which has python-gitlab; nothing executes.
"""

from __future__ import annotations

import json
import shlex
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ds_pipelines.project import NotebookSpec
from ds_pipelines.project.defaults import LIGHT_IMAGE
from ds_pipelines.results.metrics_report import METRICS_REPORT_FILE
from ds_pipelines.results.origin import CHILD_MERGE_REQUEST_ENV, CHILD_SOURCE_ENV
from ds_pipelines.triggers.rules import Plan

STAGE = "execute"
NOTIFY_STAGE = "notify"
JOB_DOTENV = "notebook-job.env"
"""Each notebook job's dotenv report: its URL (``DSP_JOB_URL_<name>``), and ``DSP_SUCCEEDED_<name>=true``."""
NOTHING_TO_RUN_JOB = "no-notebook-to-run"
PLAN_JOB = "post-plan"
PLAN_ENV = "DSP_PLAN"
"""The dry run's plan, as ``Plan.to_dict`` JSON, in ``PLAN_JOB``'s variables (``ds-pipelines publish plan`` reads it)."""
# Job names of notebooks: asset names are [A-Za-z0-9_], so they never clash with NOTHING_TO_RUN_JOB.
_JOB_PREFIX = "run-"
# The checkout's project and ds_pipelines, not the image's copies (as templates/notebooks.yml's jobs do).
_BEFORE_SCRIPT = [
    'export DS_PIPELINES_PROJECT_DIR="$PWD"',
    'export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"',
]


@dataclass(frozen=True)
class Runners:
    """Runner tags of the child's jobs; None: no tag (any untagged runner takes the job)."""

    gpu: str | None = None
    cpu: str | None = None
    light: str | None = None

    @classmethod
    def from_env(cls, env: Mapping[str, str], source: str) -> Runners:
        """``GPU_RUNNER``, ``CPU_RUNNER`` and ``LIGHT_RUNNER``, each defaulting to the pipeline's runner:
        ``SCHEDULED_RUNNER`` in schedules, else ``COMMIT_RUNNER`` (the variables of .gitlab-ci.yml)."""
        default = env.get("SCHEDULED_RUNNER" if source == "schedule" else "COMMIT_RUNNER") or None
        return cls(gpu=env.get("GPU_RUNNER") or default, cpu=env.get("CPU_RUNNER") or default,
                   light=env.get("LIGHT_RUNNER") or default)

    def for_device(self, device: str) -> str | None:
        return self.gpu if device == "gpu" else self.cpu


def job_name(spec: NotebookSpec) -> str:
    """The child pipeline's job of a notebook: ``run-<asset name>``."""
    return _JOB_PREFIX + spec.name


def child_pipeline(
    plan: Plan,
    specs: Mapping[str, NotebookSpec],
    runners: Runners,
    *,
    image: str,
    source: str = "push",
    merge_request_iid: str | None = None,
    light_image: str = LIGHT_IMAGE,
    results_dir: str = "results",
    artifacts_expire_in: str = "30 days",
) -> dict[str, Any]:
    """The child pipeline's configuration; ``specs`` by notebook path, holding every planned notebook.
    ``source`` is the parent pipeline's (a child's own is ``parent_pipeline``): merge requests get the metrics
    comment (on ``merge_request_iid``), every pipeline the wiki and the Slack alert."""
    if plan.dry_run:
        return {"stages": [STAGE], PLAN_JOB: _plan_job(plan, image, source, merge_request_iid, runners)}
    if plan.skip:
        return {"stages": [STAGE], NOTHING_TO_RUN_JOB: _tagged({
            "stage": STAGE,
            "image": light_image,
            "script": [_echo(f"Nothing to run: {plan.skip_reason}.")],
        }, runners.light)}
    # What the parent pipeline knew: its runs and pages name the push, merge request or schedule.
    variables = {CHILD_SOURCE_ENV: source}
    if merge_request_iid:
        variables[CHILD_MERGE_REQUEST_ENV] = merge_request_iid
    config: dict[str, Any] = {"stages": [STAGE, NOTIFY_STAGE], "variables": variables}
    planned = [specs[notebook.path] for notebook in plan.notebooks]  # in run order: upstream jobs come first
    for notebook, spec in zip(plan.notebooks, planned):
        output = _results_folder(results_dir, spec)
        written = _written_folder(results_dir, spec)
        upstreams = [specs[path] for path in spec.after if path in {planned_spec.path for planned_spec in planned}]
        config[job_name(spec)] = _tagged({
            "stage": STAGE,
            "image": image,
            # A newer commit on the branch cancels it (workflow:auto_cancel in .gitlab-ci.yml).
            "interruptible": True,
            # Artifacts: for the upstream's dotenv report, which says whether it succeeded.
            "needs": [{"job": job_name(upstream), "artifacts": True} for upstream in upstreams],
            "variables": {"DSP_NOTEBOOK": spec.path, "DSP_REASON": notebook.reason, "RESULTS_DIR": output},
            "before_script": list(_BEFORE_SCRIPT),
            "script": [
                # The publishing jobs link the executed notebook in this job's artifacts.
                f'echo "{_job_url_variable(spec)}=$CI_JOB_URL" > {JOB_DOTENV}',
                *(f'if [ "${{{_succeeded_variable(upstream)}:-}}" != true ]; then '
                  f"{_echo(f'Not run: {upstream.path} did not succeed.')}; exit 0; fi" for upstream in upstreams),
                *(f"cp -a {_written_folder(results_dir, upstream)}/. ." for upstream in upstreams),
                "started=$(mktemp)",
                *_run_and_mask(_keep_written_files(results_dir, written), written),
                f'if [ "$status" = 0 ]; then echo "{_succeeded_variable(spec)}=true" >> {JOB_DOTENV}; fi',
                'exit "$status"',
            ],
            "artifacts": {
                "when": "always",
                # Executed notebooks show data and whatever the code printed (masked).
                "access": "developer",
                "name": f"{spec.name}-$CI_COMMIT_REF_SLUG-$CI_COMMIT_SHORT_SHA",
                "expire_in": artifacts_expire_in,
                "paths": [f"{output}/", f"{written}/"],
                # GitLab's merge-request metrics widget: every metric and quality check, against the target branch.
                "reports": {"dotenv": JOB_DOTENV, "metrics": f"{output}/{METRICS_REPORT_FILE}"},
            },
            **({"when": "always"} if upstreams else {}),
        }, runners.for_device(spec.device))
    publish = _publish_job(planned, results_dir, image, runners.light)
    if source == "merge_request_event" and merge_request_iid:
        # Failed notebooks are reported too; a GitLab outage does not fail the pipeline.
        config["publish-metrics-comment"] = {**publish("publish mr", f"--mr {merge_request_iid}"),
                                             "when": "always", "allow_failure": True}
    # A wiki page is read, a row added, then written back: two pipelines at once would drop one's row.
    config["write-to-wiki"] = {**publish("publish wiki"), "when": "always", "allow_failure": True,
                               "resource_group": "wiki"}
    # Only after a failure; without SLACK_WEBHOOK_URL (or a bot token) it says what to set and passes.
    config["notify-slack"] = {**publish("notify slack", with_job_urls=False), "when": "on_failure",
                              "allow_failure": True}
    return config


def _plan_job(plan: Plan, image: str, source: str, merge_request_iid: str | None, runners: Runners) -> dict[str, Any]:
    # Compact JSON of paths the rules checked (no "$", which GitLab would expand) and fixed reasons.
    plan_json = json.dumps(plan.to_dict(), separators=(",", ":"))
    # The runner tags the notebook jobs would carry, as resolved here, on the command line: CI/CD variables
    # of the project or the pipeline would win over job variables of the same name.
    command = " ".join(["ds-pipelines publish plan", *(["--mr", merge_request_iid] if merge_request_iid else []),
                        "--gpu-runner", shlex.quote(runners.gpu or ""), "--cpu-runner", shlex.quote(runners.cpu or "")])
    return _tagged({
        "stage": STAGE,
        "image": image,
        "variables": {PLAN_ENV: plan_json, CHILD_SOURCE_ENV: source,
                      **({CHILD_MERGE_REQUEST_ENV: merge_request_iid} if merge_request_iid else {})},
        "before_script": list(_BEFORE_SCRIPT),
        "script": [command],
    }, runners.light)


def _results_folder(results_dir: str, spec: NotebookSpec) -> str:
    return f"{results_dir.rstrip('/')}/{spec.name}"


def _written_folder(results_dir: str, spec: NotebookSpec) -> str:
    return f"{results_dir.rstrip('/')}/{spec.name}.files"


def _keep_written_files(results_dir: str, written: str) -> str:
    """A shell command copying every file the run wrote in the checkout (newer than ``$started``) into
    ``written``, paths kept; git's, ds-pipelines' own folder, the results and Python's caches excepted."""
    return (f"mkdir -p {written} && find . -type f -newer \"$started\" ! -path './.git/*' ! -path './.ds-pipelines/*' "
            f"! -path './{results_dir.strip('/')}/*' ! -path '*/__pycache__/*' ! -name {JOB_DOTENV} "
            f"-exec cp --parents -t {written} {{}} +")


def _job_url_variable(spec: NotebookSpec) -> str:
    return f"DSP_JOB_URL_{spec.name}"


def _succeeded_variable(spec: NotebookSpec) -> str:
    return f"DSP_SUCCEEDED_{spec.name}"


def _publish_job(planned: list[NotebookSpec], results_dir: str, image: str, runner: str | None):
    """A job that publishes the results folders the notebook jobs kept, after all of them.

    A notebook whose upstream failed never ran and kept no folder: the command gets the folders that exist.
    """

    def job(command: str, *options: str, with_job_urls: bool = True) -> dict[str, Any]:
        collect = ["set --"]
        for spec in planned:
            folder = _results_folder(results_dir, spec)
            job_url = f' --job-url "${_job_url_variable(spec)}"' if with_job_urls else ""
            collect.append(f'if [ -f {folder}/results.json ]; then set -- "$@" --results {folder}{job_url}; fi')
        return _tagged({
            "stage": NOTIFY_STAGE,
            "image": image,
            "needs": [{"job": job_name(spec), "artifacts": True} for spec in planned],
            "before_script": list(_BEFORE_SCRIPT),
            "script": [*collect, " ".join(["ds-pipelines", command, *options, '"$@"'])],
        }, runner)

    return job


def _tagged(job: dict[str, Any], tag: str | None) -> dict[str, Any]:
    return {**job, "tags": [tag]} if tag else job


def _echo(text: str) -> str:
    return "echo '" + text.replace("'", "'\\''") + "'"


def _run_and_mask(keep_written: str, written: str) -> list[str]:
    """The run, then its folder and the files it wrote masked: one shell line each (GitLab runs them in one
    shell, stopping at the first failing line). Executed notebooks hold whatever the code printed, secrets
    included, and so may any file it wrote: they are masked even after a failed run (the failed notebook is
    kept), a binary file that cannot be masked is not kept (mask-secrets says which), and nothing unmasked
    is kept if masking fails."""
    return [
        "status=0",
        'ds-pipelines run "$DSP_NOTEBOOK" --output-dir "$RESULTS_DIR" || status=$?',
        f'if [ "$status" = 0 ]; then {keep_written}; fi',
        f'if ! ds-pipelines mask-secrets "$RESULTS_DIR" --files {written}; then echo "error: masking secrets in '
        f'$RESULTS_DIR and {written} failed: neither is kept" >&2; rm -rf "$RESULTS_DIR" {written}; exit 1; fi',
    ]
