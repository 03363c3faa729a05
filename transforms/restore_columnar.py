"""The restore of a plain table, a chunk of decoded columns at a time.

A table is plain here when every exported non-key column is written whole (no counter, no
non-frozen collection or UDT, no static column): most tables. Its rows need none of the
per-element work of :mod:`transforms.restore_rows`, so they are written straight from the
decoded columns, with the same statements (shapes, bind order, grouping of a row's cells by
(writetime, TTL), expired cells skipped, ``INSERT`` of the key for a row whose cells are all
null), the same single-partition batches (a row never split, at most
``max_batch_statements`` statements each) and the same TTL clock, but:

- each column is encoded once per chunk (:func:`transforms.restore_encode.column_encoder`),
  not value by value through the driver's binding;
- a row whose cells are all set with one writetime and one TTL (the common case) becomes
  its one statement by joining bytes, without a dict, a group or a ``Statement``;
- a batch is sent as its members' bytes (:class:`transforms.restore_encode.EncodedBatch`).

Nothing here talks to Cassandra except through the ``prepare`` and ``send`` functions the
writer is given.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from transforms.export_layout import ExportLayout
from transforms.restore_encode import (
    EncodedBatch,
    column_encoder,
    encode_bigint,
    encode_int,
    member_prefix,
    routing_key,
)
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
    first time); ``batch_statement(routing_key)`` the driver statement a partition's batch
    is sent with (routing, keyspace); ``clock()`` the time TTLs count from."""

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
    ) -> None:
        self.plan = plan
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
        # (data column indexes of a group) -> the start of its batch members
        self.prefixes: dict[tuple[int, ...], bytes] = {}
        if width:  # bind order: timestamp, TTL, values, keys
            full = prepare(Shape(ROW, tuple(c.whole for c in self.data)))
            types = [c.type for c in full.column_metadata]
            value_types, key_types = types[2 : 2 + width], types[2 + width :]
            self.prefixes[tuple(range(width))] = member_prefix(full)
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
        prefix = self.prefixes[group] = member_prefix(self.prepare(shape))
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

        ``before_partition(rows)`` runs before a partition's (or a piece's) statements are
        built (rate limit, a free request slot), so their TTLs are not aged by waiting.
        A chunk with a row that lacks part of its key (a static-only partition exported
        without its statics) goes to ``rows_fallback``, the row path, which writes and is
        refused as it always was."""
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
        """Write one chunk of decoded columns, partition by partition (see write_unit)."""
        rows = len(columns[0]) if columns else 0
        if rows == 0:
            return
        cells_of, stamps_of, ttls_of = self._cells(columns, rows)
        key_parts = [
            encode(columns[i]) for encode, i in zip(self.key_encoders, self.key_fields, strict=True)
        ]
        partition_parts = key_parts[: self.partition_width]
        partitions = _joined(partition_parts)
        keys = _joined(key_parts)
        start = 0
        while start < rows:
            key = partitions[start]
            end = start + 1
            limit = min(rows, start + self.partition_rows)
            while end < limit and partitions[end] == key:
                end += 1
            opens = key != self.last_partition
            self.last_partition = key
            before_partition(end - start)
            routing = routing_key([part[start] for part in partition_parts])
            rows_of = (cells_of, stamps_of, ttls_of, keys)
            batches = self._partition_batches(rows_of, start, end, read_started_micros, counts)
            for members, statements in batches:
                send(EncodedBatch(self.batch_statement(routing), members, statements))
                counts.statements += statements
                counts.batches += 1
            counts.rows += end - start
            counts.partitions += opens
            start = end

    def _cells(
        self, columns: Sequence[list[Any]], rows: int
    ) -> tuple[list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]]]:
        """Per row: its encoded cells (None for null), their writetimes and exported TTLs."""
        if not self.data:
            return [()] * rows, [()] * rows, [()] * rows
        encoded = [
            encode(columns[i])
            for encode, i in zip(self.value_encoders, self.value_fields, strict=True)
        ]
        stamps = [
            columns[i] if i is not None else [self.fixed] * rows for i in self.writetime_fields
        ]
        ttls = [columns[i] if i is not None else [None] * rows for i in self.ttl_fields]
        return (
            list(zip(*encoded, strict=True)),
            list(zip(*stamps, strict=True)),
            list(zip(*ttls, strict=True)),
        )

    def _partition_batches(
        self,
        rows_of: tuple[
            list[tuple[Any, ...]], list[tuple[Any, ...]], list[tuple[Any, ...]], list[bytes]
        ],
        start: int,
        end: int,
        read_started_micros: int,
        counts: Any,
    ) -> list[tuple[bytes, int]]:
        """Rows ``start:end`` of one partition as batches (members, statements); a row's
        statements never split. All are built before the first is sent, as the row path
        does, so no TTL is computed after a wait for a free request slot."""
        cells_of, stamps_of, ttls_of, keys = rows_of
        width = len(self.data)
        read_started_s = read_started_micros // 1_000_000
        offset = read_started_s - int(self.clock())
        full = self.prefixes.get(tuple(range(width)), b"")
        limit = self.max_batch_statements
        batches: list[tuple[bytes, int]] = []
        batch: list[bytes] = []
        statements = 0
        for i in range(start, end):
            cells, stamps, ttls = cells_of[i], stamps_of[i], ttls_of[i]
            if (
                width
                and None not in cells
                and stamps.count(stamps[0]) == width
                and ttls.count(ttls[0]) == width
                and (ttls[0] is None or ttls[0] + offset > 0)
            ):
                ttl = ttls[0]
                row = [
                    full
                    + encode_bigint(stamps[0])
                    + encode_int(0 if ttl is None else ttl + offset)
                    + b"".join(cells)
                    + keys[i]
                ]
                counts.cells += width
            else:
                built = self._row(cells, stamps, ttls, keys[i], offset, read_started_micros, counts)
                while built is None:  # a statement shape was prepared: TTLs count from now
                    offset = read_started_s - int(self.clock())
                    built = self._row(
                        cells, stamps, ttls, keys[i], offset, read_started_micros, counts
                    )
                row = built
            if not row:
                continue
            if batch and statements + len(row) > limit:
                batches.append((b"".join(batch), statements))
                batch, statements = [], 0
            batch += row
            statements += len(row)
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
        missing = [tuple(g) for g in groups.values() if tuple(g) not in self.prefixes]
        if missing:
            for group in missing:
                self._prefix(group)
            return None
        statements = []
        for (stamp, restored), members in groups.items():
            statements.append(
                self.prefixes[tuple(members)]
                + encode_bigint(stamp)
                + encode_int(restored)
                + b"".join([cells[j] for j in members])
                + key
            )
        counts.cells += present - expired
        counts.expired_cells += expired
        return statements


def _joined(parts: list[list[bytes]]) -> list[bytes]:
    """Per row, the encoded values of several key columns one after the other."""
    if len(parts) == 1:
        return parts[0]
    return [b"".join(values) for values in zip(*parts, strict=True)]
