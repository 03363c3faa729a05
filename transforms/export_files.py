"""Reading an export's unit files: bytes (any FileSystems path, decompressed and checked),
then the raw fields of its records (CSV, JSON lines, JSON, Avro), a bounded chunk of
records at a time where the format allows it.
"""

from __future__ import annotations

import functools
import gzip
import io
import itertools
import json
import operator
import re
from collections.abc import Iterator, Sequence
from typing import Any

from transforms.cql_types import avro_field_name
from transforms.export_layout import ExportFileError, ExportLayout

__all__ = [
    "avro_columns",
    "brief",
    "check_row_count",
    "csv_chunks",
    "first_line",
    "json_columns",
    "jsonl_chunks",
    "read_bytes",
    "text_of",
]

# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def read_bytes(path: str, compression: str) -> bytes:
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            data = handle.read()
    except Exception as exc:  # FileNotFoundError, BeamIOError, permission errors, ...
        raise ExportFileError(path, f"cannot read: {first_line(exc)}") from None
    if compression == "none":
        return data
    if not data:
        raise ExportFileError(path, f"empty file, not {compression} data")
    try:
        if compression == "gzip":
            return gzip.decompress(data)
        return _zstd_decompress(data)
    except Exception as exc:  # OSError, EOFError, zlib.error, zstandard.ZstdError
        raise ExportFileError(path, f"bad {compression} data: {first_line(exc)}") from None


def _zstd_decompress(data: bytes) -> bytes:
    import zstandard

    parts = []
    while data:
        frame = zstandard.ZstdDecompressor().decompressobj()
        parts.append(frame.decompress(data))
        if not frame.eof:
            raise EOFError("compressed data ends before the end of its frame")
        data = frame.unused_data
    return b"".join(parts)


def first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def text_of(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ExportFileError(path, f"not UTF-8 at byte {exc.start}") from None


@functools.lru_cache(maxsize=16)
def _csv_pattern(delimiter: str) -> re.Pattern[str]:
    d = re.escape(delimiter)
    return re.compile(rf'"((?:[^"]|"")*)"({d}|\r\n)|([^{d}"\r\n]*)({d}|\r\n)')


def csv_chunks(
    path: str, text: str, layout: ExportLayout, expected_rows: int | None, chunk_rows: int
) -> Iterator[list[list[Any]]]:
    """The fields of an exported CSV file, ``chunk_rows`` records at a time, each chunk a
    list per output field (None for null).

    RFC 4180 as the exporter writes it: CRLF after every record, the header included; an
    unquoted field equal to the null text is null, a quoted one never is (the exporter
    quotes an empty string, and any text equal to the null text). Before the first chunk
    the whole text is checked: its last line end, the header, line breaks and quotes, and
    the record count against ``expected_rows``; a record with a wrong field count is found
    in its chunk."""
    if not text.endswith("\r\n"):
        raise ExportFileError(path, "truncated: the last CSV record has no line end")
    expected = list(layout.field_names)
    if '"' in text:
        rows = _count_quoted(path, text, layout.delimiter)
        records = _csv_quoted_records(path, text, layout.delimiter, layout.null_value)
        _check_header(path, next(records), expected)
        check_row_count(path, rows, expected_rows)
        number = 2
        while chunk := list(itertools.islice(records, chunk_rows)):
            yield _csv_record_columns(path, chunk, len(expected), number)
            number += len(chunk)
        return
    # The text up to its last line end, searched in place: a copy without that line end
    # would hold a second unit-sized string for as long as the unit is decoded.
    limit = len(text) - 2
    line_ends = text.count("\r\n", 0, limit)
    if text.count("\n", 0, limit) != line_ends or text.count("\r", 0, limit) != line_ends:
        raise ExportFileError(path, "malformed CSV: a bare line break outside quotes")
    first = text.find("\r\n", 0, limit)
    header = text[: limit if first < 0 else first].split(layout.delimiter)
    _check_header(path, header, expected)
    check_row_count(path, line_ends, expected_rows)
    position, number = first, 2
    while 0 <= position:
        end = position
        for _ in range(chunk_rows):
            end = text.find("\r\n", end + 2, limit)
            if end < 0:
                break
        lines = text[position + 2 : limit if end < 0 else end].split("\r\n")
        yield _csv_line_columns(path, lines, layout, len(expected), number)
        position, number = end, number + len(lines)


def _csv_line_columns(
    path: str, lines: list[str], layout: ExportLayout, width: int, number: int
) -> list[list[Any]]:
    """Unquoted records: split in C, then the columns sliced out of one flat list."""
    delimiter, null = layout.delimiter, layout.null_value
    counts = list(map(operator.methodcaller("count", delimiter), lines))
    if counts.count(width - 1) == len(lines):
        flat = delimiter.join(lines).split(delimiter)
        columns = [flat[i::width] for i in range(width)]
        return [
            [None if f == null else f for f in column] if null in column else column
            for column in columns
        ]
    records = [[None if f == null else f for f in line.split(delimiter)] for line in lines]
    return _csv_record_columns(path, records, width, number)


def _csv_record_columns(
    path: str, records: list[list[Any]], width: int, number: int
) -> list[list[Any]]:
    """Records (the first is record ``number`` of the file) as a list per field."""
    for offset, record in enumerate(records):
        if len(record) != width:
            raise ExportFileError(
                path, f"CSV record {number + offset} has {len(record)} fields, the header {width}"
            )
    return [list(column) for column in zip(*records, strict=True)] or [[]] * width


def _check_header(path: str, header: Sequence[Any], expected: list[str]) -> None:
    if list(header) != expected:
        raise ExportFileError(
            path, f"CSV header {brief(header)} is not the layout's {brief(expected)}"
        )


def _count_quoted(path: str, text: str, delimiter: str) -> int:
    """Records of a CSV text with quoted fields, the header excluded, counted by one regex
    pass that also checks no field is skipped (the matched lengths add up to the text)."""
    records = consumed = 0
    for match in _csv_pattern(delimiter).finditer(text):
        consumed += match.end() - match.start()
        records += match.group(2) == "\r\n" or match.group(4) == "\r\n"
    if consumed != len(text):
        raise ExportFileError(path, "malformed CSV: an unbalanced or stray quote")
    return records - 1


def _csv_quoted_records(
    path: str, text: str, delimiter: str, null: str
) -> Iterator[list[str | None]]:
    """Records of a CSV text with quoted fields, by one regex, one at a time."""
    record: list[str | None] = []
    for match in _csv_pattern(delimiter).finditer(text):
        quoted, quoted_end, plain, plain_end = match.groups()
        if quoted_end:
            record.append(quoted.replace('""', '"'))
            end = quoted_end
        else:
            record.append(None if plain == null else plain)
            end = plain_end
        if end == "\r\n":
            yield record
            record = []


def brief(names: Sequence[Any]) -> str:
    """Names joined by commas, cut to 80 characters for a message."""
    text = ",".join(map(str, names))
    return text if len(text) <= 80 else text[:77] + "..."


def check_row_count(path: str, rows: int, expected_rows: int | None) -> None:
    """A file holding another number of rows than its unit marker records is refused."""
    if expected_rows is not None and rows != expected_rows:
        raise ExportFileError(
            path,
            f"holds {rows} rows but its export marker records {expected_rows}: the file is "
            "truncated or was replaced",
        )


def jsonl_chunks(
    path: str, text: str, layout: ExportLayout, expected_rows: int | None, chunk_rows: int
) -> Iterator[list[list[Any]]]:
    """The fields of a JSON lines file, ``chunk_rows`` lines at a time, a list per field.
    Its last line end and line count are checked before the first chunk."""
    if text and not text.endswith("\n"):
        raise ExportFileError(path, "truncated: the last JSON line has no line end")
    check_row_count(path, text.count("\n"), expected_rows)
    position, number = 0, 1
    while position < len(text):
        end = position - 1
        for _ in range(chunk_rows):
            end = text.find("\n", end + 1)
            if end < 0:
                break
        lines = text[position : len(text) - 1 if end < 0 else end].split("\n")
        objects = []
        for offset, line in enumerate(lines):
            try:
                objects.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ExportFileError(
                    path, f"bad JSON on line {number + offset}: {exc.msg}"
                ) from None
        yield _json_columns(path, objects, layout, number)
        position, number = (len(text) if end < 0 else end + 1), number + len(lines)


def json_columns(path: str, text: str, layout: ExportLayout) -> list[list[Any]]:
    """The fields of a JSON file (one array of objects, parsed whole), a list per field."""
    try:
        objects = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ExportFileError(
            path, f"bad JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None
    if not isinstance(objects, list):
        raise ExportFileError(path, "a JSON export file holds one array")
    return _json_columns(path, objects, layout, 1)


def _json_columns(
    path: str, objects: list[Any], layout: ExportLayout, number: int
) -> list[list[Any]]:
    names = layout.field_names
    expected = set(names)
    for offset, obj in enumerate(objects):
        if not isinstance(obj, dict) or obj.keys() != expected:
            found = list(obj) if isinstance(obj, dict) else type(obj).__name__
            raise ExportFileError(
                path,
                f"JSON row {number + offset} has fields {found}, not the layout's {list(names)}",
            )
    return [list(map(operator.itemgetter(name), objects)) for name in names]


def _without_logical_types(schema: Any) -> Any:
    """The schema with logicalType removed, so fastavro returns the stored ints and
    strings (exact in every year) instead of datetimes and UUIDs."""
    if isinstance(schema, dict):
        return {k: _without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_without_logical_types(s) for s in schema]
    return schema


def _avro_field_names(layout: ExportLayout) -> list[str]:
    used: set[str] = set()
    return [avro_field_name(name, used) for name in layout.field_names]


# The Avro object container header (Avro specification, "Object Container Files").
_AVRO_HEADER_SCHEMA = {
    "type": "record",
    "name": "org.apache.avro.file.Header",
    "fields": [
        {"name": "magic", "type": {"type": "fixed", "name": "magic", "size": 4}},
        {"name": "meta", "type": {"type": "map", "values": "bytes"}},
        {"name": "sync", "type": {"type": "fixed", "name": "sync", "size": 16}},
    ],
}


def avro_columns(path: str, data: bytes, layout: ExportLayout) -> list[list[Any]]:
    """The records' fields, a list per output field. fastavro applies the *writer* schema's logical
    types (datetimes that overflow past year 9999, dates, UUIDs), so the header is
    rewritten with a schema without them and the stored ints and strings come back."""
    import fastavro

    names = _avro_field_names(layout)
    try:
        stream = io.BytesIO(data)
        header = fastavro.schemaless_reader(stream, _AVRO_HEADER_SCHEMA)
        if header["magic"] != b"Obj\x01":
            raise ExportFileError(path, "not an Avro object container file")
        schema = json.loads(header["meta"]["avro.schema"])
        found = [f["name"] for f in schema.get("fields", ())]
        if found != names:
            raise ExportFileError(
                path, f"Avro fields {brief(found)} are not the layout's {brief(names)}"
            )
        meta = dict(header["meta"])
        meta["avro.schema"] = json.dumps(_without_logical_types(schema)).encode()
        plain = io.BytesIO()
        fastavro.schemaless_writer(plain, _AVRO_HEADER_SCHEMA, {**header, "meta": meta})
        plain.write(data[stream.tell() :])
        plain.seek(0)
        records = list(fastavro.reader(plain))
        return [list(map(operator.itemgetter(name), records)) for name in names]
    except ExportFileError:
        raise
    except Exception as exc:  # fastavro: EOFError, ValueError, zlib.error, ...
        raise ExportFileError(path, f"bad Avro data: {first_line(exc)}") from None
