"""Runs: the runs of ``ds-pipelines run`` processes that died (a CI job killed mid-run) are failed, freeing
their pool slots (see ``ds_pipelines.execution.heartbeat``); runs launched on GitLab follow their job
(``ds_pipelines.execution.gitlab_runs``)."""

from __future__ import annotations

import dagster as dg

from ds_pipelines.defs.runs.sensors import dead_runs, gitlab_runs


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions(sensors=[dead_runs, gitlab_runs])
