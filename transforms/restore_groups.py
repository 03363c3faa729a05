"""Small partitions of a restore sent together: one unlogged batch for several partitions
that the same replicas own.

A restore sends the statements of one partition as one unlogged batch. On a table of small
partitions (a key-value table: one row each) that is one request per row, and the client's
cost per request, not per row, bounds the restore. Consecutive partitions of a unit (an
export unit is a token range, so its partitions come in token order) whose tokens fall in
the same range of the target's ring have the same replicas, so the coordinator the batch is
routed to owns all of them and applies them as local writes: they go in one batch.

Such a batch stays under Cassandra's warnings for multi-partition batches: by default at
most ``MAX_PARTITIONS`` partitions (the node warns above 10, ``unlogged_batch_across_
partitions_warn_threshold``; ``--batch-partitions`` changes it for a node configured
otherwise) and an estimated data size of at most ``MAX_DATA_BYTES`` (the node warns above
5 KiB, ``batch_size_warn_threshold``, and refuses above 50 KiB). A partition over
either bound is sent alone, as before. Only the columnar restore of plain tables groups:
rewriting such cells is idempotent, while the row path's list checks rely on each batch
being one partition, applied atomically.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterator, Sequence
from typing import NamedTuple

__all__ = ["MAX_DATA_BYTES", "MAX_PARTITIONS", "PartitionBatches", "grouped", "packed"]

MAX_PARTITIONS = 10
# Estimated data bytes of a multi-partition batch (see ``PartitionBatches.data_bytes``).
MAX_DATA_BYTES = 4096
# What a cell can add to a mutation's data size beyond its encoded bytes (timestamp, TTL,
# local deletion time), and a row (its clustering and liveness).
_CELL_OVERHEAD = 16
_ROW_OVERHEAD = 16


class PartitionBatches(NamedTuple):
    """One partition's batches as the writer built them: (members, statements) each."""

    routing: bytes
    batches: list[tuple[bytes, int]]
    rows: int
    cells: int

    @property
    def data_bytes(self) -> int:
        """An upper estimate of the partition's data size as the node counts it against its
        batch size thresholds: its encoded members plus each cell's and row's overhead."""
        encoded = sum(len(members) for members, _ in self.batches)
        return encoded + _CELL_OVERHEAD * self.cells + _ROW_OVERHEAD * self.rows


def grouped(
    spans: Sequence[tuple[int, int, bytes]],
    replica_range: Callable[[bytes], Hashable] | None,
    max_statements: int,
    max_partitions: int = MAX_PARTITIONS,
) -> Iterator[list[tuple[int, int, bytes]]]:
    """Partition spans (start row, end row, routing key) in groups that may share batches:
    consecutive spans whose routing keys fall in one range of the ring, at most
    ``max_partitions`` of them and ``max_statements`` rows in all. Without
    ``replica_range`` (no token map) every span is a group of its own."""
    index = 0
    while index < len(spans):
        group = [spans[index]]
        start, end, routing = spans[index]
        rows = end - start
        index += 1
        if replica_range is not None and rows < max_statements:
            owner = replica_range(routing)
            while index < len(spans) and len(group) < max_partitions:
                start, end, routing = spans[index]
                if rows + end - start > max_statements or replica_range(routing) != owner:
                    break
                group.append(spans[index])
                rows += end - start
                index += 1
        yield group


def packed(
    partitions: Sequence[PartitionBatches],
    max_statements: int,
    max_partitions: int = MAX_PARTITIONS,
) -> Iterator[tuple[bytes, bytes, int]]:
    """The batches to send for a group of partitions: (routing key, members, statements).
    Partitions of one batch each are packed together while the batch stays within
    ``max_partitions``, ``MAX_DATA_BYTES`` and ``max_statements``; any other partition's
    batches go alone. A partition's batches keep their order; routing is the first
    partition's of the batch."""
    members: list[bytes] = []
    routing = b""
    statements = data = count = 0
    for partition in partitions:
        if not partition.batches:  # every cell expired since the export: nothing to send
            continue
        size = partition.data_bytes
        single = len(partition.batches) == 1 and size <= MAX_DATA_BYTES
        if members and (
            not single
            or count == max_partitions
            or data + size > MAX_DATA_BYTES
            or statements + partition.batches[0][1] > max_statements
        ):
            yield routing, b"".join(members), statements
            members, statements, data, count = [], 0, 0, 0
        if not single:
            for batch_members, batch_statements in partition.batches:
                yield partition.routing, batch_members, batch_statements
            continue
        if not members:
            routing = partition.routing
        batch_members, batch_statements = partition.batches[0]
        members.append(batch_members)
        statements += batch_statements
        data += size
        count += 1
    if members:
        yield routing, b"".join(members), statements
