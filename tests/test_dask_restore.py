"""cassandra-restore on a real Dask cluster (``--runner dask``): a ``dask scheduler`` and two
``dask worker`` processes on 127.0.0.1 (the ``dask_cluster`` fixture), a real Cassandra node.

The round-trip source of ``test_restore`` (every kind of column, statics, a static-only
partition, a key-only row, TTLs, lists with per-element writetimes) is exported once with
``--collection-writetime list``, then restored on Dask into one keyspace and on the
FnApiRunner into another: every cell's value and WRITETIME (per element for collections)
must be equal in both targets and in the source, and every TTL must keep the source's
expiry within the precision ``test_restore`` states. A Dask worker SIGKILLed while it
writes a unit of a table with list columns: the restore completes exactly, or fails and
``--resume`` on Dask completes it exactly (the killed unit is redone without writing any
list element twice).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from dev import dask_local, strays
from tests.helpers import REPO, CliResult, export, markers, reaped
from tests.test_restore import (  # noqa: F401 - source: the round trip's fixture
    ELEMENT_WRITETIMES,
    compare_ttls,
    export_round_trip,
    read_span,
    restore,
    snapshot,
    source,
)

pytestmark = pytest.mark.dask

RESTORE_TIMEOUT = 300
GENERATED_ROWS = 200  # the source's generated rows, beside 6 written by hand
BIG_ROWS = 20_000
BIG_SPLITS = 24


def _start_restore(cluster: dask_local.DaskCluster, *argv: str) -> tuple[Any, str]:
    """``cassandra-restore`` on ``cluster`` as a child process a user would run, run-marked
    (its marker is returned with it)."""
    marker = f"restore-{os.getpid()}-{time.time_ns()}"
    env = dict(os.environ, **{strays.RUN_MARKER: marker})
    env.pop("CASSANDRA_EXPORT_DEBUG", None)
    proc = subprocess.Popen(
        [sys.executable, "-m", "pipeline.restore_cli", *cluster.pipeline_args(), *argv],
        cwd=str(REPO),
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    return proc, marker


def _finish(proc: Any, marker: str, argv: tuple[str, ...]) -> CliResult:
    """Wait for a restore started by ``_start_restore``; nothing it started (a Dask client)
    may outlive it."""
    with reaped(proc):
        stdout, stderr = proc.communicate(timeout=RESTORE_TIMEOUT)
    assert [p.cmdline() for p in strays.marked_processes(marker)] == []
    return CliResult(proc.returncode, stdout, stderr, list(argv))


def restore_on_dask(cluster: dask_local.DaskCluster, *argv: str) -> CliResult:
    proc, marker = _start_restore(cluster, *argv)
    return _finish(proc, marker, argv)


def _argv(hosts: str, exported: Path, target: str) -> list[str]:
    """The restore of the export in ``exported`` into ``target`` (``keyspace.table``)."""
    return ["--hosts", hosts, "--input", str(exported), "--table", target]


@pytest.fixture(scope="module")
def targets(request: pytest.FixtureRequest, session: Any) -> dict[str, str]:
    """Two fresh keyspaces: the Dask restore's and the FnApiRunner restore's."""
    names = {}
    for runner in ("dask", "fnapi"):
        name = names[runner] = f"{runner}_tgt_{uuid.uuid4().hex[:8]}"
        session.execute(
            f"CREATE KEYSPACE {name} WITH replication = "
            "{'class': 'SimpleStrategy', 'replication_factor': 1}",
            timeout=60,
        )
        request.addfinalizer(
            lambda n=name: session.execute(f"DROP KEYSPACE IF EXISTS {n}", timeout=120)
        )
    return names


@pytest.fixture(scope="module")
def exported(
    tmp_path_factory: pytest.TempPathFactory,
    hosts: str,
    source: dict[str, Any],  # noqa: F811 - the imported fixture
) -> Path:
    """The source exported once (JSON lines, element writetimes, every TTL, several units)."""
    out = tmp_path_factory.mktemp("dask_restore") / "export"
    export_round_trip(hosts, source["table"], out)
    return out


def test_restore_on_dask_equals_restore_on_fnapi(
    dask_cluster: dask_local.DaskCluster,
    session: Any,
    hosts: str,
    targets: dict[str, str],
    source: dict[str, Any],  # noqa: F811 - the imported fixture
    exported: Path,
) -> None:
    units = len(markers(exported))
    assert units > 2  # several units: several Dask tasks
    dask_argv = _argv(hosts, exported, f"{targets['dask']}.copy")
    on_dask = restore_on_dask(
        dask_cluster, *dask_argv, "--create-table", "--progress-interval", "0"
    )
    assert on_dask.code == 0, on_dask.describe()
    on_fnapi = restore(*_argv(hosts, exported, f"{targets['fnapi']}.copy"), "--create-table")
    assert on_fnapi.code == 0, on_fnapi.describe()
    # The summary comes from the restore manifest (Dask has no Beam metrics).
    for result, target in ((on_dask, targets["dask"]), (on_fnapi, targets["fnapi"])):
        lines = result.stdout.splitlines()
        assert lines[0].startswith(f"restore complete: 206 rows into {target}.copy in ")
        assert (
            lines[1]
            == f"  units: {units} restored this run, 0 already done, {units}/{units} in all"
        )
    # The same cells, statements and batches (retries may differ: not compared).
    assert on_dask.stdout.splitlines()[2] == on_fnapi.stdout.splitlines()[2]
    assert on_dask.stdout.splitlines()[2].startswith("  cells: ")
    before = time.time()
    source_values, source_ttls = snapshot(session, source["table"])
    dask_values, dask_ttls = snapshot(session, f"{targets['dask']}.copy")
    fnapi_values, fnapi_ttls = snapshot(session, f"{targets['fnapi']}.copy")
    d = math.floor(time.time()) - math.floor(before)
    assert len(source_values) == GENERATED_ROWS + 6
    assert dask_values == fnapi_values
    assert dask_values == source_values
    span = read_span(exported)
    assert compare_ttls(source_ttls, dask_ttls, span, d) == []
    assert compare_ttls(source_ttls, fnapi_ttls, span, d) == []
    # Lists: every element once, with its own writetime (k=4: appended at 10, 20, 10).
    row = session.execute(
        f"SELECT l, WRITETIME(l) FROM {targets['dask']}.copy WHERE k = 4 AND c = 1"
    ).one()
    assert (list(row[0]), list(row[1])) == (["a", "b", "c"], [10, 20, 10])


@pytest.fixture(scope="module")
def big_export(
    tmp_path_factory: pytest.TempPathFactory, session: Any, hosts: str, ks: str
) -> tuple[str, Path]:
    """``ks.big``: 20,000 rows whose list got two appends at different writetimes, exported
    with element writetimes in about 30 units (``--splits 24``)."""
    from cassandra.concurrent import execute_concurrent_with_args

    table = f"{ks}.big"
    session.execute(f"CREATE TABLE {table} (k int PRIMARY KEY, v text, l list<text>)")
    first = session.prepare(f"UPDATE {table} USING TIMESTAMP ? SET v = ?, l = l + ? WHERE k = ?")
    second = session.prepare(f"UPDATE {table} USING TIMESTAMP ? SET l = l + ? WHERE k = ?")
    execute_concurrent_with_args(
        session,
        first,
        [(1000 + k, f"v{k}", [f"a{k}", f"b{k}"], k) for k in range(BIG_ROWS)],
        concurrency=64,
    )
    execute_concurrent_with_args(
        session, second, [(5000 + k, [f"c{k}"], k) for k in range(BIG_ROWS)], concurrency=64
    )
    out = tmp_path_factory.mktemp("dask_restore_big") / "big"
    export(hosts, table, out, *ELEMENT_WRITETIMES, "--splits", str(BIG_SPLITS))
    return table, out


def _stems(directory: Path) -> set[str]:
    return {p.name for p in directory.glob("0*.json")} if directory.exists() else set()


def test_worker_killed_mid_restore_then_exact(
    dask_cluster: dask_local.DaskCluster,
    session: Any,
    hosts: str,
    targets: dict[str, str],
    big_export: tuple[str, Path],
) -> None:
    table, out = big_export
    units = len(markers(out))
    target = f"{targets['dask']}.bigcopy"
    manifest_dir = out / "_manifest" / "restore" / target
    argv = _argv(hosts, out, target)
    # 2,000 rows/s shared by the 2 workers: a unit of about 830 rows takes 0.8 s.
    slow = ["--max-rows-per-second", "2000", "--progress-interval", "0"]
    proc, marker = _start_restore(dask_cluster, *argv, *slow, "--create-table")
    try:
        with reaped(proc):
            deadline = time.monotonic() + 120
            while True:
                done = _stems(manifest_dir)
                writing = _stems(manifest_dir / "attempts") - done
                # Both single-threaded workers are inside a unit: worker 1 is writing one.
                if len(done) >= 2 and len(writing) == 2:
                    break
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, f"{len(done)} units done in 120 s"
                time.sleep(0.01)
            killed = dask_cluster.kill_worker(1)
            done_at_kill = len(_stems(manifest_dir))
            first = _finish(proc, marker, tuple(argv))
    finally:
        dask_cluster.start_worker(1)  # the module's later tests get two workers again
    print(f"\nworker pid {killed} killed with {done_at_kill} of {units} units restored")
    assert 0 < done_at_kill < units
    print(f"the restore exited with {first.code}")
    if first.code != 0:  # failed cleanly: finished units are kept, --resume completes it
        assert first.code == 1, first.describe()
        assert "rerun with --resume" in first.stderr
        dask_cluster.wait_idle()  # tasks of the failed run may still execute (see below)
        resumed = restore_on_dask(dask_cluster, *argv, *slow, "--resume")
        assert resumed.code == 0, resumed.describe()
    else:
        assert first.stdout.startswith(f"restore complete: {BIG_ROWS:,} rows into {target} in ")
    assert len(_stems(manifest_dir)) == units

    def rows(name: str) -> dict[int, tuple[str, list[str], list[int]]]:
        query = f"SELECT k, v, l, WRITETIME(l) FROM {name}"
        return {r[0]: (r[1], list(r[2]), list(r[3])) for r in session.execute(query)}

    source_rows = rows(table)
    assert len(source_rows) == BIG_ROWS
    assert rows(target) == source_rows  # no list element twice, none missing
    # The unit the killed worker was writing was redone (its lists read first).
    done = [json.loads(p.read_text()) for p in manifest_dir.glob("0*.json")]
    redone = [m["stem"] for m in done if m["redo"]]
    print(f"units redone: {redone}")
    assert len(redone) >= 1


def _hold(event_name: str) -> int:
    """A Dask task that runs until the test sets ``event_name`` (at most 120 s): a stand-in
    for a task a killed launcher left running."""
    from distributed import Event

    Event(event_name).wait(120)
    return 0


def _refusal(units: int, target: str) -> str:
    return (
        f"cassandra-restore: error: {units} unit(s) of this restore into {target} were started "
        "before and are to be redone, but the Dask workers still execute 1 task(s), perhaps "
        "an earlier run's (the tasks of a killed launcher run on): redoing a unit while such "
        "a task still writes it could append list elements twice. Wait until the workers "
        "are idle (or restart them), then run the same command again\n"
    )


def _manifest_files(directory: Path) -> dict[str, bytes]:
    """Every file of a restore manifest, by its path under ``directory``, with its bytes."""
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in directory.rglob("*") if p.is_file()
    }


def test_redo_refused_while_dask_workers_still_run_tasks(
    dask_cluster: dask_local.DaskCluster,
    session: Any,
    hosts: str,
    targets: dict[str, str],
    source: dict[str, Any],  # noqa: F811 - the imported fixture
    exported: Path,
) -> None:
    """A unit started but unfinished (as a killed launcher leaves it) is not redone while
    the workers still execute a task: that task could be the one still writing it. Nor is
    every unit with ``--overwrite``, and that refusal deletes none of the earlier markers."""
    from distributed import Client, Event

    target = f"{targets['dask']}.guarded"
    argv = [*_argv(hosts, exported, target), "--progress-interval", "0"]
    first = restore_on_dask(dask_cluster, *argv, "--create-table")
    assert first.code == 0, first.describe()
    manifest_dir = exported / "_manifest" / "restore" / target
    stems = sorted(_stems(manifest_dir))
    (manifest_dir / stems[0]).unlink()  # its attempt marker stays: started, not finished
    before = _manifest_files(manifest_dir)
    event_name = f"hold-{uuid.uuid4().hex}"
    with Client(dask_cluster.address, set_as_default=False) as client:
        held = client.submit(_hold, event_name, pure=False)
        deadline = time.monotonic() + 60
        while sum(dask_cluster.processing().values()) < 1:
            assert time.monotonic() < deadline, "the holding task did not start in 60 s"
            time.sleep(0.2)
        refused = restore_on_dask(dask_cluster, *argv, "--resume")
        overwrite_refused = restore_on_dask(dask_cluster, *argv, "--overwrite")
        Event(event_name, client=client).set()
        assert held.result(timeout=60) == 0
    assert refused.code == 2, refused.describe()
    assert (refused.stdout, refused.stderr) == ("", _refusal(1, target))
    assert overwrite_refused.code == 2, overwrite_refused.describe()
    assert (overwrite_refused.stdout, overwrite_refused.stderr) == (
        "",
        _refusal(len(stems), target),
    )
    assert _manifest_files(manifest_dir) == before  # nothing written, nothing deleted
    assert sorted(_stems(manifest_dir)) == stems[1:]
    dask_cluster.wait_idle()
    resumed = restore_on_dask(dask_cluster, *argv, "--resume")
    assert resumed.code == 0, resumed.describe()
    assert resumed.stdout.splitlines()[1] == (
        f"  units: 1 restored this run, {len(stems) - 1} already done, "
        f"{len(stems)}/{len(stems)} in all"
    )
    assert snapshot(session, target)[0] == snapshot(session, source["table"])[0]
