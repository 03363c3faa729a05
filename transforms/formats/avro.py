"""Avro: one object container file per piece, schema derived from the table metadata.

Every column is a nullable union (null first, default null); field and record names
are made valid Avro names (``cql_types.avro_field_name``) and a renamed field keeps
its CQL name in its ``doc``. Blocks are compressed with ``--avro-codec``.

Writetimes follow ``--writetime-format``: ``iso`` (default) writes ``long`` with the
``timestamp-micros`` logical type, Avro's own type for an instant, so readers show a
timestamp; ``micros`` writes a plain ``long`` (the same integer, no logical type), so
readers hand out the integer Cassandra stores. TTLs are ``int``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from apache_beam.io.filesystems import FileSystems

from transforms import cql_convert, cql_types
from transforms.formats.avro_encoding import interleave, nullable_column_encoder, varints
from transforms.formats.base import Format, SinkConfig, check_width, column_rows, is_list_field
from transforms.table_plan import OutputField, TablePlan

__all__ = [
    "avro_schema_for",
    "AvroWriter",
    "FORMAT",
    "merge_avro",
    "open_avro_writer",
    "read_avro_rows",
]

_WRITETIME_SCHEMAS: dict[str, Any] = {
    "iso": {"type": "long", "logicalType": "timestamp-micros"},
    "micros": "long",
}


def avro_schema_for(
    plan: TablePlan, policy: str, writetime_format: str = "iso"
) -> tuple[dict[str, Any], list[str]]:
    """The Avro schema of the export and the Avro field name of each output column."""
    names = cql_types.AvroNames(reserved=())
    used: set[str] = set()
    fields = []
    field_names = []
    for field in plan.output_fields:
        avro_name = cql_types.avro_field_name(field.name, used)
        field_names.append(avro_name)
        multi = is_list_field(field, policy)
        if field.role == "value":
            schema = cql_convert.avro_schema(field.column.cql_type, field.name, names)
        elif field.role == "writetime":
            schema = _WRITETIME_SCHEMAS[writetime_format]
            if multi:
                schema = {"type": "array", "items": ["null", schema]}  # UDT: null per null field
        else:
            schema = {"type": "array", "items": ["null", "int"]} if multi else "int"
        entry: dict[str, Any] = {"name": avro_name, "type": ["null", schema], "default": None}
        if avro_name != field.name:
            entry["doc"] = f"CQL column {field.name}"
        fields.append(entry)
    schema = {
        "type": "record",
        "name": names.record_name(f"{plan.table}_row"),
        "namespace": "cassandra_export." + cql_types.avro_field_name(plan.keyspace, set()),
        "doc": f"Export of {plan.keyspace}.{plan.table} with writetimes",
        "fields": fields,
    }
    return schema, field_names


# A block is written once the batches' encoded records reach this size (fastavro's
# sync interval of the earlier writer: the same block sizes, the same compression).
_BLOCK_BYTES = 256 * 1024

# Deflate level of the ``deflate`` codec, through zlib-ng: level 2 compresses the
# narrow bench table's blocks about 6x faster than zlib's default level 6 (0.3 against
# 1.8 µs per row) into blocks about 5% larger; any inflater reads them.
DEFLATE_LEVEL = 2


def _deflate(data: bytes) -> bytes:
    from zlib_ng import zlib_ng

    compressor = zlib_ng.compressobj(DEFLATE_LEVEL, zlib_ng.DEFLATED, -15)  # raw deflate
    return compressor.compress(data) + compressor.flush()


def _zstandard(data: bytes) -> bytes:
    try:
        from compression import zstd  # Python 3.14 and later
    except ImportError:
        from backports import zstd  # the same module, pinned for earlier Pythons

    return zstd.compress(data)


# Avro codec -> block data compressor (the Avro specification's codecs).
_COMPRESSORS: dict[str, Callable[[bytes], bytes]] = {
    "null": lambda data: data,
    "deflate": _deflate,
    "zstandard": _zstandard,
}


class _BlockWriter:
    """An Avro object container file: fastavro writes the header (magic, the schema as
    fastavro writes it, the codec, a random sync marker); blocks of records already
    encoded follow, compressed here with ``codec``."""

    def __init__(self, handle: Any, schema: dict[str, Any], codec: str) -> None:
        import fastavro

        self._handle = handle
        self._compress = _COMPRESSORS[codec]
        self._sync = fastavro.write.Writer(handle, fastavro.parse_schema(schema), codec).sync_marker

    def write(self, records: int, data: bytes) -> None:
        """One block of ``records`` records encoded as ``data``."""
        compressed = self._compress(data)
        counts = varints(np.array([records, len(compressed)], np.int64))[0]
        self._handle.write(counts.tobytes())
        self._handle.write(compressed)
        self._handle.write(self._sync)


class AvroWriter:
    """Rows of one piece -> one Avro object container file.

    Each batch is encoded column by column (``avro_encoding``); blocks of about
    ``_BLOCK_BYTES`` are compressed with ``--avro-codec``."""

    def __init__(self, handle: Any, plan: TablePlan, sink: SinkConfig, policy: str) -> None:
        schema, _ = avro_schema_for(plan, policy, sink.writetime_format)
        self._handle = handle
        self._encoders = [
            nullable_column_encoder(entry["type"][1], _datum_fn(field))
            for field, entry in zip(plan.output_fields, schema["fields"], strict=True)
        ]
        self._blocks = _BlockWriter(handle, schema, sink.avro_codec)
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._pending_rows = 0

    def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        check_width(rows, len(self._encoders))
        self._append(list(zip(*rows, strict=True)), len(rows))

    def write_columns(self, columns: Sequence[Any]) -> None:
        """Append the rows of a ``ColumnBatch`` (its columns, in ``plan.output_fields``
        order): the same bytes ``write_rows`` writes for those rows. Masked arrays of
        numbers are encoded as arrays, without a Python object per value."""
        rows = column_rows(columns, len(self._encoders))
        if rows:
            self._append(columns, rows)

    def _append(self, columns: Sequence[Any], rows: int) -> None:
        runs = [
            run
            for encode, column in zip(self._encoders, columns, strict=True)
            for run in encode(column)
        ]
        encoded = interleave(runs, rows)
        self._pending.append(encoded)
        self._pending_bytes += len(encoded)
        self._pending_rows += rows
        if self._pending_bytes >= _BLOCK_BYTES:
            self._write_block()

    def _write_block(self) -> None:
        if self._pending_rows:
            self._blocks.write(self._pending_rows, b"".join(self._pending))
            self._pending, self._pending_bytes, self._pending_rows = [], 0, 0

    def close(self) -> None:
        self._write_block()
        self._handle.close()


def _datum_fn(field: OutputField) -> Callable[[Any], Any] | None:
    """Non-null driver value -> Avro datum (None: the value is the datum). Top-level
    timestamps already arrive as the int milliseconds of ``timestamp-millis``."""
    if field.role != "value":
        return None
    cql_type = field.column.cql_type
    if cql_type.name == "timestamp" or cql_convert.writes_unchanged(cql_type, "avro"):
        return None
    return cql_convert.avro_converter(cql_type)


def open_avro_writer(path: str, plan: TablePlan, sink: SinkConfig, policy: str) -> AvroWriter:
    return AvroWriter(FileSystems.create(path, mime_type="avro/binary"), plan, sink, policy)


def merge_avro(parts: Sequence[str], target: str, sink: SinkConfig) -> None:
    """The parts' blocks, in order, in one container file with the parts' schema."""
    import fastavro

    with FileSystems.open(parts[0]) as first:
        schema = fastavro.reader(first).writer_schema
    with FileSystems.create(target, mime_type="avro/binary") as out:
        blocks = _BlockWriter(out, schema, sink.avro_codec)
        for part in parts:
            with FileSystems.open(part) as handle:
                # Blocks keep their records (already encoded), recompressed as they were.
                for block in fastavro.block_reader(handle):
                    blocks.write(block.num_records, block.bytes_.getvalue())


def read_avro_rows(path: str) -> Iterator[dict[str, Any]]:
    """A committed Avro file's records as fastavro reads them (field names as in the file)."""
    import fastavro

    with FileSystems.open(path) as handle:
        yield from fastavro.reader(handle)


FORMAT = Format(
    name="avro",
    extension=".avro",
    text_compression=False,
    open_writer=open_avro_writer,
    merge=merge_avro,
    read_rows=read_avro_rows,
    takes_columns=True,
)
