"""cassandra-restore on a real Cassandra 5 node, for table shapes and inputs the round-trip
tables of tests/test_restore.py do not have: lists that are all static, a static-only
partition exported without its statics, damaged export manifests and target names that
Cassandra cannot hold. Each bug found by an acceptance-style hunt has its test here."""

from __future__ import annotations

import datetime
import json
import shutil
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import export
from tests.test_restore import restore, tgt
from transforms.cassandra_session import _timestamps_beyond_datetime
from transforms.int_lists import decode_int_lists

__all__ = ["tgt"]  # the target keyspace fixture, used by name below


def cells(session: Any, table: str, columns: str) -> list[tuple[Any, ...]]:
    """Every row of ``table`` as a tuple of ``columns`` (selectors), in key order."""
    decode_int_lists()
    return sorted(tuple(r) for r in session.execute(f"SELECT {columns} FROM {table}"))


@pytest.fixture(scope="module")
def static_lists(session: Any, ks: str, hosts: str, tmp_path_factory: Any) -> tuple[str, Path]:
    """A table whose only list is static (no regular list), with a static-only partition,
    exported with per-element writetimes."""
    table = f"{ks}.static_lists"
    session.execute(
        f"CREATE TABLE {table} (k int, c int, s text static, sl list<int> static, v text, "
        "PRIMARY KEY (k, c))"
    )
    run = session.execute
    run(f"INSERT INTO {table} (k, c, s, v) VALUES (1, 1, 'S1', 'a') USING TIMESTAMP 10")
    run(f"UPDATE {table} USING TIMESTAMP 20 SET sl = sl + [1, 2] WHERE k = 1")
    run(f"UPDATE {table} USING TIMESTAMP 30 AND TTL 100000 SET sl = sl + [3] WHERE k = 1")
    run(f"INSERT INTO {table} (k, c, v) VALUES (1, 2, 'b') USING TIMESTAMP 11")
    run(f"INSERT INTO {table} (k, s) VALUES (2, 'static only') USING TIMESTAMP 12")
    run(f"UPDATE {table} USING TIMESTAMP 13 SET sl = sl + [5] WHERE k = 2")
    run(f"INSERT INTO {table} (k, c, v) VALUES (3, 1, 'no static') USING TIMESTAMP 14")
    out = tmp_path_factory.mktemp("static_lists") / "export"
    export(hosts, table, out, "--format", "jsonl", "--collection-writetime", "list")
    return table, out


STATIC_LIST_CELLS = "k, c, s, WRITETIME(s), sl, WRITETIME(sl), v, WRITETIME(v)"


def test_lists_all_static_restore_and_redo_exactly(
    session: Any, hosts: str, tgt: str, static_lists: tuple[str, Path]
) -> None:
    """Cassandra refuses a read of static columns only that restricts the clustering key:
    the redo check of such a table reads the partition's statics by its partition key."""
    source, out = static_lists
    target = f"{tgt}.static_lists"
    first = restore("--hosts", hosts, "--input", str(out), "--table", target, "--create-table")
    assert first.code == 0, first.describe()
    again = restore("--hosts", hosts, "--input", str(out), "--table", target, "--overwrite")
    assert again.code == 0, again.describe()
    expected = [
        (1, 1, "S1", 10, [1, 2, 3], [20, 20, 30], "a", 10),
        (1, 2, "S1", 10, [1, 2, 3], [20, 20, 30], "b", 11),
        (2, None, "static only", 12, [5], [13], None, None),
        (3, 1, None, None, None, None, "no static", 14),
    ]
    assert cells(session, source, STATIC_LIST_CELLS) == expected
    assert cells(session, target, STATIC_LIST_CELLS) == expected


def test_static_only_partition_exported_without_its_statics(
    session: Any, hosts: str, tgt: str, static_lists: tuple[str, Path], tmp_path: Path
) -> None:
    """``--columns v`` leaves the statics out; the static-only partition's row (its
    clustering key null) has nothing to restore, and no row marker can be written for it."""
    source, _ = static_lists
    out = tmp_path / "no_statics"
    export(hosts, source, out, "--format", "csv", "--columns", "v")
    target = f"{tgt}.no_statics"
    result = restore("--hosts", hosts, "--input", str(out), "--table", target, "--create-table")
    assert result.code == 0, result.describe()
    assert cells(session, target, "k, c, v, WRITETIME(v)") == [
        (1, 1, "a", 10),
        (1, 2, "b", 11),
        (3, 1, "no static", 14),
    ]


def _damaged(out: Path, tmp_path: Path, part: str) -> Path:
    copy = tmp_path / "damaged"
    shutil.copytree(out, copy)
    shutil.rmtree(copy / "_manifest" / "restore", ignore_errors=True)
    first = sorted((copy / "_manifest" / part).glob("*.json"))[0]
    first.write_text(first.read_text()[:5])
    return first


@pytest.mark.parametrize(
    ("part", "message"),
    [("ranges", "marker {path} is malformed"), ("reads", "{path} is not valid JSON (")],
)
def test_corrupt_unit_marker_or_read_stamp_is_bad_input(
    hosts: str, tgt: str, static_lists: tuple[str, Path], tmp_path: Path, part: str, message: str
) -> None:
    """A damaged export is bad input (exit 2, one line), found before anything is written."""
    _, out = static_lists
    damaged = _damaged(out, tmp_path, part)
    result = restore(
        "--hosts", hosts, "--input", str(tmp_path / "damaged"), "--table", f"{tgt}.dmg_{part}"
    )
    assert (result.code, result.stdout) == (2, ""), result.describe()
    expected = f"cassandra-restore: error: --input: {message.format(path=damaged)}"
    assert result.stderr.startswith(expected)
    assert result.stderr.count("\n") == 1


def test_read_stamp_without_its_fields_is_bad_input(
    hosts: str, tgt: str, static_lists: tuple[str, Path], tmp_path: Path
) -> None:
    _, out = static_lists
    damaged = _damaged(out, tmp_path, "reads")
    damaged.write_text(json.dumps({"unit": 1}))
    result = restore(
        "--hosts", hosts, "--input", str(tmp_path / "damaged"), "--table", f"{tgt}.dmg_fields"
    )
    assert (result.code, result.stdout) == (2, ""), result.describe()
    assert result.stderr == (
        f"cassandra-restore: error: --input: read stamp {damaged} is malformed\n"
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (("--table", "{tgt}.b.c"), "--table: 'b.c' is not a table name"),
        (("--table", "{tgt}.with space"), "--table: 'with space' is not a table name"),
        (("--table", ""), "--table: '' is not a table name"),
        (("--keyspace", "", "--table", "t"), "--keyspace: '' is not a keyspace name"),
        (("--table", ".t"), "--table: '' is not a keyspace name"),
    ],
)
def test_target_names_cassandra_cannot_hold_are_bad_input(
    hosts: str, tgt: str, static_lists: tuple[str, Path], options: tuple[str, ...], message: str
) -> None:
    """Refused before anything is created or written: before, an empty name meant the
    exported table itself, and a name with a dot or a space failed at CREATE TABLE (exit 1)."""
    _, out = static_lists
    argv = [o.format(tgt=tgt) for o in options]
    result = restore("--hosts", hosts, "--input", str(out), *argv, "--create-table")
    assert (result.code, result.stdout) == (2, ""), result.describe()
    assert result.stderr == (
        f"cassandra-restore: error: {message}: Cassandra names are letters, digits and "
        "underscores\n"
    )


@pytest.mark.parametrize(
    ("name", "created"),
    [
        ('{tgt}."MixedCase"', "MixedCase"),
        ('"{tgt}"."Both_Quoted"', "Both_Quoted"),
        ('"{tgt}".Plain_Mixed', "Plain_Mixed"),
    ],
)
def test_quoted_mixed_case_target_name(
    session: Any, hosts: str, tgt: str, static_lists: tuple[str, Path], name: str, created: str
) -> None:
    """Either part of --table may be quoted; an unquoted name keeps its case too."""
    source, out = static_lists
    target = name.format(tgt=tgt)
    result = restore("--hosts", hosts, "--input", str(out), "--table", target, "--create-table")
    assert result.code == 0, result.describe()
    assert cells(session, f'{tgt}."{created}"', STATIC_LIST_CELLS) == cells(
        session, source, STATIC_LIST_CELLS
    )


def test_user_type_mismatch_refused_before_the_table_is_created(
    session: Any, ks: str, hosts: str, tgt: str, tmp_path: Path
) -> None:
    """--create-table with a same-named type of other fields on the target: refused (exit 2)
    and nothing created, so a rerun after fixing the type is not met by a stray table."""
    session.execute(f"CREATE TYPE {ks}.pt (x int, y text)")
    session.execute(f"CREATE TABLE {ks}.with_pt (k int PRIMARY KEY, p frozen<pt>)")
    session.execute(f"INSERT INTO {ks}.with_pt (k, p) VALUES (1, {{x: 1, y: 'a'}})")
    out = tmp_path / "with_pt"
    export(hosts, f"{ks}.with_pt", out, "--format", "avro")
    session.execute(f"CREATE TYPE {tgt}.pt (x bigint, y text)")
    target = f"{tgt}.with_pt"
    result = restore("--hosts", hosts, "--input", str(out), "--table", target, "--create-table")
    assert (result.code, result.stdout) == (2, ""), result.describe()
    assert result.stderr == (
        f"cassandra-restore: error: the target table {target} does not match the export: "
        "type pt has fields (x bigint, y text) on the target but (x int, y text) in the export\n"
    )
    found = session.execute(
        "SELECT table_name FROM system_schema.tables WHERE keyspace_name = %s AND "
        "table_name = 'with_pt'",
        (tgt,),
    )
    assert list(found) == []


@pytest.mark.parametrize("value", ["99999999999999999999999", "-9223372036854775808"])
def test_timestamp_beyond_a_writetime_is_bad_input(
    hosts: str, tgt: str, static_lists: tuple[str, Path], value: str
) -> None:
    """A writetime is a signed 64-bit count of microseconds, above Cassandra's reserved
    minimum; before, a larger --timestamp failed mid-run (exit 1) when first bound."""
    _, out = static_lists
    result = restore(
        "--hosts", hosts, "--input", str(out), "--table", f"{tgt}.ts", "--timestamp", value
    )
    assert (result.code, result.stdout) == (2, ""), result.describe()
    assert result.stderr == (
        f"cassandra-restore: error: --timestamp: {value} microseconds is outside the range "
        "of a writetime (-9223372036854775807 to 9223372036854775807)\n"
    )


def test_damaged_restore_manifest_is_bad_input_and_overwrite_recovers(
    session: Any, hosts: str, tgt: str, static_lists: tuple[str, Path], tmp_path: Path
) -> None:
    """A restore.json or done marker that is not JSON: exit 2 naming the file and the way
    out (before, exit 1 advising --resume, which met the same file again); --overwrite
    starts the run anew."""
    source, out = static_lists
    target = f"{tgt}.damaged_log"
    log = tmp_path / "log"
    argv = ("--hosts", hosts, "--input", str(out), "--table", target, "--restore-log", str(log))
    assert restore(*argv, "--create-table").code == 0
    run_json = log / target / "restore.json"
    done = sorted(p for p in (log / target).glob("*.json") if p.name != "restore.json")[0]
    for damaged in (run_json, done):
        damaged.write_text("{")
        result = restore(*argv, "--resume")
        assert (result.code, result.stdout) == (2, ""), result.describe()
        assert result.stderr.startswith(f"cassandra-restore: error: {damaged} is not valid JSON")
        assert result.stderr.endswith(
            ": the restore manifest is damaged; restore every unit again with --overwrite\n"
        )
        again = restore(*argv, "--overwrite")
        assert again.code == 0, again.describe()
    assert cells(session, target, STATIC_LIST_CELLS) == cells(session, source, STATIC_LIST_CELLS)


def test_incremental_export_restored_after_its_base_appends_no_list_element_twice(
    session: Any, ks: str, hosts: str, tgt: str, tmp_path: Path
) -> None:
    """An incremental export repeats rows its base holds: those written in the overlap, and
    every row with one cell written since, with all its cells. Restored after the base into
    the same table, its list elements were appended again (``['a', 'b', 'a', 'b']``)."""
    source = f"{ks}.chain"
    session.execute(f"CREATE TABLE {source} (k int PRIMARY KEY, l list<text>, v int)")
    session.execute(f"INSERT INTO {source} (k, l, v) VALUES (1, ['a', 'b'], 1)")
    session.execute(f"INSERT INTO {source} (k, l, v) VALUES (2, ['c'], 1)")
    session.execute(f"INSERT INTO {source} (k, l, v) VALUES (3, ['d'], 1)")
    base, increment = tmp_path / "base", tmp_path / "increment"
    options = ("--format", "jsonl", "--collection-writetime", "list")
    export(hosts, source, base, *options)
    session.execute(f"UPDATE {source} SET v = 2 WHERE k = 1")
    session.execute(f"UPDATE {source} SET l = l + ['e'] WHERE k = 3")
    export(hosts, source, increment, *options, "--incremental-from", str(base))
    target = f"{tgt}.chain"
    for out in (base, increment):
        result = restore("--hosts", hosts, "--input", str(out), "--table", target, "--create-table")
        assert result.code == 0, result.describe()
    columns = "k, l, WRITETIME(l), v, WRITETIME(v)"
    expected = cells(session, source, columns)
    assert [(k, lst, v) for k, lst, _, v, _ in expected] == [
        (1, ["a", "b"], 2),
        (2, ["c"], 1),
        (3, ["d", "e"], 1),
    ]
    assert cells(session, target, columns) == expected


def test_static_counters_added_once_per_partition(
    session: Any, ks: str, hosts: str, tgt: str, tmp_path: Path
) -> None:
    """A static counter was incremented with the row's whole primary key, which Cassandra
    refuses for a statement that sets only statics (``Invalid restrictions on clustering
    columns``, exit 1). It is added once per partition, a static-only one too."""
    source = f"{ks}.static_counters"
    run = session.execute
    run(f"CREATE TABLE {source} (k int, c int, sc counter static, n counter, PRIMARY KEY (k, c))")
    run(f"UPDATE {source} SET sc = sc + 7 WHERE k = 1")
    for c in (1, 2, 3):
        run(f"UPDATE {source} SET n = n + {c} WHERE k = 1 AND c = {c}")
    run(f"UPDATE {source} SET sc = sc - 5 WHERE k = 2")
    out = tmp_path / "counters"
    export(hosts, source, out, "--format", "csv")
    target = f"{tgt}.static_counters"
    result = restore(
        "--hosts", hosts, "--input", str(out), "--table", target, "--create-table",
        "--counters", "add",
    )  # fmt: skip
    assert result.code == 0, result.describe()
    expected = [(1, 1, 7, 1), (1, 2, 7, 2), (1, 3, 7, 3), (2, None, -5, None)]
    assert cells(session, source, "k, c, sc, n") == expected
    assert cells(session, target, "k, c, sc, n") == expected


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "avro", "parquet"])
def test_per_element_map_with_unhashable_keys(
    session: Any, ks: str, hosts: str, tgt: str, tmp_path: Path, fmt: str
) -> None:
    """A non-frozen map keyed by a frozen UDT or by a tuple holding a list, exported with
    ``--collection-writetime list``: the entries of each writetime go back as one map,
    which cannot be a dict (its keys decode unhashable), and keep their own writetimes."""
    session.execute(f"CREATE TYPE IF NOT EXISTS {ks}.mkey (x int, y text)")
    table = f"{ks}.unhashable_keys"
    session.execute(
        f"CREATE TABLE IF NOT EXISTS {table} (k int PRIMARY KEY, "
        "mu map<frozen<mkey>, int>, mt map<frozen<tuple<int, list<int>>>, text>)"
    )
    run = session.execute
    run(
        f"UPDATE {table} USING TIMESTAMP 10 SET mu = mu + {{{{x: 1, y: 'a'}}: 1}}, "
        "mt = mt + {(1, [2]): 'p'} WHERE k = 1"
    )
    run(
        f"UPDATE {table} USING TIMESTAMP 20 SET mu = mu + {{{{x: 2, y: null}}: 2}}, "
        "mt = mt + {(3, []): 'q'} WHERE k = 1"
    )
    target = _per_element_round_trip(hosts, table, f"{tgt}.unhashable_keys_{fmt}", fmt, tmp_path)
    columns = "k, mu, WRITETIME(mu), mt, WRITETIME(mt)"
    expected = cells(session, table, columns)
    assert [(r[0], r[2], r[4]) for r in expected] == [(1, [10, 20], [10, 20])]
    assert cells(session, target, columns) == expected


def test_bad_timestamp_refused_on_a_resume_that_keeps_the_first(
    hosts: str, tgt: str, static_lists: tuple[str, Path]
) -> None:
    """A resumed restore keeps its first run's --timestamp, but a value that is no time is
    still bad input (exit 2), not silently ignored."""
    _, out = static_lists
    argv = ["--hosts", hosts, "--input", str(out), "--table", f"{tgt}.kept_stamp"]
    first = restore(*argv, "--create-table", "--timestamp", "now")
    assert first.code == 0, first.describe()
    again = restore(*argv, "--resume", "--timestamp", "garbage")
    assert (again.code, again.stdout, again.stderr) == (
        2,
        "",
        "cassandra-restore: error: --timestamp: 'garbage' is not a time: use RFC 3339 "
        "(2024-01-31T12:00:00Z) or epoch seconds, milliseconds or microseconds\n",
    ), again.describe()


# Milliseconds of timestamps around and beyond the years a datetime holds (1-9999).
NESTED_STAMPS = [-(2**63), -62135596800001, -62135596800000, 0, 253402300799999, 253402300800000]


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "avro", "parquet"])
def test_nested_timestamps_beyond_years_1_to_9999_round_trip(
    session: Any, ks: str, hosts: str, tgt: str, tmp_path: Path, fmt: str
) -> None:
    """Timestamps inside a list, set, map and tuple outside years 1-9999, which the driver
    cannot decode as datetimes: exported as their milliseconds (no crash) and restored to
    the same values."""
    _timestamps_beyond_datetime()
    table = f"{ks}.nested_stamps_{fmt}"
    session.execute(
        f"CREATE TABLE {table} (k int PRIMARY KEY, lt list<timestamp>, "
        "st set<timestamp>, mt map<timestamp, int>, tt frozen<tuple<timestamp, int>>)"
    )
    stamps = ", ".join(map(str, NESTED_STAMPS))
    entries = ", ".join(f"{m}: {i}" for i, m in enumerate(NESTED_STAMPS))
    session.execute(
        f"INSERT INTO {table} (k, lt, st, mt, tt) VALUES "
        f"(1, [{stamps}], {{{stamps}}}, {{{entries}}}, ({NESTED_STAMPS[0]}, 7)) USING TIMESTAMP 5"
    )
    session.execute(
        f"INSERT INTO {table} (k, tt) VALUES (2, ({NESTED_STAMPS[-1]}, 8)) USING TIMESTAMP 6"
    )
    target = _per_element_round_trip(hosts, table, f"{tgt}.nested_stamps_{fmt}", fmt, tmp_path)
    columns = "k, lt, WRITETIME(lt), st, mt, tt, WRITETIME(tt)"
    expected = cells(session, table, columns)
    assert [r[0] for r in expected] == [1, 2]
    assert [_millis(v) for v in expected[0][1]] == NESTED_STAMPS
    assert [_millis(r[5][0]) for r in expected] == [NESTED_STAMPS[0], NESTED_STAMPS[-1]]
    assert cells(session, target, columns) == expected


def _millis(value: Any) -> int:
    """A decoded timestamp's milliseconds: a datetime's, or the integer itself."""
    if isinstance(value, int):
        return value
    return (value - datetime.datetime(1970, 1, 1)) // datetime.timedelta(milliseconds=1)


def _per_element_round_trip(hosts: str, table: str, target: str, fmt: str, tmp_path: Path) -> str:
    """``table`` exported in ``fmt`` with per-element writetimes, then restored into
    ``target`` (created); the target's name."""
    out = tmp_path / "export"
    export(hosts, table, out, "--format", fmt, "--collection-writetime", "list")
    result = restore("--hosts", hosts, "--input", str(out), "--table", target, "--create-table")
    assert result.code == 0, result.describe()
    return target


def test_resume_with_no_run_in_the_log_is_refused(
    static_lists: tuple[str, Path], session: Any, hosts: str, tgt: str, tmp_path: Path
) -> None:
    """``--resume`` where no restore was started (a killed run kept its manifest in a
    ``--restore-log`` DIR the resume leaves out) is refused before anything is written: it
    used to start a new run, which rewrote every unit and appended each list element again."""
    _, out = static_lists
    target = f"{tgt}.nothing_to_resume"
    log = tmp_path / "log"
    argv = ("--hosts", hosts, "--input", str(out), "--table", target, "--create-table")
    result = restore(*argv, "--restore-log", str(log), "--resume")
    assert (result.code, result.stdout) == (2, ""), result.describe()
    assert result.stderr == (
        f"cassandra-restore: error: --resume: no restore was started with its manifest in "
        f"{log}/{target}, so there is nothing to resume: give the --restore-log DIR the "
        "earlier run used, or leave out --resume to start a new restore\n"
    )
    assert not log.exists()
    assert session.cluster.metadata.keyspaces[tgt].tables.get("nothing_to_resume") is None
    started = restore(*argv, "--restore-log", str(log))
    assert started.code == 0, started.describe()
