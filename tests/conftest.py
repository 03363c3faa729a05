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

``--quick`` skips tests marked ``slow``, ``multinode`` or ``flink``.
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
SINGLE_DIR = TEST_ROOT / "single"
MULTI_DIR = TEST_ROOT / "multi"
QUICK_SKIPS = ("slow", "multinode", "flink")
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
    if not config.getoption("--quick"):
        return
    for item in items:
        marks = [m for m in QUICK_SKIPS if item.get_closest_marker(m)]
        if marks:
            item.add_marker(pytest.mark.skip(reason=f"--quick skips {', '.join(marks)} tests"))


def pytest_sessionstart(session: pytest.Session) -> None:
    # JVMs left by an earlier session that was SIGKILLed before it could stop them.
    for base in (SINGLE_DIR, MULTI_DIR):
        kill_strays(base)
    dask_local.kill_strays()
    # Marks every process this session starts (nodes, job servers, Prism, workers, CLIs).
    os.environ.setdefault(RUN_MARKER, f"pytest-{os.getpid()}-{time.time_ns()}")


def pytest_terminal_summary(terminalreporter: Any) -> None:
    """How many tests of each marker passed, failed or were skipped: what CI really ran."""
    counts: dict[str, dict[str, int]] = {}
    for outcome in ("passed", "failed", "error", "skipped"):
        for report in terminalreporter.stats.get(outcome, []):
            if outcome != "skipped" and report.when != "call" and outcome != "error":
                continue
            keywords = getattr(report, "keywords", {})
            for marker in ("multinode", "slow", "flink", "prism", "dask"):
                if marker in keywords:
                    row = counts.setdefault(marker, {})
                    row[outcome] = row.get(outcome, 0) + 1
    if counts:
        terminalreporter.write_sep("-", "tests per marker")
        for marker, row in sorted(counts.items()):
            text = ", ".join(f"{n} {outcome}" for outcome, n in row.items())
            terminalreporter.write_line(f"{marker}: {text}")


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


def _start_local(cluster: LocalCluster) -> LocalCluster:
    try:
        try:
            return cluster.start()
        except CassandraConfigMismatch:
            cluster.wipe()  # the test dir holds another configuration's data: start from scratch
            return cluster.start()
    except CassandraStartError as exc:
        # One line for the whole session, not the same error once per test that needs the node.
        first = str(exc).strip().splitlines()[0]
        pytest.exit(f"cannot start the test cluster in {cluster.base_dir}: {first}", returncode=3)


@contextlib.contextmanager
def _local_cluster(lock: Path, cluster: LocalCluster) -> Iterator[ClusterHandle]:
    """Start ``cluster`` under ``lock``; always stop it (and close sessions) at the end."""
    with _exclusive(lock), contextlib.ExitStack() as cleanup:
        cleanup.callback(cluster.stop)  # runs last, also when start() or a test fails
        _start_local(cluster)
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
    with _local_cluster(TEST_ROOT / "multi.lock", cluster) as handle:
        yield handle


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
    name = keyspace_name(request.module.__name__)
    session = cassandra.session()
    make_keyspace(session, name, 1)
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):
            session.execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=120)


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
