"""The version matrix: the core export checks on a real node of every pinned Cassandra release.

Each test runs once per release of ``PINNED_VERSIONS`` (4.0.19, 4.1.10, 5.0.8) against a
single node of that release (conftest's ``cassandra_version``: Java 11 for 4.x, JDK 17 for
5.0). The module-scoped ``db`` parameter makes pytest run all tests of one release before the
next; its node is stopped before the next one starts, so the matrix holds one JVM at a time.

The checks reuse the suites written for 5.0, with their tables and literal expectations:

* every type the release has (no vector before 5.0) in csv, jsonl, json and avro, values
  and writetimes exact; TTLs exact too: row 'a' and its static are one batch, so every TTL
  reads back as (written TTL - one shared number of elapsed seconds);
* statics; keys without writetime/TTL (test_export_types);
* a non-frozen collection or UDT on 4.x: left out of ``*`` with exactly one warning naming
  it, and naming it is exit 2 with the reason; on 5.0 it has its writetimes;
* writetime filters and incremental chains (test_writetime_features);
* a kill -9 in the middle of an export and ``--resume`` (test_resume's exact checks);
* keys at the ring's edges and every unit boundary, each exported exactly once, with the
  units planned from the release's own size estimates (test_export_ring);
* the 3-node ring on 4.1: tests/test_versions_ring.py.

The terminal summary prints the pass counts per release, each node's start time and RSS,
and the matrix's wall time.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from dev.cassandra_local import PINNED_VERSIONS, ClusterHandle, LocalCluster
from dev.load_table import load_big_table
from tests import helpers
from tests import test_writetime_features as features
from tests.conftest import VersionNodes
from tests.test_export_ring import (  # noqa: F401 - fixtures and a test, run on every release
    edge_keys,
    node_tokens,
    test_blob_keys_at_ring_edges_exactly_once,
)
from tests.test_export_types import (  # noqa: F401 - tests run on every release
    ALL,
    MULTICELL,
    TTL_OF,
    Exports,
    assert_rows,
    column_lists,
    create_all_types,
    expected_rows,
    test_keys_never_get_writetime_or_ttl,
    test_static_columns,
    types_for,
)
from tests.test_resume import (
    BigTable,
    _expected_rows,
    check_export,
    cli,
    kill_group,
    markers_in,
    ok,
    snapshot_local,
    start_cli,
)
from tests.test_writetime_features import (  # noqa: F401 - fixture and test, every release
    events_table,
    test_incremental_chain,
)

pytestmark = pytest.mark.versions

VERSIONS = list(PINNED_VERSIONS.values())
FORMATS = ("csv", "jsonl", "json", "avro")
KIND = {"csv": "csv", "jsonl": "json", "json": "json", "avro": "avro"}


def multicell_writetimes(release: str) -> bool:
    """Whether a release gives non-frozen collections and UDTs a writetime (5.0 and later)."""
    return int(release.split(".")[0]) >= 5


# --- the node of each release, and the module's fixtures on it --------------------------------


@pytest.fixture(scope="module", params=VERSIONS, ids=[f"cassandra-{v}" for v in VERSIONS])
def db(request: pytest.FixtureRequest, cassandra_version: VersionNodes) -> Iterator[ClusterHandle]:
    """The node of one release (overrides conftest's ``db``); stopped after its tests."""
    handle = cassandra_version(request.param)
    try:
        yield handle
    finally:
        cassandra_version.stop(request.param)


@pytest.fixture(scope="module")
def release(session: Any) -> str:
    """``release_version`` as the node reports it (what the exporter plans with)."""
    return str(session.execute("SELECT release_version FROM system.local").one()[0])


@pytest.fixture(scope="module")
def ks(session: Any) -> Iterator[str]:
    """A fresh keyspace on the release's node (overrides conftest's, which needs ``cassandra``)."""
    yield from helpers.module_keyspace(session, "version_matrix")


@pytest.fixture(scope="module")
def exports(hosts: str, tmp_path_factory: pytest.TempPathFactory) -> Exports:
    return Exports(hosts, tmp_path_factory.mktemp("exports"))


@pytest.fixture(scope="module")
def written(session: Any, ks: str, release: str) -> tuple[str, float]:
    """The all-types table with the release's types, and when its TTL batch was written."""
    started = time.time()
    return create_all_types(session, ks, types_for(release)), started


@pytest.fixture(scope="module")
def all_types(written: tuple[str, float]) -> str:
    """test_export_types' table, as the imported tests expect it."""
    return written[0]


def test_release_is_the_pinned_one(db: ClusterHandle, release: str) -> None:
    assert isinstance(db.cluster, LocalCluster)
    assert release == db.cluster.version


# --- every type, every format ----------------------------------------------------------------


def _rows_of(out: Path, fmt: str) -> list[dict[str, Any]]:
    if fmt == "avro":
        return helpers.read_avro(out)[1]
    return helpers.read_rows(out)


@pytest.mark.parametrize("fmt", FORMATS)
def test_every_type_exact(
    exports: Exports, written: tuple[str, float], release: str, fmt: str
) -> None:
    table, started = written
    out = exports(table, *ALL, "--format", fmt)
    rows = _rows_of(out, fmt)
    row_a = next(r for r in rows if str(r["pk"]) == "1" and r["ck"] == "a")
    # The one number not known in advance: whole seconds between the batch and the read.
    elapsed = TTL_OF["c_ascii"] - int(row_a["c_ascii_ttl"])
    assert 0 <= elapsed <= math.ceil(time.time() - started)
    types = types_for(release)
    multicell = multicell_writetimes(release)
    assert_rows(rows, expected_rows(KIND[fmt], "iso", types, multicell, ttl_elapsed=elapsed))
    data_columns, wt_columns = column_lists(types, multicell)
    assert helpers.read_header(out) == (
        data_columns + [c + "_writetime" for c in wt_columns] + [c + "_ttl" for c in wt_columns]
    )
    assert ("c_vector" in data_columns) == multicell  # vector exists from 5.0 on


def test_every_type_csv_micros(exports: Exports, written: tuple[str, float], release: str) -> None:
    table, _ = written
    out = exports(table, *ALL, "--format", "csv", "--writetime-format", "micros")
    rows = helpers.read_csv_parts(out)[1]
    row_a = next(r for r in rows if r["pk"] == "1" and r["ck"] == "a")
    elapsed = TTL_OF["c_ascii"] - int(row_a["c_ascii_ttl"])
    expected = expected_rows(
        "csv", "micros", types_for(release), multicell_writetimes(release), ttl_elapsed=elapsed
    )
    assert_rows(rows, expected)


# --- non-frozen collections and UDTs -------------------------------------------------------------


def test_multicell_columns_and_star(
    exports: Exports, written: tuple[str, float], release: str
) -> None:
    table, _ = written
    exports(table, *ALL, "--format", "jsonl")
    result = exports.results[(table, (*ALL, "--format", "jsonl"))]
    warnings = [line for line in result.stderr.splitlines() if "warning" in line.lower()]
    if multicell_writetimes(release):
        assert warnings == []
        return
    # One warning per left-out column (both '*' options named in it), in table order.
    assert warnings == [
        f"warning: column {name!r} is left out of --writetime-columns and --ttl-columns: "
        "it is a non-frozen collection or UDT, which needs Cassandra 5.0 or later "
        f"(this cluster runs {release})"
        for name in sorted(MULTICELL)
    ]


@pytest.mark.parametrize(
    ("option", "what"), [("--writetime-columns", "writetime"), ("--ttl-columns", "TTL")]
)
def test_multicell_column_named(
    hosts: str, written: tuple[str, float], release: str, tmp_path: Path, option: str, what: str
) -> None:
    table, _ = written
    out = tmp_path / "out"
    if multicell_writetimes(release):
        helpers.export(hosts, table, out, option, "c_list", "--format", "jsonl")
        (row_a,) = [r for r in helpers.read_jsonl(out) if r["ck"] == "a"]
        suffix = "_writetime" if what == "writetime" else "_ttl"
        assert list(row_a)[-1] == "c_list" + suffix and row_a["c_list" + suffix] is not None
        return
    result = helpers.export(hosts, table, out, option, "c_list", expect_code=2)
    assert result.stderr == (
        f"cassandra-export: error: {option}: column 'c_list' cannot have a {what}: it is a "
        "non-frozen collection or UDT, which needs Cassandra 5.0 or later\n"
    )
    assert helpers.tree(out) == []


# --- writetime filters ------------------------------------------------------------------------

# Four of test_writetime_features' nine cases keep the matrix short: 'any' and 'all', each
# bound alone and both, and a filter on one column; the time formats are release-independent.
FILTER_CASES = [
    case
    for case in features.FILTER_CASES
    if case[0] in ("after-rfc3339-z", "before-micros-all", "both-micros-all", "filter-on-b-only")
]


@pytest.mark.parametrize(
    ("case", "options", "expected"), FILTER_CASES, ids=[c[0] for c in FILTER_CASES]
)
def test_writetime_filters(
    events_table: str,  # noqa: F811 - the imported fixture
    hosts: str,
    tmp_path: Path,
    case: str,
    options: list[str],
    expected: set[tuple[int, int]] | None,
) -> None:
    features.test_writetime_filter_row_sets(events_table, hosts, tmp_path, case, options, expected)


# --- resume after kill -9 ---------------------------------------------------------------------

RESUME_PARTITIONS, RESUME_ROWS_PER_PARTITION = 2_000, 10


def test_resume_after_kill_9(db: ClusterHandle, session: Any, ks: str, tmp_path: Path) -> None:
    load_big_table(
        session,
        ks,
        "big",
        partitions=RESUME_PARTITIONS,
        rows_per_partition=RESUME_ROWS_PER_PARTITION,
    )
    big = BigTable(
        list(db.contact_points),
        ks,
        "big",
        0.0,
        _expected_rows(RESUME_PARTITIONS, RESUME_ROWS_PER_PARTITION),
    )
    out = tmp_path / "out"
    log = tmp_path / "run.log"
    # Throttled to ~4 s of reading, so that the kill lands mid-export, after some commits.
    first = [
        *big.export_args("csv"),
        "--checkpoint-rows",
        "500",
        "--max-rows-per-second",
        "5000",
        "--output",
        str(out),
    ]
    proc = start_cli(first, log)
    deadline = time.monotonic() + 180
    while proc.poll() is None and len(markers_in(out)) < 3 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert proc.poll() is None, f"the export ended before the kill:\n{log.read_text()[-3000:]}"
    kill_group(proc)
    committed = markers_in(out)
    assert len(committed) >= 3 and not (out / "_SUCCESS").exists()
    ok(cli(*big.resume_args(out)))
    export = check_export(snapshot_local(out), "csv", big)
    for name, content in committed.items():  # what was committed before the kill stays
        assert export.files[f"_manifest/ranges/{name}"] == content
    assert len(export.markers) > len(committed)


# --- restore of a table with a non-frozen list into the same release ---------------------------


def test_restore_lists_into_the_release(
    session: Any, ks: str, hosts: str, release: str, tmp_path: Path
) -> None:
    """A first restore of a list column works on every release (4.x refused to prepare the
    redo's list read, WRITETIME of a non-frozen list, at the workers' start: exit 1). A run
    that would rewrite units is exact on 5.0 (no element twice) and refused on 4.x (exit 2),
    which cannot read element writetimes, before it writes anything."""
    from tests.test_restore import restore

    session.execute(
        f"CREATE TABLE {ks}.lists (k int, c int, l list<text>, a int, PRIMARY KEY (k, c))"
    )
    session.execute(
        f"INSERT INTO {ks}.lists (k, c, l, a) VALUES (1, 1, ['x', 'y'], 5) USING TIMESTAMP 1000"
    )
    session.execute(f"UPDATE {ks}.lists USING TIMESTAMP 2000 SET l = l + ['z'] WHERE k=1 AND c=1")
    out = tmp_path / "export"
    helpers.export(hosts, f"{ks}.lists", out, "--collection-writetime", "list")
    fixed = [] if multicell_writetimes(release) else ["--timestamp", "3000"]
    target = ["--hosts", hosts, "--input", str(out), "--table", f"{ks}.lists_copy", *fixed]
    first = restore(*target, "--create-table")
    assert first.code == 0, first.describe()
    query = f"SELECT k, c, l, a, WRITETIME(a) FROM {ks}.lists_copy"
    expected = [(1, 1, ["x", "y", "z"], 5, 1000)]
    assert [tuple(r) for r in session.execute(query)] == expected
    again = restore(*target, "--overwrite")
    if multicell_writetimes(release):
        assert again.code == 0, again.describe()
        stamps = session.execute(f"SELECT WRITETIME(l) FROM {ks}.lists_copy").one()[0]
        assert stamps == [1000, 1000, 2000]
    else:
        assert (again.code, again.stdout) == (2, "")
        assert again.stderr.endswith(
            f"cassandra-restore: error: the target runs Cassandra {release}, which cannot read "
            "a list's element writetimes (5.0 can): this run rewrites units (--overwrite, or "
            "an incremental export), and rewriting them would append the elements of list "
            f"column(s) l again. Truncate {ks}.lists_copy, delete the restore manifest "
            f"{out}/_manifest/restore/{ks}.lists_copy and restore again (or restore into an "
            "empty table)\n"
        )
    assert [tuple(r) for r in session.execute(query)] == expected
    # Units started and not finished (each finished marker taken back to an attempt, as a
    # kill between the first write and the marker leaves it): a resume redoes them exactly on
    # 5.0 and is refused on 4.x, before anything is written.
    manifest = out / "_manifest" / "restore" / f"{ks}.lists_copy"
    units = [p for p in manifest.glob("*.json") if p.name != "restore.json"]
    assert units
    (manifest / "attempts").mkdir(exist_ok=True)
    for unit in units:
        unit.rename(manifest / "attempts" / unit.name)
    resumed = restore(*target, "--resume")
    if multicell_writetimes(release):
        assert resumed.code == 0, resumed.describe()
        stamps = session.execute(f"SELECT WRITETIME(l) FROM {ks}.lists_copy").one()[0]
        assert stamps == [1000, 1000, 2000]
    else:
        assert (resumed.code, resumed.stdout) == (2, "")
        assert resumed.stderr.endswith(
            f"cassandra-restore: error: the target runs Cassandra {release}, which cannot read "
            f"a list's element writetimes (5.0 can): {len(units)} unit(s) were started and not "
            "finished, and rewriting them would append the elements of list column(s) l again. Truncate "
            f"{ks}.lists_copy, delete the restore manifest {manifest} and restore again (or "
            "restore into an empty table)\n"
        )
    assert [tuple(r) for r in session.execute(query)] == expected
