"""What a notebook read and where it computed, recorded as it runs and handed back with its results.

The table readers (``tables.py``) record every file they read; data read some other way (a scikit-learn
bundled dataset, a model file) is recorded with ``record_data``; the device with ``record_device``.
``dsp.report`` hands it all back, into the run's reproducibility record
(``ds_pipelines.results.reproducibility``). One kernel runs one notebook, so the record is per process.
"""

from __future__ import annotations

from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from ds_pipelines.errors import DsPipelinesError
from ds_pipelines.results.reproducibility import DEVICES, file_input

_inputs: list[dict[str, str] | Future] = []
_device: list[str] = []
# A file is hashed on a thread while the reader that recorded it reads it (sha256 releases the GIL): the
# record costs the notebook little more than the read itself.
_hashing = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ds-pipelines-sha256")


def record_data(path: Path | str | None = None, *, source: str | None = None, version: str | None = None) -> None:
    """Record an input: a file (``path``, hashed now) or data that is no file (``source`` and ``version``,
    e.g. ``source="sklearn.datasets.load_breast_cancer", version=sklearn.__version__``)."""
    if (path is None) == (source is None):
        raise DsPipelinesError("record_data: give either path= (a file) or source= and version= (data that is no file)")
    if path is not None:
        _inputs.append(_hashing.submit(file_input, Path(path)))
    elif not version:
        raise DsPipelinesError(f"record_data: source={source!r} needs version= (what identifies this data)")
    else:
        _inputs.append({"source": source, "version": str(version)})


def record_device(device: str) -> None:
    """Record where the notebook computes: ``cpu`` or ``cuda`` (the last one recorded wins)."""
    if device not in DEVICES:
        raise DsPipelinesError(f"record_device: expected one of {', '.join(DEVICES)}, got {device!r}")
    _device.append(device)


def recorded_inputs() -> list[dict[str, str]]:
    """Every input recorded so far (waiting for hashes still being computed)."""
    return [entry.result() if isinstance(entry, Future) else entry for entry in _inputs]


def recorded_device() -> str | None:
    return _device[-1] if _device else None
