"""Parquet with pyarrow: one file per piece, typed columns built a batch at a time.

The pyarrow side of the Parquet format (``transforms/formats/parquet.py`` is its registry
entry, which imports this module only when a Parquet file is written, merged or read, so
that the launcher and every worker of another format never load pyarrow: about 45 MB of
resident memory per process).

Types by CQL type (the Parquet column of the type table in docs/export.md):

=================================  ==================================================
text, ascii, varchar               string
tinyint, smallint, int             int8, int16, int32
bigint, counter                    int64
varint, decimal                    string (exact digits, as CSV writes them)
float, double                      float32, float64 (NaN and infinities kept)
boolean                            bool
blob                               binary
uuid, timeuuid                     string (canonical form)
timestamp                          timestamp(ms, UTC)
date                               date32
time                               time64(ns)
duration                           struct<months int32, days int32, nanoseconds int64>
inet                               string
list, set                          list (sets in Cassandra's order)
vector<T, n>                       list<T> of n elements (see ``arrow_type``)
map<K, V>                          map<K, V>
tuple                              struct<f0, f1, ...>
UDT                                struct of its fields
=================================  ==================================================

Writetimes are timestamp(us, UTC), or int64 with ``--writetime-format micros``; under
``--collection-writetime list`` a non-frozen collection's writetimes are a list of them
(null where an element has none). TTLs are int32 (a list of int32 likewise).

Values outside the range of years 1-9999 are never a problem: timestamps, dates and
writetimes are stored as their integer (ms, days, us since the epoch), which every
Cassandra value fits; a reader that turns them into its own date types may refuse
them, which is why the reader (``parquet_read.read_parquet_rows``) hands such values back
as integers.

Column names are made valid Avro names as the Avro writer does (``[A-Za-z0-9_]``, a
leading ``_`` before a digit, ``_2``, ``_3``... on a clash), names BigQuery and Spark
accept; UDT field names alike. A renamed column keeps its CQL name in the field metadata
``cql_name``. The file's schema metadata ``cassandra_export`` holds, as JSON, each
column's output name, role (value, writetime, ttl) and full CQL type, so the file can be
read back into driver values without the table (``parquet_read``).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import Any

import numpy
import pyarrow as pa
import pyarrow.parquet as pq
from apache_beam.io.filesystems import FileSystems

from transforms import cql_convert, cql_text, cql_types
from transforms.cql_types import CqlType
from transforms.formats.base import SinkConfig, check_width, column_rows, is_list_field
from transforms.table_plan import OutputField, TablePlan

__all__ = [
    "arrow_type",
    "nullable",
    "raw_type",
    "SCALAR_TYPES",
    "struct_field_names",
    "Convert",
    "MIME_TYPE",
    "merge_parquet",
    "open_parquet_writer",
    "parquet_schema",
    "ParquetWriter",
    "SCHEMA_METADATA_KEY",
]

SCHEMA_METADATA_KEY = b"cassandra_export"
MIME_TYPE = "application/vnd.apache.parquet"

_DURATION = pa.struct([("months", pa.int32()), ("days", pa.int32()), ("nanoseconds", pa.int64())])
SCALAR_TYPES: dict[str, pa.DataType] = {
    "text": pa.string(),
    "ascii": pa.string(),
    "tinyint": pa.int8(),
    "smallint": pa.int16(),
    "int": pa.int32(),
    "bigint": pa.int64(),
    "counter": pa.int64(),
    "varint": pa.string(),
    "decimal": pa.string(),
    "float": pa.float32(),
    "double": pa.float64(),
    "boolean": pa.bool_(),
    "blob": pa.binary(),
    "uuid": pa.string(),
    "timeuuid": pa.string(),
    "timestamp": pa.timestamp("ms", tz="UTC"),
    "date": pa.date32(),
    "time": pa.time64("ns"),
    "duration": _DURATION,
    "inet": pa.string(),
}


def struct_field_names(t: CqlType) -> tuple[str, ...]:
    if t.name == "tuple":
        return tuple(f"f{i}" for i in range(len(t.params)))
    return cql_types.udt_field_names(t)


def arrow_type(t: CqlType) -> pa.DataType:
    """The Arrow type of a CQL type."""
    scalar = SCALAR_TYPES.get(t.name)
    if scalar is not None:
        return scalar
    if t.name in ("list", "set", "vector"):
        # Not fixed_size_list for vectors: pyarrow up to 25.0.1 cannot read back a
        # fixed-size list column holding a null cell ("ArrowInvalid: Expected all lists to
        # be of size=3 but index 2 had size=0", Arrow issue 35692, fixed in pyarrow 26,
        # which Beam 2.77 excludes), and Parquet itself has only LIST, which is what
        # DuckDB, Spark and BigQuery see either way. The dimension is in the CQL type of
        # the schema metadata.
        return pa.list_(arrow_type(t.params[0]))
    if t.name == "map":
        return pa.map_(arrow_type(t.params[0]), arrow_type(t.params[1]))
    if t.name in ("tuple", "udt"):
        names = struct_field_names(t)
        return pa.struct([(n, arrow_type(p)) for n, p in zip(names, t.params, strict=True)])
    raise ValueError(f"no Parquet type for CQL type {t}")


def _meta_type(field: OutputField, sink: SinkConfig, policy: str) -> pa.DataType:
    if field.role == "writetime":
        single = pa.timestamp("us", tz="UTC") if sink.writetime_format == "iso" else pa.int64()
    else:
        single = pa.int32()
    return pa.list_(single) if is_list_field(field, policy) else single


def parquet_schema(plan: TablePlan, sink: SinkConfig, policy: str) -> pa.Schema:
    """The export's Arrow schema, with the CQL description in its metadata."""
    used: set[str] = set()
    fields = []
    described = []
    for field in plan.output_fields:
        name = cql_types.avro_field_name(field.name, used)
        if field.role == "value":
            data_type = arrow_type(field.column.cql_type)
        else:
            data_type = _meta_type(field, sink, policy)
        metadata = {b"cql_name": field.name.encode("utf-8")} if name != field.name else None
        fields.append(pa.field(name, data_type, nullable=True, metadata=metadata))
        described.append(
            {
                "name": field.name,
                "role": field.role,
                "column": field.column.name,
                "cql_type": field.column.cql_type.to_json(),
                "list": is_list_field(field, policy),
            }
        )
    description = {
        "keyspace": plan.keyspace,
        "table": plan.table,
        "writetime_format": sink.writetime_format,
        "columns": described,
    }
    return pa.schema(fields, metadata={SCHEMA_METADATA_KEY: json.dumps(description)})


# --- driver values -> values pyarrow takes for the Arrow type -------------------------------

Convert = Callable[[Any], Any]


def _padded(value: Sequence[Any], count: int) -> tuple[Any, ...]:
    """A tuple or UDT value by position; the driver leaves out missing trailing fields."""
    items = tuple(value)
    return items + (None,) * (count - len(items)) if len(items) < count else items[:count]


def nullable(convert: Convert | None) -> Convert:
    if convert is None:
        return lambda value: value
    return lambda value: None if value is None else convert(value)


def _to_arrow(t: CqlType, nested: bool = True) -> Convert | None:
    """Non-null driver value of ``t`` -> what ``pa.array`` takes for ``arrow_type(t)``;
    None when the value goes in as it is. Top-level timestamps arrive as int ms, nested
    ones as datetimes (``nested``)."""
    name = t.name
    if name in ("varint", "decimal"):
        return cql_convert.csv_formatter(t)
    if name in ("uuid", "timeuuid"):
        return str
    if name == "timestamp":
        return cql_text.timestamp_millis if nested else None
    if name == "date":
        return lambda value: value.days_from_epoch
    if name == "time":
        return lambda value: value.nanosecond_time
    if name == "duration":
        return lambda value: (value.months, value.days, value.nanoseconds)
    if name in SCALAR_TYPES:
        return None
    if name in ("list", "set", "vector"):
        element = _to_arrow(t.params[0])
        if element is None:
            return list
        element = nullable(element)
        return lambda value: [element(item) for item in value]
    if name == "map":
        key, item = nullable(_to_arrow(t.params[0])), nullable(_to_arrow(t.params[1]))
        return lambda value: [(key(k), item(v)) for k, v in value.items()]
    if name in ("tuple", "udt"):
        parts = tuple(nullable(_to_arrow(p)) for p in t.params)
        count = len(parts)
        return lambda value: tuple(
            part(item) for part, item in zip(parts, _padded(value, count), strict=True)
        )
    raise ValueError(f"no Parquet rendering for CQL type {t}")


def _column_fn(field: OutputField) -> Callable[[Sequence[Any]], Sequence[Any]] | None:
    """A batch's column -> values for ``pa.array`` (None: as it is)."""
    if field.role != "value":
        return None  # writetimes (us) and TTLs are the integers Arrow stores
    convert = _to_arrow(field.column.cql_type, nested=False)
    if convert is None:
        return None
    return lambda column: [None if v is None else convert(v) for v in column]


# A row group is written early once its buffered batches hold this much Arrow data, so a
# worker holding several open pieces of a wide table stays lean whatever the row count.
_ROW_GROUP_BYTES = 32 * 1024 * 1024


class _RowGroups:
    """Record batches buffered into row groups of ``rows`` rows (fewer when
    ``_ROW_GROUP_BYTES`` of data come first)."""

    def __init__(self, writer: pq.ParquetWriter, rows: int) -> None:
        self._writer = writer
        self._rows = rows
        self._batches: list[pa.RecordBatch] = []
        self._buffered_rows = 0
        self._buffered_bytes = 0

    def add(self, batch: pa.RecordBatch) -> None:
        self._batches.append(batch)
        self._buffered_rows += batch.num_rows
        self._buffered_bytes += batch.nbytes
        if self._buffered_rows >= self._rows or self._buffered_bytes >= _ROW_GROUP_BYTES:
            self.flush()

    def flush(self) -> None:
        if self._batches:
            table = pa.Table.from_batches(self._batches)
            self._writer.write_table(table, row_group_size=self._rows)
            self._batches, self._buffered_rows, self._buffered_bytes = [], 0, 0


# A column's dictionary page is given up for plain encoding past 64 KB (Parquet's default
# is 1 MB). Columns of mostly distinct values (text, doubles, timestamps...) then stop
# hashing early. Measured on the narrow bench table's rows, 100,000-row pieces: 819 KB
# per file instead of 1,353 KB, about 0.8 µs per row instead of 1.2-1.4, and 15 MB more
# RSS after three pieces instead of 22. A column of a few thousand distinct short values
# per row group keeps its dictionary.
_DICTIONARY_PAGE_BYTES = 64 * 1024


def _parquet_writer(handle: Any, schema: pa.Schema, sink: SinkConfig) -> pq.ParquetWriter:
    return pq.ParquetWriter(
        handle,
        schema,
        compression=sink.parquet_codec,
        dictionary_pagesize_limit=_DICTIONARY_PAGE_BYTES,
    )


class ParquetWriter:
    """Rows of one piece -> one Parquet file, row groups of ``parquet_row_group_rows`` rows
    (or 32 MB of Arrow data, whichever comes first)."""

    def __init__(self, handle: Any, plan: TablePlan, sink: SinkConfig, policy: str) -> None:
        self._handle = handle
        self._schema = parquet_schema(plan, sink, policy)
        self._columns = [_column_fn(f) for f in plan.output_fields]
        # Values of temporal types arrive (or are converted) as their integers: build the
        # integer array and view it as the temporal type, 3x faster than pyarrow's
        # conversion of ints straight into a timestamp array.
        self._storage = [raw_type(f.type) for f in self._schema]
        self._writer = _parquet_writer(handle, self._schema, sink)
        self._groups = _RowGroups(self._writer, sink.parquet_row_group_rows)

    def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        check_width(rows, len(self._columns))
        arrays = []
        for convert, column, storage, field in zip(
            self._columns, zip(*rows, strict=True), self._storage, self._schema, strict=True
        ):
            array = pa.array(column if convert is None else convert(column), type=storage)
            arrays.append(array if storage == field.type else array.view(field.type))
        self._groups.add(pa.RecordBatch.from_arrays(arrays, schema=self._schema))

    def write_columns(self, columns: Sequence[Any]) -> None:
        """Append the rows of a ``ColumnBatch`` (its columns, in ``plan.output_fields``
        order): the same Arrow arrays, so the same file, as ``write_rows`` of those rows.
        Masked arrays of numbers (no conversion ever applies to them) go into Arrow
        without a Python object per value, their mask as the nulls; object arrays of
        driver values are converted as ``write_rows`` converts a column."""
        if not column_rows(columns, len(self._columns)):
            return
        arrays = []
        for convert, column, storage, field in zip(
            self._columns, columns, self._storage, self._schema, strict=True
        ):
            if isinstance(column, numpy.ma.MaskedArray):
                mask = numpy.ma.getmaskarray(column)
                data = numpy.ma.getdata(column)
                array = pa.array(data, mask=mask if mask.any() else None, type=storage)
            else:
                array = pa.array(column if convert is None else convert(column), type=storage)
            arrays.append(array if storage == field.type else array.view(field.type))
        self._groups.add(pa.RecordBatch.from_arrays(arrays, schema=self._schema))

    def close(self) -> None:
        self._groups.flush()
        self._writer.close()
        self._handle.close()


def open_parquet_writer(path: str, plan: TablePlan, sink: SinkConfig, policy: str) -> ParquetWriter:
    return ParquetWriter(FileSystems.create(path, mime_type=MIME_TYPE), plan, sink, policy)


def merge_parquet(parts: Sequence[str], target: str, sink: SinkConfig) -> None:
    """The parts' rows, in order, in one Parquet file with the parts' schema."""
    with FileSystems.open(parts[0], mime_type=MIME_TYPE) as first:
        schema = pq.ParquetFile(first).schema_arrow
    with FileSystems.create(target, mime_type=MIME_TYPE) as out:
        writer = _parquet_writer(out, schema, sink)
        groups = _RowGroups(writer, sink.parquet_row_group_rows)
        for part in parts:
            with FileSystems.open(part, mime_type=MIME_TYPE) as handle:
                source = pq.ParquetFile(handle)
                if not source.schema_arrow.equals(schema, check_metadata=True):
                    raise ValueError(f"{part} has another schema than {parts[0]}")
                for batch in source.iter_batches(batch_size=sink.parquet_row_group_rows):
                    groups.add(batch)
        groups.flush()
        writer.close()


# --- reading back: Arrow values -> values the Cassandra driver binds -----------------------


def raw_type(data_type: pa.DataType) -> pa.DataType:
    """``data_type`` with timestamps, dates and times as their integers: to_pylist cannot
    turn an out-of-range timestamp into a datetime, and time64(ns) would lose digits."""
    if pa.types.is_timestamp(data_type) or pa.types.is_time64(data_type):
        return pa.int64()
    if pa.types.is_date32(data_type):
        return pa.int32()
    if pa.types.is_list(data_type):
        return pa.list_(raw_type(data_type.value_type))
    if pa.types.is_map(data_type):
        return pa.map_(raw_type(data_type.key_type), raw_type(data_type.item_type))
    if pa.types.is_struct(data_type):
        return pa.struct([(f.name, raw_type(f.type)) for f in data_type])
    return data_type
