"""The upgrade path: export from a real Cassandra 4.1 node, restore into a real 5.0 node.

The source is test_export_types' all-types table with every type 4.1 has (no vector):
scalars, frozen collections, a frozen UDT inside a UDT, a tuple, a static column, a
static-only partition, one writetime per column and a TTL on every cell of row 'a'. It is
exported from 4.1.10 with ``--writetime-columns '*' --ttl-columns '*'``; 4.x gives no
writetime or TTL for non-frozen collections and UDTs, so the export leaves those out of
both (one warning each) and exports their values only.

Then the 4.1 node is stopped and a 5.0.8 node started (the matrix holds one JVM at a time):
the restore is refused until ``--timestamp`` says which writetime those columns get; with
it, every column 4.1 exported a writetime and TTL for has them exactly on 5.0 (TTLs keep
their expiry, to the precision stated in tests/test_restore.py), and the non-frozen
collections and UDTs hold the source's values, every element at the ``--timestamp``
writetime and without a TTL, with a warning for each of the two.
"""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import pytest

from dev.cassandra_local import PINNED_VERSIONS, LocalCluster, make_keyspace
from tests import helpers
from tests.conftest import VersionNodes
from tests.test_export_types import MULTICELL, create_all_types, types_for
from tests.test_restore import read_span, restore
from tests.test_restore_formats import comparable

pytestmark = pytest.mark.versions

SOURCE, TARGET = PINNED_VERSIONS["4.1"], PINNED_VERSIONS["5.0"]
FIXED_TEXT, FIXED = "2021-01-01T00:00:00Z", 1_609_459_200_000_000


def read_table(
    session: Any, table: str, names: list[str], timed: list[str]
) -> dict[tuple[Any, Any], dict[str, tuple[Any, Any, Any]]]:
    """(value, WRITETIME, TTL) of every column of every row, keyed by (pk, ck); WRITETIME
    and TTL only for ``timed`` columns (None for the others)."""
    selectors = [
        f"{name}, WRITETIME({name}), TTL({name})" if name in timed else name for name in names
    ]
    rows: dict[tuple[Any, Any], dict[str, tuple[Any, Any, Any]]] = {}
    for row in session.execute(f"SELECT pk, ck, {', '.join(selectors)} FROM {table}"):
        cells, at = {}, 2
        for name in names:
            if name in timed:
                cells[name] = (comparable(row[at]), row[at + 1], row[at + 2])
                at += 3
            else:
                cells[name] = (comparable(row[at]), None, None)
                at += 1
        rows[(row[0], row[1])] = cells
    return rows


# One parameter, so that the matrix summary counts the test under 4.1.10 (and prints the
# matrix's wall time).
@pytest.mark.parametrize("upgrade", [(SOURCE, TARGET)], ids=[f"cassandra-{SOURCE}-to-{TARGET}"])
def test_export_from_4_1_restore_into_5_0(
    cassandra_version: VersionNodes, tmp_path: Path, upgrade: tuple[str, str]
) -> None:
    old = cassandra_version(upgrade[0])
    old_session = old.session()
    ks = make_keyspace(old_session, "upgrade_source", 1)
    table = create_all_types(old_session, ks, types_for(SOURCE))
    names = sorted([t[0] for t in types_for(SOURCE)] + ["s_static"])
    multicell = sorted(MULTICELL)
    scalar = [n for n in names if n not in MULTICELL]
    assert "c_vector" not in names and len(multicell) == 6
    read_before = time.time()
    source = read_table(old_session, table, names, scalar)
    read_after = time.time()
    out = tmp_path / "export-4.1"
    exported = helpers.export(
        helpers.hosts_arg(old),
        table,
        out,
        *("--format", "jsonl", "--writetime-columns", "*", "--ttl-columns", "*"),
        *("--splits", "4"),
    )
    assert exported.stderr == "".join(
        f"warning: column {name!r} is left out of --writetime-columns and --ttl-columns: "
        "it is a non-frozen collection or UDT, which needs Cassandra 5.0 or later "
        f"(this cluster runs {SOURCE})\n"
        for name in multicell
    )

    new = cassandra_version(upgrade[1])  # stops the 4.1 node first: one JVM at a time
    assert isinstance(old.cluster, LocalCluster) and not old.cluster.is_running(0)
    new_session = new.session()
    assert new_session.execute("SELECT release_version FROM system.local").one()[0] == TARGET
    target_ks = make_keyspace(new_session, "upgrade_target", 1)
    target = f"{target_ks}.all_types"
    argv = ["--hosts", helpers.hosts_arg(new), "--input", str(out), "--table", target]
    refused = restore(*argv, "--create-table")
    assert (refused.code, refused.stdout) == (2, ""), refused.describe()
    assert refused.stderr == (
        "cassandra-restore: error: the export has no writetime for column(s) "
        f"{', '.join(multicell)}: give --timestamp now or --timestamp T to say which "
        "writetime they get\n"
    )
    restored = restore(*argv, "--create-table", "--timestamp", FIXED_TEXT)
    assert restored.code == 0, restored.describe()
    assert restored.stderr == (
        f"warning: the export has no writetime for {', '.join(multicell)}: those cells are "
        f"restored at the --timestamp writetime, {FIXED} microseconds since the epoch\n"
        f"warning: the export has no TTL for {', '.join(multicell)}: those cells are "
        "restored without a TTL\n"
    )
    target_before = time.time()
    got = read_table(new_session, target, names, names)
    target_after = time.time()

    assert sorted(got, key=repr) == sorted(source, key=repr)
    assert len(source) == 5  # rows a, b, c, d of partition 1 and the static-only partition 2
    span = read_span(out)
    for key, cells in source.items():
        for name in scalar:
            value, writetime, ttl = cells[name]
            got_value, got_writetime, got_ttl = got[key][name]
            assert (got_value, got_writetime) == (value, writetime), (key, name)
            assert (ttl is None) == (got_ttl is None), (key, name, ttl, got_ttl)
            if ttl is not None:
                # Expiry instants: the source's lies in [floor(read_before), floor(read_after)]
                # + ttl; the restore keeps it to within [-span, +1] seconds.
                assert math.floor(target_after) + got_ttl >= (
                    math.floor(read_before) + ttl - span
                ), (key, name, ttl, got_ttl, span)
                assert math.floor(target_before) + got_ttl <= math.floor(read_after) + ttl + 1, (
                    key,
                    name,
                    ttl,
                    got_ttl,
                )
        for name in multicell:
            value = cells[name][0]
            got_value, got_writetimes, got_ttls = got[key][name]
            assert got_value == value, (key, name)
            if value == repr(None):
                assert (got_writetimes, got_ttls) == (None, None), (key, name)
            else:
                elements = len(got_writetimes)
                assert elements == _elements(name), (key, name, got_writetimes)
                assert got_writetimes == [FIXED] * elements, (key, name)
                assert got_ttls == [None] * elements, (key, name)
    # The TTL cells of row 'a' were all written with a TTL on 4.1: on 5.0 the scalar ones
    # still have one, the non-frozen collections and the UDT have none.
    row_a = got[(1, "a")]
    assert [n for n in scalar if row_a[n][2] is None] == []
    assert [n for n in multicell if row_a[n][1] is None] == []


def _elements(name: str) -> int:
    """Elements (fields for the UDT) of row 'a''s non-frozen column ``name``."""
    return {"c_list": 3, "c_map": 2, "c_nested": 2, "c_set": 3, "c_set_blob": 2, "c_udt": 3}[name]
