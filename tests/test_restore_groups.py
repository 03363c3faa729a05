"""Which small partitions the columnar restore sends in one batch
(``transforms.restore_groups``): pure logic on made-up spans and batches. The round trip of
a table of small partitions through it, on a real node, is in
tests/test_restore_small_partitions.py. Also how the columnar writer cuts one partition's
batches by bytes (large rows on a real node: tests/test_restore_big_rows.py)."""

from __future__ import annotations

from typing import Any

from transforms.restore_columnar import ColumnarWriter
from transforms.restore_encode import EncodedBatch
from transforms.restore_groups import (
    MAX_DATA_BYTES,
    MAX_PARTITIONS,
    PartitionBatches,
    grouped,
    packed,
)
from transforms.restore_plan import ROW, Shape, build_restore_plan
from transforms.write_sender import UnitCounts


def spans_of(sizes: list[int]) -> list[tuple[int, int, bytes]]:
    spans, start = [], 0
    for i, size in enumerate(sizes):
        spans.append((start, start + size, bytes([i])))
        start += size
    return spans


def test_consecutive_spans_of_one_range_are_grouped() -> None:
    spans = spans_of([1] * 25)
    ranges = {bytes([i]): 0 if i < 7 else 1 for i in range(25)}  # a range ends after 7
    groups = [[s[2][0] for s in g] for g in grouped(spans, ranges.__getitem__, 128)]
    assert groups == [list(range(7)), list(range(7, 17)), list(range(17, 25))]


def test_groups_hold_at_most_max_statements_rows() -> None:
    groups = list(grouped(spans_of([50, 50, 50, 200, 1, 1]), lambda _: 0, 128))
    assert [[s[2][0] for s in g] for g in groups] == [[0, 1], [2], [3], [4, 5]]


def test_without_a_token_map_every_span_is_alone() -> None:
    groups = list(grouped(spans_of([1, 1, 1]), None, 128))
    assert [len(g) for g in groups] == [1, 1, 1]


def one(routing: bytes, size: int, statements: int = 1, cells: int = 1) -> PartitionBatches:
    return PartitionBatches(routing, [(bytes(size), statements)], statements, cells)


def test_small_partitions_share_a_batch_routed_by_the_first() -> None:
    parts = [one(bytes([i]), 100) for i in range(3)]
    assert list(packed(parts, 128)) == [(b"\x00", bytes(300), 3)]


def test_a_batch_holds_at_most_max_partitions() -> None:
    parts = [one(bytes([i]), 10) for i in range(MAX_PARTITIONS + 3)]
    sent = list(packed(parts, 128))
    assert [(r, len(m), n) for r, m, n in sent] == [
        (b"\x00", 10 * MAX_PARTITIONS, MAX_PARTITIONS),
        (bytes([MAX_PARTITIONS]), 30, 3),
    ]


def test_a_batch_stays_under_the_data_size_estimate() -> None:
    # 990 bytes + 16 per cell + 16 per row: 1022 estimated; four fit in 4096, five do not
    parts = [one(bytes([i]), 990) for i in range(5)]
    assert parts[0].data_bytes == 1022 and 4 * 1022 <= MAX_DATA_BYTES < 5 * 1022
    assert [(r, n) for r, _, n in packed(parts, 128)] == [(b"\x00", 4), (b"\x04", 1)]


def test_large_or_split_partitions_go_alone_in_order() -> None:
    big = PartitionBatches(b"B", [(bytes(MAX_DATA_BYTES), 1)], 1, 1)
    split = PartitionBatches(b"S", [(b"s1", 128), (b"s2", 3)], 131, 131)
    empty = PartitionBatches(b"E", [], 2, 0)  # every cell expired
    parts = [one(b"a", 5), big, one(b"b", 5), empty, one(b"c", 5), split, one(b"d", 5)]
    assert list(packed(parts, 128)) == [
        (b"a", bytes(5), 1),
        (b"B", bytes(MAX_DATA_BYTES), 1),
        (b"b", bytes(10), 2),
        (b"S", b"s1", 128),
        (b"S", b"s2", 3),
        (b"d", bytes(5), 1),
    ]


def test_statements_bound_a_shared_batch() -> None:
    parts = [one(bytes([i]), 10, statements=50) for i in range(3)]
    assert [n for _, _, n in packed(parts, 128)] == [100, 50]


def test_the_partition_bound_is_a_parameter() -> None:
    parts = [one(bytes([i]), 10) for i in range(5)]
    assert [n for _, _, n in packed(parts, 128, 2)] == [2, 2, 1]
    groups = list(grouped(spans_of([1] * 5), lambda _: 0, 128, 3))
    assert [len(g) for g in groups] == [3, 2]


class _Column:
    def __init__(self, cql_type: Any) -> None:
        self.type = cql_type


class _Prepared:
    """What ColumnarWriter reads of a prepared statement: its id and its bound types."""

    def __init__(self, types: list[Any]) -> None:
        self.query_id = b"q" * 16
        self.column_metadata = [_Column(t) for t in types]


def test_columnar_batches_split_by_bytes() -> None:
    from cassandra.cqltypes import BytesType, Int32Type, LongType

    plan = build_restore_plan(
        "ks",
        "t",
        [
            {"name": "pk", "cql_type": "int", "kind": "partition_key"},
            {"name": "ck", "cql_type": "int", "kind": "clustering"},
            {"name": "b", "cql_type": "blob", "kind": "regular"},
        ],
        {},
        ["b"],
        ["b"],
    )
    row_types = [LongType, Int32Type, BytesType, Int32Type, Int32Type]  # timestamp, TTL, b, keys

    def prepare(shape: Shape) -> _Prepared:
        return _Prepared(row_types if shape.scope == ROW else [Int32Type, Int32Type, LongType])

    # a chunk's fields: pk, ck, b, WRITETIME(b), TTL(b)
    writer = ColumnarWriter(
        plan, ([0, 1], [2], [3], [4]), prepare, 5, 128, 1000, bytes, max_batch_bytes=1000
    )
    sizes = [300, 300, 300, 300, 300, 1200, 10, 10]
    columns = [
        [1] * len(sizes),
        list(range(len(sizes))),
        [b"x" * n for n in sizes],
        [1_000 + i for i in range(len(sizes))],
        [None] * len(sizes),
    ]
    sent: list[EncodedBatch] = []
    writer.write_chunk(columns, 0, UnitCounts(), lambda rows: None, sent.append)
    # a member: 21 bytes of prefix, then [int] length and bytes of each value: timestamp
    # (8), TTL (4), the blob, two int keys: 61 bytes beside the blob
    assert [(len(b.members), b.count) for b in sent] == [
        (2 * 361, 2),
        (2 * 361, 2),
        (361, 1),
        (1261, 1),  # over the budget alone
        (2 * 71, 2),
    ]
