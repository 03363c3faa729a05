"""The export on a real Dask cluster (``--runner dask``): a ``dask scheduler`` and two
``dask worker`` processes on 127.0.0.1 (the ``dask_cluster`` fixture), a real Cassandra node.

A table of 20,000 rows with list, set and map columns (the shape of ``test_runners``) is
exported to CSV and to Avro on Dask and on the FnApiRunner: the rows, read back from every
part file, must be the same multiset. Every work unit is committed whole, as one piece (Dask
runs each restriction once; nothing may be split off and dropped). A worker SIGKILLed
mid-run: the export still ends exact (the scheduler re-runs its tasks on the other worker),
or fails and ``--resume`` ends it exact. The launcher SIGKILLed mid-run: ``--resume`` on Dask
ends exact. ``--checkpoint-rows`` is refused on Dask (exit 2, nothing written).
"""

from __future__ import annotations

import collections
import contextlib
import json
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from dev import dask_local
from tests import helpers
from tests.test_runners import ROWS_PER_PARTITION, load_wide_table

pytestmark = pytest.mark.dask

PARTITIONS = 2_000
N_ROWS = PARTITIONS * ROWS_PER_PARTITION
SPLITS = 16
EXPORT_TIMEOUT = 300
# A read rate limit (shared by the 2 workers) makes a run last about 10 s, so kills land mid-run.
SLOW_RATE = "2000"


@pytest.fixture(scope="module")
def table(session: Any, ks: str) -> str:
    """``ks.wide``: 20,000 rows in 2,000 partitions, with list, set and map columns."""
    load_wide_table(session, f"{ks}.wide", partitions=PARTITIONS)
    return f"{ks}.wide"


def _argv(hosts: str, table: str, out: Path, fmt: str) -> list[str]:
    return helpers.export_argv(hosts, table, out, fmt, SPLITS)


def _run(argv: list[str]) -> helpers.CliResult:
    return helpers.run_cli_leaving_nothing(argv, timeout=EXPORT_TIMEOUT)


@pytest.fixture(scope="module")
def fnapi(tmp_path_factory: pytest.TempPathFactory, hosts: str, table: str) -> Any:
    """The FnApiRunner export of ``table`` per format, run once on demand: the reference."""
    done: dict[str, Path] = {}
    root = tmp_path_factory.mktemp("fnapi")

    def get(fmt: str) -> Path:
        if fmt not in done:
            out = root / fmt
            argv = ["--config", "run_configs/local.yaml"] + _argv(hosts, table, out, fmt)
            result = _run(argv)
            assert result.code == 0, result.describe()
            done[fmt] = out
        return done[fmt]

    return get


def _rows(out: Path) -> collections.Counter[str]:
    """The export's rows as a multiset (each row as sorted JSON), after exact checks."""
    assert (out / "_SUCCESS").exists()
    rows = helpers.read_rows(out)
    assert len(rows) == N_ROWS
    keys = collections.Counter((int(r["pk"]), int(r["ck"])) for r in rows)
    assert len(keys) == N_ROWS and max(keys.values()) == 1
    checkpoint = json.loads((out / "_manifest" / "checkpoint.json").read_text())
    assert checkpoint["total_rows"] == N_ROWS
    return collections.Counter(json.dumps(r, sort_keys=True, default=str) for r in rows)


def _units(out: Path) -> list[list[int]]:
    return json.loads((out / "_manifest" / "export.json").read_text())["units"]


def _markers(out: Path) -> list[Path]:
    return sorted((out / "_manifest" / "ranges").glob("[0-9]*.json"))


def _assert_units_whole(out: Path) -> None:
    """One marker per work unit, covering exactly the unit: nothing was split off."""
    units = {(start, end) for _, start, end in _units(out)}
    covered = [json.loads(p.read_text()) for p in _markers(out)]
    assert sorted((m["start"], m["end"]) for m in covered) == sorted(units)


def test_checkpoint_rows_refused_on_dask(tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = helpers.run_cli(
        ["--hosts", "127.0.0.1:1", "--table", "ks.t", "--output", str(out)]
        + ["--runner", "dask", "--dask_client_address=tcp://127.0.0.1:1"]
        + ["--checkpoint-rows", "1000"]
    )
    assert result.code == 2
    assert result.stderr == (
        "cassandra-export: error: --checkpoint-rows cannot be used with the Dask runner: "
        "Beam's DaskRunner drops the rest of a work unit that a checkpoint hands back, so "
        "those rows would be lost; leave it out (Dask spreads the work units over partitions "
        "instead: --splits sets how many)\n"
    )
    assert not out.exists()


@pytest.mark.parametrize("fmt", ["csv", "avro"])
def test_dask_export_equals_fnapi(
    dask_cluster: dask_local.DaskCluster,
    fnapi: Any,
    hosts: str,
    table: str,
    tmp_path: Path,
    fmt: str,
) -> None:
    out = tmp_path / "dask"
    result = _run(dask_cluster.pipeline_args() + _argv(hosts, table, out, fmt))
    assert result.code == 0, result.describe()
    # The summary comes from the manifest (Dask has no Beam metrics).
    assert result.stdout.startswith(f"export complete: {N_ROWS:,} rows of {table} in ")
    units = len(_units(out))
    assert units > SPLITS  # several units per worker, one per Dask partition
    assert f"({units} files, {fmt})" in result.stdout
    _assert_units_whole(out)
    assert _rows(out) == _rows(fnapi(fmt))


def _wait_markers(proc: Any, out: Path, count: int) -> None:
    deadline = time.monotonic() + 120
    while len(_markers(out)) < count:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"fewer than {count} units committed in 120 s"
        time.sleep(0.1)


@contextlib.contextmanager
def _slow_export(
    dask_cluster: dask_local.DaskCluster, hosts: str, table: str, out: Path
) -> Iterator[Any]:
    """A rate-limited CSV export of ``table`` to ``out`` on Dask, as a child process,
    yielded once 2 units are committed (so a kill lands mid-run); killed on leaving the
    block if it still runs."""
    argv = _argv(hosts, table, out, "csv") + ["--max-rows-per-second", SLOW_RATE]
    proc = subprocess.Popen(
        helpers.cli_command() + dask_cluster.pipeline_args() + argv,
        cwd=helpers.REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    with helpers.reaped(proc):
        _wait_markers(proc, out, 2)
        yield proc


def _resume(dask_cluster: dask_local.DaskCluster, hosts: str, out: Path) -> helpers.CliResult:
    """``--resume`` of ``out`` on Dask, which must succeed."""
    result = _run(dask_cluster.pipeline_args() + ["--resume", str(out), "--hosts", hosts])
    assert result.code == 0, result.describe()
    return result


def _assert_exact(out: Path, fnapi: Any, fmt: str) -> None:
    """Every unit committed whole, and the rows of the FnApiRunner's export of ``fmt``."""
    _assert_units_whole(out)
    assert _rows(out) == _rows(fnapi(fmt))


def test_worker_killed_mid_run_export_still_exact(
    dask_cluster: dask_local.DaskCluster, fnapi: Any, hosts: str, table: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    try:
        with _slow_export(dask_cluster, hosts, table, out) as proc:
            killed = dask_cluster.kill_worker(1)
            done_at_kill = len(_markers(out))
            assert (
                not psutil.pid_exists(killed)
                or dask_local._dask_process(killed, dask_cluster.run_dir) is None
            )
            stdout, stderr = proc.communicate(timeout=EXPORT_TIMEOUT)
    finally:
        dask_cluster.start_worker(1)  # the module's later tests get two workers again
    total = len(_units(out))
    print(f"\nworker pid {killed} killed with {done_at_kill} of {total} units committed")
    assert 0 < done_at_kill < total
    print(f"the export run exited with {proc.returncode}")
    if proc.returncode != 0:  # failed cleanly: a resumable output, then --resume ends it
        assert proc.returncode == 1, stderr
        assert "rerun with --resume" in stderr
        _resume(dask_cluster, hosts, out)
    _assert_exact(out, fnapi, "csv")


def test_launcher_killed_then_resume_on_dask_exact(
    dask_cluster: dask_local.DaskCluster, fnapi: Any, hosts: str, table: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    with _slow_export(dask_cluster, hosts, table, out) as proc:
        proc.send_signal(signal.SIGKILL)
        done_at_kill = len(_markers(out))
        proc.communicate(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    total = len(_units(out))
    print(f"\nlauncher pid {proc.pid} killed with {done_at_kill} of {total} units committed")
    assert 0 < done_at_kill < total
    # The job the dead launcher submitted is the scheduler's: the tasks it had handed out
    # run on (they commit units; Finalize is the launcher's on Dask, so nothing finalizes).
    # Wait until the workers are idle, so what follows is deterministic.
    dask_cluster.wait_idle()
    after = len(_markers(out))
    print(f"orphaned tasks committed {after - done_at_kill} more units after the kill")
    assert not (out / "_SUCCESS").exists()
    result = _resume(dask_cluster, hosts, out)
    print(result.stdout.splitlines()[0])
    assert f"resumed: {after} parts" in result.stdout
    _assert_exact(out, fnapi, "csv")


def test_resume_with_every_unit_committed_finalizes_on_dask(
    dask_cluster: dask_local.DaskCluster, fnapi: Any, hosts: str, table: str, tmp_path: Path
) -> None:
    """A launcher that died after the last unit committed but before Finalize: the resume
    has no work unit left to read (an empty job on Dask) and finalizes."""
    out = tmp_path / "out"
    assert _run(dask_cluster.pipeline_args() + _argv(hosts, table, out, "avro")).code == 0
    (out / "_SUCCESS").unlink()
    (out / "_manifest" / "stats.json").unlink()
    result = _resume(dask_cluster, hosts, out)
    units = len(_units(out))
    assert f"resumed: {units} parts ({N_ROWS:,} rows) were already committed" in result.stdout
    assert (out / "_manifest" / "stats.json").exists()
    assert _rows(out) == _rows(fnapi("avro"))
