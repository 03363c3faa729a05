"""Reading committed export files back into typed Python values, exactly.

The inverse of the renderings in :mod:`transforms.cql_types` and the unit writers of
:mod:`transforms.sinks`, for CSV, JSON lines, JSON and Avro::

    layout = ExportLayout.from_manifest(read_json(".../_manifest/export.json"))
    for row in read_unit_rows(".../data/part-00003.csv.gz", layout):
        row.values["tags"], row.writetimes["tags"], row.ttls["tags"]

A decoder is planned once per output field from the column's CQL type, then run over a
whole column of the file, never chosen by the Python type of a value. Values come back
as the cassandra-driver binds them:

- text, ints, varint, booleans, floats, doubles, ``inet`` as ``str``/``int``/``bool``/
  ``float``/``str``; a ``float`` is the float32 value (as the driver returns it);
- ``decimal`` a :class:`~decimal.Decimal` built from the exported digits; ``blob`` bytes;
  ``uuid``/``timeuuid`` :class:`uuid.UUID`;
- ``timestamp`` integer milliseconds since the epoch (exact in every year, which a
  ``datetime`` is not; the driver binds an int as milliseconds);
- ``date`` :class:`cassandra.util.Date`, ``time`` :class:`cassandra.util.Time`,
  ``duration`` :class:`cassandra.util.Duration`;
- ``list``, ``vector`` and ``set`` a list (a set in Cassandra's order, so element ``i``
  pairs with writetime ``i`` under ``--collection-writetime list``); ``map`` a dict in
  Cassandra's order (a :class:`cassandra.util.OrderedMap` when its keys are collections
  or UDTs, which a dict cannot hold); ``tuple`` a tuple; a UDT a :class:`UdtValue` (a
  dict by field name that the driver can also bind).

Writetimes are integer microseconds, TTLs integer seconds; a collection's are a list
(``None`` where an element has none) under ``--collection-writetime list``.

In CSV, null and the empty string stay apart: null is the unquoted ``--null-value`` and
the exporter quotes an empty string (and any text equal to the null text).

What a file cannot tell: ``decimal`` values with a positive exponent are exported in
plain notation (``1.5E+3`` as ``1500``), so the decoded value is numerically equal with
scale 0. A unit file cut exactly at a row boundary reads as a shorter, valid file: compare
the row count with the unit's marker (``_manifest/ranges/<unit>.json``, ``rows``). Avro
has no checksum: with ``--avro-codec null`` a damaged byte inside a block can decode as
another valid value.

Memory: a unit file is read twice, as a stream, and never held whole (a unit holds more
rows as a table grows). The first pass checks the whole file's structure before a row is
handed out: compression (to the end of the data), the last record's line end, the CSV
header, quotes and line breaks, the JSON array's lines, Avro blocks and sync markers,
every Parquet row group, and the row count against the unit's marker; no value is decoded.
The second pass decodes the rows and hands them out ``CHUNK_ROWS`` at a time. A value
that cannot be decoded is found in its chunk: :class:`ExportFileError` is then raised
while the rows are iterated, after the rows of earlier chunks were handed out.

Modules: :mod:`transforms.export_layout` (the layout from the manifest),
:mod:`transforms.export_stream` (a file's bytes and text, a block at a time),
:mod:`transforms.export_files` (the records of each format),
:mod:`transforms.value_decoders` (raw values to typed values),
:mod:`transforms.csv_arrow` (a CSV unit's columns read by Arrow, decoded from their bytes).
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from transforms.cql_types import CqlType
from transforms.csv_arrow import arrow_csv_tables, arrow_csv_usable, field_decoders
from transforms.export_files import (
    avro_chunks,
    brief,
    check_avro,
    check_csv,
    check_json,
    check_jsonl,
    check_row_count,
    csv_chunks,
    csv_segments,
    json_chunks,
    jsonl_chunks,
)
from transforms.export_layout import ExportFileError, ExportLayout, LayoutField, UdtValue
from transforms.export_stream import byte_blocks, first_line, open_unit_file, text_blocks
from transforms.typed_column import as_list
from transforms.value_decoders import column_decoders, csv_kinds

__all__ = [
    "CHUNK_ROWS",
    "DecodedRow",
    "ExportFileError",
    "ExportLayout",
    "LayoutField",
    "UdtValue",
    "read_unit_columns",
    "read_unit_rows",
    "rows_of",
]

# Rows decoded at a time: large enough that per-chunk costs vanish, small enough that a
# chunk's values are a few MB whatever the unit's size.
CHUNK_ROWS = 2000


@dataclass(slots=True)
class DecodedRow:
    """One exported row: values by column, writetimes and TTLs by column."""

    values: dict[str, Any]
    writetimes: dict[str, int | list[int | None] | None]
    ttls: dict[str, int | list[int | None] | None]


def read_unit_rows(
    path: str, layout: ExportLayout, expected_rows: int | None = None, chunk_rows: int = CHUNK_ROWS
) -> Iterator[DecodedRow]:
    """Decode one committed unit file (any FileSystems path) into rows.

    The whole file is read and its structure checked before this returns (see the module's
    notes), so a truncated file raises :class:`ExportFileError` before any of its rows
    are used; ``expected_rows`` (the unit marker's count) also catches a file cut at a row
    boundary, which still parses. The file is then read again as the rows are iterated,
    decoded ``chunk_rows`` at a time; a bad value raises :class:`ExportFileError` then.
    """
    chunks = read_unit_columns(path, layout, expected_rows, chunk_rows)
    return itertools.chain.from_iterable(map(functools.partial(rows_of, layout), chunks))


def read_unit_columns(
    path: str,
    layout: ExportLayout,
    expected_rows: int | None = None,
    chunk_rows: int = CHUNK_ROWS,
    typed: bool = False,
) -> Iterator[list[Any]]:
    """Decode one committed unit file of any format into chunks of columns:
    per chunk of ``chunk_rows`` rows, a list of decoded values per field of the layout (in
    ``layout.fields`` order, None for null). Checked as :func:`read_unit_rows` checks (the
    whole file's structure before this returns, a bad value when its chunk is reached).
    ``typed``: a column of numbers, booleans or timestamps that a CSV file's reader
    decodes from its bytes may come as a ``TypedColumn`` of the same values (see
    :mod:`transforms.typed_column`); :func:`rows_of` takes either."""
    if layout.format == "parquet":
        _check_parquet(path, layout, expected_rows)
        return _parquet_columns(path, layout, chunk_rows)
    if layout.format == "avro":
        check_avro(path, layout, expected_rows)
    elif layout.format == "csv":
        check_csv(path, _texts(path, layout), layout, expected_rows)
        if arrow_csv_usable(layout):
            return _arrow_csv_columns(path, layout, chunk_rows, typed)
    elif layout.format == "jsonl":
        check_jsonl(path, _texts(path, layout), expected_rows)
    else:
        check_json(path, _texts(path, layout), expected_rows)
    return _decoded_chunks(
        path, layout, column_decoders(layout), _raw_chunks(path, layout, chunk_rows)
    )


def _texts(path: str, layout: ExportLayout) -> Iterator[str]:
    """A text file's UTF-8 text, decompressed, a block at a time (a pass from its start)."""
    return text_blocks(path, byte_blocks(path, layout.compression))


def _raw_chunks(path: str, layout: ExportLayout, chunk_rows: int) -> Iterator[list[list[Any]]]:
    """The file's raw fields (before decoding), ``chunk_rows`` records at a time."""
    if layout.format == "avro":
        return avro_chunks(path, layout, chunk_rows)
    chunks = {"csv": csv_chunks, "jsonl": jsonl_chunks, "json": json_chunks}[layout.format]
    return chunks(path, _texts(path, layout), layout, chunk_rows)


def _decoded(
    path: str, layout: ExportLayout, decoders: list[Any], columns: list[list[Any]]
) -> list[list[Any]]:
    for index, decode in enumerate(decoders):
        try:
            columns[index] = decode(columns[index])
        except Exception as exc:  # a value the exporter cannot have written
            raise ExportFileError(
                path, f"field {layout.fields[index].name!r}: bad value ({first_line(exc)})"
            ) from None
    return columns


def _decoded_chunks(
    path: str, layout: ExportLayout, decoders: list[Any], chunks: Iterator[list[list[Any]]]
) -> Iterator[list[list[Any]]]:
    for columns in chunks:
        yield _decoded(path, layout, decoders, columns)


def _arrow_csv_columns(
    path: str, layout: ExportLayout, chunk_rows: int, typed: bool
) -> Iterator[list[Any]]:
    """A checked CSV unit's decoded columns, ``chunk_rows`` rows at a time, read by Arrow
    (:mod:`transforms.csv_arrow`: the same values, less CPU). Where Arrow refuses the file
    (a record with a wrong field count), the rest is read by the text path, from the first
    chunk not yet handed out, which raises its own message at the bad record."""
    import pyarrow

    decoders = column_decoders(layout)
    arrays = field_decoders(csv_kinds(layout), decoders, typed)
    tables = arrow_csv_tables(csv_segments(path, _texts(path, layout)), layout, chunk_rows)
    handed = 0
    while True:
        try:
            table = next(tables, None)
        except pyarrow.ArrowException:
            raw = _raw_chunks(path, layout, chunk_rows)
            for _ in range(handed):
                next(raw)
            yield from _decoded_chunks(path, layout, decoders, raw)
            return
        if table is None:
            return
        columns = [column.combine_chunks() for column in table.columns]
        yield _decoded(path, layout, arrays, columns)
        handed += 1


def _check_parquet(path: str, layout: ExportLayout, expected_rows: int | None) -> None:
    """A Parquet unit read whole once (a row group at a time, by the Parquet format's own
    reader), so a corrupt file fails before any row is used; its columns and row count."""
    from transforms.formats.parquet import check_parquet_file

    with open_unit_file(path) as handle:
        try:
            names, rows = check_parquet_file(handle)
        except Exception as exc:  # pyarrow's errors have no common base class
            raise ExportFileError(
                path, f"not a readable Parquet file ({first_line(exc)})"
            ) from None
    check_row_count(path, rows, expected_rows)
    expected = list(layout.field_names)
    if rows and names != expected:
        raise ExportFileError(
            path, f"columns {brief(names)} do not match the export's {brief(expected)}"
        )


def _parquet_columns(path: str, layout: ExportLayout, chunk_rows: int) -> Iterator[list[list[Any]]]:
    """A Parquet unit's columns, ``chunk_rows`` rows at a time, decoded by the Parquet
    format's own reader with the values the other formats decode to (timestamps as integer
    milliseconds, UDTs as :class:`UdtValue`, sets in the file's order)."""
    from transforms.formats.parquet import read_parquet_columns

    udts = [
        i for i, f in enumerate(layout.fields) if f.role == "value" and f.cql_type.name == "udt"
    ]
    chunks = read_parquet_columns(
        path, chunk_rows, sets_in_file_order=True, timestamps_as_millis=True
    )
    while True:
        try:
            columns = next(chunks)
        except StopIteration:
            return
        except Exception as exc:  # pyarrow's errors have no common base class
            raise ExportFileError(
                path, f"not a readable Parquet file ({first_line(exc)})"
            ) from None
        for i in udts:
            columns[i] = [_udt_of(layout.fields[i].cql_type, value) for value in columns[i]]
        yield columns


def _udt_of(t: CqlType, value: Any) -> Any:
    # Parquet's reader gives UDTs as tuples in field order; the other formats as UdtValue,
    # keyed by the CQL field names (not the Parquet-safe ones: "with space", not "with_space").
    if value is None or t.name != "udt":
        return value
    return UdtValue(zip(t.field_names, value, strict=True))


def rows_of(layout: ExportLayout, columns: list[Any]) -> Iterator[DecodedRow]:
    """The rows of one chunk of decoded columns (as :func:`read_unit_columns` gives them)."""
    columns = [as_list(column) for column in columns]
    groups = []
    for role in ("value", "writetime", "ttl"):
        indexes = [i for i, f in enumerate(layout.fields) if f.role == role]
        names = [layout.fields[i].column for i in indexes]
        # zip() of no columns yields no rows: a role without fields is empty per row
        rows = zip(*(columns[i] for i in indexes), strict=True) if indexes else itertools.repeat(())
        groups.append((names, rows))
    (value_names, values), (writetime_names, writetimes), (ttl_names, ttls) = groups
    for value, writetime, ttl in zip(values, writetimes, ttls, strict=False):  # repeat()
        yield DecodedRow(
            dict(zip(value_names, value, strict=True)),
            dict(zip(writetime_names, writetime, strict=True)),
            dict(zip(ttl_names, ttl, strict=True)),
        )
