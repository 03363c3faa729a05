"""JSON lines: one JSON object per row, keys in output column order, UTF-8 kept.

The JSON array format (``transforms/formats/json.py``) shares this writer: the same
objects, separated by commas inside one array per file.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
from collections.abc import Sequence
from typing import Any

from apache_beam.io.filesystems import FileSystems

from transforms import cql_convert, cql_text
from transforms.formats.base import (
    ColumnFn,
    Format,
    SinkConfig,
    converted_columns,
    create_text_file,
    nulls_kept,
    writetime_column_fn,
)
from transforms.table_plan import OutputField, TablePlan

__all__ = ["FORMAT", "json_column_fn", "JsonWriter", "merge_jsonl", "open_jsonl_writer"]


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


def json_column_fn(
    field: OutputField, sink: SinkConfig, policy: str, iso_cache: dict[int, str]
) -> ColumnFn | None:
    """A column's values -> its JSON values (None: as they are)."""
    if field.role == "writetime":
        return writetime_column_fn(field, sink, policy, iso_cache)
    column_type = field.column.cql_type
    if field.role == "ttl" or cql_convert.writes_unchanged(column_type, "json"):
        return None
    if column_type.name == "timestamp":
        return nulls_kept(cql_text.timestamp_texts)
    if column_type.name == "float":
        return nulls_kept(cql_text.float32_json_values)
    convert = cql_convert.json_converter(column_type)
    return lambda column: list(map(convert, column))


class JsonWriter:
    """Rows of one piece -> JSON lines, or (``array``) one JSON array."""

    def __init__(
        self, handle: Any, plan: TablePlan, sink: SinkConfig, policy: str, *, array: bool
    ) -> None:
        self._handle = handle
        self._names = list(plan.field_names)
        iso_cache: dict[int, str] = {}
        self._columns = [json_column_fn(f, sink, policy, iso_cache) for f in plan.output_fields]
        self._array = array
        self._first = True
        self._encoder = json.JSONEncoder(
            ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_json_default
        )
        if array:
            handle.write(b"[")

    def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        names = self._names
        encode = self._encoder.encode
        columns = converted_columns(rows, self._columns)
        lines = [
            encode(dict(zip(names, values, strict=True))) for values in zip(*columns, strict=True)
        ]
        if self._array:
            sep = "\n" if self._first else ",\n"
            text = sep + ",\n".join(lines)
        else:
            text = "\n".join(lines) + "\n"
        self._first = False
        self._handle.write(text.encode("utf-8"))

    def close(self) -> None:
        if self._array:
            self._handle.write(b"\n]\n" if not self._first else b"]\n")
        self._handle.close()


def open_jsonl_writer(path: str, plan: TablePlan, sink: SinkConfig, policy: str) -> JsonWriter:
    return JsonWriter(create_text_file(path, sink), plan, sink, policy, array=False)


def merge_jsonl(parts: Sequence[str], target: str, sink: SinkConfig) -> None:
    """The parts, one after another."""
    ctype = sink.compression_type
    with FileSystems.create(target, compression_type=ctype) as out:
        for part in parts:
            with FileSystems.open(part, compression_type=ctype) as handle:
                out.write(handle.read())


FORMAT = Format(
    name="jsonl",
    extension=".jsonl",
    text_compression=True,
    open_writer=open_jsonl_writer,
    merge=merge_jsonl,
)
