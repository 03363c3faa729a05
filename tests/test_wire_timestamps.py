"""Top-level timestamps read as the integer milliseconds on the wire
(``transforms.wire_timestamps``): the range query selects the column itself (no function
for the node to run per row), and the reader's result messages, as rows and as columns,
give every 64-bit value exactly, years outside 1-9999 included; rows that arrive as the
driver's ``datetime`` (a session wrapper's own request path) are converted exactly."""

from __future__ import annotations

import datetime
from typing import Any

import pytest
from cassandra.cqltypes import DateType, Int32Type, ListType, LongType

from transforms.cassandra_session import ConnectionConfig, connect
from transforms.columnar import ColumnPage, columnar_handler, send_columnar, sized_rows_handler
from transforms.table_plan import build_table_plan
from transforms.wire_timestamps import bigint_timestamps, millis_rows

EXTREMES = [-(2**63), -62_135_596_800_001, -1, 0, 1_700_000_000_123, 253_402_300_800_000, 2**63 - 1]


def test_top_level_timestamp_metadata_is_typed_bigint() -> None:
    stamps = ListType.apply_parameters([DateType])
    metadata = [("ks", "t", "k", Int32Type), ("ks", "t", "ts", DateType), ("ks", "t", "l", stamps)]
    assert bigint_timestamps(metadata) == [
        ("ks", "t", "k", Int32Type),
        ("ks", "t", "ts", LongType),
        ("ks", "t", "l", stamps),  # nested timestamps stay datetime
    ]
    plain = [("ks", "t", "k", Int32Type)]
    assert bigint_timestamps(plain) is plain
    assert bigint_timestamps(None) is None


def test_datetimes_become_their_exact_milliseconds() -> None:
    epoch = datetime.datetime(1970, 1, 1)
    rows = [
        (1, epoch + datetime.timedelta(milliseconds=1_700_000_000_123), "x"),
        (2, epoch - datetime.timedelta(milliseconds=1), None),
        (3, None, [epoch]),  # nested values are the formatters' business
    ]
    assert millis_rows(rows) == [(1, 1_700_000_000_123, "x"), (2, -1, None), (3, None, [epoch])]
    plain = [(1, 2)]
    assert millis_rows(plain) is plain


def test_the_range_query_selects_timestamps_as_they_are() -> None:
    plan = build_table_plan(
        keyspace="ks",
        table="t",
        column_types=[("k", "int", "partition_key"), ("ts", "timestamp", "regular")],
        user_types={},
        release_version="5.0.8",
    )
    assert plan.select_cql(with_token=False) == (
        "SELECT k, ts, WRITETIME(ts) FROM ks.t WHERE token(k) > ? AND token(k) <= ?"
    )


@pytest.mark.parametrize("handler", ["rows", "columns"])
def test_every_64_bit_timestamp_reads_exactly(
    session: Any, hosts: str, ks: str, handler: str
) -> None:
    session.execute(f"CREATE TABLE IF NOT EXISTS {ks}.stamps (k int PRIMARY KEY, ts timestamp)")
    for k, millis in enumerate(EXTREMES):
        session.execute(f"INSERT INTO {ks}.stamps (k, ts) VALUES ({k}, {millis})")
    session.execute(f"INSERT INTO {ks}.stamps (k) VALUES ({len(EXTREMES)})")
    chosen = sized_rows_handler() if handler == "rows" else columnar_handler()
    cluster, reader = connect(ConnectionConfig(hosts=tuple(hosts.split(","))))  # the reader's
    try:
        statement = reader.prepare(f"SELECT k, ts FROM {ks}.stamps")
        page = send_columnar(reader, statement.bind(()), None, chosen).result().current_rows
    finally:
        cluster.shutdown()
    if handler == "columns":
        assert len(page) == 1 and type(page[0]) is ColumnPage
        keys, stamps = page[0].columns
        values = dict(zip(keys.tolist(), stamps.tolist(), strict=True))
    else:
        values = dict(page)
    assert values == {**dict(enumerate(EXTREMES)), len(EXTREMES): None}
