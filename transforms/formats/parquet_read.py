"""Exported Parquet files read back: rows or columns of the values the Cassandra driver binds.

The reading side of the Parquet format (the writer and the type table are in
:mod:`transforms.formats.parquet_arrow`): every value is read from the column's integer or
string form and made the driver's value by the file's own description of its columns (the
schema metadata ``cassandra_export``: output name, role, full CQL type), so no table is
needed. Imported only where a Parquet file is read (pyarrow).
"""

from __future__ import annotations

import datetime
import json
import uuid
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems
from cassandra.util import Date, Duration, OrderedMap, SortedSet, Time

from transforms.cql_types import CqlType
from transforms.formats.parquet_arrow import (
    MIME_TYPE,
    SCALAR_TYPES,
    SCHEMA_METADATA_KEY,
    Convert,
    nullable,
    raw_type,
    struct_field_names,
)

__all__ = ["check_parquet_file", "read_parquet_columns", "read_parquet_rows"]


_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def _timestamp(millis: int) -> datetime.datetime | int:
    try:
        return _EPOCH + datetime.timedelta(milliseconds=millis)
    except OverflowError:  # outside years 1-9999: the driver binds the int (ms) as well
        return millis


def _from_arrow(t: CqlType, sets_in_file_order: bool = False) -> Convert | None:
    """Non-null raw Python value of ``t`` (``raw_type`` then to_pylist) -> the driver's
    value; None where it already is one. ``sets_in_file_order``: sets as lists in the order
    the file holds them (Cassandra's), so they line up with per-element writetime lists."""
    name = t.name
    simple: dict[str, Convert] = {
        "varint": int,
        "decimal": Decimal,
        "uuid": uuid.UUID,
        "timeuuid": uuid.UUID,
        "timestamp": _timestamp,
        "date": Date,
        "time": Time,
        "duration": lambda d: Duration(d["months"], d["days"], d["nanoseconds"]),
    }
    if name in simple:
        return simple[name]
    if name in SCALAR_TYPES:
        return None
    if name in ("list", "set", "vector"):
        element = nullable(_from_arrow(t.params[0], sets_in_file_order))
        if name == "set" and not sets_in_file_order:
            return lambda value: SortedSet(element(item) for item in value)
        return lambda value: [element(item) for item in value]
    if name == "map":
        key = nullable(_from_arrow(t.params[0], sets_in_file_order))
        item = nullable(_from_arrow(t.params[1], sets_in_file_order))
        return lambda value: OrderedMap([(key(k), item(v)) for k, v in value])
    if name in ("tuple", "udt"):
        named = tuple(
            (n, nullable(_from_arrow(p, sets_in_file_order)))
            for n, p in zip(struct_field_names(t), t.params, strict=True)
        )
        return lambda value: tuple(part(value[n]) for n, part in named)
    raise ValueError(f"no Parquet reading for CQL type {t}")


def _column_reader(described: dict[str, Any], sets_in_file_order: bool) -> Convert | None:
    if described["role"] != "value":
        return None  # writetimes as int microseconds, TTLs as int seconds (lists as lists)
    return _from_arrow(CqlType.from_json(described["cql_type"]), sets_in_file_order)


def check_parquet_file(file: Any) -> tuple[list[str], int]:
    """An exported Parquet file's output column names and row count (from its footer), after
    every row group was read and dropped, so that a damaged page fails here and not after
    rows were used; one row group is held at a time. ``file``: a seekable binary file."""
    source = pq.ParquetFile(file)
    columns = _described_columns(source)
    for index in range(source.num_row_groups):
        source.read_row_group(index)
    return [c["name"] for c in columns], source.metadata.num_rows


def read_parquet_rows(
    file: Any, batch_rows: int = 10_000, *, sets_in_file_order: bool = False
) -> Iterator[dict[str, Any]]:
    """The rows of an exported Parquet file as values the Cassandra driver binds.

    Args:
        file: a path (local, gs://, ... through Beam's FileSystems) or a binary file
            object of a Parquet file written by this exporter (a part or the merged file).
        batch_rows: rows decoded at a time (memory stays flat whatever the file's size).
        sets_in_file_order: sets as lists in the file's (Cassandra's) order instead of
            ``SortedSet``, so they line up with per-element writetime lists (restore).

    Yields:
        One dict per row, keyed by the export's output column names (the CQL names, not
        the Parquet-safe ones), in column order. Values by CQL type: ``int`` for the
        integer types and varint; ``Decimal``; ``float``; ``bool``; ``str`` for text,
        ascii and inet; ``bytes``; ``uuid.UUID``; timestamps as UTC-aware ``datetime``
        (an ``int`` of milliseconds outside years 1-9999); ``cassandra.util.Date``,
        ``Time``, ``Duration``; lists and vectors as ``list``, sets as
        ``cassandra.util.SortedSet``, maps as ``cassandra.util.OrderedMap``, tuples and
        UDTs as ``tuple`` in field order (the driver binds tuples for both); None for
        null. Writetime columns are ``int`` microseconds and TTL columns ``int`` seconds,
        whatever ``--writetime-format`` was; under ``--collection-writetime list`` both
        are lists (None where an element has none).
    """
    if isinstance(file, str):
        with FileSystems.open(file, mime_type=MIME_TYPE) as handle:
            yield from read_parquet_rows(handle, batch_rows, sets_in_file_order=sets_in_file_order)
        return
    source = pq.ParquetFile(file)
    names = [c["name"] for c in _described_columns(source)]
    for values in _column_batches(source, batch_rows, sets_in_file_order, False):
        for row in zip(*values, strict=True):
            yield dict(zip(names, row, strict=True))


def read_parquet_columns(
    file: Any,
    batch_rows: int = 10_000,
    *,
    sets_in_file_order: bool = False,
    timestamps_as_millis: bool = False,
) -> Iterator[list[list[Any]]]:
    """The columns of an exported Parquet file, ``batch_rows`` rows at a time: per batch, a
    list of values per output column in the file's order (the export's), with the values
    :func:`read_parquet_rows` gives, except that ``timestamps_as_millis`` leaves a
    ``timestamp`` column's values as integer milliseconds (what the restore reads from the
    other formats, exact in every year) instead of making a ``datetime`` of each.
    ``file``: as for :func:`read_parquet_rows`."""
    if isinstance(file, str):
        with FileSystems.open(file, mime_type=MIME_TYPE) as handle:
            yield from read_parquet_columns(
                handle,
                batch_rows,
                sets_in_file_order=sets_in_file_order,
                timestamps_as_millis=timestamps_as_millis,
            )
        return
    yield from _column_batches(
        pq.ParquetFile(file), batch_rows, sets_in_file_order, timestamps_as_millis
    )


def _described_columns(source: Any) -> list[dict[str, Any]]:
    """The exporter's description of a Parquet file's columns (its schema metadata)."""
    return json.loads(source.schema_arrow.metadata[SCHEMA_METADATA_KEY])["columns"]


def _column_batches(
    source: Any, batch_rows: int, sets_in_file_order: bool, timestamps_as_millis: bool
) -> Iterator[list[list[Any]]]:
    """Per batch of rows, each column's values (see :func:`read_parquet_columns`)."""
    readers = []
    for described in _described_columns(source):
        millis = described["role"] == "value" and described["cql_type"]["name"] == "timestamp"
        readers.append(
            None
            if millis and timestamps_as_millis
            else _column_reader(described, sets_in_file_order)
        )
    raw_types = [raw_type(f.type) for f in source.schema_arrow]
    for batch in source.iter_batches(batch_size=batch_rows):
        values = []
        for array, storage, read in zip(batch.columns, raw_types, readers, strict=True):
            column = array.cast(storage).to_pylist()
            if read is not None:
                column = [None if v is None else read(v) for v in column]
            values.append(column)
        yield values
