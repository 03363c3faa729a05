"""CSV fields assembled as bytes by NumPy, with no Python ``str`` per field, for columns of
integers, timestamps, doubles, booleans and UUIDs.

Such a column becomes a *field matrix*: a ``uint8`` array of one row per CSV row whose
non-zero bytes, in order, are the row's field (zero bytes are padding, anywhere in the
row, so a number's digits can sit right-aligned after its sign). Adjacent columns'
matrices, with the delimiter between them, are laid side by side and the padding
dropped in one pass. Where the compiled line builder is built (``_lines.c``, an
optional extension that ``setup.py`` compiles when a C compiler is there), that pass
takes matrices and lists of ``str`` fields alike, and writes integer and timestamp
columns itself (:class:`NumberPart`), all in one pass with the GIL released
(:func:`compiled_lines`). Without it, the batch's lines are one matrix when
every column has one (:func:`lines_bytes`; a column of other types gets one from its
``str`` fields, if they are ASCII, by :func:`text_matrix`), else one ``str`` per row
for the run of columns, joined with the other columns' fields (:func:`group_texts`).
Both write the same bytes.
Integers get their digits by table lookup (two per division by 100), timestamps come
from :func:`cql_text.rfc3339_array_bytes`, doubles from :mod:`csv_doubles`; adjacent
ISO writetime columns are rendered together (:func:`writetime_block`): a row's
writetimes equal to its first are that one's bytes again. Neither the delimiter nor the
null text may hold NUL (it would read as padding) or LF (it splits a run's rows apart);
the writer checks that.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from typing import Any

import numpy

from transforms import cql_text

# The compiled line builder's interface this module speaks (``_lines.c``'s INTERFACE).
_INTERFACE = 1


def built_for_this_source(module: Any) -> Any:
    """The compiled module, or None when it was built from older source (an install not
    redone after an update: another ``INTERFACE``, or none), which is then left unused."""
    return module if getattr(module, "INTERFACE", None) == _INTERFACE else None


try:
    import transforms.formats._lines as _lines
except ImportError:  # not built (no C compiler where it was installed): the NumPy path
    _lines = None
_lines = built_for_this_source(_lines)

# True when the compiled line builder is there (:func:`compiled_lines`).
COMPILED = _lines is not None

__all__ = [
    "built_for_this_source",
    "COMPILED",
    "boolean_matrix",
    "compiled_lines",
    "digit_matrix",
    "int_matrix",
    "lines_bytes",
    "matrix_runs",
    "FLOAT",
    "float_part",
    "number_part",
    "NumberPart",
    "Part",
    "run_parts",
    "nulls_over",
    "group_texts",
    "text_matrix",
    "timestamp_matrix",
    "with_nulls",
    "writetime_block",
]


# A text column's matrix may hold at most this many bytes per byte of its fields and
# their separators: else it goes the str way (one long text among short ones).
_MAX_PADDING = 4


@functools.cache
def _digit_pairs() -> Any:
    """Two ASCII digits per uint16 (memory order), indexed by a remainder of a division by
    100, plus 100 when nothing is left above it: '00' ... '99', then the same with a
    leading zero as padding ('\\0\\0', '\\01' ... '99'), so no leading zero is written."""
    pairs = [f"{i:02d}".encode("ascii") for i in range(100)]
    pairs += [f"{i:d}".encode("ascii").rjust(2, b"\0") if i else b"\0\0" for i in range(100)]
    return numpy.frombuffer(b"".join(pairs), dtype=numpy.uint16)


def digit_matrix(magnitude: Any, pairs: int, padded: bool) -> Any:
    """Unsigned integers (each below ``100**pairs``) -> their ``2 * pairs`` decimal digits
    each, right-aligned; leading zeros kept (``padded``) or made padding, except a zero's
    last digit. Two digits per division by 100, table lookups."""
    body = numpy.empty((len(magnitude), pairs), dtype=numpy.uint16)
    hundred, table = magnitude.dtype.type(100), _digit_pairs()
    for pair in range(pairs - 1, -1, -1):
        quotient = magnitude // hundred
        index = (magnitude - quotient * hundred).astype(numpy.intp)
        if not padded:
            index[quotient == 0] += 100
        body[:, pair] = table[index]
        magnitude = quotient
    digits = body.view(numpy.uint8)
    if not padded and pairs:
        digits[digits[:, -1] == 0, -1] = ord("0")
    return digits


def int_matrix(values: Any) -> Any:
    """An integer array (no nulls) -> its field matrix: each value as ``str(int)`` writes
    it (the sign in the first column, then the digits right-aligned; padding between),
    in 32-bit arithmetic when the batch's magnitudes allow it."""
    values = numpy.asarray(values)
    if values.dtype.itemsize < 4 or values.dtype.kind != "i":
        values = values.astype(numpy.int64 if values.dtype.itemsize > 4 else numpy.int32)
    negative = values < 0
    magnitude = values.view(f"u{values.dtype.itemsize}").copy()  # -(2**63): 2**63 unsigned
    numpy.negative(magnitude, out=magnitude, where=negative)
    top = int(magnitude.max()) if len(values) else 0
    if values.dtype.itemsize == 8 and top < 2**32:
        magnitude = magnitude.astype(numpy.uint32)
    digits = digit_matrix(magnitude, max(1, (len(str(top)) + 1) // 2), padded=False)
    if not negative.any():
        return digits
    out = numpy.empty((len(values), digits.shape[1] + 1), dtype=numpy.uint8)
    out[:, 0] = numpy.where(negative, ord("-"), 0)
    out[:, 1:] = digits
    return out


def with_nulls(matrix: Any, mask: Any, null: bytes) -> Any:
    """The field matrix of a column's non-null values (``matrix``, one row per unmasked
    slot) -> the column's: ``null`` (unquoted) in the masked rows."""
    width = max(matrix.shape[1], len(null))
    out = numpy.zeros((len(mask), width), dtype=numpy.uint8)
    out[~mask, : matrix.shape[1]] = matrix
    if null:
        out[mask, : len(null)] = numpy.frombuffer(null, dtype=numpy.uint8)
    return out


def nulls_over(matrix: Any, mask: Any, null: bytes) -> Any:
    """The field matrix of a whole column whose masked rows were rendered from stand-in
    values -> ``null`` (unquoted) in those rows instead (in place when wide enough):
    cheaper than rendering only the unmasked values and spreading them out."""
    if len(null) > matrix.shape[1]:
        extra = numpy.zeros((len(matrix), len(null) - matrix.shape[1]), dtype=numpy.uint8)
        matrix = numpy.concatenate([matrix, extra], axis=1)
    rows = numpy.flatnonzero(mask)
    matrix[rows] = 0
    if null:
        matrix[rows, : len(null)] = numpy.frombuffer(null, dtype=numpy.uint8)
    return matrix


def timestamp_matrix(values: Any, per_second: int) -> Any:
    """An integer array (no nulls) of ``per_second`` units since the epoch -> the field
    matrix of their RFC 3339 texts (``cql_text.rfc3339_array_texts``), outside years
    1-9999 the integer's digits."""
    fixed, inside = cql_text.rfc3339_array_bytes(values, per_second)
    out = fixed.view(numpy.uint8).reshape(len(fixed), fixed.dtype.itemsize)
    if not inside.all():
        outside = numpy.flatnonzero(~inside)
        digits = int_matrix(numpy.asarray(values, dtype=numpy.int64)[outside])
        out[outside] = 0
        out[outside, : digits.shape[1]] = digits
    return out


def writetime_block(columns: Sequence[Any], null: bytes) -> list[Any] | None:
    """Adjacent columns of writetimes (int64 masked arrays of microseconds) -> the field
    matrix of each, their ISO fields (``timestamp_matrix``; ``null`` where masked); None
    unless every column holds integers. The cells of a row written together share a
    writetime, so each column's fields are the first one's bytes (the same matrix, where
    a column has no null and no writetime of its own), and only the writetimes that
    differ from their row's first present one are rendered, all in one call."""
    if any(column.dtype.kind != "i" for column in columns):
        return None
    data = [numpy.ma.getdata(column).astype(numpy.int64, copy=False) for column in columns]
    masks = [numpy.ma.getmaskarray(column) for column in columns]
    nulls = [bool(mask.any()) for mask in masks]
    first = _first_present(data, masks, nulls)
    differ = [numpy.flatnonzero(column != first) for column in data[1:]]
    differ = [
        rows[~mask[rows]] if null else rows
        for rows, mask, null in zip(differ, masks[1:], nulls[1:], strict=True)
    ]
    texts = [first] + [column[rows] for column, rows in zip(data[1:], differ, strict=True)]
    fixed = timestamp_matrix(numpy.concatenate(texts), 1_000_000)
    rows, size = len(first), fixed.shape[1]
    base = fixed[:rows]
    if len(null) > size:
        base = numpy.concatenate([base, numpy.zeros((rows, len(null) - size), numpy.uint8)], 1)
    null_field = numpy.frombuffer(null.ljust(base.shape[1], b"\0"), dtype=numpy.uint8)
    out, start = [], rows
    for found, mask, has_null in zip([None, *differ], masks, nulls, strict=True):
        if not has_null and (found is None or not len(found)):
            out.append(base)
            continue
        matrix = base.copy()
        if found is not None and len(found):
            matrix[found, :size] = fixed[start : start + len(found)]
            start += len(found)
        if has_null:
            matrix[numpy.flatnonzero(mask)] = null_field
        out.append(matrix)
    return out


def _first_present(data: list[Any], masks: list[Any], nulls: list[bool]) -> Any:
    """Each row's first present writetime (none present: the last column's slot, which
    holds anything): the one its first column's field is rendered from, so the writetimes
    of the columns after it render nothing new where they equal it."""
    first = data[-1]
    for k in range(len(data) - 2, -1, -1):
        first = numpy.where(masks[k], first, data[k]) if nulls[k] else data[k]
    return first


def boolean_matrix(values: Sequence[Any], null: bytes) -> Any | None:
    """A boolean column's values (True, False or None) -> its field matrix ('true',
    'false', ``null``); None if any value is something else."""
    codes = {False: 0, True: 1, None: 2}
    try:
        index = numpy.fromiter(map(codes.__getitem__, values), numpy.intp, len(values))
    except (KeyError, TypeError):
        return None
    return _byte_table((b"false", b"true", null))[index]


@functools.lru_cache(maxsize=16)
def _byte_table(texts: tuple[bytes, ...]) -> Any:
    """The texts as the rows of one zero-padded uint8 matrix."""
    width = max(1, *map(len, texts))
    table = numpy.zeros((len(texts), width), dtype=numpy.uint8)
    for row, text in enumerate(texts):
        table[row, : len(text)] = numpy.frombuffer(text, dtype=numpy.uint8)
    table.flags.writeable = False
    return table


def text_matrix(fields: Sequence[str]) -> Any | None:
    """CSV fields already quoted (``str``) -> their field matrix, each field's bytes
    left-aligned; None when a field holds a non-ASCII character or NUL (the matrix's
    padding), or when the widest field is so much wider than the others that the matrix
    would hold mostly padding. One join (NUL between the fields, which finds their ends)
    and encode, then each row cut from the joined bytes by a window of the widest
    field's width and the bytes past its own field zeroed: no Python call per field."""
    rows = len(fields)
    joined = "\0".join(fields)
    data = joined.encode("utf-8")
    if len(data) != len(joined) or not rows:
        return None
    source = numpy.frombuffer(data, dtype=numpy.uint8)
    ends = numpy.flatnonzero(source == 0)
    if len(ends) != rows - 1:  # a field holds NUL
        return None
    starts = numpy.empty(rows, dtype=numpy.intp)
    starts[0], starts[1:] = 0, ends + 1
    lengths = numpy.append(ends, len(data)) - starts
    width = int(lengths.max())
    if width * rows > _MAX_PADDING * (len(data) + 1):
        return None
    padded = numpy.frombuffer(data + bytes(width), dtype=numpy.uint8)
    out = numpy.lib.stride_tricks.sliding_window_view(padded, width)[starts]
    numpy.multiply(out, numpy.arange(width) < lengths[:, None], out=out)
    return out


def matrix_runs(byte_columns: Sequence[Any]) -> list[tuple[int, int]]:
    """The columns as runs ``(start, stop)``: each run of adjacent columns that have a
    field matrix (a converter in ``byte_columns``, else None) is one, every other column
    a run of its own."""
    runs: list[tuple[int, int]] = []
    for index, convert in enumerate(byte_columns):
        if convert is not None and runs and byte_columns[runs[-1][0]] is not None:
            runs[-1] = (runs[-1][0], index + 1)
        else:
            runs.append((index, index + 1))
    return runs


Part = tuple[int, int, Callable[[Sequence[Any]], Any]]


def run_parts(
    runs: Sequence[tuple[int, int]],
    byte_columns: Sequence[Any],
    iso: Sequence[bool],
    null: bytes,
) -> dict[int, list[Part]]:
    """Per run of columns with field matrices (by its first column): its parts ``(start,
    stop, columns -> their field matrices or None)``, a column each, except that adjacent
    ISO writetime columns (``iso``) are one part (``writetime_block``: a row's equal
    writetimes are rendered once)."""

    def block(columns: Sequence[Any]) -> list[Any] | None:
        if COMPILED:  # the compiled builder writes each column's writetimes itself
            found = [number_part(column, 1_000_000, null) for column in columns]
            return None if None in found else found
        return writetime_block(columns, null)

    def one(convert: Callable[[Any], Any]) -> Callable[[Sequence[Any]], list[Any] | None]:
        def matrices(columns: Sequence[Any]) -> list[Any] | None:
            matrix = convert(columns[0])
            return None if matrix is None else [matrix]

        return matrices

    parts: dict[int, list[Part]] = {}
    for start, stop in runs:
        if byte_columns[start] is None:
            continue
        found = parts[start] = []
        for index in range(start, stop):
            if iso[index] and found and found[-1][2] is block:
                found[-1] = (found[-1][0], index + 1, block)
            else:
                found.append((index, index + 1, block if iso[index] else one(byte_columns[index])))
    return parts


def lines_bytes(matrices: Sequence[Any], delimiter: bytes, end: bytes = b"\r\n") -> bytes:
    """A batch's field matrices (one per column, equal row counts) -> its CSV lines: each
    row's fields joined by ``delimiter`` and ended by ``end``. One matrix of the whole
    batch, then its padding dropped (``bytes.translate``: about 2/3 of the CPU of NumPy's
    boolean indexing); the compiled builder's one pass where it is built."""
    rows = len(matrices[0])
    if _lines is not None:
        return _lines.lines([numpy.ascontiguousarray(m) for m in matrices], rows, delimiter, end)
    separator = numpy.broadcast_to(
        numpy.frombuffer(delimiter, dtype=numpy.uint8), (rows, len(delimiter))
    )
    ending = numpy.broadcast_to(numpy.frombuffer(end, dtype=numpy.uint8), (rows, len(end)))
    parts: list[Any] = []
    for matrix in matrices:
        parts += (matrix, separator)
    parts[-1] = ending
    return numpy.concatenate(parts, axis=1).tobytes().translate(None, b"\0")


def group_texts(matrices: Sequence[Any], delimiter: bytes) -> list[str]:
    """The field matrices of adjacent columns -> each row's fields joined by
    ``delimiter``, one ``str`` per row (``\\n`` ends each row's part and then splits the
    parts apart: no field of a matrix or ``delimiter`` may hold it)."""
    joined = lines_bytes(matrices, delimiter, b"\n").decode("utf-8")
    return joined.split("\n")[:-1]


def compiled_lines(
    parts: Sequence[Any], rows: int, delimiter: bytes, end: bytes = b"\r\n"
) -> bytes | None:
    """A batch's columns, each a field matrix or a sequence of ``str`` fields (``rows``
    each), as its lines: row by row, each field (a matrix's non-zero bytes, a ``str``'s
    UTF-8) joined by ``delimiter`` and ended by ``end``; None when the compiled line
    builder is not built. One copy of each byte, no ``str`` per row, the GIL released."""
    if _lines is None:
        return None
    arguments = [
        numpy.ascontiguousarray(part)
        if isinstance(part, numpy.ndarray)
        else part
        if type(part) in (list, NumberPart)
        else list(part)
        for part in parts
    ]
    return _lines.lines(arguments, rows, delimiter, end)


class NumberPart(tuple):  # type: ignore[type-arg]
    """A column the compiled line builder writes itself: ``(style, values, mask, null,
    others)``, the values contiguous in native order, the mask None or bools (True:
    ``null``). Style 0: int32 or int64 values, as ``str(int)``; 1000 or 1,000,000: the
    same as units since the epoch, as the RFC 3339 texts of :func:`timestamp_matrix`
    (outside years 1-9999, the integer); ``FLOAT``: float64 or float32 values, each its
    shortest decimal as :mod:`csv_doubles` finds it, else ``others(index)``."""

    __slots__ = ()


# NumberPart's style of floats.
FLOAT = -1


def number_part(column: Any, per_second: int, null: bytes) -> NumberPart | None:
    """An integer column (a masked array; masked: null) as a :class:`NumberPart`; None
    when it does not hold integers."""
    if column.dtype.kind != "i":
        return None
    data = numpy.ma.getdata(column)
    if data.dtype.itemsize not in (4, 8) or not data.dtype.isnative:
        data = data.astype(numpy.int64 if data.dtype.itemsize == 8 else numpy.int32)
    return NumberPart((per_second, numpy.ascontiguousarray(data), _mask_of(column), null, None))


def float_part(column: Any, texts_of: Callable[[Any], list[str]], null: bytes) -> NumberPart | None:
    """A float64 or float32 column (a masked array; masked: null) as a :class:`NumberPart`
    whose values the method of :mod:`csv_doubles` cannot render come from ``texts_of``
    (the column's texts function: ``repr``, NaN, infinities); None when it does not
    hold floats."""
    if column.dtype.kind != "f" or column.dtype.itemsize not in (4, 8):
        return None
    data = numpy.ma.getdata(column)
    if not data.dtype.isnative:
        data = data.astype(data.dtype.newbyteorder("="))
    data = numpy.ascontiguousarray(data)

    def others(index: int) -> str:
        return texts_of(data[index : index + 1])[0]

    return NumberPart((FLOAT, data, _mask_of(column), null, others))


def _mask_of(column: Any) -> Any:
    """A masked array's mask as contiguous bools, None when it has none."""
    mask = numpy.ma.getmask(column)
    return None if mask is numpy.ma.nomask else numpy.ascontiguousarray(mask)
