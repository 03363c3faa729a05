"""The restore of a plain table, a chunk of decoded columns at a time.

A table is plain here when every exported non-key column is written whole (no counter, no
non-frozen collection or UDT, no static column): most tables. Its rows need none of the
per-element work of :mod:`transforms.restore_rows`, so they are written straight from the
decoded columns, with the same statements (shapes, bind order, grouping of a row's cells by
(writetime, TTL), expired cells skipped, ``INSERT`` of the key for a row whose cells are all
null), the same single-partition batches (at most ``max_batch_statements`` statements
and ``max_batch_bytes`` bytes each, a row split only when it alone is over the bytes) and
the same TTL clock, but:

- each column is encoded once per chunk (:func:`transforms.restore_encode.column_encoder`),
  not value by value through the driver's binding;
- a row whose present cells share one writetime and one TTL (the common case, null cells
  included) becomes its one statement by joining bytes, without a dict, a group or a
  ``Statement``; which rows those are is worked out with NumPy a chunk at a time;
- a batch is sent as its members' bytes (:class:`transforms.restore_encode.EncodedBatch`).

Nothing here talks to Cassandra except through the ``prepare`` and ``send`` functions the
writer is given.
"""

from __future__ import annotations

import functools
import itertools
import operator
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any, NamedTuple

import numpy

from transforms.export_layout import ExportLayout
from transforms.restore_batches import MAX_BATCH_BYTES
from transforms.restore_encode import (
    EncodedBatch,
    column_encoder,
    encode_bigint,
    encode_int,
    member_prefix,
    routing_key,
)
from transforms.restore_groups import MAX_PARTITIONS, PartitionBatches, grouped, packed
from transforms.restore_plan import MARKER, ROW, RestoreColumn, RestorePlan, Shape
from transforms.restore_rows import bindable
from transforms.table_plan import STATIC

__all__ = ["ColumnarWriter", "columnar_fields"]


def columnar_fields(
    plan: RestorePlan, layout: ExportLayout
) -> tuple[list[int], list[int], list[int | None], list[int | None]] | None:
    """Where a plain table's columns are in the layout's fields: (key value indexes, data
    value indexes, data writetime indexes, data TTL indexes; None where the column has no
    writetime or TTL field), or None when the table or the files are not plain."""
    if layout.format == "parquet":  # its reader gives rows, not columns
        return None
    for column in plan.data_columns:
        if column.counter or column.multicell is not None or column.kind == STATIC:
            return None
    index = {(f.role, f.column): i for i, f in enumerate(layout.fields)}
    if any(f.per_element for f in layout.fields):
        return None
    keys = plan.partition_key + plan.clustering
    try:
        key_fields = [index[("value", c.name)] for c in keys]
        value_fields = [index[("value", c.name)] for c in plan.data_columns]
    except KeyError:
        return None
    writetime_fields = [index.get(("writetime", c.name)) for c in plan.data_columns]
    ttl_fields = [index.get(("ttl", c.name)) for c in plan.data_columns]
    for column, wt, ttl in zip(plan.data_columns, writetime_fields, ttl_fields, strict=True):
        if (wt is not None) != column.has_writetime or (ttl is not None) != column.has_ttl:
            return None
    return key_fields, value_fields, writetime_fields, ttl_fields


class ColumnarWriter:
    """Writes chunks of decoded columns of one plain table (see the module's notes).

    ``prepare(shape)`` returns the driver's prepared statement of a shape (a round trip the
    first time); ``batch_statement(routing_key)`` the driver statement a batch is sent with
    (routing, keyspace); ``clock()`` the time TTLs count from; ``replica_range(routing_key)``
    which range of the target's ring holds a partition (small partitions of one range share
    batches, see :mod:`transforms.restore_groups`; None: every partition alone)."""

    def __init__(
        self,
        plan: RestorePlan,
        fields: tuple[list[int], list[int], list[int | None], list[int | None]],
        prepare: Callable[[Shape], Any],
        protocol_version: int,
        max_batch_statements: int,
        partition_rows: int,
        batch_statement: Callable[[bytes], Any],
        clock: Callable[[], float] = time.time,
        replica_range: Callable[[bytes], Hashable] | None = None,
        max_batch_partitions: int = MAX_PARTITIONS,
        max_batch_bytes: int = MAX_BATCH_BYTES,
    ) -> None:
        self.plan = plan
        self.max_batch_bytes = max_batch_bytes
        self.replica_range = replica_range
        self.max_batch_partitions = max_batch_partitions
        self.clock = clock
        self.batch_statement = batch_statement
        self.key_fields, self.value_fields, self.writetime_fields, self.ttl_fields = fields
        self.data: tuple[RestoreColumn, ...] = plan.data_columns
        self.partition_width = len(plan.partition_key)
        self.prepare = prepare
        self.max_batch_statements = max_batch_statements
        self.partition_rows = partition_rows
        width = len(self.data)
        self._marker_prefix: bytes | None = None
        # a group of data columns, by its bits (1 << index, as ``_shared_cells`` codes
        # rows) -> the start of its batch members
        self.prefixes: dict[int, bytes] = {}
        if width:  # bind order: timestamp, TTL, values, keys
            full = prepare(Shape(ROW, tuple(c.whole for c in self.data)))
            types = [c.type for c in full.column_metadata]
            value_types, key_types = types[2 : 2 + width], types[2 + width :]
            self.prefixes[(1 << width) - 1] = member_prefix(full)
        else:  # a table of key columns only: every row is its marker (keys, timestamp)
            value_types, key_types = [], [c.type for c in self._marker().column_metadata][:-1]
        self.value_encoders = [
            column_encoder(
                cql_type,
                protocol_version,
                functools.partial(bindable, column) if column.udt_fields else None,
            )
            for column, cql_type in zip(self.data, value_types, strict=True)
        ]
        self.key_encoders = [column_encoder(t, protocol_version) for t in key_types]
        self.last_partition: bytes | None = None
        self.fixed = plan.fixed_timestamp

    def _prefix(self, group: tuple[int, ...]) -> bytes:
        shape = Shape(ROW, tuple(self.data[j].whole for j in group))
        prefix = self.prefixes[_code(group)] = member_prefix(self.prepare(shape))
        return prefix

    def _marker(self) -> Any:
        """The prepared ``INSERT`` of a row marker; its member start is kept."""
        prepared = self.prepare(Shape(MARKER))
        self._marker_prefix = member_prefix(prepared)
        return prepared

    def write_unit(
        self,
        chunks: Iterable[list[list[Any]]],
        read_started_micros: int,
        counts: Any,
        before_partition: Callable[[int], None],
        send: Callable[[EncodedBatch], None],
        rows_fallback: Callable[[list[list[Any]]], None],
    ) -> None:
        """Write one unit's chunks of decoded columns (the layout's fields, in order).

        ``before_partition(rows)`` runs before the statements of a partition (or a piece of
        one, or a group of small partitions sent together) are built (rate limit, a free
        request slot), so their TTLs are not aged by waiting.
        A chunk with a row that lacks part of its key (a static-only partition exported
        without its statics) goes to ``rows_fallback``, the row path, which writes nothing
        for that row."""
        self.last_partition = None  # a unit's first rows open their partition
        for columns in chunks:
            if any(None in columns[i] for i in self.key_fields):
                rows_fallback(columns)
                self.last_partition = None
                continue
            self.write_chunk(columns, read_started_micros, counts, before_partition, send)

    def write_chunk(
        self,
        columns: Sequence[list[Any]],
        read_started_micros: int,
        counts: Any,
        before_partition: Callable[[int], None],
        send: Callable[[EncodedBatch], None],
    ) -> None:
        """Write one chunk of decoded columns, partition by partition; consecutive small
        partitions of one range of the ring share batches (see write_unit)."""
        rows = len(columns[0]) if columns else 0
        if rows == 0:
            return
        cells = self._cells(columns, rows)
        key_parts = [
            encode(columns[i]) for encode, i in zip(self.key_encoders, self.key_fields, strict=True)
        ]
        partition_parts = key_parts[: self.partition_width]
        partitions = _joined(partition_parts)
        keys = _joined(key_parts)
        spans = []  # (start row, end row, routing key) per partition, or piece of one
        start = 0
        while start < rows:
            key = partitions[start]
            end = start + 1
            limit = min(rows, start + self.partition_rows)
            while end < limit and partitions[end] == key:
                end += 1
            spans.append((start, end, routing_key([part[start] for part in partition_parts])))
            start = end
        limit = self.max_batch_statements
        most = self.max_batch_partitions
        for group in grouped(spans, self.replica_range, limit, most):
            before_partition(sum(end - start for start, end, _ in group))
            built = []
            for start, end, routing in group:
                opens = partitions[start] != self.last_partition
                self.last_partition = partitions[start]
                cells_before = counts.cells
                batches = self._partition_batches(
                    cells, keys, start, end, read_started_micros, counts
                )
                built.append(
                    PartitionBatches(routing, batches, end - start, counts.cells - cells_before)
                )
                counts.rows += end - start
                counts.partitions += opens
            for routing, members, statements in packed(built, limit, most):
                send(EncodedBatch(self.batch_statement(routing), members, statements))
                counts.statements += statements
                counts.batches += 1

    def _cells(self, columns: Sequence[list[Any]], rows: int) -> _ChunkCells:
        """Per row: its encoded cells (None for null), their writetimes and exported TTLs,
        and whether its present cells share one writetime and TTL (see ``_ChunkCells``)."""
        if not self.data:
            return _ChunkCells([()] * rows, [()] * rows, [()] * rows, [-1] * rows, [], [], [])
        encoded = [
            encode(columns[i])
            for encode, i in zip(self.value_encoders, self.value_fields, strict=True)
        ]
        stamps = [
            columns[i] if i is not None else [self.fixed] * rows for i in self.writetime_fields
        ]
        ttls = [columns[i] if i is not None else [None] * rows for i in self.ttl_fields]
        codes, shared_stamps, shared_ttls, present = _shared_cells(encoded, stamps, ttls, rows)
        return _ChunkCells(
            list(zip(*encoded, strict=True)),
            list(zip(*stamps, strict=True)),
            list(zip(*ttls, strict=True)),
            codes,
            shared_stamps,
            shared_ttls,
            present,
        )

    def _partition_batches(
        self,
        cells: _ChunkCells,
        keys: list[bytes],
        start: int,
        end: int,
        read_started_micros: int,
        counts: Any,
    ) -> list[tuple[bytes, int]]:
        """Rows ``start:end`` of one partition as batches (members, statements), bounded as
        the row path's (``restore_batches``). All are built before the first is sent, so no
        TTL is computed after a wait for a free request slot. A row whose present cells
        share one writetime and one live TTL (``cells.codes``) becomes its one statement by
        joining bytes; any other row goes through ``_row``."""
        width = len(self.data)
        full_code = (1 << width) - 1
        read_started_s = read_started_micros // 1_000_000
        offset = read_started_s - int(self.clock())
        limit = self.max_batch_statements
        prefixes = self.prefixes
        budget = self.max_batch_bytes
        batches: list[tuple[bytes, int]] = []
        batch: list[bytes] = []
        statements = data = 0
        for i in range(start, end):
            code = cells.codes[i]
            prefix = prefixes.get(code) if code >= 0 else None
            ttl = cells.shared_ttls[i] if prefix is not None else None
            if prefix is not None and (ttl is None or ttl + offset > 0):
                present = cells.cells[i]
                row = [
                    prefix
                    + encode_bigint(cells.shared_stamps[i])
                    + encode_int(0 if ttl is None else ttl + offset)
                    + b"".join(present if code == full_code else filter(None, present))
                    + keys[i]
                ]
                counts.cells += cells.present[i]
            else:
                row_of = (cells.cells[i], cells.stamps[i], cells.ttls[i], keys[i])
                built = self._row(*row_of, offset, read_started_micros, counts)
                while built is None:  # a statement shape was prepared: TTLs count from now
                    offset = read_started_s - int(self.clock())
                    built = self._row(*row_of, offset, read_started_micros, counts)
                row = built
            if not row:
                continue
            size = len(row[0]) if len(row) == 1 else sum(map(len, row))
            if batch and (statements + len(row) > limit or data + size > budget):
                batches.append((b"".join(batch), statements))
                batch, statements, data = [], 0, 0
            if size > budget:  # rare: cut into batches of its own (see _cut)
                batches += _cut(row, limit, budget)
                continue
            batch += row
            statements += len(row)
            data += size
        if batch:
            batches.append((b"".join(batch), statements))
        return batches

    def _row(
        self,
        cells: tuple[Any, ...],
        stamps: tuple[Any, ...],
        ttls: tuple[Any, ...],
        key: bytes,
        offset: int,
        marker_timestamp: int,
        counts: Any,
    ) -> list[bytes] | None:
        """A row's statements, one per (writetime, restored TTL) group in the order its
        cells meet them; None (nothing counted) when a group's shape had to be prepared."""
        groups: dict[tuple[int, int], list[int]] = {}
        present = expired = 0
        for j, cell in enumerate(cells):
            if cell is None:
                continue
            present += 1
            ttl = ttls[j]
            restored = 0 if ttl is None else ttl + offset
            if ttl is not None and restored <= 0:
                expired += 1
                continue
            group = groups.get((stamps[j], restored))
            if group is None:
                groups[(stamps[j], restored)] = [j]
            else:
                group.append(j)
        if present == 0:
            if self._marker_prefix is None:
                self._marker()
                return None
            return [self._marker_prefix + key + encode_bigint(marker_timestamp)]
        missing = [tuple(g) for g in groups.values() if _code(g) not in self.prefixes]
        if missing:
            for group in missing:
                self._prefix(group)
            return None
        statements = []
        for (stamp, restored), members in groups.items():
            statements.append(
                self.prefixes[_code(members)]
                + encode_bigint(stamp)
                + encode_int(restored)
                + b"".join([cells[j] for j in members])
                + key
            )
        counts.cells += present - expired
        counts.expired_cells += expired
        return statements


class _ChunkCells(NamedTuple):
    """A chunk's data cells, per row: ``cells`` (encoded, None for null), ``stamps`` and
    ``ttls`` (their writetimes and exported TTLs); ``codes`` the bits (1 << data column)
    of its present cells when they all share one writetime and one exported TTL, else -1;
    for such a row ``shared_stamps``, ``shared_ttls`` (None: no TTL) and ``present`` (its
    number of present cells)."""

    cells: list[tuple[Any, ...]]
    stamps: list[tuple[Any, ...]]
    ttls: list[tuple[Any, ...]]
    codes: list[int]
    shared_stamps: list[int]
    shared_ttls: list[int | None]
    present: list[int]


# More data columns than fit one int64 of bits: every row goes through ``_row``.
_MAX_CODED_COLUMNS = 62


def _shared_cells(
    encoded: list[list[Any]], stamps: list[list[Any]], ttls: list[list[Any]], rows: int
) -> tuple[list[int], list[int], list[int | None], list[int]]:
    """``_ChunkCells``'s codes, shared writetimes, shared TTLs and present counts, worked
    out with NumPy over the chunk's columns (data column j: ``encoded[j]``, ``stamps[j]``,
    ``ttls[j]``) instead of row by row."""
    width = len(encoded)
    if width > _MAX_CODED_COLUMNS:
        return [-1] * rows, [], [], []
    present = numpy.ones((width, rows), bool)
    for j, column in enumerate(encoded):
        if None in column:
            present[j] = numpy.fromiter(
                map(operator.is_not, column, itertools.repeat(None)), bool, rows
            )
    try:
        stamp, stamp_none = _int64_rows(stamps, ~present)
        ttl, ttl_none = _int64_rows(ttls, ~present)
    except OverflowError:  # not a writetime or TTL the exporter wrote: ``_row`` reports it
        return [-1] * rows, [], [], []
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
    shared_ttls: list[int | None] = first_ttl.tolist()
    for index in numpy.flatnonzero(first_ttl_none).tolist():
        shared_ttls[index] = None
    return codes.tolist(), first_stamp.tolist(), shared_ttls, present.sum(axis=0).tolist()


def _int64_rows(columns: list[list[Any]], absent: Any) -> tuple[Any, Any]:
    """Columns of ints or None as (an int64 array, 0 where None; where None), where the
    values of ``absent`` cells (null cells: a bool array like the result) do not matter
    and may be taken as None. A column equal to an earlier one (a row's cells written
    together share their writetimes) is converted once; one without None, or of None
    only, without looking at each value."""
    rows = len(columns[0])
    values = numpy.zeros((len(columns), rows), numpy.int64)
    none = numpy.zeros((len(columns), rows), bool)
    done: list[tuple[list[Any], int]] = []
    for j, column in enumerate(columns):
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


def _code(group: Sequence[int]) -> int:
    """The bits (1 << data column index) of a group of data columns."""
    return sum(1 << j for j in group)


def _joined(parts: list[list[bytes]]) -> list[bytes]:
    """Per row, the encoded values of several key columns one after the other."""
    if len(parts) == 1:
        return parts[0]
    return [b"".join(values) for values in zip(*parts, strict=True)]
