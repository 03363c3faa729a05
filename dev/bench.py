"""Benchmark the exporter against its peers on one table: a command, not a test.

Loads ``bench.<variant>_<rows>`` once (reused while it holds that many rows), then
runs each tool as a subprocess, one after another on that table, and measures:
wall seconds, rows/s, CPU seconds of the whole process tree (rusage of children,
grandchildren included: this process is made a child subreaper so orphans are
reaped here), and the peak RSS of the tree (psutil, summed over the processes,
polled every 0.1 s). Every tool's output rows are counted (CSV lines minus
headers, Avro records from block headers, Parquet rows from footers) and checked against ``--rows``.

Tools::

    ours, ours-wt            cassandra-export CSV, --writetime-columns none / '*'
    ours-avro, ours-avro-wt  the same as Avro (deflate)
    ours-jsonl, ours-jsonl-wt  JSON lines
    ours-parquet, ours-parquet-wt  Parquet (zstd)
    base, base-wt, base-avro, base-avro-wt, base-parquet   the exporter from --baseline-src DIR
                             (a copy of transforms/ and pipeline/ to compare against)
    raw, raw-wt              dev/raw_scan.py with --workers processes (the ceiling)
    raw1, raw1-wt            the same with 1 process
    dsbulk, dsbulk-ts        DSBulk unload, plain and with -timestamp
    cqlsh                    cqlsh COPY TO (NUMPROCESSES = --workers)
    restore                  cassandra-restore of our export made with --writetime-columns '*'
                             --ttl-columns '*' (--restore-format, CSV by default), in-process
                             (its default) unless --restore-workers N names worker processes
    restore-base             the same restore (same source) run from --baseline-src DIR
    dsbulk-load              DSBulk load -timestamp true --schema.preserveTtl true of what
                             DSBulk unloaded with the same flags
    cqlsh-copy-from          cqlsh COPY FROM of the CSV cqlsh COPY TO wrote

Restore tools export their source once before the rounds (unrecorded), then restore it into a
table dropped and recreated before every run (``bench.<table>_<tool>``); their rows are
counted in that table (count(*) per token range) and a sample of the restored cells'
writetimes is compared with the source's. Every run also records the CPU seconds the local
Cassandra node spent meanwhile (``node_cpu_s``), when its process can be found.

Usage::

    python -m dev.bench --hosts 127.0.0.9:9042 [--rows 2000000] [--variant narrow|wide|collections]
        [--tools ours,ours-wt,ours-avro,ours-avro-wt,raw,raw-wt,dsbulk,dsbulk-ts,cqlsh]
        [--workers 2] [--repeat 1] [--fetch-size 5000] [--ours-fetch-size N] [--jmx-port 7199]
    python -m dev.bench --report bench/results/FILE.json ...   # result files as Markdown

Without ``--hosts`` it uses ``CASSANDRA_CONTACT_POINTS`` or starts a local node with
``dev.cassandra_local`` (left running). Results: a table on stdout and
``bench/results/<variant>-<rows>-<timestamp>.json``. With ``--repeat N`` the tools run
N rounds, interleaved (every other round in reverse order), and the median is reported.

Peers are set up on first use and cached under ``~/.cache/cassandra-export``:
DSBulk (Maven: ``dsbulk-runner`` and its workflow/connector jars, see ``DSBULK_POM``)
and cqlsh (PyPI, ``cqlsh==CQLSH_VERSION`` in its own virtualenv).
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import ctypes
import datetime
import glob
import hashlib
import importlib.metadata
import json
import os
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

REPO = Path(__file__).resolve().parent.parent
RESULTS_DIR = REPO / "bench" / "results"
CACHE = Path(
    os.environ.get("CASSANDRA_EXPORT_CACHE") or Path.home() / ".cache" / "cassandra-export"
)
JAVA = "/usr/lib/jvm/java-17-openjdk-amd64/bin/java"
KEYSPACE = "bench"
ROWS_PER_PARTITION = 100
BASE_TIMESTAMP = 1_700_000_000_000_000  # writetime of row (pk, ck): BASE + pk * 1000 + ck

CQLSH_VERSION = "6.2.2"
DSBULK_VERSION = "1.10.0"  # 1.11.0 is not served by the Maven registry here
# DSBulk 1.10.0 ships java-driver 4.14.1, which cannot parse vector<...> columns that
# other keyspaces may hold (schema metadata then fails to load): use driver 4.17.0
# (the one of DSBulk 1.11.0) and the Netty it needs.
DSBULK_DRIVER_VERSION = "4.17.0"
DSBULK_NETTY_VERSION = "4.1.94.Final"
DSBULK_MAIN = "com.datastax.oss.dsbulk.runner.DataStaxBulkLoader"

ALL_TOOLS = (
    "ours ours-wt ours-avro ours-avro-wt ours-jsonl ours-jsonl-wt ours-parquet ours-parquet-wt "
    "base base-wt base-avro base-avro-wt base-parquet raw raw-wt raw1 raw1-wt dsbulk dsbulk-ts cqlsh "
    "restore restore-base dsbulk-load cqlsh-copy-from"
).split()
# Tools that write: each restores a source prepared once (unrecorded) into a fresh table.
RESTORE_TOOLS = ("restore", "restore-base", "dsbulk-load", "cqlsh-copy-from")
# Restore tools that read our own export (one source, exported once for both).
OUR_RESTORES = ("restore", "restore-base")
DEFAULT_TOOLS = "ours,ours-wt,ours-avro,ours-avro-wt,raw,raw-wt,dsbulk,dsbulk-ts,cqlsh"

# --------------------------------------------------------------------------- table variants


@dataclass(frozen=True)
class Variant:
    name: str
    columns: tuple[tuple[str, str], ...]  # regular columns (name, CQL type)
    rows_per_batch: int  # rows of one partition per unlogged batch (stay under 50 KiB)

    def ddl(self, table: str) -> str:
        cols = ", ".join(f"{n} {t}" for n, t in self.columns)
        return (
            f"CREATE TABLE {KEYSPACE}.{table} (pk int, ck int, {cols}, PRIMARY KEY (pk, ck)) "
            "WITH compaction = {'class': 'SizeTieredCompactionStrategy'}"
        )


_WIDE_TYPES = ("text", "bigint", "double", "int", "timestamp", "boolean", "uuid", "float")
VARIANTS = {
    "narrow": Variant(
        "narrow",
        (("t", "text"), ("b", "bigint"), ("d", "double"), ("ts", "timestamp"), ("f", "boolean")),
        50,
    ),
    "wide": Variant(
        "wide", tuple((f"c{i:02d}", _WIDE_TYPES[i % len(_WIDE_TYPES)]) for i in range(20)), 10
    ),
    "collections": Variant(
        "collections",
        (("v", "text"), ("l", "list<text>"), ("s", "set<int>"), ("m", "map<text, bigint>")),
        20,
    ),
}


def _value(cql_type: str, pk: int, ck: int, i: int) -> Any:
    """Deterministic values; no text holds a newline, so CSV lines count rows."""
    import uuid

    n = pk * ROWS_PER_PARTITION + ck
    if (n + i) % 10 == 7:
        return None  # bound as UNSET: a null cell with no writetime
    if cql_type == "text":
        return f"text {pk}-{ck}-{i} " + "x" * ((n * 7 + i) % 24)
    if cql_type == "bigint":
        return n * 1_000_003 + i
    if cql_type == "int":
        return (n * 31 + i) % 2_000_000_000
    if cql_type in ("double", "float"):
        return n / 7.0 + i
    if cql_type == "timestamp":
        return datetime.datetime(2024, 1, 1) + datetime.timedelta(seconds=n, milliseconds=i)
    if cql_type == "boolean":
        return (n + i) % 2 == 0
    if cql_type == "uuid":
        return uuid.UUID(int=(n << 16) + i)
    if cql_type == "list<text>":
        return [f"e{n}-{j}" for j in range(3)]
    if cql_type == "set<int>":
        return {n + j for j in range(3)}
    if cql_type == "map<text, bigint>":
        return {f"k{j}": n * 10 + j for j in range(3)}
    raise ValueError(cql_type)


def _connect(hosts: list[str]) -> tuple[Any, Any]:
    from cassandra.cluster import EXEC_PROFILE_DEFAULT, Cluster, ExecutionProfile
    from cassandra.policies import RoundRobinPolicy

    host, _, port = hosts[0].partition(":")
    profile = ExecutionProfile(load_balancing_policy=RoundRobinPolicy(), request_timeout=60)
    cluster = Cluster(
        [h.split(":")[0] for h in hosts],
        port=int(port or 9042),
        protocol_version=5,
        execution_profiles={EXEC_PROFILE_DEFAULT: profile},
    )
    return cluster, cluster.connect()


def ensure_table(hosts: list[str], variant: Variant, rows: int, jmx_port: int | None) -> str:
    """``bench.<variant>_<rows>``, loaded unless a marker says it holds ``rows`` rows."""
    from cassandra import OperationTimedOut, WriteTimeout
    from cassandra.concurrent import execute_concurrent
    from cassandra.query import UNSET_VALUE

    table = f"{variant.name}_{rows}"
    cluster, session = _connect(hosts)
    try:
        session.execute(
            f"CREATE KEYSPACE IF NOT EXISTS {KEYSPACE} WITH replication = "
            "{'class': 'SimpleStrategy', 'replication_factor': 1}"
        )
        session.execute(
            f"CREATE TABLE IF NOT EXISTS {KEYSPACE}.loaded "
            "(name text PRIMARY KEY, rows bigint, ddl text, seconds double)"
        )
        ddl = variant.ddl(table)
        marker = session.execute(
            f"SELECT rows, ddl FROM {KEYSPACE}.loaded WHERE name = %s", (table,)
        ).one()
        if marker is not None and marker.rows == rows and marker.ddl == ddl:
            print(f"table {KEYSPACE}.{table} already holds {rows:,} rows (reused)", flush=True)
            return table
        print(f"loading {rows:,} rows into {KEYSPACE}.{table} ...", flush=True)
        session.execute(f"DROP TABLE IF EXISTS {KEYSPACE}.{table}")
        session.execute(ddl)
        names = ["pk", "ck"] + [n for n, _ in variant.columns]
        one = (
            f"INSERT INTO {KEYSPACE}.{table} ({', '.join(names)}) "
            f"VALUES ({', '.join('?' * len(names))}) USING TIMESTAMP ?;"
        )
        per_batch = variant.rows_per_batch
        batch = session.prepare(f"BEGIN UNLOGGED BATCH {' '.join([one] * per_batch)} APPLY BATCH")
        single = session.prepare(one)
        types = [t for _, t in variant.columns]

        def row_values(pk: int, ck: int) -> list[Any]:
            values: list[Any] = [pk, ck]
            for i, t in enumerate(types):
                v = _value(t, pk, ck, i)
                values.append(UNSET_VALUE if v is None else v)
            values.append(BASE_TIMESTAMP + pk * 1000 + ck)
            return values

        def statements() -> Iterator[tuple[Any, list[Any]]]:
            for pk in range(-(-rows // ROWS_PER_PARTITION)):
                in_partition = min(ROWS_PER_PARTITION, rows - pk * ROWS_PER_PARTITION)
                full = in_partition - in_partition % per_batch
                for first in range(0, full, per_batch):
                    values: list[Any] = []
                    for ck in range(first, first + per_batch):
                        values += row_values(pk, ck)
                    yield batch, values
                for ck in range(full, in_partition):
                    yield single, row_values(pk, ck)

        started = time.monotonic()
        sent: collections.deque[tuple[Any, list[Any]]] = collections.deque()

        def recorded() -> Iterator[tuple[Any, list[Any]]]:
            for item in statements():
                sent.append(item)
                yield item

        for ok, result in execute_concurrent(
            session, recorded(), concurrency=64, results_generator=True
        ):
            statement, values = sent.popleft()  # results come in the statements' order
            if not ok:
                # A loaded box times writes out now and then; every write is idempotent
                # (USING TIMESTAMP), so write it again, alone, with a long timeout.
                if not isinstance(result, (WriteTimeout, OperationTimedOut)):
                    raise result
                session.execute(statement, values, timeout=120)
        seconds = time.monotonic() - started
        session.execute(
            f"INSERT INTO {KEYSPACE}.loaded (name, rows, ddl, seconds) VALUES (%s, %s, %s, %s)",
            (table, rows, ddl, seconds),
        )
        print(f"loaded {rows:,} rows in {seconds:.0f} s ({rows / seconds:,.0f} rows/s)")
    finally:
        cluster.shutdown()
    flush(jmx_port)
    return table


def flush(jmx_port: int | None) -> None:
    """nodetool flush through Cassandra's own NodeTool class, when a JMX port is given."""
    if not jmx_port:
        return
    libs = sorted(glob.glob(str(CACHE / "cassandra-*" / "lib")))
    if not libs:
        print("flush skipped: no Cassandra classpath in the cache")
        return
    from dev.cassandra_local import _ADD_EXPORTS, _ADD_OPENS

    cmd = [JAVA] + [f"--add-exports={m}=ALL-UNNAMED" for m in _ADD_EXPORTS]
    cmd += [f"--add-opens={m}=ALL-UNNAMED" for m in _ADD_OPENS]
    with tempfile.TemporaryDirectory() as logdir:
        cmd += [f"-Dcassandra.logdir={logdir}", "-cp", libs[-1] + "/*"]
        cmd += ["org.apache.cassandra.tools.NodeTool", "-h", "127.0.0.1", "-p", str(jmx_port)]
        cmd += ["flush", KEYSPACE]
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    status = "flushed" if done.returncode == 0 else f"flush failed: {done.stderr.strip()[-300:]}"
    print(f"{status} (keyspace {KEYSPACE})")


# --------------------------------------------------------------------------- peers set-up

DSBULK_POM = """<project xmlns="http://maven.apache.org/POM/4.0.0">
  <modelVersion>4.0.0</modelVersion>
  <groupId>local.cassandra-export</groupId>
  <artifactId>dsbulk-runtime</artifactId>
  <version>1</version>
  <packaging>pom</packaging>
  <dependencyManagement><dependencies>
{managed}
  </dependencies></dependencyManagement>
  <dependencies>
{deps}
  </dependencies>
</project>
"""


def _dep(group: str, artifact: str, version: str) -> str:
    return (
        f"    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
        f"<version>{version}</version></dependency>"
    )


def ensure_dsbulk() -> tuple[Path | None, str]:
    """DSBulk's classpath directory (resolved once with Maven), or None and why not.

    The directory is named after a digest of the pom, so a changed artifact list resolves
    into a new directory and never deletes a classpath another run may be using."""
    artifacts = "runner workflow-unload workflow-load connectors-csv connectors-json"
    artifacts += " executor-reactor batcher-reactor"
    deps = [_dep("com.datastax.oss", f"dsbulk-{a}", DSBULK_VERSION) for a in artifacts.split()]
    deps.append(_dep("ch.qos.logback", "logback-classic", "1.2.12"))
    managed = [_dep("com.datastax.oss", "java-driver-core", DSBULK_DRIVER_VERSION)]
    for a in "common buffer codec handler resolver transport transport-native-unix-common".split():
        managed.append(_dep("io.netty", f"netty-{a}", DSBULK_NETTY_VERSION))
    pom = DSBULK_POM.format(managed="\n".join(managed), deps="\n".join(deps))
    digest = hashlib.sha256(pom.encode()).hexdigest()[:12]
    home = CACHE / "dsbulk" / f"{DSBULK_VERSION}-{digest}"
    lib = home / "lib"
    if (home / "ok").exists():
        return lib, ""
    home.mkdir(parents=True, exist_ok=True)
    (home / "pom.xml").write_text(pom)
    shutil.rmtree(lib, ignore_errors=True)
    print("resolving DSBulk with Maven (once) ...", flush=True)
    done = subprocess.run(
        ["mvn", "-q", "-B", "dependency:copy-dependencies", "-DincludeScope=runtime"]
        + [f"-DoutputDirectory={lib}"],
        cwd=home,
        capture_output=True,
        text=True,
        timeout=900,
    )
    if done.returncode != 0:
        lines = [x for x in done.stdout.splitlines() + done.stderr.splitlines() if "ERROR" in x]
        return None, "Maven could not resolve DSBulk: " + (lines[0] if lines else "unknown")[:300]
    (home / "ok").write_text(DSBULK_VERSION)
    return lib, ""


def ensure_cqlsh() -> tuple[Path | None, str]:
    """cqlsh==CQLSH_VERSION in its own virtualenv (never in the project's)."""
    venv = CACHE / "cqlsh-venv"
    exe = venv / "bin" / "cqlsh"
    if exe.exists():
        return exe, ""
    print(f"installing cqlsh=={CQLSH_VERSION} into {venv} (once) ...", flush=True)
    py = shutil.which("python3") or sys.executable
    steps = [[py, "-m", "venv", str(venv)]]
    steps.append([str(venv / "bin" / "pip"), "install", "-q", f"cqlsh=={CQLSH_VERSION}"])
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, timeout=900)
        if done.returncode != 0:
            return None, f"cannot install cqlsh: {done.stderr.strip()[-300:]}"
    return exe, ""


# --------------------------------------------------------------------------- measuring


def _become_subreaper() -> bool:
    """Orphaned grandchildren (Beam workers, spawned scanners) get reparented to us, so
    their rusage lands in RUSAGE_CHILDREN once reaped."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(36, 1, 0, 0, 0) == 0  # PR_SET_CHILD_SUBREAPER
    except Exception:
        return False


def _reap_all() -> None:
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


@dataclass
class Measurement:
    rc: int
    wall: float
    cpu: float
    cpu_user: float
    cpu_sys: float
    cpu_polled: float
    peak_rss: int
    peak_pss: int
    processes: int
    timed_out: bool = False
    log: str = ""
    # Each process's own peaks (RSS, PSS, in bytes) and what it runs: where the tree's go.
    per_process: list[dict[str, Any]] = field(default_factory=list)


def run_measured(
    cmd: list[str], *, env: dict[str, str], cwd: Path, timeout: float, log_path: Path
) -> Measurement:
    me = psutil.Process()
    _reap_all()
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    # Children from before the run (the node the bench started itself) are not this tool's:
    # never measured, never killed.
    others = {child.pid for child in me.children(recursive=True)}
    cpu_seen: dict[int, float] = {}
    pids: set[int] = set()
    own_peaks: dict[int, dict[str, Any]] = {}
    peak = peak_pss = 0
    timed_out = False
    with open(log_path, "wb") as log:
        started = time.monotonic()
        proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        main_done_at = None
        while True:
            total = total_pss = 0
            alive = 0
            for child in me.children(recursive=True):
                if child.pid in others:
                    continue
                try:
                    with child.oneshot():
                        memory = child.memory_full_info()  # pss: shared pages split
                        total += memory.rss
                        total_pss += getattr(memory, "pss", memory.rss)
                        times = child.cpu_times()
                        own = own_peaks.get(child.pid)
                        if own is None:
                            own = own_peaks[child.pid] = {
                                "role": process_role(child.cmdline()),
                                "rss": 0,
                                "pss": 0,
                            }
                        own["rss"] = max(own["rss"], memory.rss)
                        own["pss"] = max(own["pss"], getattr(memory, "pss", memory.rss))
                    cpu_seen[child.pid] = times.user + times.system
                    pids.add(child.pid)
                    alive += 1
                except psutil.Error:
                    continue
            peak = max(peak, total)
            peak_pss = max(peak_pss, total_pss)
            if main_done_at is None and proc.poll() is not None:
                main_done_at = time.monotonic()
            if main_done_at is not None:
                if alive == 0 or time.monotonic() - main_done_at > 15:
                    break
            elif time.monotonic() - started > timeout:
                timed_out = True
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
            time.sleep(0.1)
        wall = (main_done_at or time.monotonic()) - started
        for child in me.children(recursive=True):  # stragglers of this tool only
            if child.pid in others:
                continue
            with contextlib.suppress(psutil.Error):
                child.send_signal(signal.SIGKILL)
        time.sleep(0.2)
        _reap_all()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    user = after.ru_utime - before.ru_utime
    system = after.ru_stime - before.ru_stime
    polled = sum(cpu_seen.values())
    tail = log_path.read_text(errors="replace")[-2000:]
    return Measurement(
        rc=proc.returncode if proc.returncode is not None else -9,
        wall=wall,
        # rusage is exact when every descendant was reaped; the polled sum is a floor.
        cpu=max(user + system, polled),
        cpu_user=user,
        cpu_sys=system,
        cpu_polled=polled,
        peak_rss=peak,
        peak_pss=peak_pss,
        processes=len(pids),
        timed_out=timed_out,
        log=tail,
        per_process=[
            {
                "pid": pid,
                "role": own["role"],
                "peak_rss_mb": round(own["rss"] / 2**20, 1),
                "peak_pss_mb": round(own["pss"] / 2**20, 1),
            }
            for pid, own in sorted(own_peaks.items())
        ],
    )


def process_role(cmdline: list[str]) -> str:
    """A short name for a process of a tool's tree: the module a Python process runs
    (``pipeline.cli``, ``pipeline.worker``...), else its program's name."""
    if "-m" in cmdline[:-1]:
        return cmdline[cmdline.index("-m") + 1]
    return os.path.basename(cmdline[0]) if cmdline else "?"


# --------------------------------------------------------------------------- counting


def count_csv_rows(paths: list[str], header: bool) -> int:
    """Lines minus one header per non-empty file (bench data holds no newlines)."""
    total = 0
    for path in paths:
        lines = 0
        with open(path, "rb") as handle:
            while chunk := handle.read(1 << 22):
                lines += chunk.count(b"\n")
        if header and lines:
            lines -= 1
        total += lines
    return total


def count_parquet_rows(paths: list[str]) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(path).metadata.num_rows for path in paths)


def count_avro_rows(paths: list[str]) -> int:
    import fastavro

    total = 0
    for path in paths:
        with open(path, "rb") as handle:
            total += sum(block.num_records for block in fastavro.block_reader(handle))
    return total


# --------------------------------------------------------------------------- tools


@dataclass
class Context:
    hosts: list[str]
    table: str
    rows: int
    workers: int
    fetch_size: int  # the peers' and base*'s page size (raw* page as ours* do)
    work_dir: Path
    python: str
    baseline_src: Path | None
    ours_src: Path = REPO
    dsbulk_lib: Path | None = None
    dsbulk_why: str = ""
    cqlsh: Path | None = None
    cqlsh_why: str = ""
    extra_ours: list[str] = field(default_factory=list)
    ours_auto_layout: bool = False  # ours* name no runner or workers: the export picks
    ours_fetch_size: int | None = None  # None: ours* keep their own default (sized pages)
    variant: Variant | None = None
    restore_format: str = "csv"
    restore_workers: int = 0  # 0: the restore's default layout (in-process); else processes
    # restore tool -> the directory its source was exported to (see prepare_restore_sources)
    restore_sources: dict[str, Path] = field(default_factory=dict)


@dataclass
class Invocation:
    cmd: list[str]
    env: dict[str, str]
    cwd: Path
    out: Path
    count: Any  # () -> rows exported (restore tools: rows in the target table)
    check: Any = None  # () -> extra fields for the result (restore tools: writetime sample)


def _ours(
    ctx: Context, tool: str, out: Path, fmt: str | None = None, ttl: bool = False
) -> Invocation:
    base = tool.startswith("base")
    fmt = fmt or next((f for f in ("avro", "jsonl", "parquet") if f in tool), "csv")
    wt = tool.endswith("-wt")
    cmd = [ctx.python, "-m", "pipeline.cli", "--hosts", ",".join(ctx.hosts)]
    cmd += ["--table", f"{KEYSPACE}.{ctx.table}", "--output", str(out), "--overwrite"]
    cmd += ["--format", fmt, "--writetime-columns", "*" if wt else "none"]
    if ttl:
        cmd += ["--ttl-columns", "*"]
    if base:
        cmd += ["--fetch-size", str(ctx.fetch_size)]
    elif ctx.ours_fetch_size is not None:
        cmd += ["--fetch-size", str(ctx.ours_fetch_size)]
    cmd += ["--progress-interval", "0"]
    if base or not ctx.ours_auto_layout:
        cmd += ["--runner", "FnApiRunner"]
        if ctx.workers > 1:
            cmd += ["--direct_running_mode=multi_processing", f"--direct_num_workers={ctx.workers}"]
    cmd += ctx.extra_ours
    env = dict(os.environ)
    cwd = REPO
    if base:
        if ctx.baseline_src is None:
            raise SystemExit(f"{tool} needs --baseline-src DIR")
        env["PYTHONPATH"] = str(ctx.baseline_src)
        cwd = ctx.baseline_src
    else:
        env["PYTHONPATH"] = str(ctx.ours_src)
        cwd = ctx.ours_src

    def count() -> int:
        files = sorted(glob.glob(str(out / "data" / f"*.{fmt}")))
        if fmt == "avro":
            return count_avro_rows(files)
        if fmt == "parquet":
            return count_parquet_rows(files)
        return count_csv_rows(files, header=fmt == "csv")

    return Invocation(cmd, env, cwd, out, count)


def _raw(ctx: Context, tool: str, out: Path) -> Invocation:
    processes = 1 if tool.startswith("raw1") else ctx.workers
    cmd = [ctx.python, "-m", "dev.raw_scan", "--hosts", ",".join(ctx.hosts)]
    cmd += ["--table", f"{KEYSPACE}.{ctx.table}", "--processes", str(processes)]
    # ours' pages: sized from their bytes unless --ours-fetch-size fixes them
    cmd += ["--fetch-size", str(ctx.ours_fetch_size or 0)]
    cmd += ["--writetime-columns", "*" if tool.endswith("-wt") else "none"]
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ, PYTHONPATH=str(REPO))

    def count() -> int:
        log = (out.parent / (out.name + ".log")).read_text()
        lines = [x for x in log.splitlines() if x.startswith("{")]
        return int(json.loads(lines[-1])["rows"]) if lines else -1

    return Invocation(cmd, env, REPO, out, count)


def _dsbulk(ctx: Context, tool: str, out: Path) -> Invocation:
    host, _, port = ctx.hosts[0].partition(":")
    cmd = [JAVA, "-cp", f"{ctx.dsbulk_lib}/*", DSBULK_MAIN, "unload", "-h", host]
    cmd += ["-port", port or "9042", "-k", KEYSPACE, "-t", ctx.table, "-url", str(out)]
    cmd += ["-logDir", str(out) + "-logs", "--log.maxErrors", "0"]
    cmd += ["--datastax-java-driver.basic.request.page-size", str(ctx.fetch_size)]
    if tool.startswith("dsbulk-ts"):
        cmd += ["-timestamp", "true"]
    if tool.endswith("-ttl"):
        cmd += ["--schema.preserveTtl", "true"]
    out.mkdir(parents=True, exist_ok=True)

    def count() -> int:
        return count_csv_rows(sorted(glob.glob(str(out / "*.csv"))), header=True)

    return Invocation(cmd, dict(os.environ), ctx.work_dir, out, count)


def _cqlsh(ctx: Context, tool: str, out: Path) -> Invocation:
    host, _, port = ctx.hosts[0].partition(":")
    target = out / "export.csv"
    query = (
        f"COPY {KEYSPACE}.{ctx.table} TO '{target}' WITH HEADER = true AND "
        f"PAGESIZE = {ctx.fetch_size} AND NUMPROCESSES = {ctx.workers}"
    )
    cmd = [str(ctx.cqlsh), host, port or "9042", "--request-timeout", "120", "-e", query]
    out.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}

    def count() -> int:
        return count_csv_rows([str(target)] if target.exists() else [], header=True)

    return Invocation(cmd, env, ctx.work_dir, out, count)


# --------------------------------------------------------------------------- restore tools


def restore_target(ctx: Context, tool: str) -> str:
    """The table ``tool`` restores into: ``<bench table>_<tool>``."""
    return f"{ctx.table}_{tool.replace('-', '_')}"


def recreate_table(ctx: Context, table: str) -> None:
    """Drop ``bench.<table>`` and create it empty with the bench table's schema."""
    assert ctx.variant is not None
    cluster, session = _connect(ctx.hosts)
    try:
        session.execute(f"DROP TABLE IF EXISTS {KEYSPACE}.{table}", timeout=300)
        session.execute(ctx.variant.ddl(table), timeout=300)
    finally:
        cluster.shutdown()


def count_table(ctx: Context, table: str) -> int:
    """Rows in ``bench.<table>``: count(*) per token range (a node-side scan per range, so no
    single request scans the whole table)."""
    cluster, session = _connect(ctx.hosts)
    try:
        lo, step, total = -(2**63), 2**64 // 16, 0
        for i in range(16):
            hi = lo + step if i < 15 else 2**63 - 1
            query = (
                f"SELECT count(*) FROM {KEYSPACE}.{table} WHERE token(pk) > %s AND token(pk) <= %s"
            )
            total += session.execute(query, (lo, hi), timeout=600).one()[0]
            lo = hi
        # token(pk) > -2**63 leaves out the minimum token, which no int key hashes to.
        return total
    finally:
        cluster.shutdown()


WRITETIME_SAMPLE_PARTITIONS = 20


def writetime_sample(ctx: Context, table: str) -> dict[str, Any]:
    """Writetimes of a sample of restored cells against the source's (``BASE_TIMESTAMP + pk *
    1000 + ck`` on every set cell): what share of them the tool preserved."""
    assert ctx.variant is not None
    names = [n for n, _ in ctx.variant.columns]
    partitions = -(-ctx.rows // ROWS_PER_PARTITION)
    step = max(1, partitions // WRITETIME_SAMPLE_PARTITIONS)
    cluster, session = _connect(ctx.hosts)
    checked = preserved = 0
    try:
        select = ", ".join(f"writetime({n})" for n in names)
        query = f"SELECT pk, ck, {select} FROM {KEYSPACE}.{table} WHERE pk = %s"
        for pk in range(0, partitions, step):
            for row in session.execute(query, (pk,), timeout=120):
                for stamp in row[2:]:
                    if stamp is not None:
                        checked += 1
                        preserved += stamp == BASE_TIMESTAMP + row[0] * 1000 + row[1]
    finally:
        cluster.shutdown()
    return {"writetimes_checked": checked, "writetimes_preserved": preserved}


def _restore_check(ctx: Context, table: str) -> Any:
    return lambda: writetime_sample(ctx, table)


def prepare_restore_sources(ctx: Context, tools: list[str], timeout: float) -> dict[str, Any]:
    """Export the bench table once per restore tool, in that tool's own way (unrecorded):
    ``restore`` reads our export with writetimes and TTLs, ``dsbulk-load`` what DSBulk
    unloaded with ``-timestamp`` and ``preserveTtl``, ``cqlsh-copy-from`` a cqlsh COPY TO CSV.
    Returns, per tool, the export's wall seconds and rows."""
    info: dict[str, Any] = {}
    for tool in tools:
        if tool not in RESTORE_TOOLS:
            continue
        shared = [t for t in OUR_RESTORES if t in ctx.restore_sources]
        if tool in OUR_RESTORES and shared:
            ctx.restore_sources[tool] = ctx.restore_sources[shared[0]]
            continue
        src = ctx.work_dir / f"source-{tool}"
        shutil.rmtree(src, ignore_errors=True)
        shutil.rmtree(str(src) + "-logs", ignore_errors=True)
        if tool in OUR_RESTORES:
            inv = _ours(ctx, "ours-wt", src, fmt=ctx.restore_format, ttl=True)
        elif tool == "dsbulk-load":
            if not ctx.dsbulk_lib:
                continue
            inv = _dsbulk(ctx, "dsbulk-ts-ttl", src)
        else:
            if not ctx.cqlsh:
                continue
            inv = _cqlsh(ctx, "cqlsh", src)
        print(f"  exporting the source of {tool} (unrecorded) ...", flush=True)
        log_path = ctx.work_dir / f"source-{tool}.log"
        m = run_measured(inv.cmd, env=inv.env, cwd=inv.cwd, timeout=timeout, log_path=log_path)
        rows = inv.count() if m.rc == 0 else -1
        info[tool] = {"rc": m.rc, "wall_s": round(m.wall, 3), "rows": rows}
        if m.rc != 0 or rows != ctx.rows:
            print(f"WARNING: source of {tool}: rc {m.rc}, {rows:,} rows; log {log_path}")
            continue
        ctx.restore_sources[tool] = src
    return info


def _restore(ctx: Context, tool: str, out: Path) -> Invocation | str:
    src = ctx.restore_sources.get(tool)
    if src is None:
        return f"no source export for {tool} (see the warnings above)"
    target = restore_target(ctx, tool)
    recreate_table(ctx, target)
    host, _, port = ctx.hosts[0].partition(":")
    out.mkdir(parents=True, exist_ok=True)
    env = dict(os.environ)
    cwd = ctx.work_dir
    if tool in OUR_RESTORES:
        tree = ctx.baseline_src if tool == "restore-base" else ctx.ours_src
        assert tree is not None
        cmd = [ctx.python, "-m", "pipeline.restore_cli", "--hosts", ",".join(ctx.hosts)]
        cmd += ["--input", str(src), "--table", f"{KEYSPACE}.{target}"]
        cmd += ["--restore-log", str(out / "restore-log"), "--progress-interval", "0"]
        cmd += ["--runner", "FnApiRunner"]
        if ctx.restore_workers > 1:
            cmd += ["--direct_running_mode=multi_processing"]
            cmd += [f"--direct_num_workers={ctx.restore_workers}"]
        env["PYTHONPATH"] = str(tree)
        cwd = tree
    elif tool == "dsbulk-load":
        cmd = [JAVA, "-cp", f"{ctx.dsbulk_lib}/*", DSBULK_MAIN, "load", "-h", host]
        cmd += ["-port", port or "9042", "-k", KEYSPACE, "-t", target, "-url", str(src)]
        cmd += ["-logDir", str(out) + "-logs", "--log.maxErrors", "0"]
        cmd += ["-timestamp", "true", "--schema.preserveTtl", "true"]
    else:
        query = (
            f"COPY {KEYSPACE}.{target} FROM '{src / 'export.csv'}' WITH HEADER = true AND "
            f"NUMPROCESSES = {ctx.workers} AND INGESTRATE = 10000000"
        )
        cmd = [str(ctx.cqlsh), host, port or "9042", "--request-timeout", "120", "-e", query]
        env = {k: v for k, v in env.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    return Invocation(
        cmd, env, cwd, out, lambda: count_table(ctx, target), _restore_check(ctx, target)
    )


def invocation(ctx: Context, tool: str, out: Path) -> Invocation | str:
    """The command of ``tool``, or why it is unavailable."""
    if tool in RESTORE_TOOLS:
        if tool == "dsbulk-load" and not ctx.dsbulk_lib:
            return ctx.dsbulk_why
        if tool == "cqlsh-copy-from" and not ctx.cqlsh:
            return ctx.cqlsh_why
        return _restore(ctx, tool, out)
    if tool.startswith(("ours", "base")):
        return _ours(ctx, tool, out)
    if tool.startswith("raw"):
        return _raw(ctx, tool, out)
    if tool.startswith("dsbulk"):
        return _dsbulk(ctx, tool, out) if ctx.dsbulk_lib else ctx.dsbulk_why
    if tool == "cqlsh":
        return _cqlsh(ctx, tool, out) if ctx.cqlsh else ctx.cqlsh_why
    raise SystemExit(f"unknown tool {tool!r}; tools: {', '.join(ALL_TOOLS)}")


def node_process(hosts: list[str]) -> psutil.Process | None:
    """The Cassandra process listening on the first host, when it runs on this machine."""
    from dev.cassandra_local import _listener_pid

    host, _, port = hosts[0].partition(":")
    pid = _listener_pid(host, int(port or 9042))
    with contextlib.suppress(psutil.Error):
        return psutil.Process(pid) if pid else None
    return None


def _cpu_seconds(process: psutil.Process | None) -> float | None:
    """User + system CPU seconds of ``process`` so far (None when it cannot be read)."""
    if process is None:
        return None
    with contextlib.suppress(psutil.Error):
        times = process.cpu_times()
        return times.user + times.system
    return None


NODE_QUIET_CORES = 0.25  # node CPU (cores) under which a run may start
NODE_QUIET_LIMIT_S = 90.0  # the longest wait for it


def write_probe(work_dir: Path, mib: int = 512) -> float:
    """Kernel CPU nanoseconds per byte of writing a new file of ``mib`` MiB (1 MiB writes,
    no fsync), the file then deleted. Every tool that writes output pays this per byte:
    about 0.2 ns on an ordinary machine, over 2 on a VM whose free memory goes back to the
    host (each page-cache page is then a fresh host page), which inflates the cost of
    every byte written, the writetime columns' 2.4x bytes among them."""
    chunk = b"x" * (1 << 20)
    path = work_dir / "write-probe.tmp"
    before = os.times()
    with open(path, "wb") as handle:
        for _ in range(mib):
            handle.write(chunk)
    after = os.times()
    path.unlink()
    cpu = (after.system - before.system) + (after.user - before.user)
    return round(cpu * 1e9 / (mib << 20), 3)


def wait_for_quiet_node(node: psutil.Process | None) -> float:
    """Seconds spent waiting until the node's CPU over one second is under
    ``NODE_QUIET_CORES`` (at most ``NODE_QUIET_LIMIT_S``), so that no run is charged with
    the flushes and compactions of the run before it (a restore's table, dropped and
    recreated, leaves both behind)."""
    started = time.monotonic()
    last = _cpu_seconds(node)
    while last is not None and time.monotonic() - started < NODE_QUIET_LIMIT_S:
        time.sleep(1.0)
        now = _cpu_seconds(node)
        if now is None or now - last < NODE_QUIET_CORES:
            break
        last = now
    return round(time.monotonic() - started, 1)


def run_tool(ctx: Context, tool: str, round_no: int, timeout: float, keep: bool) -> dict[str, Any]:
    out = ctx.work_dir / f"{tool}-{round_no}"
    shutil.rmtree(out, ignore_errors=True)
    shutil.rmtree(str(out) + "-logs", ignore_errors=True)
    inv = invocation(ctx, tool, out)
    if isinstance(inv, str):
        return {"tool": tool, "status": "unavailable", "why": inv}
    label = "warm-up" if round_no < 0 else f"round {round_no + 1}"
    print(f"  running {tool} ({label}) ...", flush=True)
    log_path = ctx.work_dir / f"{tool}-{round_no}.log"
    node = node_process(ctx.hosts)
    settled = wait_for_quiet_node(node)
    node_before = _cpu_seconds(node)
    m = run_measured(inv.cmd, env=inv.env, cwd=inv.cwd, timeout=timeout, log_path=log_path)
    node_after = _cpu_seconds(node)
    result: dict[str, Any] = {
        "tool": tool,
        "round": round_no,
        "status": "ok" if m.rc == 0 and not m.timed_out else "failed",
        "rc": m.rc,
        "wall_s": round(m.wall, 3),
        "cpu_s": round(m.cpu, 3),
        "cpu_user_s": round(m.cpu_user, 3),
        "cpu_sys_s": round(m.cpu_sys, 3),
        "cpu_polled_s": round(m.cpu_polled, 3),
        "peak_rss_mb": round(m.peak_rss / 2**20, 1),
        "peak_pss_mb": round(m.peak_pss / 2**20, 1),
        "processes": m.processes,
        "per_process": m.per_process,
        "command": " ".join(inv.cmd),
        "node_settle_s": settled,
    }
    peaks = ", ".join(
        f"{p['role']} {p['peak_rss_mb']:.0f}/{p['peak_pss_mb']:.0f}"
        for p in m.per_process
        if p["peak_rss_mb"] >= 20
    )
    print(f"  peak RSS/PSS MB per process: {peaks}", flush=True)
    if result["status"] != "ok":
        result["log_tail"] = m.log[-1500:]
        print(f"  {tool} FAILED (rc {m.rc}); log: {log_path}\n{m.log[-800:]}", flush=True)
    try:
        rows = inv.count()
    except Exception as exc:
        rows = -1
        result["count_error"] = str(exc)
    result["rows"] = rows
    result["rows_per_s"] = round(rows / m.wall, 1) if m.wall > 0 and rows > 0 else None
    result["cpu_us_per_row"] = round(m.cpu * 1e6 / rows, 2) if rows > 0 else None
    if node_before is not None and node_after is not None:
        result["node_cpu_s"] = round(node_after - node_before, 3)
        result["node_cpu_us_per_row"] = (
            round(result["node_cpu_s"] * 1e6 / rows, 2) if rows > 0 else None
        )
    if inv.check is not None:
        try:
            result.update(inv.check())
        except Exception as exc:
            result["check_error"] = str(exc)
    if rows != ctx.rows:
        verb = "restored" if tool in RESTORE_TOOLS else "exported"
        result["warning"] = f"{tool} {verb} {rows:,} rows, expected {ctx.rows:,}"
        print(f"WARNING: {result['warning']}", flush=True)
    if not keep:
        shutil.rmtree(out, ignore_errors=True)
        shutil.rmtree(str(out) + "-logs", ignore_errors=True)
    return result


# --------------------------------------------------------------------------- reporting


def summarize(runs: list[dict[str, Any]], tools: list[str]) -> dict[str, dict[str, Any]]:
    """Median per tool over its successful rounds."""
    summary: dict[str, dict[str, Any]] = {}
    for tool in tools:
        mine = [r for r in runs if r["tool"] == tool]
        ok = [r for r in mine if r.get("status") == "ok"]
        if not ok:
            first = mine[0] if mine else {}
            summary[tool] = {"status": first.get("status", "not run"), "why": first.get("why")}
            continue
        entry: dict[str, Any] = {"status": "ok", "rounds": len(ok)}
        for key in (
            "wall_s",
            "cpu_s",
            "peak_rss_mb",
            "peak_pss_mb",
            "rows_per_s",
            "cpu_us_per_row",
            "node_cpu_s",
            "node_cpu_us_per_row",
        ):
            values = [r[key] for r in ok if r.get(key) is not None]
            entry[key] = round(statistics.median(values), 3) if values else None
        entry["rows"] = ok[0]["rows"]
        entry["peak_rss_mb_max"] = max(r["peak_rss_mb"] for r in ok)
        if any("writetimes_checked" in r for r in ok):
            entry["writetimes_checked"] = sum(r.get("writetimes_checked", 0) for r in ok)
            entry["writetimes_preserved"] = sum(r.get("writetimes_preserved", 0) for r in ok)
        summary[tool] = entry
    return summary


RATIOS = (
    # (name, numerator tool, denominator tool, metric, meaning)
    ("ours/dsbulk", "ours", "dsbulk", "rows_per_s", "plain CSV rows/s vs DSBulk (target >= 1.5)"),
    (
        "ours-wt/dsbulk-ts",
        "ours-wt",
        "dsbulk-ts",
        "rows_per_s",
        "writetime CSV vs -timestamp (>= 1.5)",
    ),
    ("ours/cqlsh", "ours", "cqlsh", "rows_per_s", "vs cqlsh COPY TO (target >= 3)"),
    ("ours/raw", "ours", "raw", "rows_per_s", "of the raw scan (target >= 0.85)"),
    ("ours-wt/raw-wt", "ours-wt", "raw-wt", "rows_per_s", "writetime CSV of writetime scan"),
    ("ours-avro/raw", "ours-avro", "raw", "rows_per_s", "Avro of the raw scan"),
    ("ours-wt/ours wall", "ours-wt", "ours", "wall_s", "writetime-on cost (target <= 1.25)"),
    ("ours-wt/ours cpu", "ours-wt", "ours", "cpu_s", "writetime-on CPU cost"),
    ("ours-avro-wt/ours-avro wall", "ours-avro-wt", "ours-avro", "wall_s", "Avro writetime cost"),
    ("ours-avro-wt/ours-avro cpu", "ours-avro-wt", "ours-avro", "cpu_s", "Avro writetime CPU"),
    ("dsbulk-ts/dsbulk wall", "dsbulk-ts", "dsbulk", "wall_s", "DSBulk's -timestamp cost"),
    ("ours cpu/dsbulk cpu", "ours", "dsbulk", "cpu_s", "CPU per export vs DSBulk"),
    ("ours/base", "ours", "base", "rows_per_s", "this tree vs --baseline-src"),
    ("ours-wt/base-wt", "ours-wt", "base-wt", "rows_per_s", "this tree vs baseline, writetime"),
    ("ours-avro/base-avro", "ours-avro", "base-avro", "rows_per_s", "Avro vs baseline"),
    ("ours-avro-wt/base-avro-wt", "ours-avro-wt", "base-avro-wt", "rows_per_s", "Avro wt"),
    ("ours-parquet/base-parquet", "ours-parquet", "base-parquet", "rows_per_s", "Parquet vs base"),
    ("ours cpu/base cpu", "ours", "base", "cpu_s", "CPU vs baseline"),
    ("ours-parquet/ours", "ours-parquet", "ours", "rows_per_s", "Parquet vs CSV (target >= 1.0)"),
    ("ours-parquet-wt/ours-wt", "ours-parquet-wt", "ours-wt", "rows_per_s", "Parquet vs CSV, wt"),
    ("ours-avro/ours", "ours-avro", "ours", "rows_per_s", "Avro vs CSV (target >= 0.85)"),
    ("ours-avro-wt/ours-wt", "ours-avro-wt", "ours-wt", "rows_per_s", "Avro vs CSV, wt"),
    ("ours-parquet/dsbulk", "ours-parquet", "dsbulk", "rows_per_s", "Parquet vs DSBulk CSV"),
    ("restore/dsbulk-load", "restore", "dsbulk-load", "rows_per_s", "restore (target >= 1.0)"),
    ("restore/cqlsh-copy-from", "restore", "cqlsh-copy-from", "rows_per_s", "target >= 3"),
    ("restore cpu/dsbulk-load cpu", "restore", "dsbulk-load", "cpu_s", "restore CPU vs DSBulk"),
    ("restore/restore-base", "restore", "restore-base", "rows_per_s", "restore vs baseline"),
    ("restore cpu/restore-base cpu", "restore", "restore-base", "cpu_s", "CPU vs baseline"),
    ("restore-base/cqlsh-copy-from", "restore-base", "cqlsh-copy-from", "rows_per_s", "base"),
    ("restore node cpu/dsbulk-load", "restore", "dsbulk-load", "node_cpu_s", "node CPU"),
    ("ours-wt cpu/base-wt cpu", "ours-wt", "base-wt", "cpu_s", "CPU vs baseline, writetime"),
)


def ratios(summary: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
    out = {}
    for name, num, den, metric, meaning in RATIOS:
        a, b = summary.get(num, {}), summary.get(den, {})
        if a.get("status") == "ok" and b.get("status") == "ok" and a.get(metric) and b.get(metric):
            out[name] = {"value": round(a[metric] / b[metric], 3), "metric": metric, "of": meaning}
    return out


def print_table(summary: dict[str, dict[str, Any]], ratio_map: dict[str, Any], title: str) -> None:
    print(f"\n{title}")
    head = f"{'tool':<14}{'rows':>11}{'wall s':>9}{'rows/s':>11}{'CPU s':>9}"
    head += f"{'CPU us/row':>12}{'peak RSS MB':>13}{'PSS MB':>8}{'node us/row':>13}"
    print(head)
    print("-" * len(head))
    for tool, e in summary.items():
        if e.get("status") != "ok":
            print(f"{tool:<14}  {e.get('status')}: {e.get('why') or ''}"[:160])
            continue
        print(
            f"{tool:<14}{e['rows']:>11,}{e['wall_s']:>9.1f}{(e['rows_per_s'] or 0):>11,.0f}"
            f"{e['cpu_s']:>9.1f}{(e['cpu_us_per_row'] or 0):>12.1f}{e['peak_rss_mb']:>13.0f}"
            f"{(e.get('peak_pss_mb') or 0):>8.0f}{(e.get('node_cpu_us_per_row') or 0):>13.1f}"
        )
    if ratio_map:
        print("\nratios (median rounds)")
        for name, r in ratio_map.items():
            print(f"  {name:<30}{r['value']:>7.2f}   {r['of']}")


def _versions(ctx: Context) -> dict[str, Any]:
    versions: dict[str, Any] = {"python": platform.python_version()}
    # From the installed metadata: importing Beam here would only print its GCP warning.
    dists = (("beam", "apache-beam"), ("cassandra_driver", "cassandra-driver"), ("fastavro",) * 2)
    for key, dist in dists:
        with contextlib.suppress(importlib.metadata.PackageNotFoundError):
            versions[key] = importlib.metadata.version(dist)
    if ctx.dsbulk_lib:
        versions["dsbulk"] = f"{DSBULK_VERSION} (java-driver {DSBULK_DRIVER_VERSION})"
    if ctx.cqlsh:
        versions["cqlsh"] = CQLSH_VERSION
    with contextlib.suppress(Exception):
        cluster, session = _connect(ctx.hosts)
        try:
            versions["cassandra"] = session.execute(
                "SELECT release_version FROM system.local"
            ).one()[0]
        finally:
            cluster.shutdown()
    return versions


# --------------------------------------------------------------------------- main


def _hosts(arg: str | None) -> list[str]:
    if arg:
        return [h.strip() for h in arg.split(",") if h.strip()]
    env = os.environ.get("CASSANDRA_CONTACT_POINTS", "").strip()
    if env:
        return [h.strip() for h in env.split(",") if h.strip()]
    from dev.cassandra_local import BENCH_NODE_DIR, LocalCluster, checkout_prefix

    print(f"no --hosts: starting (or reusing) a local node in {BENCH_NODE_DIR}", flush=True)
    cluster = LocalCluster(BENCH_NODE_DIR, address_prefix=checkout_prefix(9))
    cluster.start(detach=True)
    return cluster.contact_points


def _ours_pages(result: dict[str, Any]) -> str:
    """How ours* sized their pages, when a result says (older results ran them at
    ``fetch_size`` too)."""
    if "ours_fetch_size" not in result:
        return ""
    size = result["ours_fetch_size"]
    return " (ours: pages sized from their bytes)" if size is None else f" (ours: {size})"


def markdown_report(result: dict[str, Any], name: str) -> str:
    """One result file as Markdown: the tools' table, then the ratios."""
    machine = result.get("machine", {})
    load = machine.get("load_avg_at_end") or [float("nan")]
    start = machine.get("load_avg_at_start")
    at_start = f"{start[0]:.1f} at start, " if start else ""
    lines = [
        f"**{result['variant']}, {result['rows']:,} rows**, {result['workers']} workers, "
        f"fetch size {result['fetch_size']}{_ours_pages(result)}, {result['repeat']} round(s), "
        "load average "
        f"{at_start}{load[0]:.1f} at end (`{name}`)",
        "",
        "| tool | rows/s | wall s | CPU s | CPU µs/row | peak RSS MB | peak PSS MB "
        "| node CPU µs/row |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for tool, entry in result["summary"].items():
        if entry.get("status") != "ok":
            lines.append(f"| {tool} | {entry.get('status')} | | | | | | |")
            continue
        node_us = entry.get("node_cpu_us_per_row")
        node = f"{node_us:.1f}" if node_us is not None else ""
        lines.append(
            f"| {tool} | {entry['rows_per_s']:,.0f} | {entry['wall_s']:.1f} | "
            f"{entry['cpu_s']:.1f} | {entry['cpu_us_per_row']:.1f} | "
            f"{entry['peak_rss_mb']:.0f} | {entry['peak_pss_mb']:.0f} | {node} |"
        )
    lines += ["", "| ratio | value |", "|---|---:|"]
    lines += [f"| {k} | {v['value']:.2f} |" for k, v in result.get("ratios", {}).items()]
    checked = {
        t: e for t, e in result["summary"].items() if e.get("writetimes_checked") is not None
    }
    if checked:
        lines += ["", "Writetimes of sampled restored cells equal to the source's:"]
        lines += [
            f"{t} {e['writetimes_preserved']:,} of {e['writetimes_checked']:,}"
            for t, e in checked.items()
        ]
        lines[-len(checked) :] = ["; ".join(lines[-len(checked) :]) + "."]
    if result.get("warnings"):
        lines += ["", "warnings: " + "; ".join(map(str, result["warnings"]))]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m dev.bench", description=__doc__.split("\n\n")[0]
    )
    parser.add_argument("--hosts", help="host:port,... (default: CASSANDRA_CONTACT_POINTS)")
    parser.add_argument("--rows", type=int, default=2_000_000)
    parser.add_argument("--variant", choices=sorted(VARIANTS), default="narrow")
    parser.add_argument("--tools", default=DEFAULT_TOOLS, help=f"any of {','.join(ALL_TOOLS)}")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--fetch-size",
        type=int,
        default=5000,
        help="page size of the peers and base* (raw* page as ours* do); 0 (base*: pages "
        "sized from their bytes) is refused with DSBulk or cqlsh, whose page size 0 makes "
        "the node build a whole token range's result at once",
    )
    parser.add_argument(
        "--ours-fetch-size",
        type=int,
        help="ours*' --fetch-size (default: their own, pages sized from their bytes)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="rounds, interleaved")
    parser.add_argument("--baseline-src", type=Path, help="dir with transforms/ and pipeline/")
    parser.add_argument(
        "--ours-src", type=Path, default=REPO, help="the exporter to run as ours* (default: repo)"
    )
    parser.add_argument(
        "--ours-auto-layout",
        action="store_true",
        help="ours* name no runner or worker layout (the export picks by table size); "
        "base* keep --workers",
    )
    parser.add_argument("--jmx-port", type=int, help="flush the table after loading (nodetool)")
    parser.add_argument("--timeout", type=float, default=3600, help="per tool run, seconds")
    parser.add_argument("--work-dir", type=Path, help="outputs (default: a temp dir)")
    parser.add_argument("--keep-output", action="store_true")
    parser.add_argument(
        "--no-warmup", action="store_true", help="skip the unrecorded raw scan (and restore)"
    )
    parser.add_argument("--ours-arg", action="append", default=[], help="extra exporter option")
    parser.add_argument("--label", default="", help="free text stored in the JSON")
    parser.add_argument(
        "--restore-format",
        default="csv",
        choices=("csv", "jsonl", "avro", "parquet"),
        help="format of the export the restore tool reads",
    )
    parser.add_argument(
        "--restore-workers",
        type=int,
        default=0,
        help="worker processes of restore* (default: in-process, the restore's own default; "
        "the peers keep --workers)",
    )
    parser.add_argument("--load-only", action="store_true", help="load the table, run nothing")
    parser.add_argument(
        "--report", nargs="+", type=Path, metavar="JSON", help="print result files as Markdown"
    )
    args = parser.parse_args(argv)
    if args.report:
        for path in args.report:
            print(markdown_report(json.loads(path.read_text()), path.name))
        return 0

    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    for tool in tools:
        if tool not in ALL_TOOLS:
            parser.error(f"unknown tool {tool!r}; tools: {', '.join(ALL_TOOLS)}")
    if any(t.startswith("base") or t.endswith("-base") for t in tools) and not args.baseline_src:
        parser.error("base* and restore-base need --baseline-src DIR")
    peers = [t for t in tools if t.startswith(("dsbulk", "cqlsh"))]
    if args.fetch_size < 1 and peers:
        parser.error(f"--fetch-size {args.fetch_size} is no page size for {', '.join(peers)}")
    hosts = _hosts(args.hosts)
    variant = VARIANTS[args.variant]
    table = ensure_table(hosts, variant, args.rows, args.jmx_port)
    if args.load_only:
        return 0
    work_dir = args.work_dir or Path(tempfile.mkdtemp(prefix="cassandra-export-bench-"))
    work_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(
        hosts=hosts,
        table=table,
        rows=args.rows,
        workers=args.workers,
        fetch_size=args.fetch_size,
        work_dir=work_dir,
        python=sys.executable,
        baseline_src=args.baseline_src.resolve() if args.baseline_src else None,
        ours_src=args.ours_src.resolve(),
        extra_ours=list(args.ours_arg),
        ours_auto_layout=args.ours_auto_layout,
        ours_fetch_size=args.ours_fetch_size,
        variant=variant,
        restore_format=args.restore_format,
        restore_workers=args.restore_workers,
    )
    if any(t.startswith("dsbulk") for t in tools):
        ctx.dsbulk_lib, ctx.dsbulk_why = ensure_dsbulk()
    if any(t.startswith("cqlsh") for t in tools):
        ctx.cqlsh, ctx.cqlsh_why = ensure_cqlsh()
    reaper = _become_subreaper()
    if not reaper:
        print("note: not a child subreaper; CPU of orphaned grandchildren may be missed")
    if not args.no_warmup:
        print("warm-up: one unrecorded raw scan", flush=True)
        run_tool(ctx, "raw", -1, args.timeout, keep=False)
    load_at_start = os.getloadavg()
    write_ns = write_probe(work_dir)
    print(f"writing a new file costs {write_ns} kernel CPU ns per byte here", flush=True)
    runs: list[dict[str, Any]] = []
    started = datetime.datetime.now(datetime.UTC)
    sources = prepare_restore_sources(ctx, tools, args.timeout)
    writers = [t for t in tools if t in RESTORE_TOOLS]
    if writers and not args.no_warmup:
        print("warm-up: one unrecorded restore (the node's write path)", flush=True)
        run_tool(ctx, writers[0], -1, args.timeout, keep=False)
    for round_no in range(args.repeat):
        order = tools if round_no % 2 == 0 else list(reversed(tools))
        for tool in order:
            runs.append(run_tool(ctx, tool, round_no, args.timeout, args.keep_output))
    summary = summarize(runs, tools)
    ratio_map = ratios(summary)
    title = (
        f"{variant.name} table, {args.rows:,} rows, {args.workers} worker(s), "
        f"fetch size {args.fetch_size}{_ours_pages(vars(args))}, {args.repeat} round(s)"
    )
    print_table(summary, ratio_map, title)
    warnings = [r["warning"] for r in runs if r.get("warning")]
    stamp = started.strftime("%Y%m%dT%H%M%SZ")
    report = {
        "variant": variant.name,
        "rows": args.rows,
        "table": f"{KEYSPACE}.{table}",
        "workers": args.workers,
        "restore_workers": args.restore_workers,
        "fetch_size": args.fetch_size,
        "ours_fetch_size": args.ours_fetch_size,
        "repeat": args.repeat,
        "started_at": started.isoformat(),
        "label": args.label,
        "hosts": hosts,
        "machine": {
            "cpus": os.cpu_count(),
            "memory_gb": round(psutil.virtual_memory().total / 2**30, 1),
            "load_avg_at_start": load_at_start,
            "load_avg_at_end": os.getloadavg(),
            "file_write_ns_per_byte": write_ns,
        },
        "versions": _versions(ctx),
        "restore_sources": sources,
        "summary": summary,
        "ratios": ratio_map,
        "runs": runs,
        "warnings": warnings,
    }
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{variant.name}-{args.rows}-{stamp}.json"
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"\nresults: {path}")
    if not args.work_dir and not args.keep_output:
        shutil.rmtree(work_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
