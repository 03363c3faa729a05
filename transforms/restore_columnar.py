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
  ``Statement``; which rows those are, and their timestamps and TTLs as bound, are worked
  out with NumPy a chunk at a time, and a partition that fits one batch is joined at once
  (no Python work per row beyond one join);
- a batch is sent as its members' bytes (:class:`transforms.restore_encode.EncodedBatch`).

Nothing here talks to Cassandra except through the ``prepare`` and ``send`` functions the
writer is given.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Hashable, Iterable, Sequence
from typing import Any

import numpy

from transforms.export_layout import ExportLayout
from transforms.restore_batches import MAX_BATCH_BYTES
from transforms.restore_chunk import (
    BuiltRows,
    ChunkCells,
    chunk_cells,
    running,
    shared_rows,
    span_batches,
)
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
from transforms.typed_column import TypedColumn, as_list, has_null, null_mask

__all__ = ["ColumnarWriter", "columnar_fields"]


def columnar_fields(
    plan: RestorePlan, layout: ExportLayout
) -> tuple[list[int], list[int], list[int | None], list[int | None]] | None:
    """Where a plain table's columns are in the layout's fields: (key value indexes, data
    value indexes, data writetime indexes, data TTL indexes; None where the column has no
    writetime or TTL field), or None when the table or the files are not plain."""
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
        # a group of data columns, by its bits (1 << index, as ``restore_chunk.shared_cells`` codes
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
        chunks: Iterable[list[list[Any] | TypedColumn]],
        read_started_micros: int,
        counts: Any,
        before_partition: Callable[[int], None],
        send: Callable[[EncodedBatch], None],
        rows_fallback: Callable[[list[list[Any]]], None],
    ) -> None:
        """Write one unit's chunks of decoded columns (the layout's fields, in order; a
        column a list, or a ``TypedColumn`` of the same values).

        ``before_partition(rows)`` runs before the statements of a partition (or a piece of
        one, or a group of small partitions sent together) are built (rate limit, a free
        request slot), so their TTLs are not aged by waiting.
        A chunk with a row that lacks part of its key (a static-only partition exported
        without its statics) goes to ``rows_fallback``, the row path, which writes nothing
        for that row."""
        self.last_partition = None  # a unit's first rows open their partition
        for columns in chunks:
            if any(has_null(columns[i]) for i in self.key_fields):
                rows_fallback([as_list(column) for column in columns])
                self.last_partition = None
                continue
            self.write_chunk(columns, read_started_micros, counts, before_partition, send)

    def write_chunk(
        self,
        columns: Sequence[list[Any] | TypedColumn],
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
        read_started_s = read_started_micros // 1_000_000
        built_rows: BuiltRows | None = None
        for group in grouped(spans, self.replica_range, limit, most):
            before_partition(sum(end - start for start, end, _ in group))
            # The rows from this group on are built now, after the wait, so no TTL is aged
            # by it; they are built again only when the clock has moved a second since.
            offset = read_started_s - int(self.clock())
            if built_rows is None or built_rows.offset != offset:
                while (
                    built_rows := self._build(cells, keys, group[0][0], offset, read_started_micros)
                ) is None:  # a statement shape was prepared: TTLs count from now
                    offset = read_started_s - int(self.clock())
            built = []
            for start, end, routing in group:
                opens = partitions[start] != self.last_partition
                self.last_partition = partitions[start]
                written, expired = built_rows.cells_between(start, end)
                counts.cells += written
                counts.expired_cells += expired
                batches = span_batches(built_rows, start, end, limit, self.max_batch_bytes)
                built.append(PartitionBatches(routing, batches, end - start, written))
                counts.rows += end - start
                counts.partitions += opens
            for routing, members, statements in packed(built, limit, most):
                send(EncodedBatch(self.batch_statement(routing), members, statements))
                counts.statements += statements
                counts.batches += 1

    def _cells(self, columns: Sequence[list[Any] | TypedColumn], rows: int) -> ChunkCells:
        """A chunk's data cells encoded, with their writetimes and exported TTLs, and which
        rows share one of each (see ``ChunkCells``)."""
        encoded = [
            encode(columns[i])
            for encode, i in zip(self.value_encoders, self.value_fields, strict=True)
        ]
        stamps = [
            columns[i] if i is not None else [self.fixed] * rows for i in self.writetime_fields
        ]
        ttls = [columns[i] if i is not None else [None] * rows for i in self.ttl_fields]
        nulls = [null_mask(columns[i]) for i in self.value_fields]
        return chunk_cells(encoded, stamps, ttls, rows, nulls)

    def _build(
        self,
        cells: ChunkCells,
        keys: list[bytes],
        first: int,
        offset: int,
        marker_timestamp: int,
    ) -> BuiltRows | None:
        """Rows ``first:`` of a chunk as statement bytes, with TTLs restored at ``offset``
        (seconds from the unit's read to now, negative); None, when a statement shape had to
        be prepared first (a round trip: the caller takes the clock again).

        A row whose present cells share one writetime and one live TTL is its one
        statement, joined for the whole chunk at once (``restore_chunk.shared_rows``); any
        other row (cells at several writetimes or TTLs, an expired TTL, no cell: its
        marker) goes through ``_row``."""
        joined, shared = shared_rows(cells, keys, first, offset, self.prefixes)
        missing = set(numpy.unique(cells.codes[first:][shared]).tolist()) - self.prefixes.keys()
        if missing:
            for code in missing:
                self._prefix(tuple(j for j in range(len(self.data)) if code >> j & 1))
            return None
        rows = len(joined)
        statements = numpy.ones(rows, numpy.int64)
        written = numpy.where(shared, cells.present[first:], 0)
        expired = numpy.zeros(rows, numpy.int64)
        several: dict[int, list[bytes]] = {}
        for at in numpy.flatnonzero(~shared).tolist():
            i = first + at
            row_counts = _RowCounts()
            statements_of = self._row(
                tuple(column[i] for column in cells.encoded),
                tuple(column[i] for column in cells.stamps),
                tuple(column[i] for column in cells.ttls),
                keys[i],
                offset,
                marker_timestamp,
                row_counts,
            )
            if statements_of is None:
                return None
            joined[at] = b"".join(statements_of)
            statements[at] = len(statements_of)
            written[at], expired[at] = row_counts.cells, row_counts.expired_cells
            if len(statements_of) > 1:
                several[i] = statements_of
        sizes = numpy.fromiter(map(len, joined), numpy.int64, rows)
        totals = (running(values) for values in (statements, sizes, written, expired))
        return BuiltRows(offset, first, joined, several, *totals)

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


class _RowCounts:
    """What ``_row`` counts of one row."""

    def __init__(self) -> None:
        self.cells = self.expired_cells = 0


def _code(group: Sequence[int]) -> int:
    """The bits (1 << data column index) of a group of data columns."""
    return sum(1 << j for j in group)


def _joined(parts: list[list[bytes]]) -> list[bytes]:
    """Per row, the encoded values of several key columns one after the other."""
    if len(parts) == 1:
        return parts[0]
    return [b"".join(values) for values in zip(*parts, strict=True)]
