"""The ``dead_runs`` sensor: every minute, fail the runs whose ``ds-pipelines run`` process stopped beating; the
``gitlab_runs`` sensor: every 30 s, runs launched on GitLab follow their job (``execution.gitlab_runs``)."""

from __future__ import annotations

import dagster as dg

from ds_pipelines.execution.heartbeat import DEAD_AFTER_S, fail_dead_runs

SENSOR_NAME = "dead_runs"
INTERVAL_S = 60


@dg.sensor(
    name=SENSOR_NAME,
    minimum_interval_seconds=INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description=f"Fails the runs of ds-pipelines run processes (GitLab CI jobs) that were killed mid-run: no "
    f"heartbeat for {DEAD_AFTER_S} s. Their pool slots (gpu, commit_runs) are freed, so GPU notebooks never wait "
    "for a dead run.",
)
def dead_runs(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    dead = fail_dead_runs(context.instance)
    for run in dead:
        context.log.warning(f"run {run.run_id} failed: its process {run.worker} sent no heartbeat for "
                            f"{run.silent_s:.0f} s; its pool slots are freed")
    return dg.SkipReason(f"failed {len(dead)} dead runs, freeing their slots" if dead else "no dead runs")


GITLAB_SENSOR_NAME = "gitlab_runs"
GITLAB_INTERVAL_S = 30


@dg.sensor(
    name=GITLAB_SENSOR_NAME,
    minimum_interval_seconds=GITLAB_INTERVAL_S,
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="With the run launcher's execute_on: gitlab, keeps each run in step with its GitLab job: fails runs "
    "that no runner picked up within the pending limit (canceling their pipeline), cancels runs whose pipeline "
    "was canceled in GitLab, fails runs whose job ended first, and adds each job's state and the end of its log "
    "to the run's events.",
)
def gitlab_runs(context: dg.SensorEvaluationContext) -> dg.SkipReason:
    # Asked of the launcher (execution.run_launcher.NotebookRunLauncher), not imported: the code location loads
    # no Docker client for it.
    launcher = context.instance.run_launcher
    if not getattr(launcher, "on_gitlab", False):
        return dg.SkipReason("runs are not launched on GitLab (deploy/dagster.yaml: run_launcher execute_on)")
    done = launcher.follow_gitlab_runs()
    for line in done:
        context.log.info(line)
    return dg.SkipReason("; ".join(done) if done else "every GitLab run is in step with its job")
