"""Reading and writing the CSV and Parquet files that notebooks consume and produce.

Whole tables go through pandas (``read_table``, ``write_table``); large ones stream through Arrow a batch at a
time (``read_batches``, ``table_writer``), so memory depends on the batch size, not on the row count.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Iterable, Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pyarrow as pa

from ds_pipelines.errors import NotebookInputError
from ds_pipelines.files import atomic_target, write_atomically
from ds_pipelines.notebook.recorded import record_data
from ds_pipelines.project.schemas.base import TABLE_FORMATS

FORMATS = TABLE_FORMATS


def check_table_path(path: Path, *, what: str) -> str:
    """The table format of ``path`` (``.csv`` or ``.parquet``, by its extension); ``what`` is its config key."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        raise NotebookInputError(f"{what}: {path} has extension {suffix or '(none)'!r}; expected one of {', '.join(FORMATS)}")
    return suffix


def _require_file(path: Path, what: str) -> None:
    if not path.is_file():
        raise NotebookInputError(f"{what}: file {path} does not exist")


def read_table(path: Path, *, what: str) -> pd.DataFrame:
    """A whole table; ``what`` names the config key the path came from, for error messages."""
    suffix = check_table_path(path, what=what)
    _require_file(path, what)
    record_data(path)  # its sha256 goes into the run's reproducibility record
    return pd.read_csv(path) if suffix == ".csv" else pd.read_parquet(path)


def write_table(frame: pd.DataFrame, path: Path) -> None:
    """Write atomically (temp file, then rename): a failed run leaves no half-written table behind."""
    suffix = check_table_path(path, what="output")
    if suffix == ".csv":
        write_atomically(path, lambda tmp: frame.to_csv(tmp, index=False))
    else:
        write_atomically(path, lambda tmp: frame.to_parquet(tmp, index=False))


# --- streaming ----------------------------------------------------------------------------------------------------

CSV_BLOCK_BYTES = 256 * 1024
"""Arrow's CSV reader reads a few dozen blocks ahead: 256 KiB blocks hold that to about 10 MiB (1 MiB, its
default, to about 40 MiB), as fast on a table of 30 features."""
_CSV_CONVERSION_ERROR = re.compile(r"In CSV column #(\d+): CSV conversion error to \w+: invalid value '(.*)'$", re.S)


def read_batches(path: Path, *, columns: Mapping[str, str], numeric: Collection[str] = (), batch_size: int,
                 what: str) -> Iterator[pa.RecordBatch]:
    """The table ``batch_size`` rows at a time (Arrow record batches), holding only the named columns.

    ``columns`` maps the config key that names each column to the column (``{"fields.id_column": "row_id"}``),
    so that every error names the file, ``what`` (the config key of the path), the column and its key.
    Columns of the keys in ``numeric`` come as float64 (missing values as NaN); in CSV the others come as text.
    A missing column, text in a numeric column (with its row in a CSV), an empty or unreadable file raise a
    NotebookInputError before or when the batch holding them is reached. Memory holds one batch (for Parquet:
    one row group of the file, as Arrow decodes row groups whole).
    """
    suffix = check_table_path(path, what=what)
    _require_file(path, what)
    record_data(path)  # its sha256 goes into the run's reproducibility record
    source = f"input data {path} ({what})"
    if path.stat().st_size == 0:
        raise NotebookInputError(f"{source} is empty: expected a header row and rows to score")
    wanted = list(dict.fromkeys(columns.values()))
    as_numbers = {columns[key] for key in numeric}
    try:
        if suffix == ".csv":
            yield from _csv_batches(path, columns, wanted, as_numbers, batch_size, source)
        else:
            yield from _parquet_batches(path, columns, wanted, as_numbers, batch_size, source)
    except (pa.ArrowException, OSError) as exc:  # a truncated or corrupt file, a file that went away
        raise NotebookInputError(f"{source} cannot be read: {str(exc).splitlines()[0]}") from None


def require_columns(frame_columns: Iterable[str], required: Mapping[str, str], *, source: str) -> None:
    """Fail with a message naming each missing column and the config key that asked for it."""
    present = set(frame_columns)
    missing = {key: column for key, column in required.items() if column not in present}
    if missing:
        listing = ", ".join(f"{column!r} (from {key})" for key, column in missing.items())
        raise NotebookInputError(f"{source} is missing column(s) {listing}; it has: {', '.join(sorted(present)[:20])}")


def _key_of(column: str, columns: Mapping[str, str]) -> str:
    return " and ".join(key for key, named in columns.items() if named == column)


def _csv_batches(path: Path, columns: Mapping[str, str], wanted: list[str], as_numbers: set[str], batch_size: int,
                 source: str) -> Iterator[pa.RecordBatch]:
    import pyarrow.csv as pacsv

    header = _csv_header(path, source)
    require_columns(header, columns, source=source)
    types = {column: pa.float64() if column in as_numbers else pa.string() for column in wanted}
    convert = pacsv.ConvertOptions(include_columns=wanted, column_types=types, strings_can_be_null=True)
    try:
        with pacsv.open_csv(path, read_options=pacsv.ReadOptions(block_size=CSV_BLOCK_BYTES), convert_options=convert) as reader:
            yield from _rebatched(reader, batch_size)
    except pa.ArrowInvalid as exc:
        found = _CSV_CONVERSION_ERROR.search(str(exc))
        if found is None:
            raise NotebookInputError(f"{source}: {str(exc).splitlines()[0]}") from None
        column = header[int(found[1])]
        row = _first_row_not_a_number(path, column, convert)
        where = f"data row {row}, " if row is not None else ""
        raise NotebookInputError(
            f"{source}: {where}column {column!r} (from {_key_of(column, columns)}): {found[2]!r} is not a number"
        ) from None


def _csv_header(path: Path, source: str) -> list[str]:
    import pyarrow.csv as pacsv

    try:
        with pacsv.open_csv(path) as reader:
            return reader.schema.names
    except pa.ArrowInvalid as exc:
        raise NotebookInputError(f"{source}: {str(exc).splitlines()[0]}") from None


def _first_row_not_a_number(path: Path, column: str, convert) -> int | None:
    """The 1-based data row of the first value in ``column`` that Arrow cannot read as a number: only on the
    error path, reading the file again with that column as text (Arrow's error names the column, not the row)."""
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv

    def numbers(values: pa.Array) -> bool:
        try:
            pc.cast(values, pa.float64())
        except pa.ArrowInvalid:
            return False
        return True

    as_text = pacsv.ConvertOptions(include_columns=[column], column_types={column: pa.string()},
                                   null_values=convert.null_values, strings_can_be_null=True)
    rows_before = 0
    with pacsv.open_csv(path, convert_options=as_text) as reader:
        for batch in reader:
            values = batch.column(0)
            if not numbers(values):
                low, high = 0, len(values)  # the first bad value is in values[low:high]
                while high - low > 1:
                    middle = (low + high) // 2
                    low, high = (middle, high) if numbers(values.slice(low, middle - low)) else (low, middle)
                return rows_before + low + 1
            rows_before += len(values)
    return None


def _parquet_batches(path: Path, columns: Mapping[str, str], wanted: list[str], as_numbers: set[str], batch_size: int,
                     source: str) -> Iterator[pa.RecordBatch]:
    import pyarrow.parquet as pq

    try:
        file = pq.ParquetFile(path, pre_buffer=False)  # pre-buffering would hold every row group read so far
    except pa.ArrowInvalid as exc:
        raise NotebookInputError(f"{source} is not a readable Parquet file: {str(exc).splitlines()[0]}") from None
    schema = file.schema_arrow
    require_columns(schema.names, columns, source=source)
    for column in sorted(as_numbers):
        kind = schema.field(column).type
        if not (pa.types.is_integer(kind) or pa.types.is_floating(kind) or pa.types.is_boolean(kind)
                or pa.types.is_decimal(kind) or pa.types.is_null(kind)):
            raise NotebookInputError(
                f"{source}: column {column!r} (from {_key_of(column, columns)}) holds {kind} values; expected numbers"
            )
    for batch in file.iter_batches(batch_size=batch_size, columns=wanted):
        yield pa.RecordBatch.from_arrays(
            [column.cast(pa.float64()) if name in as_numbers else column for name, column in zip(batch.schema.names, batch.columns)],
            names=batch.schema.names,
        )


def _rebatched(reader, batch_size: int) -> Iterator[pa.RecordBatch]:
    """Arrow's CSV reader yields a batch per block of bytes: regroup them into batches of ``batch_size`` rows."""
    pending: list[pa.RecordBatch] = []
    held = 0
    for batch in reader:
        pending.append(batch)
        held += batch.num_rows
        while held >= batch_size:
            table = pa.Table.from_batches(pending)
            yield from table.slice(0, batch_size).combine_chunks().to_batches()
            pending = table.slice(batch_size).to_batches()
            held -= batch_size
    if held:
        yield from pa.Table.from_batches(pending).combine_chunks().to_batches()


@contextmanager
def table_writer(path: Path, schema: pa.Schema, *, what: str) -> Iterator[TableWriter]:
    """A writer of record batches to ``path``, CSV or Parquet by its extension (checked here, before any
    batch). Batches go to a temporary file beside ``path`` that replaces it when the ``with`` block ends
    without an error; on an error it is removed, and ``path`` keeps what it held."""
    suffix = check_table_path(path, what=what)
    with atomic_target(path) as tmp:
        writer = TableWriter(tmp, schema, suffix)
        try:
            yield writer
        finally:
            writer.close()


class TableWriter:
    """Writes record batches as they come (Arrow's CSV writer, or a Parquet row group per batch)."""

    def __init__(self, path: Path, schema: pa.Schema, suffix: str):
        if suffix == ".csv":
            import pyarrow.csv as pacsv

            self._writer = pacsv.CSVWriter(str(path), schema)
        else:
            import pyarrow.parquet as pq

            self._writer = pq.ParquetWriter(str(path), schema)
        self.rows = 0

    def write(self, batch: pa.RecordBatch) -> None:
        self._writer.write_batch(batch)
        self.rows += batch.num_rows

    def close(self) -> None:
        self._writer.close()
