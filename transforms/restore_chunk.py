"""A chunk of a plain table's restore as statement bytes, with NumPy doing the per-row work.

The columnar restore (:mod:`transforms.restore_columnar`) decodes and encodes a chunk of
rows a column at a time. What is left to do per row, which of its cells share one
writetime and TTL, its timestamp and TTL as bound, and the bytes of its statement, is done
here for the whole chunk at once:

- :func:`chunk_cells` finds with NumPy the rows whose present cells share one writetime
  and one exported TTL (null cells included): each is one statement;
- :func:`shared_rows` packs those rows' timestamps and restored TTLs in one NumPy record
  array and joins each row's statement (the prefix of its shape, timestamp and TTL, its
  cells, its key) in one pass;
- :class:`BuiltRows` keeps running totals of statements and bytes, so a partition that fits
  one batch (the common case) is one join of its rows (:func:`span_batches`); a larger one
  is cut as the row path cuts (``restore_batches``).

Rows with cells at several writetimes or TTLs, an expired TTL, or no cell at all are left
to the writer's row-by-row statements, which it puts in place.
"""

from __future__ import annotations

import itertools
import operator
from collections.abc import Mapping
from typing import Any, NamedTuple

import numpy

from transforms.typed_column import TypedColumn

__all__ = [
    "MAX_CODED_COLUMNS",
    "BuiltRows",
    "ChunkCells",
    "chunk_cells",
    "running",
    "shared_cells",
    "shared_rows",
    "span_batches",
]


class ChunkCells(NamedTuple):
    """A chunk's data cells, per data column: ``encoded`` (None for null), ``filled`` (the
    same with b"" for null), ``stamps`` and ``ttls`` (their writetimes and exported TTLs:
    lists, or ``TypedColumn``, which give the same item by index);
    per row (NumPy arrays): ``codes`` the bits (1 << data column) of its present cells when
    they all share one writetime and one exported TTL, else -1; for such a row
    ``shared_stamps``, ``shared_ttls`` and ``ttl_none`` (no TTL), and ``present`` (its
    number of present cells)."""

    encoded: list[list[Any]]
    filled: list[list[bytes]]
    stamps: list[Any]
    ttls: list[Any]
    codes: Any
    shared_stamps: Any
    shared_ttls: Any
    ttl_none: Any
    present: Any


class BuiltRows(NamedTuple):
    """Rows ``first:`` of a chunk built at one TTL ``offset``: each row's statements joined
    (``rows``, b"" for none), the statements of rows that have several (``several``, by row
    index in the chunk), and running totals (a leading 0, so rows ``a:b`` of the list hold
    ``total[b] - total[a]``) of statements, bytes, cells written and cells expired."""

    offset: int
    first: int
    rows: list[bytes]
    several: dict[int, list[bytes]]
    statements: list[int]
    sizes: list[int]
    written: list[int]
    expired: list[int]

    def cells_between(self, start: int, end: int) -> tuple[int, int]:
        """Cells written and cells expired of chunk rows ``start:end``."""
        a, b = start - self.first, end - self.first
        return self.written[b] - self.written[a], self.expired[b] - self.expired[a]


def running(values: Any) -> list[int]:
    """Running totals of an array with a leading 0."""
    return [0, *numpy.cumsum(values).tolist()]


# A statement's timestamp and TTL as bound: [int] length, int64; [int] length, int32.
TIMES = numpy.dtype(
    [("stamp_length", ">i4"), ("stamp", ">i8"), ("ttl_length", ">i4"), ("ttl", ">i4")]
)
MAX_INT32 = 2**31 - 1


def shared_rows(
    cells: ChunkCells, keys: list[bytes], first: int, offset: int, prefixes: Mapping[int, bytes]
) -> tuple[list[bytes], Any]:
    """Rows ``first:`` of a chunk as (each row's statement bytes, which rows those are): a
    row whose present cells share one writetime and a TTL still alive at ``offset``
    (seconds from the unit's read to now; restored TTL = exported TTL + offset) gets its
    one statement; any other row gets b"" and is left to the caller, as is a row whose
    shape has no prefix in ``prefixes`` (by its code) yet."""
    codes = cells.codes[first:]
    ttls = cells.shared_ttls[first:] + offset
    shared = (codes >= 0) & (cells.ttl_none[first:] | ((ttls > 0) & (ttls <= MAX_INT32)))
    rows = len(codes)
    times = numpy.empty(rows, TIMES)
    times["stamp_length"], times["ttl_length"] = 8, 4
    times["stamp"], times["ttl"] = cells.shared_stamps[first:], numpy.where(shared, ttls, 0)
    times["ttl"][cells.ttl_none[first:]] = 0
    get = prefixes.get
    joined = [
        b"".join(parts)
        for parts in zip(
            [get(code, b"") for code in codes.tolist()],
            times.view(f"V{TIMES.itemsize}").tolist(),
            *(column[first:] for column in cells.filled),
            keys[first:],
            strict=True,
        )
    ]
    return joined, shared


def chunk_cells(
    encoded: list[list[Any]],
    stamps: list[Any],
    ttls: list[Any],
    rows: int,
    nulls: list[Any] | None = None,
) -> ChunkCells:
    """A chunk's :class:`ChunkCells` from its encoded data columns (None for null) and
    their writetimes and exported TTLs; ``nulls``: per data column, a bool array of its
    null rows where the decoded column knows them (a ``TypedColumn``), else None (the
    encoded column is looked at)."""
    nulls = nulls or [None] * len(encoded)
    filled = [
        column if not _has_none(column, known) else [c or b"" for c in column]
        for column, known in zip(encoded, nulls, strict=True)
    ]
    shared = shared_cells(encoded, stamps, ttls, rows, nulls)
    return ChunkCells(encoded, filled, stamps, ttls, *shared)


def _has_none(column: list[Any], nulls: Any) -> bool:
    return None in column if nulls is None else bool(nulls.any())


# More data columns than fit one int64 of bits: every row goes through ``_row``.
MAX_CODED_COLUMNS = 62


def shared_cells(
    encoded: list[list[Any]],
    stamps: list[Any],
    ttls: list[Any],
    rows: int,
    nulls: list[Any] | None = None,
) -> tuple[Any, Any, Any, Any, Any]:
    """``ChunkCells``'s codes, shared writetimes, shared TTLs (0 where none), where there
    is no TTL, and present counts, as NumPy arrays worked out over the chunk's columns
    (data column j: ``encoded[j]``, ``stamps[j]``, ``ttls[j]``, ``nulls[j]`` as for
    :func:`chunk_cells`) instead of row by row."""
    width = len(encoded)
    zeros = numpy.zeros(rows, numpy.int64)
    unshared = (numpy.full(rows, -1, numpy.int64), zeros, zeros, numpy.ones(rows, bool), zeros)
    if width == 0 or width > MAX_CODED_COLUMNS:
        return unshared
    present = numpy.ones((width, rows), bool)
    for j, column in enumerate(encoded):
        if nulls is not None and nulls[j] is not None:
            present[j] = ~nulls[j]
        elif None in column:
            present[j] = numpy.fromiter(
                map(operator.is_not, column, itertools.repeat(None)), bool, rows
            )
    try:
        stamp, stamp_none = _int64_rows(stamps, ~present)
        ttl, ttl_none = _int64_rows(ttls, ~present)
    except OverflowError:  # not a writetime or TTL the exporter wrote: the row path reports it
        return unshared
    first = present.argmax(axis=0)
    at = numpy.arange(rows)
    first_stamp, first_stamp_none = stamp[first, at], stamp_none[first, at]
    first_ttl, first_ttl_none = ttl[first, at], ttl_none[first, at]
    same = (
        (stamp == first_stamp)
        & (stamp_none == first_stamp_none)
        & (ttl == first_ttl)
        & (ttl_none == first_ttl_none)
    )
    shared = present.any(axis=0) & (same | ~present).all(axis=0) & ~first_stamp_none
    bits = numpy.left_shift(1, numpy.arange(width, dtype=numpy.int64))
    codes = numpy.where(shared, bits @ present.astype(numpy.int64), -1)
    return codes, first_stamp, first_ttl, first_ttl_none, present.sum(axis=0)


def _int64_rows(columns: list[Any], absent: Any) -> tuple[Any, Any]:
    """Columns of ints or None (lists, or ``TypedColumn`` of int64, taken as they are) as
    (an int64 array, 0 where None; where None), where the
    values of ``absent`` cells (null cells: a bool array like the result) do not matter
    and may be taken as None. A column equal to an earlier one (a row's cells written
    together share their writetimes) is converted once; one without None, or of None
    only, without looking at each value."""
    rows = len(columns[0])
    values = numpy.zeros((len(columns), rows), numpy.int64)
    none = numpy.zeros((len(columns), rows), bool)
    done: list[tuple[list[Any], int]] = []
    for j, column in enumerate(columns):
        if isinstance(column, TypedColumn):
            if column.values.dtype.kind != "i":
                raise OverflowError("not integers")  # not a writetime or TTL column
            values[j] = column.values
            none[j] = False if column.nulls is None else column.nulls
            continue
        same = next((k for earlier, k in done if column is earlier or column == earlier), None)
        if same is not None and (absent[j] == absent[same]).all():
            values[j], none[j] = values[same], none[same]
            continue
        done.append((column, j))
        if None not in column:
            values[j] = numpy.array(column, dtype=numpy.int64)
            continue
        if column.count(None) == rows:
            none[j] = True
            continue
        items = numpy.array(column, dtype=object)
        items[absent[j]] = 0
        try:  # None only where the cell is null: nothing else to look at
            values[j], none[j] = items.astype(numpy.int64), absent[j]
        except TypeError:
            missing = numpy.fromiter(map(operator.is_, column, itertools.repeat(None)), bool, rows)
            items[missing] = 0
            values[j], none[j] = items.astype(numpy.int64), missing | absent[j]
    return values, none


def span_batches(
    built: BuiltRows, start: int, end: int, limit: int, budget: int
) -> list[tuple[bytes, int]]:
    """Rows ``start:end`` of one partition as batches (members, statements), bounded as
    the row path's (``restore_batches``): at most ``limit`` statements and ``budget``
    bytes each, a row split only when it alone is over the bytes. Rows that fit one batch (the common case) are joined at once."""
    first = built.first
    a, b = start - first, end - first
    count = built.statements[b] - built.statements[a]
    if count <= limit and built.sizes[b] - built.sizes[a] <= budget:
        return [(b"".join(built.rows[a:b]), count)] if count else []
    batches: list[tuple[bytes, int]] = []
    batch: list[bytes] = []
    statements = data = 0
    for at in range(a, b):
        count = built.statements[at + 1] - built.statements[at]
        if count == 0:
            continue
        row = built.several.get(first + at) or [built.rows[at]]
        size = built.sizes[at + 1] - built.sizes[at]
        if batch and (statements + count > limit or data + size > budget):
            batches.append((b"".join(batch), statements))
            batch, statements, data = [], 0, 0
        if size > budget:  # rare: cut into batches of its own (see _cut)
            batches += _cut(row, limit, budget)
            continue
        batch += row
        statements += count
        data += size
    if batch:
        batches.append((b"".join(batch), statements))
    return batches


def _cut(row: list[bytes], limit: int, budget: int) -> list[tuple[bytes, int]]:
    """A row over the byte budget as batches (members, statements) of its own statements,
    within ``limit`` statements and ``budget`` bytes each (a statement over it alone). It
    may be cut anywhere: no list here, each statement rewrites its cells with their
    timestamps."""
    batches: list[tuple[bytes, int]] = []
    batch: list[bytes] = []
    data = 0
    for member in row:
        if batch and (len(batch) == limit or data + len(member) > budget):
            batches.append((b"".join(batch), len(batch)))
            batch, data = [], 0
        batch.append(member)
        data += len(member)
    batches.append((b"".join(batch), len(batch)))
    return batches
