"""Bulk-load a deterministic wide table for tests and benchmarks.

``ks.big (pk int, ck int, v text, n bigint, PRIMARY KEY (pk, ck))``: ``partitions`` x
``rows_per_partition`` rows, every cell written with an explicit ``USING TIMESTAMP``, so
the value *and* the writetime of every row are known in advance (:func:`expected_row`).

One prepared unlogged batch per partition (all its rows: one mutation on one replica set),
run with ``execute_concurrent_with_args``: 200,000 rows load in seconds on one local node.

Library use::

    from dev.load_table import load_big_table, expected_row
    info = load_big_table(session, "ks", "big", partitions=20_000, rows_per_partition=10)

Command line::

    python -m dev.load_table --hosts 127.0.0.1:9042 --keyspace ks --table big \
        --partitions 20000 --rows-per-partition 10
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass
from typing import Any

# Writetimes: BASE_TIMESTAMP + pk * 1000 + ck microseconds (2023-11-14T22:13:20Z and on).
BASE_TIMESTAMP = 1_700_000_000_000_000


def value_text(pk: int, ck: int) -> str:
    """``v`` of a row; every 7th row holds text that CSV must quote (comma, quote, newline)."""
    if (pk + ck) % 7 == 0:
        return f'v{pk},{ck} "q"\nline2'
    if (pk + ck) % 11 == 0:
        return ""  # an empty string, distinct from null
    return f"v{pk}-{ck}"


def value_n(pk: int, ck: int) -> int:
    return pk * 1_000_003 + ck * (2**40)


def writetime(pk: int, ck: int) -> int:
    return BASE_TIMESTAMP + pk * 1000 + ck


def expected_row(pk: int, ck: int) -> tuple[int, int, str, int, int]:
    """(pk, ck, v, n, writetime micros) as the export must hold them."""
    return (pk, ck, value_text(pk, ck), value_n(pk, ck), writetime(pk, ck))


def loaded_rows(
    partitions: int, rows_per_partition: int
) -> list[tuple[int, int, str, int, int, int]]:
    """Every row of a loaded table as an export with writetimes in micros holds it,
    sorted: (pk, ck, v, n, n_writetime, v_writetime); both cells share the row's write."""
    rows = []
    for pk in range(partitions):
        for ck in range(rows_per_partition):
            _, _, v, n, wt = expected_row(pk, ck)
            rows.append((pk, ck, v, n, wt, wt))
    return sorted(rows)


@dataclass(frozen=True)
class LoadInfo:
    keyspace: str
    table: str
    partitions: int
    rows_per_partition: int
    seconds: float

    @property
    def rows(self) -> int:
        return self.partitions * self.rows_per_partition


def create_big_table(session: Any, keyspace: str, table: str = "big") -> None:
    session.execute(
        f"CREATE TABLE IF NOT EXISTS {keyspace}.{table} "
        "(pk int, ck int, v text, n bigint, PRIMARY KEY (pk, ck))"
    )


def load_big_table(
    session: Any,
    keyspace: str,
    table: str = "big",
    *,
    partitions: int = 20_000,
    rows_per_partition: int = 10,
    concurrency: int = 64,
    consistency: str = "ONE",
) -> LoadInfo:
    """Create ``keyspace.table`` if needed and write every row at ``consistency`` (ALL: every
    replica holds every row, as a test that kills nodes needs); raises on any failed write."""
    from cassandra import ConsistencyLevel
    from cassandra.concurrent import execute_concurrent_with_args

    create_big_table(session, keyspace, table)
    inserts = " ".join(
        f"INSERT INTO {keyspace}.{table} (pk, ck, v, n) VALUES (?, ?, ?, ?) USING TIMESTAMP ?;"
        for _ in range(rows_per_partition)
    )
    statement = session.prepare(f"BEGIN UNLOGGED BATCH {inserts} APPLY BATCH")
    statement.consistency_level = ConsistencyLevel.name_to_value[consistency]

    def params(pk: int) -> list[Any]:
        values: list[Any] = []
        for ck in range(rows_per_partition):
            values += [pk, ck, value_text(pk, ck), value_n(pk, ck), writetime(pk, ck)]
        return values

    started = time.monotonic()
    results = execute_concurrent_with_args(
        session,
        statement,
        (params(pk) for pk in range(partitions)),
        concurrency=concurrency,
        raise_on_first_error=True,
        results_generator=True,
    )
    for _ in results:
        pass
    return LoadInfo(keyspace, table, partitions, rows_per_partition, time.monotonic() - started)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", default="127.0.0.1:9042")
    parser.add_argument("--keyspace", required=True)
    parser.add_argument("--table", default="big")
    parser.add_argument("--partitions", type=int, default=20_000)
    parser.add_argument("--rows-per-partition", type=int, default=10)
    parser.add_argument("--replication-factor", type=int, default=1)
    args = parser.parse_args(argv)
    from cassandra.cluster import Cluster

    points = [h.strip().rsplit(":", 1) for h in args.hosts.split(",") if h.strip()]
    port = int(points[0][1]) if len(points[0]) == 2 else 9042
    cluster = Cluster([p[0] for p in points], port=port)
    try:
        session = cluster.connect()
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {args.keyspace} WITH replication = "
            f"{{'class': 'SimpleStrategy', 'replication_factor': {args.replication_factor}}}"
        )
        info = load_big_table(
            session,
            args.keyspace,
            args.table,
            partitions=args.partitions,
            rows_per_partition=args.rows_per_partition,
        )
    finally:
        cluster.shutdown()
    print(f"loaded {info.rows:,} rows into {info.keyspace}.{info.table} in {info.seconds:.1f}s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
