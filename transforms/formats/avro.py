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

import io
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from apache_beam.io.filesystems import FileSystems

from transforms import cql_convert, cql_types
from transforms.formats.avro_encoding import interleave, nullable_column_encoder
from transforms.formats.base import Format, SinkConfig, check_width, is_list_field
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


class _EncodedBlock:
    """What ``fastavro.write.Writer.write_block`` takes: records already encoded."""

    def __init__(self, num_records: int, data: bytes) -> None:
        self.num_records = num_records
        self.bytes_ = io.BytesIO(data)


class AvroWriter:
    """Rows of one piece -> one Avro object container file.

    Each batch is encoded column by column (``avro_encoding``); fastavro writes the
    header, compresses the blocks with ``--avro-codec`` and writes the sync markers."""

    def __init__(self, handle: Any, plan: TablePlan, sink: SinkConfig, policy: str) -> None:
        import fastavro

        schema, _ = avro_schema_for(plan, policy, sink.writetime_format)
        self._handle = handle
        self._encoders = [
            nullable_column_encoder(entry["type"][1], _datum_fn(field))
            for field, entry in zip(plan.output_fields, schema["fields"], strict=True)
        ]
        self._writer = fastavro.write.Writer(
            handle, fastavro.parse_schema(schema), codec=sink.avro_codec
        )
        self._pending: list[bytes] = []
        self._pending_bytes = 0
        self._pending_rows = 0

    def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        check_width(rows, len(self._encoders))
        runs = [
            run
            for encode, column in zip(self._encoders, zip(*rows, strict=True), strict=True)
            for run in encode(column)
        ]
        encoded = interleave(runs, len(rows))
        self._pending.append(encoded)
        self._pending_bytes += len(encoded)
        self._pending_rows += len(rows)
        if self._pending_bytes >= _BLOCK_BYTES:
            self._write_block()

    def _write_block(self) -> None:
        if self._pending_rows:
            block = _EncodedBlock(self._pending_rows, b"".join(self._pending))
            self._writer.write_block(block)
            self._pending, self._pending_bytes, self._pending_rows = [], 0, 0

    def close(self) -> None:
        self._write_block()
        self._writer.flush()
        self._handle.close()


def _datum_fn(field: OutputField) -> Callable[[Any], Any] | None:
    """Non-null driver value -> Avro datum (None: the value is the datum)."""
    if field.role != "value" or cql_convert.writes_unchanged(field.column.cql_type, "avro"):
        return None
    return cql_convert.avro_converter(field.column.cql_type)


def open_avro_writer(path: str, plan: TablePlan, sink: SinkConfig, policy: str) -> AvroWriter:
    return AvroWriter(FileSystems.create(path, mime_type="avro/binary"), plan, sink, policy)


def merge_avro(parts: Sequence[str], target: str, sink: SinkConfig) -> None:
    """The parts' blocks, in order, in one container file with the parts' schema."""
    import fastavro

    with FileSystems.open(parts[0]) as first:
        schema = fastavro.reader(first).writer_schema
    with FileSystems.create(target, mime_type="avro/binary") as out:
        writer = fastavro.write.Writer(out, fastavro.parse_schema(schema), codec=sink.avro_codec)
        for part in parts:
            with FileSystems.open(part) as handle:
                # Blocks are copied as they are (already encoded and compressed).
                for block in fastavro.block_reader(handle):
                    writer.write_block(block)
        writer.flush()


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
)
