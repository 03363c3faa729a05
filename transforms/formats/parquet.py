"""Parquet: the registry entry of ``--format parquet``, without pyarrow.

pyarrow costs a process about 45 MB of resident memory and 0.3 s to import. Every module
of a run imports the format registry (the options, the launcher's checks, the writer DoFn
the workers unpickle), but only a worker that writes Parquet, a ``--single-file`` merge and
a restore of a Parquet export need pyarrow. So this entry names the format and hands each
call to ``transforms/formats/parquet_arrow.py`` (the writer, the merger and the type
table) or ``parquet_read.py`` (the reader), imported at its first call: a CSV export, or
the launcher of a Parquet one, never loads pyarrow.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

from transforms.formats.base import Format, SinkConfig, UnitWriter
from transforms.table_plan import TablePlan

__all__ = [
    "FORMAT",
    "check_parquet_file",
    "merge_parquet",
    "open_parquet_writer",
    "read_parquet_columns",
    "read_parquet_rows",
]


def open_parquet_writer(path: str, plan: TablePlan, sink: SinkConfig, policy: str) -> UnitWriter:
    """A Parquet writer creating ``path`` (``parquet_arrow.ParquetWriter``)."""
    from transforms.formats import parquet_arrow

    return parquet_arrow.open_parquet_writer(path, plan, sink, policy)


def merge_parquet(parts: Sequence[str], target: str, sink: SinkConfig) -> None:
    """The parts' rows, in order, in one Parquet file (``parquet_arrow.merge_parquet``)."""
    from transforms.formats import parquet_arrow

    parquet_arrow.merge_parquet(parts, target, sink)


def check_parquet_file(file: Any) -> tuple[list[str], int]:
    """An exported Parquet file's column names and row count, every row group read
    (``parquet_read.check_parquet_file``)."""
    from transforms.formats import parquet_read

    return parquet_read.check_parquet_file(file)


def read_parquet_rows(
    file: Any, batch_rows: int = 10_000, *, sets_in_file_order: bool = False
) -> Iterator[dict[str, Any]]:
    """The rows of an exported Parquet file as driver values: see
    ``parquet_read.read_parquet_rows``, which documents the values."""
    from transforms.formats import parquet_read

    return parquet_read.read_parquet_rows(file, batch_rows, sets_in_file_order=sets_in_file_order)


def read_parquet_columns(
    file: Any,
    batch_rows: int = 10_000,
    *,
    sets_in_file_order: bool = False,
    timestamps_as_millis: bool = False,
) -> Iterator[list[list[Any]]]:
    """The columns of an exported Parquet file, a batch of rows at a time: see
    ``parquet_read.read_parquet_columns``."""
    from transforms.formats import parquet_read

    return parquet_read.read_parquet_columns(
        file,
        batch_rows,
        sets_in_file_order=sets_in_file_order,
        timestamps_as_millis=timestamps_as_millis,
    )


FORMAT = Format(
    name="parquet",
    extension=".parquet",
    text_compression=False,
    open_writer=open_parquet_writer,
    merge=merge_parquet,
    read_rows=read_parquet_rows,
    takes_columns=True,
)
