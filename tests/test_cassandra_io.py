"""``ReadCassandraWithWritetime``, the public read transform, in a Beam pipeline on a real
node: the exact dicts (values, writetimes, TTLs) with ``assert_that``/``equal_to``."""

from __future__ import annotations

from typing import Any

import apache_beam as beam
import pytest
from apache_beam.runners.portability.fn_api_runner import FnApiRunner
from apache_beam.testing.util import assert_that, equal_to

from transforms.cassandra_io import ReadCassandraWithWritetime
from transforms.cassandra_session import ConnectionConfig, connect

TABLE = "rcww"


@pytest.fixture(scope="module")
def table(session: Any, ks: str) -> str:
    """Rows with explicit write timestamps; a set written in two steps (two element
    writetimes); TTLs on some cells; a null and an empty collection."""
    session.execute(
        f"CREATE TABLE {ks}.{TABLE} (k int, c int, v text, n bigint, s set<int>, "
        "PRIMARY KEY (k, c))",
        timeout=60,
    )
    for cql in (
        f"INSERT INTO {ks}.{TABLE} (k, c, v) VALUES (1, 1, 'a') USING TIMESTAMP 1000",
        f"UPDATE {ks}.{TABLE} USING TIMESTAMP 1500 AND TTL 86400 SET n = 10 WHERE k = 1 AND c = 1",
        f"UPDATE {ks}.{TABLE} USING TIMESTAMP 1000 SET s = s + {{1}} WHERE k = 1 AND c = 1",
        f"UPDATE {ks}.{TABLE} USING TIMESTAMP 2000 SET s = s + {{2}} WHERE k = 1 AND c = 1",
        f"INSERT INTO {ks}.{TABLE} (k, c, v) VALUES (1, 2, 'b') USING TIMESTAMP 3000",
        f"INSERT INTO {ks}.{TABLE} (k, c, v, n, s) VALUES (2, 1, 'c', 20, {{}}) "
        "USING TIMESTAMP 4000 AND TTL 3600",
    ):
        session.execute(cql)
    return f"{ks}.{TABLE}"


class CountingDown:
    """A TTL read back by the pipeline: Cassandra counts a TTL down on its own clock, so the
    value the pipeline saw lies between the values read directly just before and just
    after it ran (both exact readings of the same cell)."""

    def __init__(self, before: int, after: int) -> None:
        self.before, self.after = before, after

    def __eq__(self, other: object) -> bool:
        return isinstance(other, int) and self.after <= other <= self.before

    def __repr__(self) -> str:
        return f"TTL in [{self.after}, {self.before}]"


def _ttls(connection: ConnectionConfig, table: str) -> dict[tuple[int, int], tuple[Any, Any]]:
    """TTL(v), TTL(n) of every row, read directly (a connection of its own: this also runs
    inside the pipeline's matcher, which Beam pickles)."""
    cluster, session = connect(connection)
    try:
        rows = session.execute(f"SELECT k, c, TTL(v), TTL(n) FROM {table}")
        return {(r[0], r[1]): (r[2], r[3]) for r in rows}
    finally:
        cluster.shutdown()


def _ttl(before: int | None, after: int | None) -> Any:
    return None if before is None else CountingDown(before, after)


def _expected(before: dict, after: dict, policy: str) -> list[dict[str, Any]]:
    def ttl(key: tuple[int, int], i: int) -> Any:
        return _ttl(before[key][i], after[key][i])

    s_writetime = {"max": 2000, "min": 1000, "list": [1000, 2000]}[policy]
    s_ttl = {"max": None, "min": None, "list": [None, None]}[policy]
    return [
        {
            "k": 1,
            "c": 1,
            "v": "a",
            "n": 10,
            "s": [1, 2],
            "v_writetime": 1000,
            "n_writetime": 1500,
            "s_writetime": s_writetime,
            "v_ttl": None,
            "n_ttl": ttl((1, 1), 1),
            "s_ttl": s_ttl,
        },
        {
            "k": 1,
            "c": 2,
            "v": "b",
            "n": None,
            "s": None,
            "v_writetime": 3000,
            "n_writetime": None,
            "s_writetime": None,
            "v_ttl": None,
            "n_ttl": None,
            "s_ttl": None,
        },
        {
            "k": 2,
            "c": 1,
            "v": "c",
            "n": 20,
            "s": None,  # an empty collection is no cell: null
            "v_writetime": 4000,
            "n_writetime": 4000,
            "s_writetime": None,
            "v_ttl": ttl((2, 1), 0),
            "n_ttl": ttl((2, 1), 1),
            "s_ttl": None,
        },
    ]


@pytest.mark.parametrize("policy", ["max", "min", "list"])
def test_read_cassandra_with_writetime_gives_exact_rows(db: Any, table: str, policy: str) -> None:
    keyspace, name = table.split(".")
    connection = ConnectionConfig(hosts=tuple(db.contact_points), consistency="ONE")
    before = _ttls(connection, table)
    assert set(before) == {(1, 1), (1, 2), (2, 1)}

    def matches_rows_read_around_the_run(actual: list[dict[str, Any]]) -> None:
        equal_to(_expected(before, _ttls(connection, table), policy))(actual)

    with beam.Pipeline(runner=FnApiRunner()) as pipeline:
        rows = (
            pipeline
            | ReadCassandraWithWritetime(
                connection=connection,
                keyspace=keyspace,
                table=name,
                writetime_columns="*",
                ttl_columns="*",
                collection_writetime=policy,
                splits=4,
                batch_size=2,
            )
            # The driver's set type (SortedSet) as a list, in Cassandra's order.
            | beam.Map(lambda row: {**row, "s": None if row["s"] is None else list(row["s"])})
        )
        assert_that(rows, matches_rows_read_around_the_run)


def test_invalid_arguments_are_refused_at_construction() -> None:
    connection = ConnectionConfig()
    with pytest.raises(ValueError, match="collection_writetime must be one of"):
        ReadCassandraWithWritetime(
            connection=connection, keyspace="k", table="t", collection_writetime="first"
        )
    with pytest.raises(ValueError, match="splits must be at least 1"):
        ReadCassandraWithWritetime(connection=connection, keyspace="k", table="t", splits=0)
    with pytest.raises(ValueError, match="keyspace and table are required"):
        ReadCassandraWithWritetime(connection=connection, keyspace="", table="t")
