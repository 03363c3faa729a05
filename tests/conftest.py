"""Shared pytest fixtures: real Cassandra 5.0 nodes (local JVMs, an external cluster, or Docker).

Backends, in order:

* ``CASSANDRA_CONTACT_POINTS=host:port,...``: an existing cluster (multinode tests then need
  ``CASSANDRA3_CONTACT_POINTS`` too, else they are skipped; node-kill tests are skipped).
* ``CASSANDRA_BACKEND=testcontainers``: a ``cassandra:5`` container (needs a Docker engine).
* default: local JVMs from ``dev.cassandra_local`` under ``.local/test-nodes`` of this checkout
  (``CASSANDRA_TEST_ROOT`` overrides); data is kept between runs, so later sessions start faster.
  They listen on this checkout's own loopback network, ``127.<n>.<slot>.x`` with ``n`` derived
  from the checkout's path (``checkout_prefix``): the demo's node or a user's node on
  127.0.0.1:9042, and the suite of another checkout, never block them.

A node that cannot start (its address held by some other process, say) stops the session with
one line instead of one error per test. Every process the session starts carries
``CASSANDRA_EXPORT_TEST_RUN`` in its environment; at the end the session fails if one of them
is still running (and kills it).

``cassandra_version(version)`` starts a single node of any pinned release (4.0, 4.1, 5.0:
``PINNED_VERSIONS``) for the version matrix (tests marked ``versions``); the terminal summary
prints each release's pass counts, node start time and RSS, and the matrix's wall time.

``--quick`` skips tests marked ``slow``, ``multinode``, ``flink`` or ``versions``.

Every test that needs a Cassandra node gets the ``cassandra`` marker here, from the fixtures
it uses (``NODE_FIXTURES``, directly or through other fixtures), so ``pytest -m "not
cassandra"`` runs the pure tests alone, in seconds. A test that starts a node by itself,
with no such fixture, carries ``@pytest.mark.cassandra`` in its module.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest

from dev import dask_local
from dev.cassandra_local import (
    PINNED_VERSIONS,
    TEST_NODES_DIR,
    CassandraConfigMismatch,
    CassandraStartError,
    ClusterHandle,
    ContainerCluster,
    LocalCluster,
    checkout_prefix,
    external_contact_points,
    kill_strays,
    make_keyspace,
)
from dev.strays import RUN_MARKER, kill_marked
from tests import helpers

__all__ = ["ClusterHandle", "make_keyspace"]

TEST_ROOT = Path(os.environ.get("CASSANDRA_TEST_ROOT", str(TEST_NODES_DIR)))
# Address slots (third octet) of this checkout's test clusters; see checkout_prefix.
SINGLE_SLOT, MULTI_SLOT = 0, 1
# The version matrix's nodes: one slot per release line, so that two of them (4.1 and 5.0 for
# an upgrade test) can run at once.
VERSION_SLOTS = {"4.0": 10, "4.1": 11, "5.0": 12}
VERSION_HEAP = "512M"
SINGLE_DIR = TEST_ROOT / "single"
MULTI_DIR = TEST_ROOT / "multi"
QUICK_SKIPS = ("slow", "multinode", "flink", "versions")
# Fixtures that start or reach a Cassandra node; a test using one (even through another
# fixture) is marked ``cassandra``. auth_node, tls_node, mtls_node: test_security's own nodes;
# cassandra_version: the version matrix's nodes.
NODE_FIXTURES = frozenset(
    {"cassandra", "cassandra3", "db", "session", "ks", "hosts", "keyspace"}
    | {"auth_node", "tls_node", "mtls_node", "cassandra_version"}
)
# Free memory wanted before starting the 3-node cluster (3 JVMs with a 1 GB heap each).
MULTI_MIN_AVAILABLE = 5 * 2**30
# How long a session waits for another pytest session that is using the same local cluster.
LOCK_TIMEOUT = float(os.environ.get("CASSANDRA_TEST_LOCK_TIMEOUT", "900"))


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--quick",
        action="store_true",
        default=False,
        help="skip tests marked " + ", ".join(QUICK_SKIPS),
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if NODE_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.cassandra)
    if not config.getoption("--quick"):
        return
    for item in items:
        marks = [m for m in QUICK_SKIPS if item.get_closest_marker(m)]
        if marks:
            item.add_marker(pytest.mark.skip(reason=f"--quick skips {', '.join(marks)} tests"))


def pytest_sessionstart(session: pytest.Session) -> None:
    # JVMs left by an earlier session that was SIGKILLed before it could stop them.
    for base in (SINGLE_DIR, MULTI_DIR, *(TEST_ROOT / f"v{v}" for v in PINNED_VERSIONS.values())):
        kill_strays(base)
    dask_local.kill_strays()
    # Marks every process this session starts (nodes, job servers, Prism, workers, CLIs).
    os.environ.setdefault(RUN_MARKER, f"pytest-{os.getpid()}-{time.time_ns()}")


_MATRIX_SECONDS: list[float] = []  # setup + call + teardown of every `versions` test


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    if "versions" in report.keywords:
        _MATRIX_SECONDS.append(report.duration)


def _counted(terminalreporter: Any) -> Iterator[tuple[str, Any]]:
    """(outcome, report) once per test: the call's outcome, or the setup's error or skip."""
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if outcome in ("passed", "failed") and report.when != "call":
                continue
            yield outcome, report


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How many tests of each marker passed, failed or were skipped: what CI really ran; for
    the version matrix also per release, with node start times, RSS and wall time."""
    counts: dict[str, dict[str, int]] = {}
    per_version: dict[str, dict[str, int]] = {}
    for outcome, report in _counted(terminalreporter):
        keywords = getattr(report, "keywords", {})
        for marker in ("multinode", "slow", "flink", "prism", "versions", "dask"):
            if marker in keywords:
                row = counts.setdefault(marker, {})
                row[outcome] = row.get(outcome, 0) + 1
        found = re.search(r"cassandra-(\d+\.\d+\.\d+)", report.nodeid)
        if "versions" in keywords and found:
            row = per_version.setdefault(found.group(1), {})
            row[outcome] = row.get(outcome, 0) + 1
    if counts:
        terminalreporter.write_sep("-", "tests per marker")
        for marker, row in sorted(counts.items()):
            text = ", ".join(f"{n} {outcome}" for outcome, n in row.items())
            terminalreporter.write_line(f"{marker}: {text}")
    if per_version:
        terminalreporter.write_sep("-", "version matrix")
        for version in sorted(per_version, key=lambda v: tuple(map(int, v.split(".")))):
            text = ", ".join(f"{n} {o}" for o, n in per_version[version].items())
            node = VersionNodes.measured.get(version)
            started = (
                f"; node start {node['start_s']:.1f} s, RSS {node['rss_start_mb']} MB "
                f"after start, {node['rss_end_mb']} MB at stop"
                if node
                else ""
            )
            terminalreporter.write_line(f"Cassandra {version}: {text}{started}")
        terminalreporter.write_line(f"matrix wall time: {sum(_MATRIX_SECONDS):.1f} s")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Fail the run if a process it started outlived it (fixtures have stopped theirs by now)."""
    left = kill_marked(os.environ[RUN_MARKER], exclude={os.getpid()})
    if left:
        print(
            "\nprocesses started by this test session were still running and were killed: "
            + "; ".join(left),
            file=sys.__stderr__,
            flush=True,
        )
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


@contextlib.contextmanager
def _exclusive(path: Path, timeout: float = LOCK_TIMEOUT) -> Iterator[None]:
    """Hold an exclusive flock on ``path``: one pytest session per local test cluster.

    Two sessions (for example two engineers in the same checkout) would otherwise fight over
    127.0.0.1:9042 and stop each other's nodes; the second one waits here instead.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a+") as f:
        deadline = time.monotonic() + timeout
        warned = False
        while True:
            try:
                fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                f.seek(0)
                holder = f.read().strip() or "?"
                if time.monotonic() > deadline:
                    raise RuntimeError(
                        f"{path} is still held by pytest session pid {holder} after "
                        f"{timeout:.0f}s (CASSANDRA_TEST_LOCK_TIMEOUT)"
                    ) from None
                if not warned:
                    print(
                        f"\nwaiting for {path.stem} test cluster, used by pytest pid {holder}",
                        file=sys.__stderr__,
                        flush=True,
                    )
                    warned = True
                time.sleep(2)
        f.seek(0)
        f.truncate()
        f.write(f"{os.getpid()}\n")
        f.flush()
        try:
            yield
        finally:
            f.truncate(0)
            fcntl.flock(f, fcntl.LOCK_UN)


def _start_local(cluster: LocalCluster, timeout: float = 180) -> LocalCluster:
    try:
        try:
            return cluster.start(timeout)
        except CassandraConfigMismatch:
            cluster.wipe()  # the test dir holds another configuration's data: start from scratch
            return cluster.start(timeout)
    except CassandraStartError as exc:
        # One line for the whole session, not the same error once per test that needs the node.
        first = str(exc).strip().splitlines()[0]
        pytest.exit(f"cannot start the test cluster in {cluster.base_dir}: {first}", returncode=3)


@contextlib.contextmanager
def _local_cluster(
    lock: Path, cluster: LocalCluster, timeout: float = 180
) -> Iterator[ClusterHandle]:
    """Start ``cluster`` under ``lock`` (``timeout`` s for all its nodes); always stop it (and
    close sessions) at the end."""
    with _exclusive(lock), contextlib.ExitStack() as cleanup:
        cleanup.callback(cluster.stop)  # runs last, also when start() or a test fails
        _start_local(cluster, timeout)
        handle = cluster.handle()
        cleanup.callback(handle.close)
        yield handle


@pytest.fixture(scope="session")
def cassandra() -> Iterator[ClusterHandle]:
    """A single Cassandra node for the whole session (num_tokens 16, this checkout's 127.n.0.1)."""
    external = external_contact_points()
    if external:
        handle = ClusterHandle.for_contact_points(external)
        try:
            yield handle
        finally:
            handle.close()
    elif os.environ.get("CASSANDRA_BACKEND") == "testcontainers":
        container = ContainerCluster()
        try:
            container.start()
            handle = ClusterHandle.for_contact_points(container.contact_points, container)
            try:
                yield handle
            finally:
                handle.close()
        finally:
            container.stop()
    else:
        cluster = LocalCluster(
            SINGLE_DIR,
            nodes=1,
            address_prefix=checkout_prefix(SINGLE_SLOT),
            num_tokens=16,
            heap="1G",
        )
        with _local_cluster(TEST_ROOT / "single.lock", cluster) as handle:
            yield handle


@pytest.fixture(scope="module")
def cassandra3() -> Iterator[ClusterHandle]:
    """A 3-node cluster (this checkout's 127.n.1.1-3, num_tokens 16, 1 GB heaps), marked multinode."""
    external3 = external_contact_points("CASSANDRA3_CONTACT_POINTS")
    if external3:
        handle = ClusterHandle.for_contact_points(external3)
        try:
            yield handle
        finally:
            handle.close()
        return
    if external_contact_points() or os.environ.get("CASSANDRA_BACKEND") == "testcontainers":
        helpers.cannot_run(
            "multinode tests need CASSANDRA3_CONTACT_POINTS with an external cluster"
        )
    available = psutil.virtual_memory().available
    if available < MULTI_MIN_AVAILABLE:
        helpers.cannot_run(f"only {available / 2**30:.1f} GB of memory available for 3 nodes")
    cluster = LocalCluster(
        MULTI_DIR, nodes=3, address_prefix=checkout_prefix(MULTI_SLOT), num_tokens=16, heap="1G"
    )
    # 480 s for the three nodes: one start took over 180 s at a load average of 20.
    with _local_cluster(TEST_ROOT / "multi.lock", cluster, timeout=480) as handle:
        yield handle


class VersionNodes:
    """The version matrix's single nodes, one per pinned release, started on demand.

    ``nodes("4.1.10")`` returns a ``ClusterHandle`` for a running 4.1.10 node (this
    checkout's 127.n.11.1, 512 MB heap, data kept in ``TEST_ROOT/v4.1.10``). By default any
    other release's node is stopped first, so the matrix holds one JVM at a time;
    ``alone=False`` keeps them, for a test that needs two releases at once (export from 4.1,
    restore into 5.0). ``stop(version)`` stops one; ``close()`` all. Start time and RSS of
    every node are kept in ``measured`` for the terminal summary.
    """

    measured: dict[str, dict[str, Any]] = {}

    def __init__(self) -> None:
        self._running: dict[str, tuple[ClusterHandle, contextlib.ExitStack]] = {}

    def __call__(self, version: str, *, alone: bool = True) -> ClusterHandle:
        line = ".".join(version.split(".")[:2])
        if PINNED_VERSIONS.get(line) != version:
            raise ValueError(f"not a pinned release: {version} ({PINNED_VERSIONS})")
        if alone:
            for other in [v for v in self._running if v != version]:
                self.stop(other)
        if version in self._running:
            return self._running[version][0]
        cluster = LocalCluster(
            TEST_ROOT / f"v{version}",
            nodes=1,
            address_prefix=checkout_prefix(VERSION_SLOTS[line]),
            num_tokens=16,
            heap=VERSION_HEAP,
            version=version,
        )
        stack = contextlib.ExitStack()
        handle = stack.enter_context(_local_cluster(TEST_ROOT / f"v{version}.lock", cluster))
        self.measured[version] = {
            "start_s": cluster.startup_seconds.get(0, 0.0),
            "rss_start_mb": cluster.rss_bytes(0) // 2**20,
        }
        self._running[version] = (handle, stack)
        return handle

    def stop(self, version: str) -> None:
        handle, stack = self._running.pop(version)
        cluster = handle.cluster
        if isinstance(cluster, LocalCluster) and cluster.is_running(0):
            self.measured[version]["rss_end_mb"] = cluster.rss_bytes(0) // 2**20
        stack.close()

    def close(self) -> None:
        for version in list(self._running):
            self.stop(version)


@pytest.fixture(scope="session")
def cassandra_version() -> Iterator[VersionNodes]:
    """Factory of single nodes of the pinned releases (see ``VersionNodes``), local only."""
    if external_contact_points() or os.environ.get("CASSANDRA_BACKEND") == "testcontainers":
        helpers.cannot_run("the version matrix starts its own local nodes of each release")
    nodes = VersionNodes()
    try:
        yield nodes
    finally:
        nodes.close()


@pytest.fixture(scope="module")
def dask_cluster() -> Iterator[dask_local.DaskCluster]:
    """A real Dask cluster for the module: a scheduler and 2 single-threaded workers on
    127.0.0.1 that import this checkout; ``.pipeline_args()`` gives the export's (or any
    pipeline's) Beam options for it. Stopped, by pid, after the module."""
    cluster = dask_local.DaskCluster(dask_local.session_run_dir(), workers=2)
    try:
        cluster.start()
    except dask_local.DaskStartError as exc:
        helpers.cannot_run(f"cannot start a Dask cluster: {str(exc)[:400]}")
    try:
        yield cluster
    finally:
        cluster.stop()
        assert cluster.pids() == {}


def keyspace_name(module_name: str) -> str:
    """A valid keyspace name derived from a test module's name."""
    name = re.sub(r"[^a-z0-9_]", "_", module_name.rsplit(".", 1)[-1].lower())
    if not name or not name[0].isalpha():
        name = "ks_" + name
    return name[:48]


@pytest.fixture(scope="module")
def keyspace(request: pytest.FixtureRequest, cassandra: ClusterHandle) -> Iterator[str]:
    """A fresh keyspace (SimpleStrategy RF 1) named after the test module, dropped at the end."""
    yield from helpers.module_keyspace(cassandra.session(), keyspace_name(request.module.__name__))


# --- the fixtures most modules share: the node, a session, a fresh keyspace, --hosts ----------


@pytest.fixture(scope="module")
def db(request: pytest.FixtureRequest) -> Any:
    """The session's node (``cassandra``), or CASSANDRA_CONTACT_POINTS."""
    return helpers.cassandra_or_external(request)


@pytest.fixture(scope="module")
def session(db: Any) -> Any:
    return db.session()


@pytest.fixture(scope="module")
def ks(request: pytest.FixtureRequest, session: Any) -> str:
    """The module's fresh keyspace (``keyspace``), dropped after the module."""
    return helpers.fresh_keyspace(request, session, keyspace_name(request.module.__name__))


@pytest.fixture(scope="module")
def hosts(db: Any) -> str:
    """``--hosts`` for the CLI: the node's contact points."""
    return helpers.hosts_arg(db)
