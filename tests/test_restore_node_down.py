"""cassandra-restore when its node goes down mid-run, on a Cassandra 5 node of this module's own.

The node is stopped (SIGTERM: Cassandra drains and syncs its commitlog, so every write it
acknowledged survives; a SIGKILL with the default periodic commitlog sync may lose the last
seconds of acknowledged writes, see docs/restore.md) while a restore of 40,000 rows with
lists is writing. The restore must exit 1 with its one error line and the hint to resume, no
traceback, and keep the units it had finished; after the node is started again, ``--resume``
leaves the target exactly equal to the source.

The node is this module's own (this checkout's 127.n.6.1, 512 MB heap), so that no other
test loses its node; it starts once per session that runs this module (marked ``slow``).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from dev.cassandra_local import (
    ClusterHandle,
    LocalCluster,
    checkout_prefix,
    external_contact_points,
    make_keyspace,
)
from tests import helpers
from tests.conftest import TEST_ROOT, _local_cluster
from tests.helpers import export, markers
from tests.test_restore import (
    KILL_ROWS_PER_PARTITION,
    has_rows,
    list_rows,
    load_list_rows,
    restore,
    restore_process,
    unit_files,
)

pytestmark = pytest.mark.slow

DOWN_SLOT = 6  # beside conftest's 0 (single), 1 (multi), test_security's 2 and 4
PARTITIONS = 4_000  # 40,000 rows
UNITS = 12


@pytest.fixture(scope="module")
def db() -> Iterator[ClusterHandle]:
    """This module's node (overrides conftest's ``db``): one the test may stop and restart."""
    if external_contact_points() or os.environ.get("CASSANDRA_BACKEND") == "testcontainers":
        helpers.cannot_run("the node-down test stops and restarts a local node of its own")
    cluster = LocalCluster(
        TEST_ROOT / "restore-down",
        nodes=1,
        address_prefix=checkout_prefix(DOWN_SLOT),
        num_tokens=16,
        heap="512M",
        unsafe_system=False,  # the node is stopped mid-test: keep its schema flushed
    )
    # A start can take minutes on a loaded 2-core machine (one took over 180 s here).
    with _local_cluster(TEST_ROOT / "restore-down.lock", cluster, timeout=600) as handle:
        _connect(handle)
        yield handle


def _connect(handle: ClusterHandle, attempts: int = 5) -> None:
    """Open (and cache) the handle's session; on a machine so loaded that a fresh node
    answers the driver's first connection late, try again a few times."""
    from cassandra.cluster import NoHostAvailable

    for attempt in range(attempts):
        try:
            handle.session()
            return
        except NoHostAvailable:
            if attempt == attempts - 1:
                raise
            time.sleep(5)


@pytest.fixture(scope="module")
def ks(session: Any) -> Iterator[str]:
    """A fresh keyspace on this module's node (overrides conftest's, which needs the
    session's own node)."""
    name = make_keyspace(session, "restore_node_down", 1)
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):
            session.execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=120)


def test_node_down_mid_restore_exits_1_then_resume_is_exact(
    db: ClusterHandle, session: Any, hosts: str, ks: str, tmp_path: Path
) -> None:
    cluster = db.cluster
    assert isinstance(cluster, LocalCluster)
    session.execute(
        f"CREATE TABLE {ks}.src (k int, c int, v text, l list<text>, PRIMARY KEY (k, c))"
    )
    load_list_rows(session, f"{ks}.src", PARTITIONS)
    out = tmp_path / "export"
    export(
        hosts,
        f"{ks}.src",
        out,
        *("--format", "jsonl", "--collection-writetime", "list", "--splits", str(UNITS)),
    )
    units = len(markers(out))
    target = f"{ks}.copy"
    manifest_dir = out / "_manifest" / "restore" / target
    argv = ["--hosts", hosts, "--input", str(out), "--table", target]
    # About a second per unit (3,300 rows): the node goes down inside one; 2 retries keep the
    # failure quick.
    proc = restore_process(
        *argv,
        *("--create-table", "--max-rows-per-second", "3000", "--retries", "2"),
        *("--progress-interval", "0"),
    )
    interrupted: set[str] = set()
    try:
        deadline = time.time() + 180
        while time.time() < deadline and proc.poll() is None:
            done = unit_files(manifest_dir)
            begun = unit_files(manifest_dir / "attempts") - done
            interrupted = {name for name in begun if has_rows(session, target, out, name)}
            if done and interrupted:
                break
            time.sleep(0.01)
        assert proc.poll() is None, proc.communicate()
        node_pid = cluster.node_pid(0)
        assert node_pid is not None
        cluster.stop_node(0)
        # Proof: the node's process is gone while the restore still runs with units left.
        assert not psutil.pid_exists(node_pid)
        assert not cluster.is_running(0)
        done_at_stop = unit_files(manifest_dir)
        assert 0 < len(done_at_stop) < units
        stdout, stderr = proc.communicate(timeout=300)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
        if not cluster.is_running(0):
            cluster.start_node(0, timeout=600)
    assert proc.returncode == 1, (stdout, stderr)
    assert stdout == ""
    # The restore's own lines: the TTL warning first, the failure and the hint to resume
    # last. Between them only the driver's WARNING log lines, one line each (the node
    # answering "overloaded" while it drains, then marked down, reconnect attempts).
    lines = stderr.splitlines()
    assert "Traceback" not in stderr, stderr
    assert lines[0] == (
        "warning: the export has no TTL for l, v: those cells are restored without a TTL"
    )
    # How the write in flight fails depends on where the node was in its shutdown: retried
    # until no host is left, or a connection reset that a list append may not be resent on.
    assert re.fullmatch(
        r"cassandra-restore: restore failed: write failed after \d+ retries: "
        r"(NoHostAvailable: \('Unable to complete the operation against any hosts', \{\}\)"
        r"|ConnectionShutdown: .+)",
        lines[-2],
    ), stderr
    assert lines[-1] == (
        "cassandra-restore: finished units are kept; rerun with --resume to continue"
    ), stderr
    driver_line = re.compile(
        r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} WARNING cassandra\.(cluster|pool): "
    )
    assert [line for line in lines[1:-2] if not driver_line.match(line)] == [], stderr
    assert (
        f"WARNING cassandra.cluster: Host {cluster.address(0)}:9042 has been marked down" in stderr
    )
    kept = unit_files(manifest_dir)
    assert done_at_stop <= kept and len(kept) < units
    # The node is back: --resume restores the rest, and the target equals the source.
    # A new driver session: the module's one may wait a minute before it tries the node again.
    after = db.session(fresh=True)
    resumed = restore(*argv, "--resume")
    assert resumed.code == 0, resumed.describe()
    source = list_rows(after, f"{ks}.src")
    assert len(source) == PARTITIONS * KILL_ROWS_PER_PARTITION
    assert list_rows(after, target) == source
    finished = {p.name: json.loads(p.read_text()) for p in manifest_dir.glob("0*.json")}
    assert len(finished) == units
    assert {name for name, m in finished.items() if not m["redo"]} >= kept
    # A unit cut short by the node going down was redone, and found list elements of its
    # rows already on the target, which it did not append again.
    for name in interrupted - kept:
        assert finished[name]["redo"] and finished[name]["list_elements_present"] > 0, name
