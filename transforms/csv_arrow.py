"""A CSV unit file's columns read by Arrow's CSV reader, then decoded a column at a time,
giving exactly the values the text path of :mod:`transforms.export_files` and
:mod:`transforms.value_decoders` gives.

Why: the text path makes a Python string of every field, then a Python call or more per
value decodes it; Arrow splits the file into columns in C++, and numbers, booleans and
timestamps are decoded from a column's bytes without a string per value (the bulk of a
restore's client CPU on a narrow table).

Exactness: the file's structure was checked first (``check_csv``: RFC 4180, CRLF record
ends, quotes balanced and only around whole fields, no bare line break outside quotes), and
Arrow reads such a file as the text path does: every column as text, a quoted field as it
is (never null), an unquoted field equal to the null text as null, line breaks inside
quotes kept. A column is decoded from Arrow's bytes only where that gives the text path's
values for certain (integer texts of digits and ``-`` within int64, decimal double texts,
``true``/``false``, timestamps of the fixed width the exporter writes; see
:mod:`transforms.number_texts` and :mod:`transforms.timestamp_texts`); any other column,
or one with a value outside those forms, is handed to the text path's column decoder as
Python values. Where Arrow refuses the file (a record with a wrong field count), the
caller reads it again by the text path, which words the error.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

from transforms.export_layout import ExportLayout
from transforms.number_texts import DOUBLE_CHARACTERS, INTEGER_CHARACTERS, arrow_numbers
from transforms.timestamp_texts import rfc3339_arrays
from transforms.typed_column import TextColumn, TypedColumn, as_list

__all__ = ["arrow_column", "arrow_csv_tables", "arrow_csv_usable", "field_decoders"]

ColumnDecoder = Callable[[list[Any]], list[Any]]


def arrow_csv_usable(layout: ExportLayout) -> bool:
    """Whether Arrow's CSV options can say how this layout's files are written: a
    one-character delimiter and distinct column names."""
    names = list(layout.field_names)
    delimiter, null = layout.delimiter, layout.null_value
    special = '"\r\n' + delimiter
    return (
        len(delimiter) == 1
        and delimiter not in '"\r\n'
        and not any(c in null for c in special)
        and len(set(names)) == len(names) > 0
    )


def arrow_csv_tables(
    segments: Iterable[str], layout: ExportLayout, chunk_rows: int
) -> Iterator[Any]:
    """The records of a checked CSV text (``export_files.csv_segments``: pieces of whole
    records, the header first), every column as text, as Arrow tables of ``chunk_rows``
    rows (the last one shorter). A piece is read at once, so no more of the file is held
    than the text path holds. Raises ``pyarrow.ArrowException`` where Arrow cannot read
    the text as the layout says (a record with a wrong field count, a quoted header)."""
    import pyarrow
    from pyarrow import csv

    names = list(layout.field_names)
    header = layout.delimiter.join(names) + "\r\n"
    quoted = csv.ParseOptions(
        delimiter=layout.delimiter,
        quote_char='"',
        double_quote=True,
        escape_char=False,
        newlines_in_values=True,
        ignore_empty_lines=False,
    )
    # A piece without a quote is read as such (the same fields, less CPU): every line break
    # in it ends a record (check_csv refused bare ones).
    plain = csv.ParseOptions(
        delimiter=layout.delimiter,
        quote_char=False,
        escape_char=False,
        newlines_in_values=False,
        ignore_empty_lines=False,
    )
    convert = csv.ConvertOptions(
        column_types={name: pyarrow.string() for name in names},
        null_values=[layout.null_value],
        strings_can_be_null=True,
        quoted_strings_can_be_null=False,
        check_utf8=False,  # the bytes of a str: valid UTF-8
    )
    pending: list[Any] = []
    rows = 0
    for number, segment in enumerate(segments):
        if number == 0:
            if not segment.startswith(header):
                raise pyarrow.ArrowInvalid("the CSV header is quoted")
            segment = segment[len(header) :]
        data = segment.encode()
        if not data:
            continue
        read = csv.ReadOptions(use_threads=False, column_names=names, block_size=len(data) + 1)
        parse = quoted if '"' in segment else plain
        pending += csv.read_csv(pyarrow.py_buffer(data), read, parse, convert).to_batches()
        rows = sum(batch.num_rows for batch in pending)
        while rows >= chunk_rows:
            table = pyarrow.Table.from_batches(pending)
            yield table.slice(0, chunk_rows)
            pending = table.slice(chunk_rows).to_batches()
            rows -= chunk_rows
    if rows:
        yield pyarrow.Table.from_batches(pending)


def _value_bytes(strings: Any) -> tuple[bytes, Any]:
    """A string array's values as one bytes object, and each value's length."""
    import numpy

    _, offsets_buffer, data_buffer = strings.buffers()
    start = strings.offset
    offsets = numpy.frombuffer(offsets_buffer, numpy.int32)[start : start + len(strings) + 1]
    if data_buffer is None:
        return b"", numpy.diff(offsets)
    return bytes(memoryview(data_buffer)[offsets[0] : offsets[-1]]), numpy.diff(offsets)


Parsed = Any  # a NumPy array of the column's values, a list of them, or None: the text path


def _numbers(characters: bytes, to: str) -> Callable[[Any, ColumnDecoder], Parsed]:
    """A column of number texts (no null) -> Arrow's cast of it, when every text is of
    ``characters`` only and Arrow reads it (see :mod:`transforms.number_texts`)."""

    def parse(strings: Any, decode: ColumnDecoder) -> Parsed:
        data, _ = _value_bytes(strings)
        if data.translate(None, characters):
            return None
        return arrow_numbers(strings, to)

    return parse


def _float32(strings: Any, decode: ColumnDecoder) -> Parsed:
    """Float texts -> their float32 values (as ``number_texts.float32_column`` rounds)."""
    import numpy

    doubles = _numbers(DOUBLE_CHARACTERS, "float64")(strings, decode)
    if doubles is None:
        return None
    with numpy.errstate(over="ignore"):
        floats = doubles.astype(numpy.float32)
    if numpy.isinf(floats).any():  # too large for float32, or infinite: the text path
        return None
    return floats.astype(numpy.float64)


def _booleans(strings: Any, decode: ColumnDecoder) -> Parsed:
    """'true'/'false' texts -> bools; None when another text is among them."""
    import pyarrow.compute

    compute = pyarrow.compute
    true = compute.equal(strings, "true")
    if not compute.all(compute.or_(true, compute.equal(strings, "false"))).as_py():
        return None
    return true.to_numpy(zero_copy_only=False)


def _rfc3339(per_second: int) -> Callable[[Any, ColumnDecoder], Parsed]:
    """Timestamp texts of the exporter's fixed width -> integer units since the epoch;
    a text that is not one (a year outside 1-9999, written as an integer) by ``decode``."""
    width = 21 + len(str(per_second)) - 1

    def parse(strings: Any, decode: ColumnDecoder) -> Parsed:
        import numpy

        data, lengths = _value_bytes(strings)
        if (lengths != width).any():
            return None
        values, ok = rfc3339_arrays(data, len(strings), per_second)
        if ok.all():
            return values
        out = values.tolist()
        for index in numpy.flatnonzero(~ok).tolist():
            out[index] = decode([strings[index].as_py()])[0]
        return out

    return parse


_FAST: dict[str, tuple[str, Callable[[Any, ColumnDecoder], Parsed]]] = {
    "integer": ("0", _numbers(INTEGER_CHARACTERS, "int64")),
    "double": ("0", _numbers(DOUBLE_CHARACTERS, "float64")),
    "float32": ("0", _float32),
    "boolean": ("false", _booleans),
    "millis": ("1970-01-01T00:00:00.000Z", _rfc3339(1000)),
    "micros": ("1970-01-01T00:00:00.000000Z", _rfc3339(1_000_000)),
}

Column = list[Any] | TypedColumn | TextColumn


def arrow_column(kind: str, decode: ColumnDecoder, strings: Any, typed: bool = False) -> Column:
    """One column of an Arrow table from :func:`arrow_csv_tables` decoded (None for
    null): from its bytes when ``kind`` (``value_decoders.csv_kinds``) has a form here and
    the column fits it, else by ``decode``, the text path's decoder of the column.
    ``typed``: a column decoded from its bytes comes as a :class:`TypedColumn` (the same
    values, no Python object per value), a column of texts as a :class:`TextColumn`, any
    other as a list."""
    column = _typed(kind, decode, strings)
    return column if typed else as_list(column)


def _typed(kind: str, decode: ColumnDecoder, strings: Any) -> Column:
    """:func:`arrow_column`, a column decoded from its bytes as a :class:`TypedColumn`."""
    rows = len(strings)
    if strings.null_count == rows:
        return [None] * rows
    if kind == "text":
        return TextColumn(strings)
    if kind not in _FAST:
        return decode(strings.to_pylist())
    filler, parse = _FAST[kind]
    nulls = None
    filled = strings
    if strings.null_count:
        import pyarrow.compute

        nulls = strings.is_null().to_numpy(zero_copy_only=False)
        filled = pyarrow.compute.fill_null(strings, filler)
    values = parse(filled, decode)
    if values is None:
        return decode(strings.to_pylist())
    if isinstance(values, list):
        return (
            TypedColumn(_ints(values), nulls) if _fits_int64(values) else _with_nulls(values, nulls)
        )
    return TypedColumn(values, nulls)


def _fits_int64(values: list[Any]) -> bool:
    return all(type(v) is int and -(2**63) <= v < 2**63 for v in values)


def _ints(values: list[int]) -> Any:
    import numpy

    return numpy.array(values, numpy.int64)


def _with_nulls(values: list[Any], nulls: Any) -> list[Any]:
    import numpy

    if nulls is not None:
        for index in numpy.flatnonzero(nulls).tolist():
            values[index] = None
    return values


def field_decoders(
    kinds: list[str], decoders: list[ColumnDecoder], typed: bool = False
) -> list[Callable[[Any], Column]]:
    """Per field of a chunk (``kinds`` from ``value_decoders.csv_kinds``, ``decoders``
    the text path's column decoders), the function decoding its Arrow column (``typed``:
    as :func:`arrow_column`). A writetime column after the chunk's first one takes that
    one's values where its text is the same (a row's cells written together share their
    writetime), and decodes only the rest."""
    import functools

    first = kinds.index("micros") if "micros" in kinds else -1
    shared: list[Any] = []  # the first writetime column of the chunk and its values
    out: list[Callable[[Any], Column]] = []
    for index, (kind, decode) in enumerate(zip(kinds, decoders, strict=True)):
        if kind != "micros":
            out.append(functools.partial(arrow_column, kind, decode, typed=typed))
        elif index == first:
            out.append(functools.partial(_kept, decode, shared, typed))
        else:
            out.append(functools.partial(_like, decode, shared, typed))
    return out


def _kept(decode: ColumnDecoder, shared: list[Any], typed: bool, strings: Any) -> Column:
    values = _typed("micros", decode, strings)
    shared[:] = [strings, values]
    return values if typed else as_list(values)


def _like(decode: ColumnDecoder, shared: list[Any], typed: bool, strings: Any) -> Column:
    """A writetime column decoded as ``_kept``'s where their texts are equal."""
    import numpy
    import pyarrow.compute

    earlier, earlier_values = shared
    same = pyarrow.compute.equal(strings, earlier).fill_null(False)
    same = same.to_numpy(zero_copy_only=False)
    if not same.any() or not isinstance(earlier_values, TypedColumn):
        return arrow_column("micros", decode, strings, typed)
    nulls = strings.is_null().to_numpy(zero_copy_only=False)
    values = earlier_values.values.copy()
    other = numpy.flatnonzero(~same & ~nulls)
    if other.size:
        decoded = _typed("micros", decode, strings.take(other))
        if not isinstance(decoded, TypedColumn):
            return arrow_column("micros", decode, strings, typed)
        values[other] = decoded.values
    column = TypedColumn(values, nulls)
    return column if typed else column.tolist()
