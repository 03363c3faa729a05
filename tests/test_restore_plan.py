"""Restore's pure logic: decoded rows -> timestamped statements, batches and CQL (no node)."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from cassandra.util import OrderedMap

from transforms.restore_batches import (
    MAX_BATCH_BYTES,
    pack_batches,
    statement_bytes,
    value_bytes,
)
from transforms.restore_manifest import retarget_create, udts_in_dependency_order
from transforms.restore_plan import (
    ADD,
    FIELD,
    MARKER,
    PARTITION,
    ROW,
    SET_VALUE,
    Assignment,
    Shape,
    Statement,
    build_restore_plan,
    list_check_cql,
    list_check_key_scope,
    statement_cql,
)
from transforms.restore_rows import RowStatementBuilder, TtlClock

COLUMNS = [
    {"name": "k", "cql_type": "int", "kind": "partition_key"},
    {"name": "c", "cql_type": "int", "kind": "clustering"},
    {"name": "st", "cql_type": "text", "kind": "static"},
    {"name": "v", "cql_type": "text", "kind": "regular"},
    {"name": "l", "cql_type": "list<text>", "kind": "regular"},
    {"name": "s", "cql_type": "set<int>", "kind": "regular"},
    {"name": "m", "cql_type": "map<text, int>", "kind": "regular"},
    {"name": "u", "cql_type": "addr", "kind": "regular"},
    {"name": "fu", "cql_type": "frozen<addr>", "kind": "regular"},
]
TYPES = {"addr": [["street", "text"], ["zip", "int"]]}
DATA = ["st", "v", "l", "s", "m", "u", "fu"]
PLAN = build_restore_plan("ks", "t", COLUMNS, TYPES, DATA, DATA)
BUILDER = RowStatementBuilder(PLAN)
CLOCK = TtlClock(read_started_s=1000, now_s=1000)


@dataclass
class Row:
    values: dict[str, Any]
    writetimes: dict[str, Any] = field(default_factory=dict)
    ttls: dict[str, Any] = field(default_factory=dict)


def row(**cells: Any) -> Row:
    """Row(k=1, c=2, v=("x", 10, None)): each data cell as (value, writetime, ttl)."""
    values = {n: None for n in ["k", "c", *DATA]}
    result = Row(values)
    for name, cell in cells.items():
        if name in ("k", "c"):
            values[name] = cell
        else:
            values[name], result.writetimes[name], result.ttls[name] = cell
    return result


def shapes_and_values(writes: Any) -> list[tuple[Shape, tuple[Any, ...]]]:
    return [(s.shape, s.values) for s in writes.statements]


def test_cells_grouped_by_writetime_and_ttl() -> None:
    writes = BUILDER.row_writes(
        row(
            k=1, c=2, v=("x", 10, None), fu=({"street": "a", "zip": 1}, 10, None), st=("s", 10, 50)
        ),
        CLOCK,
        with_statics=True,
        marker_timestamp=99,
    )
    assert shapes_and_values(writes) == [
        (Shape(PARTITION, (Assignment("st", SET_VALUE),)), (10, 50, "s", 1)),
        (
            Shape(ROW, (Assignment("v", SET_VALUE), Assignment("fu", SET_VALUE))),
            (10, 0, "x", ("a", 1), 1, 2),
        ),
    ]
    assert (writes.cells, writes.expired) == (3, 0)


def test_statics_only_with_the_first_row_and_static_only_partition() -> None:
    later = BUILDER.row_writes(
        row(k=1, c=3, v=("y", 5, None), st=("s", 10, None)),
        CLOCK,
        with_statics=False,
        marker_timestamp=1,
    )
    assert shapes_and_values(later) == [
        (Shape(ROW, (Assignment("v", SET_VALUE),)), (5, 0, "y", 1, 3))
    ]
    static_only = BUILDER.row_writes(
        row(k=7, c=None, st=("only", 4, None)), CLOCK, with_statics=True, marker_timestamp=1
    )
    assert shapes_and_values(static_only) == [
        (Shape(PARTITION, (Assignment("st", SET_VALUE),)), (4, 0, "only", 7))
    ]


def test_key_only_row_gets_a_marker_at_the_read_start() -> None:
    writes = BUILDER.row_writes(row(k=2, c=1), CLOCK, with_statics=True, marker_timestamp=777)
    assert shapes_and_values(writes) == [(Shape(MARKER), (2, 1, 777))]


def test_per_element_collections() -> None:
    writes = BUILDER.row_writes(
        row(
            k=1,
            c=1,
            l=(["a", "b", "c", "d"], [10, 10, 20, 10], [None, None, 30, None]),
            s=([1, 2, 3], [10, 20, 10], [None, None, None]),
            m=({"x": 1, "y": 2}, [20, 10], [30, None]),
            u=({"street": "w", "zip": None}, [10, None], [None, None]),
        ),
        CLOCK,
        with_statics=True,
        marker_timestamp=1,
    )
    assert shapes_and_values(writes) == [
        (
            Shape(
                ROW, (Assignment("s", ADD), Assignment("m", ADD), Assignment("u", FIELD, "street"))
            ),
            (10, 0, [1, 3], {"y": 2}, "w", 1, 1),
        ),
        (Shape(ROW, (Assignment("s", ADD),)), (20, 0, [2], 1, 1)),
        (Shape(ROW, (Assignment("m", ADD),)), (20, 30, {"x": 1}, 1, 1)),
        (Shape(ROW, (Assignment("l", ADD),)), (10, 0, ["a", "b"], 1, 1)),
        (Shape(ROW, (Assignment("l", ADD),)), (20, 30, ["c"], 1, 1)),
        (Shape(ROW, (Assignment("l", ADD),)), (10, 0, ["d"], 1, 1)),
    ]
    assert [s.appends_list for s in writes.statements] == [False] * 3 + [True] * 3
    assert writes.cells == 4 + 3 + 2 + 1


def test_per_element_map_with_unhashable_keys_is_an_ordered_map() -> None:
    """Keys a dict cannot hold (a UDT decoded as a mapping) go back in the driver's
    OrderedMap, one per writetime."""
    columns = [
        {"name": "k", "cql_type": "int", "kind": "partition_key"},
        {"name": "mu", "cql_type": "map<frozen<addr>, int>", "kind": "regular"},
    ]
    builder = RowStatementBuilder(build_restore_plan("ks", "t", columns, TYPES, ["mu"], []))
    a, b, c = ({"street": s, "zip": 1} for s in "abc")
    value = OrderedMap([(a, 1), (b, 2), (c, 3)])
    writes = builder.row_writes(
        Row({"k": 1, "mu": value}, {"mu": [10, 20, 10]}),
        CLOCK,
        with_statics=True,
        marker_timestamp=1,
    )
    assert [(s.shape, s.values) for s in writes.statements] == [
        (Shape(ROW, (Assignment("mu", ADD),)), (10, 0, OrderedMap([(a, 1), (c, 3)]), 1)),
        (Shape(ROW, (Assignment("mu", ADD),)), (20, 0, OrderedMap([(b, 2)]), 1)),
    ]
    assert [type(s.values[2]) for s in writes.statements] == [OrderedMap, OrderedMap]


def test_ttl_keeps_the_expiry_instant_and_expired_cells_are_skipped() -> None:
    clock = TtlClock(read_started_s=1000, now_s=1040)
    assert [clock.restored(t) for t in (None, 100, 41, 40, 3)] == [0, 60, 1, None, None]
    writes = BUILDER.row_writes(
        row(k=1, c=1, v=("x", 10, 40), l=(["a", "b"], [10, 10], [100, 30]), s=([1], [5], [200])),
        clock,
        with_statics=True,
        marker_timestamp=1,
    )
    assert shapes_and_values(writes) == [
        (Shape(ROW, (Assignment("s", ADD),)), (5, 160, [1], 1, 1)),
        (Shape(ROW, (Assignment("l", ADD),)), (10, 60, ["a"], 1, 1)),
    ]
    assert (writes.cells, writes.expired) == (2, 2)


def test_redo_skips_list_elements_the_target_holds() -> None:
    present = {"l": Counter([(b"a", 10), (b"b", 10)])}
    writes = BUILDER.row_writes(
        row(k=1, c=1, l=(["a", "b", "a"], [10, 10, 10], [None, None, None])),
        CLOCK,
        with_statics=True,
        marker_timestamp=1,
        present=present,
        element_key=lambda _column, element: element.encode(),
    )
    assert shapes_and_values(writes) == [
        (Shape(ROW, (Assignment("l", ADD),)), (10, 0, ["a"], 1, 1))
    ]
    assert writes.list_elements_present == 2


def test_batches_never_split_a_row() -> None:
    rows = [
        BUILDER.row_writes(
            row(k=1, c=c, l=(["a", "b"], [c, c + 100], [None, None])),
            CLOCK,
            with_statics=False,
            marker_timestamp=1,
        )
        for c in range(3)
    ]
    assert [len(r.statements) for r in rows] == [2, 2, 2]
    assert [len(b) for b in pack_batches(rows, 3)] == [2, 2, 2]
    assert [len(b) for b in pack_batches(rows, 4)] == [4, 2]
    assert [len(b) for b in pack_batches(rows, 1)] == [2, 2, 2]


def test_cql() -> None:
    shape = Shape(
        ROW, (Assignment("v", SET_VALUE), Assignment("l", ADD), Assignment("u", FIELD, "zip"))
    )
    assert statement_cql(PLAN, shape) == (
        "UPDATE ks.t USING TIMESTAMP ? AND TTL ? SET v = ?, l = l + ?, u.zip = ? WHERE k = ? AND c = ?"
    )
    assert statement_cql(PLAN, Shape(PARTITION, (Assignment("st", SET_VALUE),))) == (
        "UPDATE ks.t USING TIMESTAMP ? AND TTL ? SET st = ? WHERE k = ?"
    )
    assert statement_cql(PLAN, Shape(MARKER)) == (
        "INSERT INTO ks.t (k, c) VALUES (?, ?) USING TIMESTAMP ? AND TTL 0"
    )
    assert list_check_cql(PLAN) == "SELECT l, WRITETIME(l) FROM ks.t WHERE k = ? AND c = ?"
    with_static_list = build_restore_plan(
        "ks",
        "t",
        [*COLUMNS, {"name": "sl", "cql_type": "list<int>", "kind": "static"}],
        TYPES,
        [],
        [],
    )
    assert list_check_cql(with_static_list, ROW) == (
        "SELECT l, WRITETIME(l), sl, WRITETIME(sl) FROM ks.t WHERE k = ? AND c = ?"
    )
    assert list_check_cql(with_static_list, PARTITION) == (
        "SELECT sl, WRITETIME(sl) FROM ks.t WHERE k = ? LIMIT 1"
    )
    # Every list static: Cassandra refuses a read of statics only restricting the clustering
    # key, so a row's list read is the partition's.
    only_static_lists = build_restore_plan(
        "ks",
        "t",
        [c for c in COLUMNS if c["name"] != "l"]
        + [{"name": "sl", "cql_type": "list<int>", "kind": "static"}],
        TYPES,
        [],
        [],
    )
    for scope in (ROW, PARTITION):
        assert list_check_key_scope(only_static_lists, scope) == PARTITION
        assert list_check_cql(only_static_lists, scope) == (
            "SELECT sl, WRITETIME(sl) FROM ks.t WHERE k = ? LIMIT 1"
        )
    assert list_check_key_scope(with_static_list, ROW) == ROW


def test_udts_in_dependency_order_and_retargeting() -> None:
    udts = {
        "outer": ["frozen<inner>", "text"],
        "inner": ["frozen<leaf>"],
        "leaf": ["int"],
        "unused": ["int"],
    }
    assert udts_in_dependency_order(["int", "list<frozen<outer>>"], udts) == [
        "leaf",
        "inner",
        "outer",
    ]
    quoted = {"two words": ["int"], "x<y>": ['frozen<"two words">'], "Two": ["int"]}
    assert udts_in_dependency_order(['map<int, frozen<"x<y>">>', '"Two"'], quoted) == [
        "two words",
        "x<y>",
        "Two",
    ]
    assert retarget_create(
        "CREATE TABLE ks.t (k int PRIMARY KEY)", "TABLE", ("ks", "t"), ("Other", "t2")
    ) == ('CREATE TABLE "Other".t2 (k int PRIMARY KEY)')


def test_redo_reads_lists_at_a_level_that_sees_acknowledged_writes() -> None:
    from transforms.write_sender import list_check_consistency

    assert [list_check_consistency(c) for c in ("LOCAL_QUORUM", "QUORUM", "one", "ALL", "TWO")] == [
        "LOCAL_QUORUM",
        "QUORUM",
        "ALL",
        "ALL",
        "ALL",
    ]


def test_partition_chunks_keep_partitions_apart_and_bound_memory() -> None:
    from transforms.cassandra_write import partition_chunks

    rows = [row(k=k, c=c) for k, c in [(1, 1), (1, 2), (1, 3), (2, 1), (3, None), (3, 4)]]
    chunks = [
        (opens, [(r.values["k"], r.values["c"]) for r in chunk])
        for opens, chunk in partition_chunks(iter(rows), ["k"], max_rows=2)
    ]
    assert chunks == [
        (True, [(1, 1), (1, 2)]),
        (False, [(1, 3)]),
        (True, [(2, 1)]),
        (True, [(3, None), (3, 4)]),
    ]


def test_statement_bytes_counts_values_and_their_framing() -> None:
    shape = Shape(ROW, (Assignment("v", SET_VALUE),))
    # 24 for the statement, 4 per value, 16 per scalar (timestamp, TTL, keys), the text
    assert statement_bytes(Statement(shape, (10, 0, "x" * 100, 1, 2), 1)) == 24 + 5 * 4 + 64 + 100
    assert value_bytes(None) == 0
    assert value_bytes(b"\0" * 7) == 7
    assert value_bytes("é" * 10) == 20  # UTF-8 bytes, not characters
    assert value_bytes(["ab", "c"]) == (4 + 2) + (4 + 1)
    assert value_bytes({"a": 1}) == 8 + 1 + 16
    assert value_bytes(("z" * 5, None)) == (4 + 5) + 4


def _text_row(c: int, text: str, stamp: int, **more: Any) -> Any:
    return BUILDER.row_writes(
        row(k=1, c=c, v=(text, stamp, None), **more),
        CLOCK,
        with_statics=False,
        marker_timestamp=1,
    )


def test_batches_split_by_bytes() -> None:
    rows = [_text_row(c, "x" * 300, c) for c in range(5)]
    assert [statement_bytes(r.statements[0]) for r in rows] == [408] * 5
    assert pack_batches(rows, 128, 1000) == [
        rows[0].statements + rows[1].statements,
        rows[2].statements + rows[3].statements,
        rows[4].statements,
    ]
    assert pack_batches(rows, 128, 816) == pack_batches(rows, 128, 1000)
    assert [len(b) for b in pack_batches(rows, 128, 815)] == [1, 1, 1, 1, 1]
    assert [len(b) for b in pack_batches(rows, 3, 10_000)] == [3, 2]
    assert [len(b) for b in pack_batches(rows, 128)] == [5]  # 2 KiB: far below 1 MiB
    assert MAX_BATCH_BYTES == 1 << 20


def test_a_row_over_the_byte_budget_keeps_its_list_appends_in_one_batch() -> None:
    big = _text_row(0, "x" * 1200, 5, l=(["a", "b", "c"], [5, 6, 6], [None, None, None]))
    v, append_a, append_bc = big.statements
    assert (append_a.appends_list, append_bc.appends_list, v.appends_list) == (True, True, False)
    assert statement_bytes(v) == 1308
    small = _text_row(1, "y", 7)
    # the big row's text alone, then its two appends together, with the next row
    assert pack_batches([big, small], 128, 1000) == [[v], [append_a, append_bc, *small.statements]]
    # a budget the whole row fits: the row is one batch, as always
    whole = sum(statement_bytes(s) for s in big.statements)
    assert pack_batches([big, small], 128, whole) == [big.statements, small.statements]


def test_a_row_over_the_byte_budget_without_lists_is_cut_into_statements() -> None:
    big = _text_row(0, "x" * 600, 5, fu=({"street": "z" * 600, "zip": 1}, 6, None))
    assert [statement_bytes(s) for s in big.statements] == [
        708,
        732,
    ]  # the UDT bound as a tuple: (4 + 600) + (4 + 16)
    small = _text_row(1, "y", 7)
    assert pack_batches([big, small], 128, 1000) == [
        [big.statements[0]],
        [big.statements[1], *small.statements],
    ]
    assert pack_batches([big, small], 128, 1440) == [big.statements, small.statements]
