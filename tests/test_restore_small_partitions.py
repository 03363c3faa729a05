"""A restore of small partitions on a real Cassandra 5 node: consecutive partitions of one
range of the ring share unlogged batches (``transforms/restore_groups.py``) and the round
trip stays exact.

The source holds 600 single-row partitions (a key-value table's shape) and 20 partitions
of 1 to 39 rows; every row has its own writetime, a third of the cells a TTL, some cells
are null. After the restore every cell's value and WRITETIME equal the source's, every TTL
is within the export's read span; the batches are far fewer than the partitions, and the
node attached no warning to any of them (it warns above 10 partitions or 5 KiB per
multi-partition batch). With ``--batch-partitions 20`` there are fewer batches than with the default and the
node's warnings are counted and reported; a batch over 10 partitions sent through the
restore's sender alone is counted too, so the zero above is a real count.
"""

from __future__ import annotations

import json
import math
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cassandra.query import BatchStatement, BatchType

from tests.helpers import export
from tests.test_restore import read_span, restore
from tests.test_restore_formats import cell_snapshot, ttl_problems
from transforms.write_sender import UnitCounts, WriteSender

SINGLE = 600
MULTI = 20  # partitions of 1..39 rows
BASE = 1_700_000_000_000_000


@pytest.fixture(scope="module")
def small(session: Any, ks: str) -> tuple[str, int, int]:
    """(table, rows, partitions)."""
    table = f"{ks}.small"
    session.execute(
        f"CREATE TABLE {table} (pk int, ck int, v text, n bigint, PRIMARY KEY (pk, ck))"
    )
    plain = session.prepare(
        f"INSERT INTO {table} (pk, ck, v, n) VALUES (?, ?, ?, ?) USING TIMESTAMP ?"
    )
    expiring = session.prepare(
        f"INSERT INTO {table} (pk, ck, v, n) VALUES (?, ?, ?, ?) USING TIMESTAMP ? AND TTL ?"
    )
    rows = 0
    sizes = [1] * SINGLE + [1 + (i * 2) for i in range(MULTI)]
    for pk, size in enumerate(sizes):
        for ck in range(size):
            n = None if (pk + ck) % 7 == 0 else pk * 1000 + ck
            values = (pk, ck, f"v{pk}-{ck}", n, BASE + rows)
            if rows % 3 == 0:
                session.execute(expiring, (*values, 86_400 + rows))
            else:
                session.execute(plain, values)
            rows += 1
    return table, rows, len(sizes)


def test_small_partitions_share_batches_and_round_trip(
    session: Any, hosts: str, ks: str, small: tuple[str, int, int], tmp_path: Path
) -> None:
    table, rows, partitions = small
    export_ttl = tmp_path / "export-ttl"
    export(hosts, table, str(export_ttl), "--writetime-columns", "*", "--ttl-columns", "*")
    target = f"{ks}.small_copy_{uuid.uuid4().hex[:6]}"
    log = tmp_path / "restore-log"
    result = restore(
        "--hosts",
        hosts,
        "--input",
        str(export_ttl),
        "--table",
        target,
        "--create-table",
        "--restore-log",
        str(log),
    )
    assert result.code == 0, result.describe()
    assert result.stderr == "" and "Cassandra attached" not in result.stdout
    before = time.time()
    source_values, source_ttls = cell_snapshot(session, table, ["pk", "ck"], ["v", "n"], set())
    target_values, target_ttls = cell_snapshot(session, target, ["pk", "ck"], ["v", "n"], set())
    d = math.floor(time.time()) - math.floor(before)
    assert len(source_values) == rows and target_values == source_values
    assert ttl_problems(source_ttls, target_ttls, read_span(export_ttl), d) == []
    markers = [json.loads(p.read_text()) for p in (log / target).glob("[0-9]*.json")]
    assert sum(m["rows"] for m in markers) == rows
    assert sum(m["partitions"] for m in markers) == partitions
    assert sum(m["statements"] for m in markers) == rows  # one writetime and TTL per row
    batches = sum(m["batches"] for m in markers)
    assert batches <= partitions // 5, (batches, partitions)
    assert sum(m["server_warnings"] for m in markers) == 0


def test_more_partitions_per_batch_on_request_and_the_nodes_warnings_counted(
    session: Any, hosts: str, ks: str, small: tuple[str, int, int], tmp_path: Path
) -> None:
    """``--batch-partitions 20`` sends fewer batches than the default 10 for the same
    export; the node warns about batches over its threshold of 10 (and about none of the
    default's), and the summary says so."""
    table, rows, _ = small
    out = tmp_path / "export"
    export(hosts, table, str(out), "--writetime-columns", "*")
    runs = {}
    for per_batch in ("10", "20"):
        target = f"{ks}.small_{per_batch}_{uuid.uuid4().hex[:6]}"
        log = tmp_path / f"restore-log-{per_batch}"
        result = restore(
            "--hosts",
            hosts,
            "--input",
            str(out),
            "--table",
            target,
            "--create-table",
            "--restore-log",
            str(log),
            "--batch-partitions",
            per_batch,
        )
        assert result.code == 0, result.describe()
        markers = [json.loads(p.read_text()) for p in (log / target).glob("[0-9]*.json")]
        assert sum(m["rows"] for m in markers) == rows
        source, _ = cell_snapshot(session, table, ["pk", "ck"], ["v", "n"], set())
        copied, _ = cell_snapshot(session, target, ["pk", "ck"], ["v", "n"], set())
        assert copied == source
        batches = sum(m["batches"] for m in markers)
        warned = sum(m["server_warnings"] for m in markers)
        runs[per_batch] = (batches, warned, result.stdout)
    (batches_10, warned_10, out_10), (batches_20, warned_20, out_20) = runs["10"], runs["20"]
    assert batches_20 < batches_10 and warned_10 == 0 and warned_20 > 0, runs
    assert "Cassandra attached" not in out_10
    assert f"Cassandra attached {warned_20:,} warnings" in out_20


def test_the_sender_counts_the_nodes_batch_warnings(session: Any, ks: str) -> None:
    table = f"{ks}.warned"
    session.execute(f"CREATE TABLE IF NOT EXISTS {table} (pk int PRIMARY KEY, v int)")
    insert = session.prepare(f"INSERT INTO {table} (pk, v) VALUES (?, ?)")
    batch = BatchStatement(batch_type=BatchType.UNLOGGED)
    for pk in range(11):  # one partition over the node's threshold of 10
        batch.add(insert, (pk, pk))
    counts = UnitCounts()
    sender = WriteSender(session, 4, 0, counts)
    sender.send(batch, False)
    sender.send(insert.bind((99, 99)), False)
    sender.drain()
    assert counts.server_warnings == 1
