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

from collections.abc import Iterator, Sequence
from itertools import repeat
from typing import Any

from apache_beam.io.filesystems import FileSystems

from transforms import cql_types
from transforms.formats.base import Format, SinkConfig, check_width, is_list_field
from transforms.table_plan import TablePlan

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
            schema = cql_types.avro_schema(field.column.cql_type, field.name, names)
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


_AVRO_PRIMITIVES = frozenset(("boolean", "int", "long", "float", "double", "bytes", "string"))


def _primitive_branch(schema: Any) -> str | None:
    """The union branch name of a primitive (or logical) Avro type, else None."""
    if isinstance(schema, dict):
        schema = schema.get("type")
    return schema if isinstance(schema, str) and schema in _AVRO_PRIMITIVES else None


class AvroWriter:
    """Rows of one piece -> one Avro object container file."""

    def __init__(self, handle: Any, plan: TablePlan, sink: SinkConfig, policy: str) -> None:
        import fastavro

        schema, field_names = avro_schema_for(plan, policy, sink.writetime_format)
        self._handle = handle
        self._names = field_names
        self._columns = [
            None
            if field.role != "value" or cql_types.writes_unchanged(field.column.cql_type, "avro")
            else cql_types.avro_converter(field.column.cql_type)
            for field in plan.output_fields
        ]
        # fastavro picks a union branch by validating the value against each branch,
        # unless the value comes as (branch name, value). Columns of a primitive type
        # (logical types included) name their branch; records, arrays and maps do not.
        self._branches = [_primitive_branch(f["type"][1]) for f in schema["fields"]]
        self._writer = fastavro.write.Writer(
            handle, fastavro.parse_schema(schema), codec=sink.avro_codec, sync_interval=256 * 1024
        )

    def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        check_width(rows, len(self._columns))
        columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
        for i, (convert, branch) in enumerate(zip(self._columns, self._branches, strict=True)):
            column = columns[i]
            if convert is not None:
                column = list(map(convert, column))
            if branch is not None:
                if None in column:
                    column = [None if v is None else (branch, v) for v in column]
                else:
                    column = list(zip(repeat(branch), column))
            columns[i] = column
        names = self._names
        write = self._writer.write
        for values in zip(*columns, strict=True):
            write(dict(zip(names, values, strict=True)))

    def close(self) -> None:
        self._writer.flush()
        self._handle.close()


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
