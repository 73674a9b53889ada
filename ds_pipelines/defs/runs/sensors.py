"""The ``dead_runs`` sensor: every minute, fail the runs whose ``ds-pipelines run`` process stopped beating."""

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
