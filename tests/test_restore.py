"""cassandra-restore on a real Cassandra 5 node: the round trip (value, WRITETIME and TTL expiry
of every cell and element equal to the source), list idempotency on redo and after kill -9,
and bad input (exit 2, one exact line).

TTL precision, stated exactly: the export records when each unit's read started (S) and its
marker when the unit was committed (C). Restore writes TTL = S + exported TTL - now, so a
restored expiry lies between (floor(C) - floor(S)) seconds earlier and 1 second later than the
source's. Reading TTL() of the source and then of the target, the two reads may fall into
different seconds: d = floor(after) - floor(before). So for every cell,
-(span + d) <= TTL(target) - TTL(source) <= 1, where span is the largest floor(C) - floor(S)
of the export's units.
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import psutil
import pytest

from tests.helpers import REPO, CliResult, export, markers
from transforms.int_lists import decode_int_lists
from transforms.normalize import parse_time_micros

S = 1_000_000
EXPIRING_TTL = 20  # seconds: long enough for the export to read the cell on a busy machine
COLUMNS = ("st", "sl", "v", "n", "b", "d", "ts", "fl", "fu", "l", "se", "m", "u")


def restore(*argv: str) -> CliResult:
    """``cassandra-restore`` in this process (FnApiRunner), stdout and stderr captured."""
    from pipeline.restore_cli import main

    full = [*argv, "--runner=FnApiRunner", "--progress-interval", "0"]
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(full)
    return CliResult(code, out.getvalue(), err.getvalue(), full)


def restore_process(*argv: str) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "pipeline.restore_cli", *argv, "--runner=FnApiRunner"],
        cwd=str(REPO),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


@pytest.fixture(scope="module")
def tgt(request: pytest.FixtureRequest, session: Any) -> str:
    """A second keyspace, for restore targets."""
    name = f"restore_tgt_{uuid.uuid4().hex[:8]}"
    session.execute(
        f"CREATE KEYSPACE {name} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}",
        timeout=60,
    )
    request.addfinalizer(lambda: session.execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=120))
    return name


@pytest.fixture(scope="module")
def source(session: Any, ks: str) -> dict[str, Any]:
    """The source table: scalars, statics, a static-only partition, a key-only row, TTLs,
    frozen values, non-frozen list/set/map/UDT with element writes at different times,
    and a cell that expires between export and restore."""
    decode_int_lists()
    session.execute(f"CREATE TYPE IF NOT EXISTS {ks}.addr (street text, zip int)")
    session.execute(
        f"CREATE TABLE {ks}.src (k int, c int, st text static, sl list<text> static, v text, "
        "n bigint, b blob, "
        "d decimal, ts timestamp, fl frozen<list<int>>, fu frozen<addr>, l list<text>, "
        "se set<int>, m map<text, int>, u addr, PRIMARY KEY (k, c))"
    )
    run = session.execute
    t = f"{ks}.src"
    run(
        f"INSERT INTO {t} (k, c, st, v, n, b, d, ts, fl, fu, l, se, m, u) VALUES (1, 1, 's1', "
        "'v1', 5, 0x0102, 1.25, '2020-01-02 03:04:05.678+0000', [1, 2], {street: 'f', zip: 2}, "
        "['a', 'b'], {1, 2}, {'x': 1}, {street: 's', zip: 1}) "
        "USING TIMESTAMP 1000000 AND TTL 100000"
    )
    run(
        f"UPDATE {t} USING TIMESTAMP 3000000 SET l = l + ['c'], se = se + {{3}}, m['y'] = 2, "
        "u.zip = 5, v = 'v2' WHERE k = 1 AND c = 1"
    )
    run(
        f"UPDATE {t} USING TIMESTAMP 2000000 AND TTL 50000 SET l = l + ['d'], n = 7 "
        "WHERE k = 1 AND c = 1"
    )
    run(f"UPDATE {t} USING TIMESTAMP 1500000 SET v = 'x' WHERE k = 1 AND c = 2")
    run(f"INSERT INTO {t} (k, c) VALUES (2, 1) USING TIMESTAMP 1000")
    run(f"INSERT INTO {t} (k, st) VALUES (3, 'static only') USING TIMESTAMP 4000000")
    run(f"UPDATE {t} USING TIMESTAMP 4000000 SET sl = sl + ['p', 'q'] WHERE k = 3")
    run(f"UPDATE {t} USING TIMESTAMP 1000000 SET sl = sl + ['x'] WHERE k = 1")
    run(f"UPDATE {t} USING TIMESTAMP 2000000 AND TTL 70000 SET sl = sl + ['y'] WHERE k = 1")
    for stamp, item in ((10, "a"), (20, "b"), (10, "c")):
        run(f"UPDATE {t} USING TIMESTAMP {stamp} SET l = l + ['{item}'] WHERE k = 4 AND c = 1")
    run(f"UPDATE {t} USING TIMESTAMP 10 SET se = se + {{1}} WHERE k = 4 AND c = 1")
    run(f"UPDATE {t} USING TIMESTAMP 20 AND TTL 90000 SET se = se + {{2}} WHERE k = 4 AND c = 1")
    run(f"UPDATE {t} USING TIMESTAMP 10 AND TTL 80000 SET m['p'] = 1 WHERE k = 4 AND c = 1")
    run(f"UPDATE {t} USING TIMESTAMP 30 SET u = {{street: 'w', zip: null}} WHERE k = 4 AND c = 1")
    run(f"UPDATE {t} USING TIMESTAMP 5000000 SET n = 1 WHERE k = 5 AND c = 1")
    insert = session.prepare(
        f"UPDATE {t} USING TIMESTAMP ? AND TTL ? SET v = ?, n = ?, fl = ?, l = l + ? "
        "WHERE k = ? AND c = ?"
    )
    append = session.prepare(f"UPDATE {t} USING TIMESTAMP ? SET l = l + ? WHERE k = ? AND c = ?")
    for k in range(10, 110):
        for c in range(2):
            stamp = 1_700_000_000_000_000 + k * 1000 + c
            ttl = 200_000 + k if k % 3 == 0 else 0
            session.execute(insert, (stamp, ttl, f"v{k}.{c}", k * c, [k, c], [f"e{k}"], k, c))
            session.execute(append, (stamp + 7, [f"f{k}", f"g{k}"], k, c))
    return {"table": t}


def snapshot(session: Any, table: str) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """(values and writetimes, TTLs) of every cell of every row, keyed by (k, c)."""
    selectors = ", ".join(f"{c}, WRITETIME({c}), TTL({c})" for c in COLUMNS)
    values: dict[Any, Any] = {}
    ttls: dict[Any, Any] = {}
    for row in session.execute(f"SELECT k, c, {selectors} FROM {table}"):
        key = (row[0], row[1])
        cells = row[2:]
        values[key] = tuple(
            (_plain(cells[3 * i]), _plain(cells[3 * i + 1])) for i in range(len(COLUMNS))
        )
        ttls[key] = tuple(cells[3 * i + 2] for i in range(len(COLUMNS)))
    return values, ttls


def _plain(value: Any) -> Any:
    if value is None or isinstance(value, int | str | bytes | float):
        return value
    if hasattr(value, "items"):
        return sorted(value.items())
    if isinstance(value, tuple):
        return tuple(value)
    try:
        return list(value)
    except TypeError:
        return value


def read_span(out: Path) -> int:
    """Largest floor(committed_at) - floor(read start) of the export's units, in seconds."""
    starts = {}
    for path in (out / "_manifest" / "reads").glob("*.json"):
        stamp = json.loads(path.read_text())
        starts[stamp["unit_id"]] = stamp["read_started_at_micros"]
    return max(
        parse_time_micros(m["committed_at"]) // S - starts[m["unit_id"]] // S for m in markers(out)
    )


def compare_ttls(
    source_ttls: dict[Any, Any], target_ttls: dict[Any, Any], span: int, d: int
) -> list[str]:
    problems = []
    for key, cells in source_ttls.items():
        for name, want, got in zip(COLUMNS, cells, target_ttls[key], strict=True):
            pairs = zip(want, got, strict=True) if isinstance(want, list) else [(want, got)]
            for w, g in pairs:
                if (w is None) != (g is None):
                    problems.append(f"{key} {name}: TTL {g} on the target, {w} on the source")
                elif w is not None and not -(span + d) <= g - w <= 1:
                    problems.append(f"{key} {name}: TTL {g} on the target, {w} on the source")
    return problems


def summary_number(text: str, label: str) -> int:
    for line in text.splitlines():
        if label in line:
            before = line.split(label)[0].split()
            return int(before[-1].replace(",", ""))
    raise AssertionError(f"{label!r} not in {text}")


# --- the round trip -------------------------------------------------------------------------


# Export options of the lists' restores: element writetimes in JSON lines.
ELEMENT_WRITETIMES = ("--format", "jsonl", "--collection-writetime", "list")


def export_round_trip(hosts: str, table: str, out: Path) -> None:
    """The export the round trip restores (here and on Dask): JSON lines, every element's
    writetime, every TTL, six units."""
    export(hosts, table, out, *ELEMENT_WRITETIMES, "--ttl-columns", "*", "--splits", "6")


@pytest.fixture(scope="module")
def exported(
    tmp_path_factory: pytest.TempPathFactory, session: Any, hosts: str, source: dict[str, Any]
) -> Path:
    out = tmp_path_factory.mktemp("restore") / "export"
    # A cell that is exported, then expires before the restore starts (counted there).
    expiring = time.time()
    session.execute(
        f"UPDATE {source['table']} USING TIMESTAMP 5000000 AND TTL {EXPIRING_TTL} "
        "SET v = 'gone' WHERE k = 5 AND c = 1"
    )
    export_round_trip(hosts, source["table"], out)
    exported_text = "".join(p.read_text() for p in (out / "data").glob("part-*.jsonl"))
    assert exported_text.count('"gone"') == 1, "the expiring cell expired before the export"
    time.sleep(max(0.0, expiring + EXPIRING_TTL + 2 - time.time()))
    return out


def test_round_trip_every_cell(
    session: Any, hosts: str, tgt: str, source: dict[str, Any], exported: Path
) -> None:
    result = restore(
        "--hosts", hosts, "--input", str(exported), "--table", f"{tgt}.copy", "--create-table"
    )
    assert result.code == 0, result.describe()
    assert result.stderr == ""
    assert summary_number(result.stdout, "expired since the export") == 1
    before = time.time()
    source_values, source_ttls = snapshot(session, source["table"])
    target_values, target_ttls = snapshot(session, f"{tgt}.copy")
    d = math.floor(time.time()) - math.floor(before)
    assert target_values == source_values
    assert len(source_values) == 206  # 200 generated rows and 6 hand-written ones
    assert (2, 1) in target_values and (3, None) in target_values
    assert compare_ttls(source_ttls, target_ttls, read_span(exported), d) == []


def test_restore_again_is_a_no_op_and_overwrite_writes_no_list_element_twice(
    session: Any, hosts: str, tgt: str, exported: Path
) -> None:
    first = restore(
        "--hosts", hosts, "--input", str(exported), "--table", f"{tgt}.again", "--create-table"
    )
    assert first.code == 0, first.describe()
    values, _ = snapshot(session, f"{tgt}.again")
    again = restore("--hosts", hosts, "--input", str(exported), "--table", f"{tgt}.again")
    assert again.code == 0, again.describe()
    assert again.stdout == (
        f"the restore of {exported} into {tgt}.again is already complete (206 rows in "
        f"{len(markers(exported))} units); nothing to do\n"
    )
    overwrite = restore(
        "--hosts", hosts, "--input", str(exported), "--table", f"{tgt}.again", "--overwrite"
    )
    assert overwrite.code == 0, overwrite.describe()
    position = COLUMNS.index("l")
    list_elements = sum(len(cells[position][0] or []) for cells in values.values())
    assert list_elements == 4 + 3 + 200 * 3
    list_elements += 2 + 2  # the static list sl of partitions 1 and 3
    assert summary_number(overwrite.stdout, "list elements already on the target") == list_elements
    assert snapshot(session, f"{tgt}.again")[0] == values


def test_policy_max_restores_whole_collections_with_one_warning(
    session: Any, hosts: str, tgt: str, source: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "max"
    export(hosts, source["table"], out, "--format", "jsonl", "--splits", "3")
    result = restore(
        "--hosts", hosts, "--input", str(out), "--table", f"{tgt}.maxcopy", "--create-table"
    )
    assert result.code == 0, result.describe()
    assert result.stderr == (
        "warning: the export kept one writetime per collection (--collection-writetime max): "
        "l, m, se, sl, u are restored whole at that writetime; element writetimes were not "
        "exported\n"
        f"warning: the export has no TTL for {_data_columns(out)}: those cells are restored "
        "without a TTL\n"
    )
    rows = session.execute(f"SELECT l, WRITETIME(l) FROM {tgt}.maxcopy WHERE k = 4 AND c = 1").one()
    assert (rows[0], rows[1]) == (["a", "b", "c"], [20, 20, 20])


def test_policy_max_with_ttls_warns_that_elements_without_one_get_it(
    hosts: str, tgt: str, source: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "max-ttl"
    export(hosts, source["table"], out, "--format", "jsonl", "--splits", "3", "--ttl-columns", "*")
    result = restore(
        "--hosts", hosts, "--input", str(out), "--table", f"{tgt}.maxttl", "--create-table"
    )
    assert result.code == 0, result.describe()
    assert result.stderr == (
        "warning: the export kept one writetime per collection (--collection-writetime max): "
        "l, m, se, sl, u are restored whole at that writetime; element writetimes were not "
        "exported\n"
        "warning: the export kept one TTL per collection (--collection-writetime max): "
        "l, m, se, sl, u are restored whole with that TTL, also their elements that had none "
        "on the source; export with --collection-writetime list to restore each element's "
        "own\n"
    )


def _data_columns(out: Path) -> str:
    columns = json.loads((out / "_manifest" / "export.json").read_text())["schema"]["columns"]
    return ", ".join(c["name"] for c in columns if c["kind"] in ("static", "regular"))


# --- kill -9 and resume -------------------------------------------------------------------------


KILL_PARTITIONS, KILL_ROWS_PER_PARTITION = 10_000, 10  # 100,000 rows, each with a list
KILL_UNITS = 24


def load_list_rows(session: Any, table: str, partitions: int = KILL_PARTITIONS) -> None:
    """``partitions`` x ``KILL_ROWS_PER_PARTITION`` rows: v and two list elements at
    one writetime, a third element appended at a later one; one unlogged batch per partition
    and step, the second step after the first, so every row's elements land in that order."""
    from cassandra.concurrent import execute_concurrent
    from cassandra.query import BatchStatement, BatchType

    first = session.prepare(
        f"UPDATE {table} USING TIMESTAMP ? SET v = ?, l = l + ? WHERE k = ? AND c = ?"
    )
    second = session.prepare(
        f"UPDATE {table} USING TIMESTAMP ? SET l = l + ? WHERE k = ? AND c = ?"
    )
    for step in (first, second):
        statements = []
        for k in range(partitions):
            batch = BatchStatement(batch_type=BatchType.UNLOGGED)
            for c in range(KILL_ROWS_PER_PARTITION):
                stamp = 1_000_000 + k * 100 + c
                if step is first:
                    batch.add(first, (stamp, f"v{k}.{c}", [f"a{k}.{c}", f"b{k}.{c}"], k, c))
                else:
                    batch.add(second, (stamp + 50, [f"c{k}.{c}"], k, c))
            statements.append((batch, ()))
        for ok, outcome in execute_concurrent(session, statements, concurrency=32):
            assert ok, outcome


def list_rows(session: Any, table: str) -> dict[tuple[int, int], tuple[Any, ...]]:
    return {
        (r[0], r[1]): (r[2], r[3], list(r[4] or []), list(r[5] or []))
        for r in session.execute(
            f"SELECT k, c, v, WRITETIME(v), l, WRITETIME(l) FROM {table}", timeout=120
        )
    }


def has_rows(session: Any, table: str, out: Path, name: str) -> bool:
    """Whether ``table`` holds a row in the token range of export unit ``name``."""
    marker = json.loads((out / "_manifest" / "ranges" / name).read_text())
    start, end = int(marker["start"]), int(marker["end"])
    bounds = [(start, end)] if start < end else [(start, 2**63 - 1), (-(2**63), end)]
    return any(
        session.execute(
            f"SELECT k FROM {table} WHERE token(k) > {low} AND token(k) <= {high} LIMIT 1"
        ).one()
        is not None
        for low, high in bounds
    )


def unit_files(directory: Path) -> set[str]:
    return {p.name for p in directory.glob("0*.json")} if directory.exists() else set()


@pytest.mark.slow
def test_kill_nine_three_times_then_resume_equals_source(
    session: Any, hosts: str, ks: str, tgt: str, tmp_path: Path
) -> None:
    """100,000 rows with a list each: the restore is killed with SIGKILL three times, each
    time proven dead with units still unfinished in its manifest; --resume then leaves the
    target equal to the source: values, every element's writetime, no element twice."""
    session.execute(
        f"CREATE TABLE {ks}.big (k int, c int, v text, l list<text>, PRIMARY KEY (k, c))"
    )
    load_list_rows(session, f"{ks}.big")
    out = tmp_path / "big"
    export(
        hosts,
        f"{ks}.big",
        out,
        "--format",
        "jsonl",
        "--collection-writetime",
        "list",
        "--splits",
        str(KILL_UNITS),
    )
    units = len(markers(out))  # KILL_UNITS or a few more: units end at vnode boundaries
    manifest_dir = out / "_manifest" / "restore" / f"{tgt}.bigcopy"
    argv = ["--hosts", hosts, "--input", str(out), "--table", f"{tgt}.bigcopy"]
    kills = []
    for attempt in range(3):
        extra = ["--create-table"] if attempt == 0 else ["--resume"]
        # Throttled so that a unit (about 3,600 rows) takes about a second: the kill lands
        # inside one.
        proc = restore_process(*argv, *extra, "--max-rows-per-second", "4000")
        done_before = len(unit_files(manifest_dir))
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None:
            done = unit_files(manifest_dir)
            started = unit_files(manifest_dir / "attempts")
            # Kill once another unit is done and rows of a further one are on the target.
            if len(done) > done_before and any(
                has_rows(session, f"{tgt}.bigcopy", out, name) for name in started - done
            ):
                break
            time.sleep(0.01)
        assert proc.poll() is None, proc.communicate()
        children = psutil.Process(proc.pid).children(recursive=True)
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate()
        # Proof of the kill: the process died of SIGKILL and left no child behind, with a
        # unit begun (rows of it on the target) but not finished, and others not begun.
        assert proc.returncode == -signal.SIGKILL
        assert not psutil.pid_exists(proc.pid)
        assert [c.pid for c in children if c.is_running()] == []
        done = unit_files(manifest_dir)
        interrupted = {
            name
            for name in unit_files(manifest_dir / "attempts") - done
            if has_rows(session, f"{tgt}.bigcopy", out, name)
        }
        assert len(done) < units and interrupted, (done, interrupted)
        assert len(unit_files(manifest_dir / "attempts")) < units
        kills.append((len(done), sorted(interrupted)))
    final = restore(*argv, "--resume")
    assert final.code == 0, final.describe()
    source = list_rows(session, f"{ks}.big")
    target = list_rows(session, f"{tgt}.bigcopy")
    assert len(source) == KILL_PARTITIONS * KILL_ROWS_PER_PARTITION
    assert source[(7, 3)] == (
        "v7.3",
        1_000_703,
        ["a7.3", "b7.3", "c7.3"],
        [1_000_703, 1_000_703, 1_000_753],
    )
    assert target == source
    # Each kill left its interrupted unit(s) for a redo, which found some of their list
    # elements already on the target and did not append them again.
    finished = [json.loads(p.read_text()) for p in manifest_dir.glob("0*.json")]
    assert len(finished) == units
    redone = {m["stem"] + ".json": m["list_elements_present"] for m in finished if m["redo"]}
    assert sorted(redone) == sorted({name for _, names in kills for name in names}), kills
    assert all(present > 0 for present in redone.values()), redone


# --- bad input --------------------------------------------------------------------------------


def test_not_an_export(hosts: str, tmp_path: Path) -> None:
    result = restore("--hosts", hosts, "--input", str(tmp_path))
    assert (result.code, result.stdout) == (2, "")
    assert result.stderr == (
        f"cassandra-restore: error: --input: {tmp_path} holds no export manifest "
        "(_manifest/export.json): it is not an export directory\n"
    )


def test_unfinished_export(hosts: str, exported: Path, tmp_path: Path) -> None:
    copy = tmp_path / "unfinished"
    shutil.copytree(exported, copy)
    (copy / "_SUCCESS").unlink()
    result = restore("--hosts", hosts, "--input", str(copy))
    assert (result.code, result.stdout) == (2, "")
    assert result.stderr == (
        f"cassandra-restore: error: --input: the export in {copy} is not finished (no "
        f"_SUCCESS): finish it with cassandra-export --resume {copy}, or restore its "
        "committed units with --allow-partial\n"
    )


def test_unknown_target_table(hosts: str, tgt: str, exported: Path) -> None:
    result = restore("--hosts", hosts, "--input", str(exported), "--table", f"{tgt}.missing")
    assert (result.code, result.stdout) == (2, "")
    assert result.stderr == (
        f"cassandra-restore: error: --table: table {tgt}.missing does not exist; add "
        "--create-table to create it from the export's schema\n"
    )


def test_unknown_target_keyspace(hosts: str, exported: Path) -> None:
    result = restore("--hosts", hosts, "--input", str(exported), "--table", "no_such_ks.t")
    assert (result.code, result.stdout) == (2, "")
    assert result.stderr == (
        "cassandra-restore: error: --table: keyspace no_such_ks does not exist on the target; "
        "create it first (restore creates tables, not keyspaces)\n"
    )


def test_type_mismatch_names_every_mismatch(
    session: Any, hosts: str, tgt: str, exported: Path
) -> None:
    session.execute(f"CREATE TYPE IF NOT EXISTS {tgt}.addr (street text, zip int)")
    session.execute(
        f"CREATE TABLE {tgt}.wrong (k int, c int, st text static, v int, n bigint, b blob, "
        "d decimal, ts timestamp, fl frozen<list<int>>, fu frozen<addr>, l list<text>, "
        "se set<int>, m map<text, text>, PRIMARY KEY (k, c))"
    )
    result = restore("--hosts", hosts, "--input", str(exported), "--table", f"{tgt}.wrong")
    assert (result.code, result.stdout) == (2, "")
    assert result.stderr == (
        f"cassandra-restore: error: the target table {tgt}.wrong does not match the export: "
        "column m is map<text, text> on the target but map<text, int> in the export; "
        "column sl (list<text>) does not exist; "
        "column u (addr) does not exist; "
        "column v is int on the target but text in the export\n"
    )


def test_export_without_writetimes_needs_timestamp(
    hosts: str, source: dict[str, Any], tmp_path: Path
) -> None:
    out = tmp_path / "nowt"
    export(
        hosts,
        source["table"],
        out,
        "--format",
        "jsonl",
        "--writetime-columns",
        "none",
        "--splits",
        "2",
    )
    result = restore("--hosts", hosts, "--input", str(out))
    assert (result.code, result.stdout) == (2, "")
    assert result.stderr == (
        "cassandra-restore: error: the export has no writetime for column(s) "
        f"{_data_columns(out)}: give --timestamp now or --timestamp T to say which writetime "
        "they get\n"
    )


def test_counter_table_needs_counters_option(
    session: Any, hosts: str, ks: str, tmp_path: Path
) -> None:
    session.execute(f"CREATE TABLE {ks}.hits (k int PRIMARY KEY, n counter)")
    session.execute(f"UPDATE {ks}.hits SET n = n + 3 WHERE k = 1")
    out = tmp_path / "hits"
    export(hosts, f"{ks}.hits", out, "--format", "jsonl", "--splits", "2")
    result = restore("--hosts", hosts, "--input", str(out))
    assert (result.code, result.stdout) == (2, "")
    assert result.stderr == (
        f"cassandra-restore: error: {ks}.hits is a counter table: counters cannot be written "
        "with a timestamp, only incremented; give --counters add to add the exported values "
        "(a redone unit adds its rows again: see docs/restore.md)\n"
    )


def test_truncated_file(hosts: str, tgt: str, exported: Path, tmp_path: Path) -> None:
    copy = tmp_path / "truncated"
    shutil.copytree(exported, copy)
    biggest = max((copy / "data").glob("part-*"), key=lambda p: p.stat().st_size)
    data = biggest.read_bytes()
    # Cut just before a line end, so the last line surely lacks one (half the file's length
    # can land right after a line end, which is the row-boundary case below).
    biggest.write_bytes(data[: data.index(b"\n", len(data) // 2)])
    result = restore(
        "--hosts", hosts, "--input", str(copy), "--table", f"{tgt}.trunc", "--create-table"
    )
    assert (result.code, result.stdout) == (2, ""), result.describe()
    assert result.stderr == (
        f"cassandra-restore: error: {biggest}: truncated: the last JSON line has no line end\n"
    )


def test_file_cut_at_a_row_boundary(hosts: str, tgt: str, exported: Path, tmp_path: Path) -> None:
    """A file that lost its last rows still parses: the unit marker's row count catches it."""
    copy = tmp_path / "cut"
    shutil.copytree(exported, copy)
    biggest = max((copy / "data").glob("part-*"), key=lambda p: p.stat().st_size)
    lines = biggest.read_bytes().splitlines(keepends=True)
    biggest.write_bytes(b"".join(lines[:-1]))
    result = restore(
        "--hosts", hosts, "--input", str(copy), "--table", f"{tgt}.cut", "--create-table"
    )
    assert (result.code, result.stdout) == (2, ""), result.describe()
    assert result.stderr == (
        f"cassandra-restore: error: {biggest}: holds {len(lines) - 1} rows but its export "
        f"marker records {len(lines)}: the file is truncated or was replaced\n"
    )


def test_bad_value_late_in_a_unit_leaves_it_unfinished_and_resume_is_exact(
    session: Any, hosts: str, ks: str, tgt: str, tmp_path: Path
) -> None:
    """A unit of 5,000 rows (one partition) whose last row holds a value no export writes:
    the file's structure is sound, so its first chunks of 2,000 rows are written before
    the third is decoded and refused (exit 2, one line); the unit is not marked done. From
    the repaired file, --resume redoes it: the target equals the source, no list element
    twice."""
    from cassandra.concurrent import execute_concurrent_with_args

    session.execute(
        f"CREATE TABLE {ks}.late (k int, c int, v text, l list<text>, PRIMARY KEY (k, c))"
    )
    insert = session.prepare(
        f"UPDATE {ks}.late USING TIMESTAMP ? SET v = ?, l = l + ? WHERE k = 1 AND c = ?"
    )
    rows = [(1_000_000 + c, f"v{c}", [f"a{c}", f"b{c}"], c) for c in range(5000)]
    for ok, outcome in execute_concurrent_with_args(session, insert, rows, concurrency=32):
        assert ok, outcome
    out = tmp_path / "late"
    export(
        hosts,
        f"{ks}.late",
        out,
        "--format",
        "csv",
        "--collection-writetime",
        "list",
        "--ttl-columns",
        "*",
    )
    (path,) = [p for p in (out / "data").glob("part-*") if b"\r\n1,4999," in p.read_bytes()]
    good = path.read_bytes()
    path.write_bytes(good.replace(b"\r\n1,4999,", b"\r\nx,4999,"))
    argv = ["--hosts", hosts, "--input", str(out), "--table", f"{tgt}.late"]
    failed = restore(*argv, "--create-table")
    assert (failed.code, failed.stdout) == (2, ""), failed.describe()
    assert failed.stderr == (
        f"cassandra-restore: error: {path}: field 'k': bad value (ValueError: 'x' is not an "
        "integer)\n"
    )
    manifest_dir = out / "_manifest" / "restore" / f"{tgt}.late"
    stem = next(
        p.stem
        for p in (out / "_manifest" / "ranges").glob("0*.json")
        if json.loads(p.read_text())["file"] == path.name
    )
    assert not (manifest_dir / f"{stem}.json").exists()
    assert (manifest_dir / "attempts" / f"{stem}.json").exists()
    # A partition is written in pieces of 1,000 rows (PARTITION_CHUNK_ROWS), each sent once
    # the row after it is decoded: rows 0-2999 were written (the unit waited for every
    # write in flight before it failed), 3000-3999 were decoded but never sent.
    written = session.execute(f"SELECT count(*) FROM {tgt}.late").one()[0]
    assert written == 3000
    path.write_bytes(good)
    resumed = restore(*argv, "--resume")
    assert resumed.code == 0, resumed.describe()
    assert list_rows(session, f"{tgt}.late") == list_rows(session, f"{ks}.late")
    done = json.loads((manifest_dir / f"{stem}.json").read_text())
    assert (done["redo"], done["rows"]) == (True, 5000)
    assert done["list_elements_present"] == 6000


# --- last write wins, re-export, counters, --timestamp --------------------------------------


def test_last_write_wins_after_restore(session: Any, hosts: str, tgt: str, exported: Path) -> None:
    result = restore(
        "--hosts", hosts, "--input", str(exported), "--table", f"{tgt}.lww", "--create-table"
    )
    assert result.code == 0, result.describe()
    # Row (1, 1): v was written at 3.0 s, n at 2.0 s; a write stamped 2.5 s lies between.
    session.execute(
        f"UPDATE {tgt}.lww USING TIMESTAMP 2500000 SET v = 'mid', n = 99 WHERE k = 1 AND c = 1"
    )
    got = session.execute(
        f"SELECT v, WRITETIME(v), n, WRITETIME(n) FROM {tgt}.lww WHERE k = 1 AND c = 1"
    ).one()
    assert tuple(got) == ("v2", 3_000_000, 99, 2_500_000)


def test_export_of_the_target_equals_export_of_the_source(
    session: Any, hosts: str, tgt: str, source: dict[str, Any], exported: Path, tmp_path: Path
) -> None:
    result = restore(
        "--hosts", hosts, "--input", str(exported), "--table", f"{tgt}.reexport", "--create-table"
    )
    assert result.code == 0, result.describe()
    options = ("--format", "jsonl", "--collection-writetime", "list", "--ttl-columns", "*")
    export(hosts, source["table"], tmp_path / "a", *options, "--splits", "6")
    export(hosts, f"{tgt}.reexport", tmp_path / "b", *options, "--splits", "6")

    def rows(out: Path) -> list[str]:
        found = []
        for part in sorted((out / "data").glob("part-*")):
            for line in part.read_text().splitlines():
                record = json.loads(line)
                found.append(
                    json.dumps({k: v for k, v in record.items() if not k.endswith("_ttl")})
                )
        return sorted(found)

    first, second = rows(tmp_path / "a"), rows(tmp_path / "b")
    assert len(first) == 206
    assert second == first


def test_counters_are_added_with_the_option(
    session: Any, hosts: str, ks: str, tgt: str, tmp_path: Path
) -> None:
    session.execute(
        f"CREATE TABLE {ks}.visits (k int, c int, n counter, m counter, PRIMARY KEY (k, c))"
    )
    for k in range(20):
        session.execute(
            f"UPDATE {ks}.visits SET n = n + {k + 1}, m = m - {k} WHERE k = {k} AND c = 0"
        )
    out = tmp_path / "visits"
    export(hosts, f"{ks}.visits", out, "--format", "jsonl", "--splits", "3")
    result = restore(
        "--hosts",
        hosts,
        "--input",
        str(out),
        "--table",
        f"{tgt}.visits",
        "--create-table",
        "--counters",
        "add",
    )
    assert result.code == 0, result.describe()
    query = "SELECT k, c, n, m FROM {}.visits"
    assert sorted(map(tuple, session.execute(query.format(tgt)))) == sorted(
        map(tuple, session.execute(query.format(ks)))
    )
    assert sorted(tuple(r) for r in session.execute(query.format(tgt)))[3] == (3, 0, 4, -3)


def test_fixed_timestamp_and_restore_log_elsewhere(
    session: Any, hosts: str, ks: str, tgt: str, tmp_path: Path
) -> None:
    """--restore-log DIR keeps the manifest out of the export; --restore-manifest (its older
    name, on the command line or in a config file) reaches the same manifest."""
    session.execute(f"CREATE TABLE {ks}.plain (k int PRIMARY KEY, v text, s set<int>)")
    for k in range(30):
        session.execute(f"INSERT INTO {ks}.plain (k, v, s) VALUES ({k}, 'v{k}', {{{k}, {k + 1}}})")
    out = tmp_path / "plain"
    export(hosts, f"{ks}.plain", out, "--format", "jsonl", "--writetime-columns", "none")
    elsewhere = tmp_path / "restore-log"
    argv = ["--hosts", hosts, "--input", str(out), "--table", f"{tgt}.plain"]
    warned = (
        "warning: the export has no writetime for s, v: those cells are restored at the "
        "--timestamp writetime, 1609459200000000 microseconds since the epoch\n"
        "warning: the export has no TTL for s, v: those cells are restored without a TTL\n"
    )
    result = restore(
        *argv,
        "--create-table",
        "--timestamp",
        "2021-01-01T00:00:00Z",
        "--restore-log",
        str(elsewhere),
    )
    assert result.code == 0, result.describe()
    assert result.stderr == warned
    stamps = {
        (r[0], r[1], tuple(r[2]))
        for r in session.execute(f"SELECT v, WRITETIME(v), WRITETIME(s) FROM {tgt}.plain")
    }
    assert stamps == {
        (f"v{k}", 1_609_459_200_000_000, (1_609_459_200_000_000,) * 2) for k in range(30)
    }
    assert not (out / "_manifest" / "restore").exists()
    assert sorted(p.name for p in elsewhere.iterdir()) == [f"{tgt}.plain"]
    assert (elsewhere / f"{tgt}.plain" / "restore.json").exists()
    done = (
        f"the restore of {out} into {tgt}.plain is already complete (30 rows in "
        f"{len(markers(out))} units); nothing to do\n"
    )
    alias = restore(
        *argv, "--timestamp", "2021-01-01T00:00:00Z", "--restore-manifest", str(elsewhere)
    )
    assert (alias.code, alias.stdout, alias.stderr) == (0, done, warned), alias.describe()
    for key in ("restore_manifest", "restore-log"):
        config = tmp_path / f"{key}.yaml"
        config.write_text(f"{key}: {elsewhere}\ntimestamp: '2021-01-01T00:00:00Z'\n")
        again = restore(*argv, "--config", str(config))
        assert (again.code, again.stdout, again.stderr) == (0, done, warned), again.describe()
    assert not (out / "_manifest" / "restore").exists()


def test_timestamp_unused_when_every_column_has_a_writetime(
    session: Any, hosts: str, ks: str, tgt: str, tmp_path: Path
) -> None:
    """--timestamp given for an export that has every writetime: one warning that it is not
    used, and each cell keeps its own writetime."""
    session.execute(f"CREATE TABLE {ks}.stamped (k int PRIMARY KEY, v text)")
    for k in range(5):
        session.execute(
            f"INSERT INTO {ks}.stamped (k, v) VALUES ({k}, 'v{k}') USING TIMESTAMP {k + 7}"
        )
    out = tmp_path / "stamped"
    export(hosts, f"{ks}.stamped", out, "--format", "csv", "--ttl-columns", "*")
    argv = ["--hosts", hosts, "--input", str(out), "--table", f"{tgt}.stamped"]
    result = restore(*argv, "--create-table", "--timestamp", "now")
    assert result.code == 0, result.describe()
    assert result.stderr == (
        "warning: --timestamp is not used: the export has a writetime for every column, and "
        "each cell is restored at its own\n"
    )
    rows = session.execute(f"SELECT k, v, WRITETIME(v) FROM {tgt}.stamped")
    assert sorted(map(tuple, rows)) == [(k, f"v{k}", k + 7) for k in range(5)]


def test_restore_log_is_one_option_in_help() -> None:
    from pipeline.restore_options import restore_parser

    flat = " ".join(restore_parser().format_help().split())
    spellings = (
        "--restore-log DIR, --restore_log DIR, --restore-manifest DIR, --restore_manifest DIR"
    )
    assert flat.count(spellings) == 1
    assert flat.count("--restore-manifest") == 2  # the spellings above and the help text
    assert flat.count("[--restore-log DIR]") == 1  # the usage names the option once


def test_allow_partial_restores_the_committed_units_only(
    session: Any, hosts: str, tgt: str, exported: Path, tmp_path: Path
) -> None:
    copy = tmp_path / "partial"
    shutil.copytree(exported, copy)
    (copy / "_SUCCESS").unlink()
    shutil.rmtree(copy / "_manifest" / "restore")
    committed = markers(copy)
    dropped = max(committed, key=lambda m: m["rows"])
    (copy / "_manifest" / "ranges" / f"{dropped['unit_id']:05d}.json").unlink()
    (copy / "data" / dropped["file"]).unlink()
    result = restore(
        "--hosts",
        hosts,
        "--input",
        str(copy),
        "--table",
        f"{tgt}.partial",
        "--create-table",
        "--allow-partial",
    )
    assert result.code == 0, result.describe()
    rows = sum(m["rows"] for m in committed) - dropped["rows"]
    assert result.stdout.splitlines()[0].startswith(f"restore complete: {rows:,} rows into ")
    assert session.execute(f"SELECT COUNT(*) FROM {tgt}.partial").one()[0] == rows
