"""Reading an export's unit files (CSV, JSON lines, JSON, Avro) as streams, in two passes:

- ``check_*`` reads the whole file once and checks its structure without decoding values
  (compression to its end, the last record's line end, the CSV header, quotes and line
  breaks, the JSON array's lines, Avro blocks and sync markers) and its row count;
- ``*_chunks`` reads it again and hands out the raw fields of ``chunk_rows`` records at a
  time, a list per output field.

Both hold a block of the file (:data:`transforms.export_stream.BLOCK_BYTES`) and a chunk
of records at a time, whatever the file's size.
"""

from __future__ import annotations

import functools
import io
import itertools
import json
import operator
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from transforms.cql_types import avro_field_name
from transforms.export_layout import ExportFileError, ExportLayout
from transforms.export_stream import (
    BLOCK_BYTES,
    PrefixedStream,
    first_line,
    line_chunks,
    open_unit_file,
)

__all__ = [
    "avro_chunks",
    "brief",
    "check_avro",
    "check_csv",
    "check_json",
    "check_jsonl",
    "check_row_count",
    "csv_chunks",
    "csv_segments",
    "json_chunks",
    "jsonl_chunks",
]

# ---------------------------------------------------------------------------
# CSV
# ---------------------------------------------------------------------------


@functools.lru_cache(maxsize=16)
def _csv_pattern(delimiter: str) -> re.Pattern[str]:
    d = re.escape(delimiter)
    return re.compile(rf'"((?:[^"]|"")*)"({d}|\r\n)|([^{d}"\r\n]*)({d}|\r\n)')


def _record_end(text: str) -> int:
    """Where the text's last whole CSV record ends (0: none ends in it). The text begins
    a record; a CRLF ends one when the quotes before it are balanced (an even count)."""
    end = text.rfind("\r\n")
    if end < 0:
        return 0
    if '"' in text:
        odd = text.count('"', 0, end) % 2
        while odd:
            previous = text.rfind("\r\n", 0, end)
            if previous < 0:
                return 0
            odd ^= text.count('"', previous, end) % 2
            end = previous
    return end + 2


def csv_segments(path: str, texts: Iterable[str]) -> Iterator[str]:
    """The CSV text in pieces of whole records (each ends with the CRLF of its last). Text
    left after the last record is a truncated file, or a quote left open."""
    carry = ""
    for block in texts:
        text = carry + block if carry else block
        end = _record_end(text)
        if end:
            yield text[:end]
        carry = text[end:]
    if carry.endswith("\r\n"):
        raise ExportFileError(path, "malformed CSV: an unbalanced or stray quote")
    if carry:
        raise ExportFileError(path, "truncated: the last CSV record has no line end")


def check_csv(
    path: str, texts: Iterable[str], layout: ExportLayout, expected_rows: int | None
) -> None:
    """Check an exported CSV text without decoding its values: the header, line breaks and
    quotes, the last record's line end, and the record count against ``expected_rows``.

    RFC 4180 as the exporter writes it: CRLF after every record, the header included; an
    unquoted field equal to the null text is null, a quoted one never is (the exporter
    quotes an empty string, and any text equal to the null text)."""
    records = 0
    for segment in csv_segments(path, texts):
        if records == 0:
            if '"' in segment:
                header: Sequence[Any] = next(
                    _csv_quoted_records(path, segment, layout.delimiter, layout.null_value)
                )
            else:
                header = segment[: segment.find("\r\n")].split(layout.delimiter)
            _check_header(path, header, list(layout.field_names))
        if '"' in segment:
            records += _count_quoted(path, segment, layout.delimiter)
            continue
        records += _line_ends(path, segment)
    if records == 0:
        raise ExportFileError(path, "truncated: the last CSV record has no line end")
    check_row_count(path, records - 1, expected_rows)


def _line_ends(path: str, text: str) -> int:
    """The CRLFs of a CSV text without quotes; a CR or LF that is not part of one (a bare
    line break outside quotes) is refused. By NumPy over the text's bytes: a third of the
    CPU of counting CRLF, CR and LF with ``str.count`` (UTF-8 holds those bytes only as
    themselves)."""
    import numpy

    data = numpy.frombuffer(text.encode(), numpy.uint8)
    line_feeds, returns = data == 10, data == 13
    if (returns[:-1] != line_feeds[1:]).any() or line_feeds[:1].any() or returns[-1:].any():
        raise ExportFileError(path, "malformed CSV: a bare line break outside quotes")
    return int(numpy.count_nonzero(line_feeds))


def csv_chunks(
    path: str, texts: Iterable[str], layout: ExportLayout, chunk_rows: int
) -> Iterator[list[list[Any]]]:
    """The fields of a CSV text checked by :func:`check_csv`, ``chunk_rows`` records at a
    time, each chunk a list per output field (None for null). A record with a wrong field
    count is found in its chunk."""
    width = len(layout.field_names)
    records = _csv_records(path, texts, layout)
    next(records, None)  # the header, checked by check_csv
    number = 2  # the record number of the chunk's first record
    while chunk := list(itertools.islice(records, chunk_rows)):
        yield _csv_columns(path, chunk, layout, width, number)
        number += len(chunk)


def _csv_records(path: str, texts: Iterable[str], layout: ExportLayout) -> Iterator[Any]:
    """The records of a CSV text: a line where a piece of the text has no quote, else a
    list of fields (quoted ones unquoted)."""
    for segment in csv_segments(path, texts):
        if '"' in segment:
            yield from _csv_quoted_records(path, segment, layout.delimiter, layout.null_value)
        else:
            yield from segment[:-2].split("\r\n")


def _csv_columns(
    path: str, records: list[Any], layout: ExportLayout, width: int, number: int
) -> list[list[Any]]:
    """Records (unquoted lines, or lists of quoted fields) as a list per field."""
    if all(isinstance(record, str) for record in records):
        return _csv_line_columns(path, records, layout, width, number)
    null, delimiter = layout.null_value, layout.delimiter
    fields = [
        [None if f == null else f for f in record.split(delimiter)]
        if isinstance(record, str)
        else record
        for record in records
    ]
    return _csv_record_columns(path, fields, width, number)


def _csv_line_columns(
    path: str, lines: list[str], layout: ExportLayout, width: int, number: int
) -> list[list[Any]]:
    """Unquoted records: split in C, then the columns sliced out of one flat list."""
    delimiter, null = layout.delimiter, layout.null_value
    counts = list(map(operator.methodcaller("count", delimiter), lines))
    if counts.count(width - 1) == len(lines):
        flat = delimiter.join(lines).split(delimiter)
        columns = [flat[i::width] for i in range(width)]
        return [_nulls_as_none(column, null) for column in columns]
    records = [[None if f == null else f for f in line.split(delimiter)] for line in lines]
    return _csv_record_columns(path, records, width, number)


def _nulls_as_none(column: list[str], null: str) -> list[str | None]:
    """A column of CSV fields with the null text as None (a column of nulls only, such as
    the TTLs of cells without one, is made at once)."""
    if null not in column:
        return column
    if column.count(null) == len(column):
        return [None] * len(column)
    return [None if f == null else f for f in column]


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
    """Records of a CSV text with quoted fields, counted by one regex pass that also checks
    no field is skipped (the matched lengths add up to the text)."""
    records = consumed = 0
    for match in _csv_pattern(delimiter).finditer(text):
        consumed += match.end() - match.start()
        records += match.group(2) == "\r\n" or match.group(4) == "\r\n"
    if consumed != len(text):
        raise ExportFileError(path, "malformed CSV: an unbalanced or stray quote")
    return records


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


def _text_ends(texts: Iterable[str], pair: str) -> tuple[str, int, int, str]:
    """One pass over the text: its first two characters, its line ends, how often the two
    characters ``pair`` occur (also across blocks), its last three characters."""
    head = tail = ""
    lines = pairs = 0
    for block in texts:
        if len(head) < 2:
            head = (head + block)[:2]
        lines += block.count("\n")
        pairs += (tail[-1:] + block[:1]) == pair
        pairs += block.count(pair)
        tail = (tail + block)[-3:]
    return head, lines, pairs, tail


def check_jsonl(path: str, texts: Iterable[str], expected_rows: int | None) -> None:
    """A JSON lines text's last line end and line count (its lines are parsed later)."""
    _, lines, _, tail = _text_ends(texts, "\n\n")
    if tail and not tail.endswith("\n"):
        raise ExportFileError(path, "truncated: the last JSON line has no line end")
    check_row_count(path, lines, expected_rows)


def jsonl_chunks(
    path: str, texts: Iterable[str], layout: ExportLayout, chunk_rows: int
) -> Iterator[list[list[Any]]]:
    """The fields of a JSON lines text checked by :func:`check_jsonl`, ``chunk_rows`` lines
    at a time, a list per field."""
    number = 1
    for lines in line_chunks(texts, "\n", chunk_rows):
        objects = []
        for offset, line in enumerate(lines):
            try:
                objects.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ExportFileError(
                    path, f"bad JSON on line {number + offset}: {exc.msg}"
                ) from None
        yield _json_columns(path, objects, layout, number)
        number += len(lines)


def check_json(path: str, texts: Iterable[str], expected_rows: int | None) -> None:
    """A JSON export text's layout as the exporter writes it, one array with a row object per
    line (``[``, the rows separated by ``,`` at their line ends, ``]``), without parsing the
    rows; and its row count against ``expected_rows``."""
    head, lines, separators, tail = _text_ends(texts, ",\n")
    if head == "[]" and (lines, tail) == (1, "[]\n"):
        check_row_count(path, 0, expected_rows)
        return
    if head != "[\n":
        raise ExportFileError(path, "a JSON export file holds one array, one row per line")
    if tail != "\n]\n":
        raise ExportFileError(path, "truncated: the JSON array has no closing line")
    if separators != lines - 3:
        raise ExportFileError(path, "a JSON export file holds one array, one row per line")
    check_row_count(path, lines - 2, expected_rows)


def json_chunks(
    path: str, texts: Iterable[str], layout: ExportLayout, chunk_rows: int
) -> Iterator[list[list[Any]]]:
    """The fields of a JSON text checked by :func:`check_json`, ``chunk_rows`` rows at a
    time, a list per field."""
    number = 2  # the line of the chunk's first row (line 1 is "[")
    for lines in line_chunks(_after_first_line(texts), "\n", chunk_rows):
        if lines[-1] == "]":  # the array's end, not a row
            lines.pop()
        objects = []
        for offset, line in enumerate(lines):
            try:
                objects.append(json.loads(line[:-1] if line.endswith(",") else line))
            except json.JSONDecodeError as exc:
                raise ExportFileError(
                    path, f"bad JSON at line {number + offset} column {exc.colno}: {exc.msg}"
                ) from None
        if objects:
            yield _json_columns(path, objects, layout, number - 1)
        number += len(lines)


def _after_first_line(texts: Iterable[str]) -> Iterator[str]:
    """The text after its first line end."""
    blocks = iter(texts)
    for block in blocks:
        end = block.find("\n")
        if end >= 0:
            yield block[end + 1 :]
            break
    yield from blocks


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


def _avro_stream(path: str, handle: Any, layout: ExportLayout) -> io.BufferedReader:
    """The Avro file read from ``handle``, its header checked (magic, fields) and rewritten
    with a schema without logical types: fastavro applies the *writer* schema's logical
    types (datetimes that overflow past year 9999, dates, UUIDs), and without them the
    stored ints and strings come back."""
    import fastavro

    header = fastavro.schemaless_reader(handle, _AVRO_HEADER_SCHEMA)
    if header["magic"] != b"Obj\x01":
        raise ExportFileError(path, "not an Avro object container file")
    schema = json.loads(header["meta"]["avro.schema"])
    found = [f["name"] for f in schema.get("fields", ())]
    names = _avro_field_names(layout)
    if found != names:
        raise ExportFileError(
            path, f"Avro fields {brief(found)} are not the layout's {brief(names)}"
        )
    meta = dict(header["meta"])
    meta["avro.schema"] = json.dumps(_without_logical_types(schema)).encode()
    plain = io.BytesIO()
    fastavro.schemaless_writer(plain, _AVRO_HEADER_SCHEMA, {**header, "meta": meta})
    return io.BufferedReader(PrefixedStream(plain.getvalue(), handle), BLOCK_BYTES)


def check_avro(path: str, layout: ExportLayout, expected_rows: int | None) -> None:
    """An Avro file's header, its blocks (each read, decompressed and followed by the
    file's sync marker) and their record count against ``expected_rows``; the records
    themselves are decoded later."""
    import fastavro

    with open_unit_file(path) as handle:
        try:
            stream = _avro_stream(path, handle, layout)
            rows = sum(block.num_records for block in fastavro.block_reader(stream))
        except ExportFileError:
            raise
        except Exception as exc:  # fastavro: EOFError, ValueError, zlib.error, ...
            raise ExportFileError(path, f"bad Avro data: {first_line(exc)}") from None
    check_row_count(path, rows, expected_rows)


def avro_chunks(path: str, layout: ExportLayout, chunk_rows: int) -> Iterator[list[list[Any]]]:
    """The records' fields of an Avro file checked by :func:`check_avro`, ``chunk_rows``
    records at a time, a list per output field."""
    import fastavro

    names = _avro_field_names(layout)
    with open_unit_file(path) as handle:
        try:
            records = fastavro.reader(_avro_stream(path, handle, layout))
            while chunk := list(itertools.islice(records, chunk_rows)):
                yield [list(map(operator.itemgetter(name), chunk)) for name in names]
        except ExportFileError:
            raise
        except Exception as exc:  # fastavro: EOFError, ValueError, zlib.error, ...
            raise ExportFileError(path, f"bad Avro data: {first_line(exc)}") from None
