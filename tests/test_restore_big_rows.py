"""A restore of large rows on a real Cassandra 5 node: a partition's batches are split by
their estimated bytes (``MAX_BATCH_BYTES``, 1 MiB), not only by ``--batch-statements``.

Before, the 60 rows of 300 KiB of one partition went in one batch of 18 MiB, which the node
refused ("CQL Message of size ... exceeds allowed maximum of 16777216 bytes"). Two tables
take the two restore paths: ``plain`` (a blob) the columnar one, ``listed`` (a blob and a
list with per-element writetimes) the row path. Each holds a partition of 60 rows of 300 KiB
(three fit in 1 MiB: 20 batches), one of 4 such rows (2 batches), and one whose first row
holds 1.5 MiB followed by two small rows (the large row alone, then the rest: 2 batches;
in ``listed`` the large row's blob alone, then its two list appends with the small rows).
``listed`` is then restored again with ``--overwrite``: every list element is found on the
target and none is appended twice.
"""

from __future__ import annotations

import json
import math
import os
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import export
from tests.test_restore import read_span, restore
from tests.test_restore_formats import cell_snapshot, ttl_problems
from transforms.cassandra_write import RestoreUnitsFn
from transforms.restore_columnar import ColumnarWriter  # noqa

BASE = 1_700_000_000_000_000
KIB = 1024
# (pk, sizes of its rows' blobs)
PARTITIONS = [(1, [300 * KIB] * 60), (2, [300 * KIB] * 4), (3, [1536 * KIB, 10, 10])]
BATCHES = 20 + 2 + 2
ROWS = sum(len(sizes) for _, sizes in PARTITIONS)


@pytest.fixture(scope="module")
def tables(session: Any, ks: str) -> tuple[str, str]:
    """(plain, listed): the same blobs, every fourth row with a TTL."""
    plain, listed = f"{ks}.plain", f"{ks}.listed"
    session.execute(f"CREATE TABLE {plain} (pk int, ck int, b blob, PRIMARY KEY (pk, ck))")
    session.execute(
        f"CREATE TABLE {listed} (pk int, ck int, b blob, l list<int>, PRIMARY KEY (pk, ck))"
    )
    insert_plain = session.prepare(
        f"INSERT INTO {plain} (pk, ck, b) VALUES (?, ?, ?) USING TIMESTAMP ? AND TTL ?"
    )
    insert_listed = session.prepare(
        f"INSERT INTO {listed} (pk, ck, b) VALUES (?, ?, ?) USING TIMESTAMP ? AND TTL ?"
    )
    append = session.prepare(
        f"UPDATE {listed} USING TIMESTAMP ? SET l = l + ? WHERE pk = ? AND ck = ?"
    )
    n = 0
    for pk, sizes in PARTITIONS:
        for ck, size in enumerate(sizes):
            blob = os.urandom(size)
            ttl = 86_400 + n if n % 4 == 0 else 0
            session.execute(insert_plain, (pk, ck, blob, BASE + n, ttl))
            session.execute(insert_listed, (pk, ck, blob, BASE + n, ttl))
            session.execute(append, (BASE + n, [ck, ck + 1], pk, ck))
            if pk == 3:  # a second run: the large row's two appends share a batch
                session.execute(append, (BASE + n + 1, [ck + 2], pk, ck))
            n += 1
    return plain, listed


@pytest.mark.parametrize("which", ["plain", "listed"])
def test_large_rows_are_split_by_bytes_and_round_trip(
    session: Any,
    hosts: str,
    ks: str,
    tables: tuple[str, str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    which: str,
) -> None:
    table = tables[0] if which == "plain" else tables[1]
    columns = ["b"] if which == "plain" else ["b", "l"]
    out = tmp_path / "export"
    extra = () if which == "plain" else ("--collection-writetime", "list")
    export(
        hosts, table, str(out), "--format", "avro", "--writetime-columns", "*",
        "--ttl-columns", "*", *extra,
    )  # fmt: skip
    paths: list[str] = []  # which restore path wrote (the DoFn runs in this process)
    columnar, rows = ColumnarWriter.write_unit, RestoreUnitsFn._write_partition

    def spy_columnar(self: Any, *args: Any, **kwargs: Any) -> Any:
        paths.append("columnar")
        return columnar(self, *args, **kwargs)

    def spy_rows(self: Any, *args: Any, **kwargs: Any) -> Any:
        paths.append("rows")
        return rows(self, *args, **kwargs)

    monkeypatch.setattr(ColumnarWriter, "write_unit", spy_columnar)
    monkeypatch.setattr(RestoreUnitsFn, "_write_partition", spy_rows)
    target = f"{ks}.{which}_copy_{uuid.uuid4().hex[:6]}"
    log = tmp_path / "restore-log"
    result = restore(
        "--hosts", hosts, "--input", str(out), "--table", target, "--create-table",
        "--restore-log", str(log),
    )  # fmt: skip
    assert result.code == 0, result.describe()
    assert set(paths) == ({"columnar"} if which == "plain" else {"rows"})
    before = time.time()
    source_values, source_ttls = cell_snapshot(session, table, ["pk", "ck"], columns, set())
    target_values, target_ttls = cell_snapshot(session, target, ["pk", "ck"], columns, set())
    d = math.floor(time.time()) - math.floor(before)
    assert len(source_values) == ROWS and target_values == source_values
    assert ttl_problems(source_ttls, target_ttls, read_span(out), d) == []
    markers = [json.loads(p.read_text()) for p in (log / target).glob("[0-9]*.json")]
    assert sum(m["rows"] for m in markers) == ROWS
    # one statement per row for the blob; one list append per row, two in partition 3
    statements = ROWS if which == "plain" else 2 * ROWS + len(PARTITIONS[2][1])
    assert sum(m["statements"] for m in markers) == statements
    assert sum(m["batches"] for m in markers) == BATCHES
    if which == "plain":
        return
    # Redone (--overwrite): every list element is found on the target and not appended
    # again; the blobs are rewritten in the same batches.
    again = restore(
        "--hosts", hosts, "--input", str(out), "--table", target, "--restore-log", str(log),
        "--overwrite",
    )  # fmt: skip
    assert again.code == 0, again.describe()
    assert cell_snapshot(session, target, ["pk", "ck"], columns, set())[0] == source_values
    markers = [json.loads(p.read_text()) for p in (log / target).glob("[0-9]*.json")]
    assert sum(m["list_elements_present"] for m in markers) == 2 * ROWS + len(PARTITIONS[2][1])
    assert sum(m["statements"] for m in markers) == ROWS
    assert sum(m["batches"] for m in markers) == BATCHES
