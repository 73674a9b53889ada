"""Jupyter kernels started ahead of their notebook, so that their start-up overlaps Dagster's.

A dagstermill notebook pays, before its first cell, for a kernel start and for the kernel's import of
Dagster and dagstermill; ``ds-pipelines run`` pays, before the notebook starts, for importing Dagster and
setting up the run. Done one after the other that is seconds for nothing: ``ds-pipelines run`` starts the
kernel first (``start_early``), the kernel imports what dagstermill's injected cell needs meanwhile
(``WARM_UP``), and the notebook's Dagster step takes that kernel (``take``) instead of starting its own.
Runs started elsewhere (the Dagster UI, ``dagster asset materialize``) find none and start one as usual.
``ds-pipelines run`` starts the first notebook's kernel even before it checks the project; when the checks
find bad input, the kernel is killed at once (``discard_waiting``).

Free of Dagster imports on purpose: the kernel must be on its way before the CLI imports Dagster.
"""

from __future__ import annotations

import importlib
import logging
import subprocess
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from queue import Empty
from typing import Any

from jupyter_client.asynchronous import AsyncKernelClient
from jupyter_client.manager import AsyncKernelManager
from jupyter_client.session import Session
from jupyter_core.utils import run_sync
from traitlets import Type

# Sent to the kernel before the notebook (``warm_up`` below); binds no name in the notebook's namespace.
WARM_UP = '__import__("ds_pipelines.execution.kernels").execution.kernels.warm_up({module!r}, {attribute!r})'
# As nbclient starts its kernels: no IPython history database written per notebook run.
KERNEL_ARGUMENTS = ["--HistoryManager.hist_file=:memory:"]
# IPython puts the kernel's folder (the project, maybe a commit's checkout) on sys.path ahead of an editable
# install's finder, so a ds_pipelines/ folder there would shadow the installed package that the notebook API
# and Dagster's job come from. Before the notebook's first line, ds_pipelines is imported with that folder off
# sys.path, which then gets the folder back last: the notebook still imports its project's own modules. A
# folder named on PYTHONPATH stays where it is: CI's jobs run the commit's ds_pipelines on purpose.
PROJECT_FOLDER_LAST = (
    "--IPKernelApp.exec_lines=import sys as _dsp_sys, os as _dsp_os; "
    "_dsp_here = [entry for entry in _dsp_sys.path if entry in ('', _dsp_os.getcwd()) "
    "and not (entry and entry in _dsp_os.environ.get('PYTHONPATH', '').split(_dsp_os.pathsep))]; "
    "_dsp_sys.path[:] = [entry for entry in _dsp_sys.path if entry not in _dsp_here]; "
    "__import__('ds_pipelines'); _dsp_sys.path += _dsp_here; del _dsp_sys, _dsp_os, _dsp_here"
)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class JobPointer:
    """Where the job that runs the notebooks is defined (a module-level function returning it): dagstermill's
    kernel reconstructs the job from there, and ``ds-pipelines run`` executes it. Given by the caller, so
    that execution never imports the Dagster definitions above it."""

    module: str
    attribute: str

    def load(self) -> Any:
        return getattr(importlib.import_module(self.module), self.attribute)


def warm_up(module: str, attribute: str) -> None:
    """Run in the kernel before the notebook: load what dagstermill's injected first cell loads.

    The injected cell imports Dagster and reconstructs the job from its code pointer (the project's
    configs and notebooks are read again there, so nothing loaded here is used stale). It does not touch
    the run, the instance or the notebook's namespace, and a failure changes nothing: the injected cell
    reports it. What is loaded by then lives as long as the kernel (``lean_imports.long_lived_objects``); the
    notebook's own objects are collected as usual.
    """
    from ds_pipelines.execution.lean_imports import import_papermill, long_lived_objects

    with long_lived_objects():
        import_papermill()  # before dagstermill imports it
        import dagster as dg
        import dagstermill  # noqa: F401

        dg.reconstructable(JobPointer(module, attribute).load()).get_definition()


_kernel_environment: dict[str, str] | None = None
"""The environment of the kernels started from now on; None: this process's (``restrict_kernel_environment``)."""


def restrict_kernel_environment(env: Mapping[str, str]) -> None:
    """Start every later kernel, early or not, with ``env`` instead of this process's environment.

    For a process that holds credentials the notebooks' code must not get (``ds-pipelines execute-run`` in a
    GitLab job holds the job's variables): the process keeps them, its kernels get ``env`` only."""
    global _kernel_environment
    _kernel_environment = dict(env)


class QuietKernelManager(AsyncKernelManager):
    """Starts a kernel whose own stdout and stderr go nowhere.

    ipykernel copies whatever is written to its file descriptors (native code, ``!commands``, subprocesses)
    into the notebook's output, which is masked before anyone sees it, and echoes it to the descriptors it
    inherited: ``ds-pipelines run``'s console, a CI job's log, unmasked. So they are not inherited. Its
    sys.path has the project's folder last (``PROJECT_FOLDER_LAST``).
    """

    async def start_kernel(self, **kw: Any) -> None:
        kw.setdefault("stdout", subprocess.DEVNULL)
        kw.setdefault("stderr", subprocess.DEVNULL)
        if _kernel_environment is not None:
            kw.setdefault("env", dict(_kernel_environment))
        kw["extra_arguments"] = [*(kw.get("extra_arguments") or ()), PROJECT_FOLDER_LAST]
        await super().start_kernel(**kw)


class ReadyOnReplyClient(AsyncKernelClient):
    """The client nbclient gets for a kernel started early: ready as soon as the kernel answers.

    jupyter_client's ``wait_for_ready`` ends by reading IOPub until it has been quiet for 0.2 s, to drop what a
    freshly started kernel published. This kernel published that long before, when nobody subscribed (ZeroMQ
    dropped it), and nbclient ignores IOPub messages that answer requests other than its own: waiting for
    quiet costs every notebook 0.2 s for nothing, and never ends while something in the kernel keeps printing.
    The rest is jupyter_client's: ``kernel_info`` until the kernel replies, then one IOPub message to know that
    IOPub is subscribed (output published before that would be lost).
    """

    async def wait_for_ready(self, timeout: float | None = None) -> None:
        deadline = time.monotonic() + (float("inf") if timeout is None else timeout)
        while True:
            self.kernel_info()
            try:
                reply = await self.shell_channel.get_msg(timeout=1)
            except Empty:
                reply = None
            if reply is not None and reply["msg_type"] == "kernel_info_reply":
                try:
                    await self.iopub_channel.get_msg(timeout=0.2)
                except Empty:
                    pass  # IOPub not subscribed yet: ask again
                else:
                    self._handle_kernel_info_reply(reply)
                    return
            if not await self.is_alive():
                raise RuntimeError("Kernel died before replying to kernel_info")
            if time.monotonic() > deadline:
                raise RuntimeError(f"Kernel didn't respond in {timeout:g} seconds")


class _ClientTrackingKernelManager(QuietKernelManager):
    """Remembers the clients it hands out (nbclient leaves a borrowed kernel's client open when done); they are
    ``ReadyOnReplyClient``s."""

    client_factory = Type(ReadyOnReplyClient, klass=AsyncKernelClient)

    def client(self, **kwargs):
        client = super().client(**kwargs)
        self.__dict__.setdefault("handed_out", []).append(client)
        return client


class EarlyKernel:
    """A kernel started for one notebook before its Dagster run, warming up while the run is set up."""

    def __init__(self, notebook: Path, kernel_name: str, job: JobPointer, cwd: Path, env: Mapping[str, str] | None):
        self.notebook = notebook
        self.job = job
        self.cwd = cwd
        self.env = env
        self.manager = _ClientTrackingKernelManager(kernel_name=kernel_name)

    def start(self) -> None:
        run_sync(self._start)()

    async def _start(self) -> None:
        env = self.env if self.env is not None else _kernel_environment
        await self.manager.start_kernel(extra_arguments=list(KERNEL_ARGUMENTS), cwd=str(self.cwd),
                                        **({"env": dict(env)} if env is not None else {}))
        # A session of its own: clients of one session connect to the kernel under one ZeroMQ identity, and the
        # kernel answers only the one that connected last. While the kernel starts up, this client and nbclient's
        # may both be waiting to connect; were this one to get through last, nbclient's would never hear back.
        warm_up = self.manager.client(session=Session(key=self.manager.session.key,
                                                      signature_scheme=self.manager.session.signature_scheme))
        # The request waits in ZeroMQ's queue until the kernel is up; nothing here waits for the kernel.
        warm_up.start_channels(shell=True, iopub=False, stdin=False, hb=False, control=False)
        warm_up.execute(WARM_UP.format(module=self.job.module, attribute=self.job.attribute), silent=True, store_history=False)

    def is_alive(self) -> bool:
        return run_sync(self.manager.is_alive)()

    def request_shutdown(self) -> None:
        """Ask the kernel to exit, as nbclient does for its own kernels, without waiting for it.

        The kernel runs its exit hooks (MLflow ends open runs, buffers flush) while Dagster records the
        step; ``wait_for_exits`` reaps it. Exiting takes the kernel about a second once it holds Dagster.
        """
        run_sync(self._request_shutdown)()
        _exiting.append(self)

    async def _request_shutdown(self) -> None:
        if not self.manager.has_kernel:
            return
        # No interrupt first: one that lands while the kernel runs its exit hooks prints a KeyboardInterrupt
        # traceback from them. A cell still running was interrupted already (ds_pipelines.execution.interrupts),
        # and a kernel that does not exit is killed after ``shutdown_wait_time`` (``wait_for_exit``).
        await self.manager.request_shutdown()

    def wait_for_exit(self) -> None:
        """Wait for the kernel to exit (it is killed after ``shutdown_wait_time``) and free its resources."""
        try:
            run_sync(self._wait_for_exit)()
        finally:
            for client in self.manager.__dict__.get("handed_out", []):
                client.stop_channels()

    async def _wait_for_exit(self) -> None:
        if self.manager.has_kernel:
            await self.manager.finish_shutdown()
        await self.manager.cleanup_resources()

    def kill(self) -> None:
        """Kill the kernel now and free its resources: for a kernel whose notebook never started."""
        try:
            run_sync(self._kill)()
        finally:
            for client in self.manager.__dict__.get("handed_out", []):
                client.stop_channels()

    async def _kill(self) -> None:
        if self.manager.has_kernel:
            await self.manager.shutdown_kernel(now=True)


_waiting: dict[Path, EarlyKernel] = {}
_exiting: list[EarlyKernel] = []


def start_early(notebook: Path, job: JobPointer, *, kernel_name: str, cwd: Path,
                env: Mapping[str, str] | None = None) -> None:
    """Start the ``kernel_name`` kernel ``notebook`` will run in, in ``cwd``, unless one is already waiting for it.
    Its environment is ``env``, by default the one ``restrict_kernel_environment`` set, else this process's.

    Best effort: when the kernel cannot be started here, the notebook's step starts one as usual and
    reports the problem itself.
    """
    notebook = notebook.resolve()
    if notebook in _waiting:
        return
    kernel = EarlyKernel(notebook, kernel_name, job, cwd, env)
    try:
        kernel.start()
    except Exception as exc:  # noqa: BLE001 - the usual start in the step reports the problem properly
        log.debug("no early kernel for %s: %s", notebook, exc)
        kernel.request_shutdown()  # whatever part of it did start
        return
    _waiting[notebook] = kernel


def take(notebook: Path) -> EarlyKernel | None:
    """The kernel started early for ``notebook``, now owned by the caller; None if there is none alive."""
    kernel = _waiting.pop(notebook.resolve(), None)
    if kernel is not None and not kernel.is_alive():
        kernel.request_shutdown()
        return None
    return kernel


def wait_for_exits() -> None:
    """Reap the kernels asked to exit so far."""
    while _exiting:
        _exiting.pop().wait_for_exit()


def discard_waiting() -> None:
    """Kill the kernels that no step took, without waiting for their warm-up: the run ended before their
    notebooks started (bad input, found while they started up), so nothing ran in them."""
    while _waiting:
        _waiting.popitem()[1].kill()


def shutdown_all() -> None:
    """Stop kernels that no step took (their run failed before the notebook started) and reap all."""
    try:
        while _waiting:
            _waiting.popitem()[1].request_shutdown()
    finally:
        wait_for_exits()
