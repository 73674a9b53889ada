"""Heartbeats of ``ds-pipelines run`` processes, and failing the runs of processes that died.

A CI job's notebook runs are Dagster runs that a ``ds-pipelines run`` process executes in its runner, not
launched by the deployment's run launcher: when the runner kills it (a job timeout, the OOM killer, a
container kill, SIGKILL), nothing reports the run as ended. It stays STARTED for good and keeps its pool
slots, so with ``gpu_concurrency: 1`` every later GPU notebook, in CI and in the deployment, waits forever.

So each such process tags its runs with a worker id (``WORKER_TAG``) and, while it executes them, writes
the time on each of its unfinished runs every ``HEARTBEAT_INTERVAL_S`` (``HEARTBEAT_TAG``, by ``Heartbeat``).
The deployment's ``dead_runs`` sensor (``ds_pipelines.defs.runs``) calls ``fail_dead_runs`` every minute: a
run whose worker has not beaten for ``DEAD_AFTER_S`` (or, never having beaten, was created that long ago) is
reported failed, naming the worker and its last heartbeat, and its pool slots (claimed and pending) are
freed. A slot held by a dead run is thus back within ``DEAD_AFTER_S`` plus one sensor interval: six minutes.

The heartbeat is a tag of the run, updated in place: nothing is added per process, so nothing needs pruning
(an earlier version kept a key-value row per process, never removed), and the UI shows when a run's process
last answered.
"""

from __future__ import annotations

import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from types import TracebackType
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import dagster as dg

WORKER_TAG = "ds-pipelines/worker"
"""Run tag: the ``ds-pipelines run`` process (host, pid and a random part) that executes the run."""
HEARTBEAT_TAG = "ds-pipelines/heartbeat"
"""Run tag: when the run's process last beat (seconds since the epoch)."""
HEARTBEAT_INTERVAL_S = 30
DEAD_AFTER_S = 300
"""Ten missed heartbeats: a process this silent is gone (a paused VM or a stalled database is not that long)."""


def new_worker_id() -> str:
    return f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class Heartbeat:
    """Beats for ``worker`` in ``instance`` from entering until leaving: at once, then every ``interval_s``.

    A beat that fails (the database briefly away) is reported through ``on_problem`` once and tried again at
    the next interval: the run itself goes on, and only a long silence makes it count as dead."""

    def __init__(self, instance: dg.DagsterInstance, worker: str, *, interval_s: float = HEARTBEAT_INTERVAL_S,
                 on_problem: Callable[[str], None] = lambda message: None):
        self.instance, self.worker, self.interval_s, self.on_problem = instance, worker, interval_s, on_problem
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._beat_until_stopped, name="ds-pipelines-heartbeat", daemon=True)
        self._reported = False

    def __enter__(self) -> Heartbeat:
        self.beat()
        self._thread.start()
        return self

    def __exit__(self, kind: type[BaseException] | None, value: BaseException | None, tb: TracebackType | None) -> None:
        self._stop.set()
        self._thread.join()

    def beat(self) -> None:
        import dagster as dg

        try:
            running = self.instance.get_run_ids(filters=dg.RunsFilter(tags={WORKER_TAG: self.worker}, statuses=_unfinished()))
            for run_id in running:
                self.instance.add_run_tags(run_id, {HEARTBEAT_TAG: repr(time.time())})
        except Exception as exc:  # whatever the storage raises: the run must not stop because one beat failed
            if not self._reported:
                self._reported = True
                self.on_problem(f"warning: the run's heartbeat could not be written ({type(exc).__name__}: {exc}); "
                                f"tried again every {self.interval_s:g} s")

    def _beat_until_stopped(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.beat()


@dataclass(frozen=True)
class DeadRun:
    run_id: str
    worker: str
    silent_s: float


def fail_dead_runs(instance: dg.DagsterInstance, *, dead_after_s: float = DEAD_AFTER_S,
                   now: float | None = None) -> list[DeadRun]:
    """Report failed every unfinished run whose worker has not beaten for ``dead_after_s`` (or, never having
    beaten, started that long ago), and free its pool slots; the runs so ended."""
    import dagster as dg

    now = time.time() if now is None else now
    # Unfinished runs are few; those of the deployment's own launcher carry no worker tag (Dagster's run
    # monitoring watches their containers).
    records = [record for record in instance.get_run_records(filters=dg.RunsFilter(statuses=_unfinished()))
               if record.dagster_run.tags.get(WORKER_TAG)]
    dead = []
    for record in records:
        run, worker = record.dagster_run, record.dagster_run.tags[WORKER_TAG]
        last = _as_time(run.tags.get(HEARTBEAT_TAG)) or record.create_timestamp.timestamp()
        if now - last < dead_after_s:
            continue
        when = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(last))
        instance.report_run_failed(run, message=(
            f"the process executing this run ({worker}) stopped: no heartbeat since {when} ({now - last:.0f} s, more "
            f"than {dead_after_s:g} s). It was killed (a CI job timeout, the OOM killer, a cancelled job) before it "
            "could report; its pool slots are freed"))
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
        dead.append(DeadRun(run.run_id, worker, now - last))
    return dead


def _unfinished() -> list[dg.DagsterRunStatus]:
    import dagster as dg

    return [dg.DagsterRunStatus.NOT_STARTED, dg.DagsterRunStatus.STARTING, dg.DagsterRunStatus.STARTED]


def _as_time(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None
