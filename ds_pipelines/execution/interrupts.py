"""Ctrl-C or SIGTERM while a notebook runs: stop its kernel's cell now, not when the cell ends.

During a run, Dagster holds SIGINT and SIGTERM back until its next checkpoint (``capture_interrupts``), and
the step is waiting for the kernel's reply: without more, ``ds-pipelines run`` would sit until the cell
finished, however long. While a notebook runs (``interrupting_kernels``), the first signal interrupts the
notebook kernels of this process (SIGINT to them: the cell raises KeyboardInterrupt, the notebook fails, its
executed copy is kept, the Dagster run ends FAILURE), then reaches whoever handled it before (Dagster records
it). A second signal kills the kernels, for a cell stuck in code that ignores interrupts. ``received`` tells
the caller that the run was interrupted, so it stops there and says so.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import psutil

SIGNALS = (signal.SIGINT, signal.SIGTERM)
KERNEL_MARK = "ipykernel"
"""Part of a notebook kernel's command line (``python -m ipykernel_launcher -f ...``)."""
_received: list[int] = []


def received() -> int | None:
    """The first SIGINT or SIGTERM that arrived while a notebook ran in this process; None when none did."""
    return _received[0] if _received else None


@contextmanager
def interrupting_kernels() -> Iterator[None]:
    """While it lasts, SIGINT and SIGTERM stop the notebook kernels (see the module docstring). Signal
    handlers can only be set in the main thread: elsewhere this changes nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {signum: signal.getsignal(signum) for signum in SIGNALS}

    def stop_kernels(signum, frame) -> None:
        _received.append(signum)
        _signal_kernels(signal.SIGINT if len(_received) == 1 else signal.SIGKILL)
        handler = previous[signum]
        if callable(handler):
            handler(signum, frame)

    for signum in SIGNALS:
        signal.signal(signum, stop_kernels)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, handler)


def _signal_kernels(signum: int) -> None:
    for child in psutil.Process().children(recursive=True):
        try:
            if any(KERNEL_MARK in part for part in child.cmdline()):
                child.send_signal(signum)
        except psutil.NoSuchProcess:
            continue  # it exited meanwhile: nothing to stop
