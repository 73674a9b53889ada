"""Reading and writing the CSV and Parquet files that notebooks consume and produce."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pandas as pd

from ds_pipelines.errors import NotebookInputError
from ds_pipelines.files import write_atomically
from ds_pipelines.notebook.recorded import record_data

FORMATS = (".csv", ".parquet")


def _format(path: Path, what: str) -> str:
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise NotebookInputError(f"{what}: {path} has extension {suffix or '(none)'!r}; expected one of {', '.join(FORMATS)}")
    return suffix


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise NotebookInputError(f"{what}: file {path} does not exist")


def read_table(path: Path, *, what: str) -> pd.DataFrame:
    """A whole table; ``what`` names the config key the path came from, for error messages."""
    suffix = _format(path, what)
    _require_file(path, what)
    record_data(path)  # its sha256 goes into the run's reproducibility record
    return pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)


def read_chunks(path: Path, *, chunk_size: int, what: str) -> Iterator[pd.DataFrame]:
    """The table ``chunk_size`` rows at a time, so scoring large inputs keeps memory bounded."""
    suffix = _format(path, what)
    _require_file(path, what)
    record_data(path)  # its sha256 goes into the run's reproducibility record
    if suffix == ".csv":
        try:
            chunks = pd.read_csv(path, chunksize=chunk_size)
        except pd.errors.EmptyDataError:  # a file without even a header row
            return
    else:
        import pyarrow.parquet as pq

        chunks = (batch.to_pandas() for batch in pq.ParquetFile(path).iter_batches(batch_size=chunk_size))
    # A header-only CSV yields one empty chunk: no rows means nothing to yield.
    yield from (chunk for chunk in chunks if len(chunk))


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write atomically (temp file, then rename): a failed run leaves no half-written table behind."""
    suffix = _format(path, "output")
    if suffix == ".csv":
        write_atomically(path, lambda tmp: frame.to_csv(tmp, index=False))
    else:
        write_atomically(path, lambda tmp: frame.to_parquet(tmp, index=False))
