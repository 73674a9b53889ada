"""A tick of a run status sensor, for the end of a run the test executed."""

from __future__ import annotations

import dagster as dg


def sensor_tick(sensor: dg.RunStatusSensorDefinition, instance: dg.DagsterInstance, run_id: str, gitlab):
    """What ``sensor`` returns for the end of run ``run_id`` (its success or failure event), with the resource
    ``gitlab``."""
    run = instance.get_run_by_id(run_id)
    ended = next(entry.dagster_event for entry in reversed(instance.all_logs(run_id))
                 if entry.dagster_event and entry.dagster_event.event_type_value in ("PIPELINE_SUCCESS", "PIPELINE_FAILURE"))
    context = dg.build_run_status_sensor_context(sensor_name=sensor.name, dagster_event=ended, dagster_instance=instance,
                                                 dagster_run=run, resources={"gitlab": gitlab})
    return sensor(context)
