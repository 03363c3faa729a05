"""Round trip of every CQL type through every format: export with per-element writetimes and
TTLs, ``cassandra-restore`` into a fresh table (``--create-table``), then every cell of every
row on the target equals the source: value, WRITETIME (per element for non-frozen
collections and UDTs) exactly, and TTL within the bound stated in tests/test_restore.py.

The source is the all-types table of tests/test_export_decode_cassandra.py: element appends
at later times, a UDT field written alone, dates and timestamps out of datetime's range,
writetimes in year 10000 and before year 1, empty texts and blobs, a key-only row and a
static-only partition.
"""

from __future__ import annotations

import math
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import export
from tests.test_export_decode_cassandra import CELL_COLUMNS, source
from tests.test_export_types import TYPES
from tests.test_restore import read_span, restore

__all__ = ["source"]  # the all-types table fixture, used by name below

TIMESTAMPS = {name for name, cql_type, *_ in TYPES if cql_type == "timestamp"}
FORMATS = [
    ("csv", ("--compression", "gzip")),
    ("jsonl", ()),
    ("json", ("--compression", "zstd")),
    ("avro", ()),
    ("parquet", ()),
]


@pytest.fixture(scope="module")
def target_keyspace(session: Any) -> Any:
    name = f"restore_fmt_{uuid.uuid4().hex[:8]}"
    session.execute(
        f"CREATE KEYSPACE {name} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}"
    )
    yield name
    session.execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=120)


def comparable(value: Any) -> Any:
    """repr() keeps types, order and NaN equal to itself, and a decimal's scale (1.5E+3 and
    1500 differ)."""
    if isinstance(value, list | tuple):
        return (type(value).__name__, [comparable(v) for v in value])
    return repr(value)


def cell_snapshot(
    session: Any, table: str, keys: list[str], columns: list[str], timestamps: set[str]
) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """(values and writetimes, TTLs) of every cell of ``columns``, keyed by the tuple of
    ``keys``; a column in ``timestamps`` is read as its integer, so a timestamp out of
    datetime's range (years 1-9999) compares too."""
    selectors = ", ".join(
        f"{'blobAsBigint(timestampAsBlob(' + c + '))' if c in timestamps else c}, "
        f"WRITETIME({c}), TTL({c})"
        for c in columns
    )
    width = len(keys)
    values: dict[Any, Any] = {}
    ttls: dict[Any, Any] = {}
    for row in session.execute(f"SELECT {', '.join(keys)}, {selectors} FROM {table}"):
        key, cells = tuple(row[:width]), row[width:]
        values[key] = tuple((comparable(cells[i]), cells[i + 1]) for i in range(0, len(cells), 3))
        ttls[key] = tuple(cells[i + 2] for i in range(0, len(cells), 3))
    return values, ttls


def snapshot(session: Any, table: str) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """:func:`cell_snapshot` of the every-type table, keyed by (pk, ck)."""
    return cell_snapshot(session, table, ["pk", "ck"], CELL_COLUMNS, TIMESTAMPS)


def ttl_problems(
    source: dict[Any, Any], target: dict[Any, Any], span: int, d: int
) -> list[tuple[Any, int, Any, Any]]:
    """Cells whose target TTL is not within [source - (span + d), source + 1] (elements too)."""
    problems = []
    for key, cells in source.items():
        for index, (want, got) in enumerate(zip(cells, target[key], strict=True)):
            wants = want if isinstance(want, list) else [want]
            gots = got if isinstance(got, list) else [got]
            if len(wants) != len(gots):
                problems.append((key, index, want, got))
                continue
            for w, g in zip(wants, gots, strict=True):
                if (w is None) != (g is None) or (w is not None and not -(span + d) <= g - w <= 1):
                    problems.append((key, index, want, got))
    return problems


@pytest.mark.parametrize("fmt, extra", FORMATS, ids=[f for f, _ in FORMATS])
def test_every_type_round_trips_in_every_format(
    session: Any,
    hosts: str,
    target_keyspace: str,
    source: str,
    tmp_path: Path,
    fmt: str,
    extra: tuple[str, ...],
) -> None:
    out = tmp_path / f"export-{fmt}"
    export(
        hosts,
        source,
        str(out),
        "--format",
        fmt,
        *extra,
        "--collection-writetime",
        "list",
        "--ttl-columns",
        "*",
        "--splits",
        "4",
    )
    target = f"{target_keyspace}.copy_{fmt}"
    result = restore("--hosts", hosts, "--input", str(out), "--table", target, "--create-table")
    assert result.code == 0, result.describe()
    assert result.stderr == ""
    before = time.time()
    source_values, source_ttls = snapshot(session, source)
    target_values, target_ttls = snapshot(session, target)
    d = math.floor(time.time()) - math.floor(before)
    assert sorted(target_values) == sorted(source_values)
    for key, cells in source_values.items():
        assert target_values[key] == cells, key
    assert ttl_problems(source_ttls, target_ttls, read_span(out), d) == []
