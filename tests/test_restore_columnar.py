"""The columnar restore of plain tables (transforms/restore_columnar.py) on a real Cassandra 5
node: a table with every CQL type a plain table can hold (no static, no non-frozen
collection or UDT, so the restore writes it from decoded columns with encoded batches).

- Its batches are byte for byte the ones the row path (``RowStatementBuilder``, the
  driver's serializers and ``BatchMessage``) makes of the same rows, with the same counts,
  at a clock where TTLs are alive and at one where every TTL has expired.
- The round trip in every columnar format: export, ``cassandra-restore --create-table``,
  then every cell's value and WRITETIME on the target equal the source's exactly, and its
  TTL within the bound of tests/test_restore.py.

Rows: cells written one column at a time at different writetimes and TTLs (one statement
per group), whole rows at one writetime with and without TTL (one statement per row), rows
with null cells, a key-only row (its row marker), writetimes beyond year 9999 and before
year 1, out-of-range timestamps and dates, NaN and infinities, empty texts and blobs.
"""

from __future__ import annotations

import io
import math
import time
import uuid
from pathlib import Path
from typing import Any

import pytest
from cassandra import ConsistencyLevel
from cassandra.protocol import BatchMessage
from cassandra.query import BatchType

from tests.helpers import export
from tests.test_export_types import OTHER_ROWS, TYPES
from tests.test_restore import read_span, restore
from tests.test_restore_formats import cell_snapshot, ttl_problems
from transforms.cassandra_write import partition_chunks
from transforms.cql_types import parse_cql_type
from transforms.export_decode import ExportLayout, read_unit_columns, rows_of
from transforms.restore_batches import pack_batches
from transforms.restore_columnar import ColumnarWriter, columnar_fields
from transforms.restore_encode import EncodedBatch, _message_class
from transforms.restore_plan import Shape, build_restore_plan, statement_cql
from transforms.restore_rows import RowStatementBuilder, TtlClock
from transforms.write_sender import UnitCounts

USER_TYPES = {"addr": (("street", "zip", "tags"), ("text", "int", "frozen<set<text>>"))}
PLAIN = [
    (name, cql_type, literal)
    for name, cql_type, literal, *_ in TYPES
    if not parse_cql_type(
        cql_type, {k: (list(f), list(t)) for k, (f, t) in USER_TYPES.items()}
    ).is_multicell
]
NAMES = [name for name, _, _ in PLAIN]
TIMESTAMPS = {name for name, cql_type, _ in PLAIN if cql_type == "timestamp"}
T0 = 1_700_000_000_000_000
T_FAR = 253_402_300_800_000_001  # a writetime in year 10000
T_EARLY = -62_135_596_800_000_001  # a writetime before year 1
ROWS = 1 + 90 + 1 + len(OTHER_ROWS) + 2 + 1  # the rows of the table below
FORMATS = [
    ("csv", ("--compression", "gzip")),
    ("jsonl", ()),
    ("json", ("--compression", "zstd")),
    ("avro", ()),
    ("parquet", ()),
]


@pytest.fixture(scope="module")
def plain(session: Any, ks: str) -> str:
    session.execute(f"CREATE TYPE {ks}.addr (street text, zip int, tags frozen<set<text>>)")
    columns = ", ".join(f"{name} {cql_type}" for name, cql_type, _ in PLAIN)
    table = f"{ks}.plain"
    session.execute(
        f"CREATE TABLE {table} (k1 int, k2 text, c int, {columns}, PRIMARY KEY ((k1, k2), c))"
    )
    run = session.execute
    names = ", ".join(NAMES)
    literals = ", ".join(literal for _, _, literal in PLAIN)
    # One column at a time: each its own writetime and TTL, two sharing both.
    for j, (name, _, literal) in enumerate(PLAIN):
        stamp = T0 + (j // 2) * 1_000_001
        run(
            f"UPDATE {table} USING TIMESTAMP {stamp} AND TTL {100_000 + (j // 2) * 1000} "
            f"SET {name} = {literal} WHERE k1 = 1 AND k2 = 'a' AND c = 1"
        )
    # Whole rows at one writetime, with and without a TTL, over a few partitions.
    for p in range(3):
        for c in range(30):
            ttl = f" AND TTL {200_000 + c}" if c % 2 else ""
            run(
                f"INSERT INTO {table} (k1, k2, c, {names}) VALUES ({p}, 'p{p}', {c}, {literals}) "
                f"USING TIMESTAMP {T0 + p * 1000 + c}{ttl}"
            )
    # Some cells null; the rest at one writetime.
    half = ", ".join(NAMES[::2])
    run(
        f"INSERT INTO {table} (k1, k2, c, {half}) VALUES (4, 'half', 1, "
        f"{', '.join(literal for _, _, literal in PLAIN[::2])}) USING TIMESTAMP {T0 + 7}"
    )
    for ck, (micros, values) in OTHER_ROWS.items():
        kept = {n: v for n, v in values.items() if n in NAMES}
        run(
            f"INSERT INTO {table} (k1, k2, c, {', '.join(kept)}) VALUES (5, 'other', "
            f"{ord(ck)}, {', '.join(v[0] for v in kept.values())}) USING TIMESTAMP {micros}"
        )
    run(
        f"INSERT INTO {table} (k1, k2, c, c_text, c_timestamp, c_blob, c_date) VALUES "
        f"(6, 'far', 1, '', 253402300800000, 0x, 4294967295) USING TIMESTAMP {T_FAR}"
    )
    run(
        f"INSERT INTO {table} (k1, k2, c, c_timestamp, c_ascii) VALUES "
        f"(6, 'early', 1, -62135596800001, '') USING TIMESTAMP {T_EARLY} AND TTL 86400"
    )
    run(f"INSERT INTO {table} (k1, k2, c) VALUES (7, 'key only', 1)")
    return table


def export_of(hosts: str, table: str, out: Path, fmt: str, extra: tuple[str, ...]) -> Path:
    export(hosts, table, str(out), "--format", fmt, *extra, "--ttl-columns", "*", "--splits", "3")
    return out


def snapshot(session: Any, table: str) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """:func:`cell_snapshot` of the plain table, keyed by (k1, k2, c)."""
    return cell_snapshot(session, table, ["k1", "k2", "c"], NAMES, TIMESTAMPS)


@pytest.fixture(scope="module")
def target_keyspace(session: Any) -> Any:
    name = f"restore_col_{uuid.uuid4().hex[:8]}"
    session.execute(
        f"CREATE KEYSPACE {name} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    yield name
    session.execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=120)


@pytest.mark.parametrize("fmt, extra", FORMATS, ids=[f for f, _ in FORMATS])
def test_plain_table_round_trips_in_every_columnar_format(
    session: Any,
    hosts: str,
    target_keyspace: str,
    plain: str,
    tmp_path: Path,
    fmt: str,
    extra: tuple[str, ...],
) -> None:
    out = export_of(hosts, plain, tmp_path / "export", fmt, extra)
    target = f"{target_keyspace}.copy_{fmt}"
    result = restore("--hosts", hosts, "--input", str(out), "--table", target, "--create-table")
    assert result.code == 0, result.describe()
    assert result.stderr == ""
    before = time.time()
    source_values, source_ttls = snapshot(session, plain)
    target_values, target_ttls = snapshot(session, target)
    d = math.floor(time.time()) - math.floor(before)
    assert len(source_values) == ROWS
    assert sorted(target_values) == sorted(source_values)
    for key, cells in source_values.items():
        assert target_values[key] == cells, key
    assert ttl_problems(source_ttls, target_ttls, read_span(out), d) == []


# --- the same bytes as the row path ---------------------------------------------------------


def _plan_and_layout(out: Path, table: str) -> tuple[Any, ExportLayout]:
    import json

    manifest = json.loads((out / "_manifest" / "export.json").read_text())
    schema = manifest["schema"]
    keyspace, name = table.split(".")
    plan = build_restore_plan(
        keyspace,
        name,
        schema["columns"],
        schema.get("types", {}),
        manifest["plan"]["writetime_columns"],
        manifest["plan"]["ttl_columns"],
    )
    return plan, ExportLayout.from_manifest(manifest)


def _unit_files(out: Path) -> list[str]:
    return sorted(str(p) for p in (out / "data").glob("part-*"))


def _driver_batch(statements: list[Any], prepare: Any, version: int) -> bytes:
    """The row path's batch as the driver encodes it: each value through its prepared
    type's serializer, the members written by the driver's ``BatchMessage``."""
    members = []
    for statement in statements:
        prepared = prepare(statement.shape)
        types = [c.type for c in prepared.column_metadata]
        members.append(
            (
                True,
                prepared.query_id,
                [t.serialize(v, version) for t, v in zip(types, statement.values, strict=True)],
            )
        )
    message = BatchMessage(BatchType.UNLOGGED, members, ConsistencyLevel.LOCAL_QUORUM)
    body = io.BytesIO()
    message.send_body(body, version)
    return body.getvalue()


def _encoded_batch(batch: EncodedBatch, version: int) -> bytes:
    like = BatchMessage(BatchType.UNLOGGED, (), ConsistencyLevel.LOCAL_QUORUM)
    body = io.BytesIO()
    _message_class()(batch.members, batch.count, like).send_body(body, version)
    return body.getvalue()


def _collector(into: list[tuple[bytes, bytes]], version: int) -> Any:
    """A ``send`` that keeps each batch's bytes and routing key (its "statement" here)."""
    return lambda batch: into.append((_encoded_batch(batch, version), batch.statement))


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
@pytest.mark.parametrize("late", [False, True], ids=["ttls-alive", "ttls-expired"])
def test_columnar_batches_equal_the_row_paths(
    session: Any, hosts: str, plain: str, tmp_path: Path, late: bool, fmt: str
) -> None:
    out = export_of(hosts, plain, tmp_path / "export", fmt, ())
    plan, layout = _plan_and_layout(out, plain)
    fields = columnar_fields(plan, layout)
    assert fields is not None
    version = session.cluster.protocol_version
    prepared: dict[Shape, Any] = {}

    def prepare(shape: Shape) -> Any:
        if shape not in prepared:
            prepared[shape] = session.prepare(statement_cql(plan, shape))
        return prepared[shape]

    read_started = 1_764_000_000_000_000
    now = read_started // 1_000_000 + (400_000 if late else 5)
    # A batch's driver statement is its routing key here, to compare with the driver's.
    writer = ColumnarWriter(plan, fields, prepare, version, 8, 1000, bytes, clock=lambda: now)
    builder = RowStatementBuilder(plan)
    keys = [c.name for c in plan.partition_key]
    total_rows = total_expired = 0
    for path in _unit_files(out):
        new_counts, old_counts = UnitCounts(), UnitCounts()
        new: list[tuple[bytes, bytes]] = []
        old: list[tuple[bytes, bytes]] = []
        chunks = list(read_unit_columns(path, layout))
        writer.write_unit(
            iter(chunks),
            read_started,
            new_counts,
            lambda rows: None,
            _collector(new, version),
            lambda columns: pytest.fail("every row has its whole key"),
        )
        for columns in chunks:
            for opens, rows in partition_chunks(iter(rows_of(layout, columns)), keys):
                clock = TtlClock(read_started // 1_000_000, now)
                writes = [
                    builder.row_writes(
                        row, clock, with_statics=opens and i == 0, marker_timestamp=read_started
                    )
                    for i, row in enumerate(rows)
                ]
                for w in writes:
                    old_counts.cells += w.cells
                    old_counts.expired_cells += w.expired
                old_counts.rows += len(rows)
                old_counts.partitions += opens
                for batch in pack_batches(writes, 8):
                    first = prepare(batch[0].shape).bind(batch[0].values)
                    old.append((_driver_batch(batch, prepare, version), first.routing_key))
                    old_counts.statements += len(batch)
                    old_counts.batches += 1
        assert new == old, path
        assert new_counts == old_counts, path
        total_rows += old_counts.rows
        total_expired += old_counts.expired_cells
    assert total_rows == ROWS
    assert (total_expired > 0) == late
