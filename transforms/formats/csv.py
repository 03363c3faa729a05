"""CSV (RFC 4180): header row, CRLF line ends, UTF-8, ``--delimiter``, ``--null-value``.

A batch is converted column by column (``zip(*rows)``): builtins such as ``str()`` run
over a whole column in C, text needs no conversion, and a column is scanned once for
what needs quoting. A ``ColumnBatch``'s numbers, timestamps, booleans and UUIDs are
written as bytes by NumPy instead (:mod:`csv_bytes`), with no ``str`` per field, and
then the batch's lines as one byte matrix when its other columns' fields are ASCII. Null is
``--null-value`` unquoted; an empty string (or a text equal to the null text) is quoted,
so the two never read alike.
"""

from __future__ import annotations

import itertools
import operator
import re
from collections.abc import Callable, Sequence
from typing import Any

import numpy
from apache_beam.io.filesystems import FileSystems

from transforms import cql_convert, cql_text, cql_text_columns, cql_types
from transforms.elements import ColumnBuffer
from transforms.formats import csv_bytes, csv_doubles
from transforms.formats.base import (
    ColumnFn,
    Format,
    SinkConfig,
    check_width,
    column_rows,
    create_text_file,
    is_list_field,
    writetime_column_fn,
)
from transforms.json_text import json_text
from transforms.table_plan import OutputField, TablePlan

__all__ = [
    "BUFFER_ROWS",
    "csv_array_column",
    "csv_column",
    "csv_lines",
    "SharedWritetimeTexts",
    "csv_quote",
    "CsvWriter",
    "FORMAT",
    "merge_csv",
    "open_csv_writer",
]

_DIGITS = frozenset("-0123456789")
_ISO_CHARS = _DIGITS | frozenset(":.TZ")
# Every character a non-null field of these types can hold; such a field is never empty.
_CSV_ALPHABETS = {
    **dict.fromkeys(("int", "bigint", "smallint", "tinyint", "counter", "varint"), _DIGITS),
    **dict.fromkeys(("double", "float"), _DIGITS | frozenset(".e+NaInfity")),
    "boolean": frozenset("truefals"),
    "uuid": _DIGITS | frozenset("abcdef"),
    "timeuuid": _DIGITS | frozenset("abcdef"),
    "timestamp": _ISO_CHARS,
    "date": _DIGITS,
}
_BOOL_TEXT = {False: "false", True: "true"}
_MACHINE_INTS = frozenset(("int", "bigint", "smallint", "counter"))
_NON_FINITE_REPRS = ("nan", "inf", "-inf")
# The item size a column of these types must have for its field matrix (else the str way).
_FLOAT_SIZES = {"double": 8, "float": 4}
# Batches of fewer rows go the str way: NumPy's fixed work per call would outweigh it.
_FEW_ROWS = 16
BUFFER_ROWS = 4096  # rows of column batches converted at once (fewer: at a piece's end)


def csv_quote(delimiter: str, null: str, text: str) -> str:
    """RFC 4180 quoting where needed; an empty string is quoted so it differs from null."""
    if not text or delimiter in text or '"' in text or "\n" in text or "\r" in text or text == null:
        return '"' + text.replace('"', '""') + '"'
    return text


def _quoted_fields(delimiter: str, null: str) -> Callable[[list[str]], list[str]]:
    """Texts -> CSV fields, each as ``csv_quote`` gives it, with no function call per text
    in Python: one regular expression finds the texts that need quotes (the delimiter, a
    quote, CR or LF in it, or empty, or the null text)."""
    needs_quotes = re.compile(
        "|".join([re.escape(delimiter), '"', "\r", "\n", r"\A\Z", rf"\A{re.escape(null)}\Z"])
    ).search

    def quote_all(texts: Sequence[str]) -> list[str]:
        doubled = map(str.replace, texts, itertools.repeat('"'), itertools.repeat('""'))
        return list(map('"%s"'.__mod__, doubled))

    def fields(texts: list[str]) -> list[str]:
        found = list(map(needs_quotes, texts))
        if None not in found:
            return quote_all(texts)
        if found.count(None) == len(found):
            return texts
        quoted = iter(quote_all([t for t, f in zip(texts, found, strict=True) if f is not None]))
        return [t if f is None else next(quoted) for t, f in zip(texts, found, strict=True)]

    return fields


def _value_texts(column_type: cql_types.CqlType) -> tuple[ColumnFn, frozenset[str] | None]:
    """(non-null values -> texts, the characters those texts can hold or None if any)."""
    name = column_type.name
    csv_text = cql_convert.csv_formatter(column_type)
    csv_texts = cql_convert.csv_texts(column_type)
    if not cql_types.is_scalar(column_type):  # collections, tuples, UDTs, vectors: JSON text
        return csv_texts, None
    if cql_convert.writes_unchanged(column_type, "csv"):  # text, ascii
        return (lambda values: values), None
    alphabet = _CSV_ALPHABETS.get(name)
    if name == "double":

        def doubles(values: Sequence[Any]) -> list[str]:
            texts = list(map(repr, values))
            if any(special in texts for special in _NON_FINITE_REPRS):
                return list(map(csv_text, values))
            return texts

        return doubles, alphabet
    if name == "timestamp":
        return cql_text.timestamp_texts, alphabet
    if name == "float":
        return cql_text.float32_texts, alphabet
    if name == "boolean":

        def booleans(values: Sequence[Any]) -> list[str]:
            try:
                return list(map(_BOOL_TEXT.__getitem__, values))
            except (KeyError, TypeError):
                return list(map(csv_text, values))

        return booleans, alphabet
    if name in ("uuid", "timeuuid"):
        return cql_text_columns.uuid_texts, alphabet
    return csv_texts, alphabet


def _meta_texts(
    field: OutputField, sink: SinkConfig, policy: str, iso_cache: dict[int, str]
) -> tuple[ColumnFn, frozenset[str] | None]:
    """Writetime / TTL column (non-null values) -> texts, and their alphabet."""
    if is_list_field(field, policy):  # lists of element writetimes / TTLs: JSON arrays
        rendered = writetime_column_fn(field, sink, policy, iso_cache)
        if field.role == "ttl" or rendered is None:
            return (lambda values: list(map(json_text, values))), None
        return (lambda values: list(map(json_text, rendered(values)))), None
    if field.role == "writetime":
        rendered = writetime_column_fn(field, sink, policy, iso_cache)
        if rendered is not None:
            return rendered, _ISO_CHARS
    return (lambda values: list(map(str, values))), _DIGITS


def _never_quoted(alphabet: frozenset[str] | None, sink: SinkConfig) -> bool:
    """True when no field drawn from ``alphabet`` needs quoting: such a field is never empty
    and never holds a quote, CR or LF, so only the delimiter or a non-empty null text
    made of its characters could make it need quotes."""
    delimiter, null = sink.delimiter, sink.null_value
    return alphabet is not None and not (
        all(ch in alphabet for ch in delimiter) or bool(null and all(ch in alphabet for ch in null))
    )


def _array_texts(
    field: OutputField, sink: SinkConfig, policy: str
) -> tuple[Callable[[Any], list[str]] | None, frozenset[str] | None]:
    """(a NumPy array of non-null numbers -> the texts ``csv_column`` gives for them, their
    alphabet); (None, None) for a field whose values are not numbers (lists of element
    writetimes). Timestamps and ISO writetimes are formatted by NumPy; other numbers go
    through the same functions as in ``csv_column``, on the array's Python values."""
    if field.role == "value":
        column_type = field.column.cql_type
        if column_type.name == "timestamp":
            return (lambda data: cql_text.rfc3339_array_texts(data, 1000)), _ISO_CHARS
        if column_type.name in _MACHINE_INTS:  # their CSV text is str(), as in cql_convert
            return (lambda data: list(map(str, data.tolist()))), _DIGITS
        texts_of, alphabet = _value_texts(column_type)
        return (lambda data: list(texts_of(data.tolist()))), alphabet
    if is_list_field(field, policy):
        return None, None
    if field.role == "writetime" and sink.writetime_format == "iso":
        return (lambda data: cql_text.rfc3339_array_texts(data, 1_000_000)), _ISO_CHARS
    return (lambda data: list(map(str, data.tolist()))), _DIGITS


class SharedWritetimeTexts:
    """The ISO texts of the writetimes a writer rendered last, row by row, reused for the
    equal writetimes of its next column: the cells of a row written together share a
    writetime, so most of a batch's writetime columns are the first one again. A row whose
    cell is null keeps its last text, so the next column finds it too. For the batches that
    take the str way (few rows, or a column of the run without a field matrix); the others
    go through ``csv_bytes.writetime_block``."""

    def __init__(self) -> None:
        self.data: Any = None  # int64 writetime of each row, where ``rendered``
        self.texts: Any = None  # their texts (object array)
        self.rendered: Any = None

    def fields(self, data: Any, mask: Any, null: str) -> list[str]:
        """The CSV fields of a writetime column: the ISO text of each unmasked writetime,
        ``null`` where masked."""
        need = ~mask
        if self.data is not None and len(self.data) == len(data):
            texts = self.texts.copy()
            need &= ~(self.rendered & (data == self.data))
            data = numpy.where(mask, self.data, data)
            rendered = self.rendered | ~mask
        else:
            texts = numpy.empty(len(data), dtype=object)
            rendered = ~mask
        if need.any():
            rendered_texts = cql_text.rfc3339_array_texts(data[need], 1_000_000)
            texts[need] = numpy.array(rendered_texts, dtype=object)
        self.data, self.texts, self.rendered = data, texts, rendered
        return numpy.where(mask, null, texts).tolist() if mask.any() else texts.tolist()


def csv_array_column(
    field: OutputField,
    sink: SinkConfig,
    policy: str,
    iso_cache: dict[int, str],
    shared: SharedWritetimeTexts,
) -> Callable[[Any], Sequence[str]]:
    """A column of a ``ColumnBatch`` -> its CSV fields, the same as ``csv_column`` gives
    for the column's values. Numbers whose fields never need quoting are converted from
    the array (nulls placed by the mask; ISO writetimes through ``shared``, one per
    writer); any other column goes through ``csv_column``."""
    by_list = csv_column(field, sink, policy, iso_cache)
    texts_of, alphabet = _array_texts(field, sink, policy)
    if texts_of is None or not _never_quoted(alphabet, sink):
        return lambda column: by_list(column.tolist())
    null = sink.null_value
    iso = field.role == "writetime" and sink.writetime_format == "iso"

    def convert(column: Any) -> Sequence[str]:
        if column.dtype.kind not in "iuf":
            return by_list(column.tolist())
        data = numpy.ma.getdata(column)
        mask = numpy.ma.getmaskarray(column)
        if iso:
            return shared.fields(data.astype(numpy.int64, copy=False), mask, null)
        if not mask.any():
            return texts_of(data)
        fields = numpy.full(len(data), null, dtype=object)
        fields[~mask] = numpy.array(texts_of(data[~mask]), dtype=object)
        return fields.tolist()

    return convert


def csv_bytes_column(
    field: OutputField, sink: SinkConfig, policy: str
) -> Callable[[Any], Any] | None:
    """A column of a ``ColumnBatch`` -> its field matrix (see :mod:`csv_bytes`): the bytes of
    the fields ``csv_array_column`` gives, with no ``str`` per field. None (at once) unless
    the field is an integer, timestamp, double, float, boolean or UUID value, a TTL or a
    writetime whose fields never need quoting (the writer converts adjacent ISO writetime
    columns together: ``csv_bytes.writetime_block``); per batch, None for a column that
    does not hold what its type says."""
    texts_of, alphabet = _array_texts(field, sink, policy)
    if texts_of is None or not _never_quoted(alphabet, sink):
        return None
    name = field.column.cql_type.name if field.role == "value" else "bigint"
    if field.role == "writetime" and sink.writetime_format == "iso":
        null = sink.null_value.encode("utf-8")

        def writetimes(column: Any) -> Any:
            matrices = csv_bytes.writetime_block([column], null)
            return None if matrices is None else matrices[0]

        return writetimes
    kind = {"double": "f", "float": "f", "boolean": "O", "uuid": "O", "timeuuid": "O"}.get(
        name, "i"
    )
    if kind == "i" and name not in _MACHINE_INTS | {"timestamp"}:
        return None
    null = sink.null_value.encode("utf-8")

    def convert(column: Any) -> Any:
        if column.dtype.kind != kind or _FLOAT_SIZES.get(name, 0) not in (0, column.dtype.itemsize):
            return None
        if kind == "i" and csv_bytes.COMPILED:  # the compiled line builder writes them
            return csv_bytes.number_part(column, 1000 if name == "timestamp" else 0, null)
        if kind == "f" and csv_bytes.COMPILED:
            return csv_bytes.float_part(column, texts_of, null)
        if name == "boolean":
            return csv_bytes.boolean_matrix(column.tolist(), null)
        if kind == "O":
            return _uuid_matrix(column.tolist(), null)
        data, mask = numpy.ma.getdata(column), numpy.ma.getmaskarray(column)
        nulls = bool(mask.any())
        if nulls:  # masked slots hold anything: render a present value there, then null
            data = numpy.where(mask, data[numpy.argmin(mask)], data)
        if kind == "f":
            fixed = csv_doubles.double_matrix(data, texts_of)
        elif name == "timestamp":
            fixed = csv_bytes.timestamp_matrix(data, 1000)
        else:
            fixed = csv_bytes.int_matrix(data)
        return csv_bytes.nulls_over(fixed, mask, null) if nulls else fixed

    return convert


def _uuid_matrix(values: list[Any], null: bytes) -> Any:
    """UUIDs (None: null) -> their field matrix."""
    mask = numpy.fromiter(map(operator.is_, values, itertools.repeat(None)), bool, len(values))
    if not mask.any():
        return cql_text_columns.uuid_bytes(values)
    fixed = cql_text_columns.uuid_bytes([v for v in values if v is not None])
    return csv_bytes.with_nulls(fixed, mask, null)


def csv_column(
    field: OutputField, sink: SinkConfig, policy: str, iso_cache: dict[int, str]
) -> Callable[[Sequence[Any]], Sequence[str]]:
    """A column's values (None for null) -> its CSV fields, quoted where needed."""
    delimiter, null = sink.delimiter, sink.null_value
    if field.role == "value":
        texts_of, alphabet = _value_texts(field.column.cql_type)
    else:
        texts_of, alphabet = _meta_texts(field, sink, policy, iso_cache)
    never_quoted = _never_quoted(alphabet, sink)
    quoted = _quoted_fields(delimiter, null)

    def convert(column: Sequence[Any]) -> Sequence[str]:
        has_null = None in column
        values = [v for v in column if v is not None] if has_null else column
        texts = texts_of(values)
        if not never_quoted:
            joined = "".join(texts)
            if (
                delimiter in joined
                or '"' in joined
                or "\n" in joined
                or "\r" in joined
                or "" in texts
                or null in texts
            ):
                texts = quoted(texts)
        if not has_null:
            return texts
        if texts is values:  # text written as it is: the column with nulls replaced
            return [null if v is None else v for v in column]
        found = iter(texts)
        return [null if v is None else next(found) for v in column]

    return convert


def csv_lines(fields: Sequence[Sequence[str]], delimiter: str) -> bytes:
    """A batch's CSV fields (one sequence per column, of equal lengths) as its lines, each
    ended by CRLF, in UTF-8. The fields are interleaved with the delimiters and line ends
    into one list joined once: about a third less CPU than joining each row (or the
    compiled line builder's one copy, where it is built)."""
    width, rows = len(fields), len(fields[0])
    compiled = csv_bytes.compiled_lines(fields, rows, delimiter.encode("utf-8"))
    if compiled is not None:
        return compiled
    parts = [delimiter] * (2 * width * rows)
    for index, column in enumerate(fields):
        parts[2 * index :: 2 * width] = column
    parts[2 * width - 1 :: 2 * width] = ["\r\n"] * rows
    return "".join(parts).encode("utf-8")


class CsvWriter:
    """Rows of one piece -> a CSV file with its header line."""

    def __init__(self, handle: Any, plan: TablePlan, sink: SinkConfig, policy: str) -> None:
        # Bytes straight to the handle: Beam's CompressedFile (gzip, zstd) has no
        # writable(), so io.TextIOWrapper cannot wrap it.
        self._handle = handle
        self._delimiter = sink.delimiter
        self._delimiter_bytes = sink.delimiter.encode("utf-8")
        iso_cache: dict[int, str] = {}
        fields = plan.output_fields
        self._columns = [csv_column(f, sink, policy, iso_cache) for f in fields]
        shared = SharedWritetimeTexts()
        self._array_columns = [csv_array_column(f, sink, policy, iso_cache, shared) for f in fields]
        self._byte_columns = [csv_bytes_column(f, sink, policy) for f in fields]
        # Neither may hold NUL (padding) or LF (see csv_bytes.group_texts).
        self._matrices = not {"\x00", "\n"} & set(sink.delimiter + sink.null_value)
        if not self._matrices:
            self._byte_columns = [None] * len(fields)
        self._runs = csv_bytes.matrix_runs(self._byte_columns)
        iso = [f.role == "writetime" and sink.writetime_format == "iso" for f in fields]
        null = sink.null_value.encode("utf-8")
        self._parts = csv_bytes.run_parts(self._runs, self._byte_columns, iso, null)
        self._buffer = ColumnBuffer(self._write_columns, BUFFER_ROWS)
        quote = [csv_quote(sink.delimiter, sink.null_value, f.name) for f in plan.output_fields]
        self._handle.write((sink.delimiter.join(quote) + "\r\n").encode("utf-8"))

    def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        self._buffer.flush()
        check_width(rows, len(self._columns))
        columns = zip(*rows, strict=True)
        fields = [convert(column) for convert, column in zip(self._columns, columns, strict=True)]
        self._handle.write(csv_lines(fields, self._delimiter))

    def write_columns(self, columns: Sequence[Any]) -> None:
        """Append the rows of a ``ColumnBatch`` (its columns, in ``plan.output_fields``
        order): the same bytes ``write_rows`` writes for those rows, once ``BUFFER_ROWS``
        rows are held (``ColumnBuffer``), or at the next ``write_rows`` or ``close``."""
        rows = column_rows(columns, len(self._array_columns))
        if rows:
            self._buffer.add(columns, rows)

    def _write_columns(self, columns: Sequence[Any]) -> None:
        """A batch's columns as lines: each run of columns with field matrices as those
        (``csv_bytes``), the others as ``str`` fields (``csv_array_column``)."""
        rows = len(columns[0])
        runs: list[tuple[bool, list[Any]]] = []  # (matrices?, its matrices or str fields)
        for start, stop in self._runs:
            matrices = None
            if self._byte_columns[start] is not None and rows >= _FEW_ROWS:
                found = [convert(columns[a:b]) for a, b, convert in self._parts[start]]
                if all(part is not None for part in found):
                    matrices = [matrix for part in found for matrix in part]
            if matrices is None:
                converts = zip(self._array_columns[start:stop], columns[start:stop], strict=True)
                runs.append((False, [convert(c) for convert, c in converts]))
            else:
                runs.append((True, matrices))
        self._handle.write(self._lines(runs, rows))

    def _lines(self, runs: Sequence[tuple[bool, list[Any]]], rows: int) -> bytes:
        """The runs of a batch (see ``_write_columns``) as its lines: in one pass by the
        compiled line builder where it is built; else one matrix of the whole batch when every ``str`` column has one too (``csv_bytes.text_matrix``)
        and there are no more of them than runs of matrices (each saves a run's ``str``
        per row; measured, collections' JSON between two integer keys were slower so),
        else each run of matrices as one ``str`` per row joined with the other fields."""
        delimiter = self._delimiter_bytes
        if csv_bytes.COMPILED:
            parts = [part for _, items in runs for part in items]
            return csv_bytes.compiled_lines(parts, rows, delimiter) or b""
        texts = sum(len(items) for is_matrix, items in runs if not is_matrix)
        matrix_runs = sum(is_matrix for is_matrix, _ in runs)
        if self._matrices and rows >= _FEW_ROWS and 0 < matrix_runs >= texts:
            matrices: list[Any] = []
            for is_matrix, items in runs:
                found = items if is_matrix else list(map(csv_bytes.text_matrix, items))
                if any(matrix is None for matrix in found):
                    break
                matrices += found
            else:
                return csv_bytes.lines_bytes(matrices, delimiter)
        fields: list[Sequence[str]] = []
        for is_matrix, items in runs:
            fields += [csv_bytes.group_texts(items, delimiter)] if is_matrix else items
        return csv_lines(fields, self._delimiter)

    def close(self) -> None:
        self._buffer.flush()
        self._handle.close()


def open_csv_writer(path: str, plan: TablePlan, sink: SinkConfig, policy: str) -> CsvWriter:
    return CsvWriter(create_text_file(path, sink), plan, sink, policy)


def _header_end(data: bytes) -> int:
    """Offset just past the header line (header names may be quoted with newlines)."""
    in_quotes = False
    for i, byte in enumerate(data):
        if byte == 0x22:
            in_quotes = not in_quotes
        elif byte == 0x0A and not in_quotes:
            return i + 1
    return len(data)


def merge_csv(parts: Sequence[str], target: str, sink: SinkConfig) -> None:
    """The parts into one CSV file: the first part whole, the others without their header."""
    ctype = sink.compression_type
    with FileSystems.create(target, compression_type=ctype) as out:
        for index, part in enumerate(parts):
            with FileSystems.open(part, compression_type=ctype) as handle:
                data = handle.read()
            out.write(data if index == 0 else data[_header_end(data) :])


FORMAT = Format(
    name="csv",
    extension=".csv",
    text_compression=True,
    open_writer=open_csv_writer,
    merge=merge_csv,
    takes_columns=True,
)
