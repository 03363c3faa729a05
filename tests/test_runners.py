"""The same export on every runner: FnApiRunner, Prism and Flink give the same rows.

A table of 100,000 rows with list, set and map columns, every column written at its own
known timestamp (some collections grown later, so a collection's writetime is a max), is
exported to CSV and to Avro with ``--splits 16`` on each runner; each export's rows, read
back from every ``OUT/data/part-*`` file, must be the same multiset. A run killed mid-way
(the CLI and everything it started get SIGKILL, the orphaned job is cancelled on the job
server) and resumed on the FnApiRunner must give that same multiset again. Wall times per
runner are printed (``pytest -s``) and written to ``.local/runner-wall-times.json``.

Flink needs Beam's Flink job server jar from Maven; where the registry does not serve it
(see ``dev.runners.flink_job_server_jar``) the Flink tests skip and say why. The kill and
cancel tests also run against Prism started on its own as a job service, through
``run_configs/flink.yaml``: the same client path (PortableRunner, --job_endpoint, LOOPBACK
workers, the job API's Cancel) with another job server.
"""

from __future__ import annotations

import collections
import io
import json
import logging
import os
import pickle
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest

from dev import runners
from tests import helpers

N_PARTITIONS = 10_000
ROWS_PER_PARTITION = 10
N_ROWS = N_PARTITIONS * ROWS_PER_PARTITION
BASE_MICROS = 1_700_000_000_000_000
LATE_MICROS = 500_000  # rows with i % 10 == 0 get one more set element this much later
SPLITS = 16
PARALLELISM = 2
EXPORT_TIMEOUT = 600
WALL_TIMES: dict[str, float] = {}


# --- fixtures --------------------------------------------------------------------------------


def _row(i: int) -> tuple[Any, ...]:
    """Row ``i``: every shape a runner could get wrong (nulls, quotes, empty vs null text)."""
    name = f'name {i}, "q"' if i % 97 == 0 else ("" if i % 89 == 0 else f"name-{i}")
    return (
        i // ROWS_PER_PARTITION,
        i % ROWS_PER_PARTITION,
        name,
        None if i % 13 == 0 else i / 7,
        None if i % 11 == 0 else {f"t{i % 5}", f"u{i % 3}"},
        None if i % 9 == 0 else [i, i % 17, -i],
        None if i % 7 == 0 else {"a": i, "b": i % 100},
        BASE_MICROS + i,
    )


def load_wide_table(session: Any, table: str, partitions: int = N_PARTITIONS) -> None:
    """Create ``table`` and write its rows (100,000 by default): one unlogged batch per
    partition (a single-partition batch is one mutation on the node, far cheaper than ten
    inserts)."""
    from cassandra.concurrent import execute_concurrent
    from cassandra.query import BatchStatement, BatchType

    session.execute(
        f"CREATE TABLE {table} (pk int, ck int, name text, score double, tags set<text>, "
        "items list<int>, attrs map<text, int>, PRIMARY KEY (pk, ck))",
        timeout=120,
    )
    insert = session.prepare(
        f"INSERT INTO {table} (pk, ck, name, score, tags, items, attrs) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
    )
    grow = session.prepare(
        f"UPDATE {table} USING TIMESTAMP ? SET tags = tags + {{'late'}} WHERE pk = ? AND ck = ?"
    )

    def partition(pk: int) -> tuple[Any, tuple[()]]:
        batch = BatchStatement(batch_type=BatchType.UNLOGGED)
        for i in range(pk * ROWS_PER_PARTITION, (pk + 1) * ROWS_PER_PARTITION):
            batch.add(insert, _row(i))
            if i % 10 == 0:  # the set grows later: its writetime is the max of its elements
                batch.add(grow, (BASE_MICROS + i + LATE_MICROS, pk, i % ROWS_PER_PARTITION))
        return batch, ()

    results = execute_concurrent(
        session, (partition(pk) for pk in range(partitions)), concurrency=32
    )
    assert all(ok for ok, _ in results)


@pytest.fixture(scope="module")
def big_table(session: Any, ks: str) -> str:
    """``ks.wide``: 100,000 rows in 10,000 partitions, with list, set and map columns."""
    started = time.monotonic()
    load_wide_table(session, f"{ks}.wide")
    print(f"\nloaded {N_ROWS:,} rows in {time.monotonic() - started:.1f} s")
    return f"{ks}.wide"


@pytest.fixture(scope="module")
def small_table(session: Any, ks: str) -> str:
    """``ks.narrow``: the same shape, 100 rows (for tests that only need a real table)."""
    load_wide_table(session, f"{ks}.narrow", partitions=10)
    return f"{ks}.narrow"


@pytest.fixture(scope="module")
def prism_location() -> Path:
    try:
        return runners.prism_binary()
    except runners.RunnerUnavailable as exc:
        pytest.skip(f"Prism unavailable: {exc}")


@pytest.fixture(scope="module")
def flink_job_server() -> Any:
    """Beam's Flink job server (embedded local Flink) for this module; skips if unavailable."""
    try:
        server = runners.FlinkJobServer().start()
    except runners.RunnerUnavailable as exc:
        pytest.skip(f"Flink job server unavailable: {str(exc)[:600]}")
    print(f"\nFlink job server up at {server.endpoint} in {server.startup_seconds:.1f} s")
    yield server
    server.stop()
    assert not server.is_running()


@pytest.fixture(scope="module")
def prism_job_server(prism_location: Path) -> Any:
    """Prism on its own as a Beam job service: the client path of Flink's job server
    (PortableRunner, --job_endpoint, LOOPBACK workers, Cancel over the job API)."""
    port = runners._free_port()
    proc = subprocess.Popen(
        [str(prism_location), "--job_port", str(port), "--serve_http=false"]
        + ["--log_level", "warn"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        preexec_fn=runners._die_with_parent_fn(),
    )
    deadline = time.monotonic() + 60
    while not runners._port_open(port):
        assert proc.poll() is None, f"prism exited with {proc.returncode}"
        assert time.monotonic() < deadline, "prism did not open its job port in 60 s"
        time.sleep(0.1)
    yield f"localhost:{port}"
    proc.terminate()
    try:
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=20)


def _runner_args(runner: str, request: pytest.FixtureRequest) -> list[str]:
    """The run config of ``runner`` plus what this machine's fixtures decide."""
    if runner == "fnapi":
        return ["--config", "run_configs/local.yaml"]
    if runner == "prism":
        location = request.getfixturevalue("prism_location")
        return ["--config", "run_configs/prism.yaml", f"--prism_location={location}"]
    if runner == "flink":
        server = request.getfixturevalue("flink_job_server")
        return ["--config", "run_configs/flink.yaml", f"--job_endpoint={server.endpoint}"]
    if runner == "prism_job_server":  # Flink's client options, pointed at Prism's job service
        endpoint = request.getfixturevalue("prism_job_server")
        return ["--config", "run_configs/flink.yaml", f"--job_endpoint={endpoint}"]
    raise ValueError(runner)


def _job_endpoint(runner: str, request: pytest.FixtureRequest) -> str:
    if runner == "flink":
        return request.getfixturevalue("flink_job_server").endpoint
    return request.getfixturevalue("prism_job_server")


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory, hosts: str, big_table: str) -> Any:
    """Runs each (runner, format) export once, on demand; returns its output directory."""
    done: dict[tuple[str, str], Path] = {}
    root = tmp_path_factory.mktemp("runner-exports")

    def get(runner: str, fmt: str, request: pytest.FixtureRequest) -> Path:
        key = (runner, fmt)
        if key not in done:
            out = root / f"{runner}-{fmt}"
            argv = _runner_args(runner, request) + helpers.export_argv(
                hosts, big_table, out, fmt, SPLITS
            )
            started = time.monotonic()
            result = helpers.run_cli_leaving_nothing(argv, timeout=EXPORT_TIMEOUT)
            elapsed = time.monotonic() - started
            assert result.code == 0, result.describe()
            assert (out / "_SUCCESS").exists()
            WALL_TIMES[f"{runner}/{fmt}"] = round(elapsed, 1)
            print(f"\n{runner} {fmt}: {N_ROWS:,} rows in {elapsed:.1f} s wall")
            done[key] = out
        return done[key]

    yield get
    if WALL_TIMES:
        report = helpers.REPO / ".local" / "runner-wall-times.json"
        report.parent.mkdir(exist_ok=True)
        report.write_text(json.dumps({"rows": N_ROWS, "seconds": WALL_TIMES}, indent=1) + "\n")
        print(f"\nwall times ({N_ROWS:,} rows, --splits {SPLITS}): {WALL_TIMES}")


# --- reading back ------------------------------------------------------------------------------


def _expected_keys() -> collections.Counter[tuple[int, int]]:
    return collections.Counter(
        (i // ROWS_PER_PARTITION, i % ROWS_PER_PARTITION) for i in range(N_ROWS)
    )


def _check_export(out: Path, fmt: str) -> collections.Counter[str]:
    rows = helpers.read_rows(out)
    assert len(rows) == N_ROWS
    keys = collections.Counter((int(r["pk"]), int(r["ck"])) for r in rows)
    assert keys == _expected_keys()
    checkpoint = json.loads((out / "_manifest" / "checkpoint.json").read_text())
    assert checkpoint["total_rows"] == N_ROWS
    # One spot check against the data as written (row 970: quoted name, grown set).
    row = next(r for r in rows if int(r["pk"]) == 97 and int(r["ck"]) == 0)
    assert row["name"] == 'name 970, "q"'
    late = BASE_MICROS + 970 + LATE_MICROS
    if fmt == "csv":
        assert row["tags_writetime"] == helpers.iso_micros(late)
        assert row["name_writetime"] == helpers.iso_micros(BASE_MICROS + 970)
        assert row["attrs"] == '{"a":970,"b":70}'
    else:
        assert row["tags_writetime"] == helpers.utc_micros(late)
        assert row["attrs"] == {"a": 970, "b": 70}
        assert sorted(row["tags"]) == ["late", "t0", "u1"]
    return collections.Counter(json.dumps(r, sort_keys=True, default=str) for r in rows)


def _work_units(out: Path) -> int:
    return len(json.loads((out / "_manifest" / "export.json").read_text())["units"])


# --- the worker setup: small pickles, one session per worker process -----------------------


def _plan(keyspace: str = "ks", table: str = "wide") -> Any:
    from transforms.table_plan import build_table_plan

    return build_table_plan(
        keyspace=keyspace,
        table=table,
        column_types=(
            ("pk", "int", "partition_key"),
            ("ck", "int", "clustering"),
            ("name", "text", "regular"),
            ("score", "double", "regular"),
            ("tags", "set<text>", "regular"),
            ("items", "list<int>", "regular"),
            ("attrs", "map<text, int>", "regular"),
        ),
        user_types={},
        release_version="5.0.8",
    )


def test_pickled_dofns_are_small() -> None:
    """What Beam ships to every worker: the DoFns, pickled without any connection in them."""
    from apache_beam.internal import pickler

    from transforms.cassandra_session import ConnectionConfig
    from transforms.range_reader import ReadRangesFn
    from transforms.sinks import SinkConfig, WritePiecesFn

    connection = ConnectionConfig(hosts=("10.0.0.1:9042", "10.0.0.2:9042"), password="secret")
    fns = {
        "ReadRangesFn": ReadRangesFn(connection, _plan(), batch_size=1000),
        "WritePiecesFn": WritePiecesFn(_plan(), "gs://bucket/out", SinkConfig(format="avro")),
    }
    for name, fn in fns.items():
        assert not hasattr(fn, "_session") and not hasattr(fn, "_open")  # made in setup()
        shipped = pickler.dumps(fn)  # what goes into the pipeline proto
        raw = pickle.dumps(pickler.loads(shipped))
        print(f"\n{name}: {len(shipped):,} bytes shipped, {len(raw):,} bytes pickled")
        assert len(shipped) < 50_000, name
        assert len(raw) < 50_000, name
        assert type(pickler.loads(shipped)).__name__ == name


def test_one_session_per_worker_process(db: Any, hosts: str, small_table: str) -> None:
    """DoFn setup() shares the process's session; the last teardown() closes it."""
    from transforms import cassandra_session
    from transforms.cassandra_session import ConnectionConfig
    from transforms.range_reader import ReadRangesFn

    keyspace, table = small_table.split(".")
    connection = ConnectionConfig(hosts=tuple(hosts.split(",")), consistency="ONE")
    plan = _plan(keyspace, table)
    first, second = (pickle.loads(pickle.dumps(ReadRangesFn(connection, plan))) for _ in "12")
    first.setup()
    second.setup()
    try:
        assert first._session is second._session
        entry = cassandra_session._SESSIONS[connection.session_key()]
        assert entry[1] is first._session and entry[2] == 2
    finally:
        first.teardown()
        assert connection.session_key() in cassandra_session._SESSIONS
        session = second._session
        second.teardown()
    assert connection.session_key() not in cassandra_session._SESSIONS
    assert session.is_shutdown


def test_pipeline_proto_is_small(hosts: str, small_table: str, tmp_path: Path) -> None:
    """The whole job as submitted to a runner (work units, plan, DoFns) stays small."""
    from pipeline.config import parse_settings
    from pipeline.graph import build_pipeline
    from pipeline.job import prepare_export

    settings = parse_settings(
        ["--hosts", hosts, "--table", small_table, "--output", str(tmp_path / "out")]
        + ["--splits", str(SPLITS), "--format", "avro", "--runner=PrismRunner"]
    )
    job = prepare_export(settings)
    pipeline = build_pipeline(job, settings.beam_args)
    proto = pipeline.to_runner_api()
    shutil.rmtree(pipeline.local_tempdir, ignore_errors=True)  # Beam removes it only in run()
    size = len(proto.SerializeToString())
    print(f"\npipeline proto: {size:,} bytes for {len(job.work_items)} work units")
    assert size < 200_000


def test_multi_process_export_prints_only_its_own_lines(
    hosts: str, small_table: str, tmp_path: Path
) -> None:
    """FnApiRunner with worker processes (run_configs/local.yaml): the workers' start-up and
    shutdown chatter reaches neither stderr nor stdout; stdout is the summary."""
    out = tmp_path / "out"
    argv = ["--config", "run_configs/local.yaml"] + helpers.export_argv(
        hosts, small_table, out, "csv", SPLITS
    )
    result = helpers.run_cli_subprocess(argv, timeout=EXPORT_TIMEOUT)
    assert result.code == 0, result.describe()
    assert result.stderr == ""
    lines = result.stdout.splitlines()
    assert lines[0].startswith(f"export complete: 100 rows of {small_table} in ")
    files = len(list((out / "data").iterdir()))
    assert lines[1] == f"  data:     {out / 'data'}  ({files} files, csv)"
    assert not [line for line in lines if "INFO" in line or "Worker" in line]


def _forwarded(location: str, message: str, severity: int, trace: str = "") -> logging.LogRecord:
    """A record as Beam's local job service logs what a worker forwarded."""
    from apache_beam.portability.api import beam_fn_api_pb2

    from pipeline.local_runner import FORWARDED_LOGGER

    entry = beam_fn_api_pb2.LogEntry(
        severity=severity, message=message, log_location=location, trace=trace
    )
    level = {beam_fn_api_pb2.LogEntry.Severity.WARN: logging.WARNING}.get(severity, logging.INFO)
    return logging.LogRecord(
        FORWARDED_LOGGER, level, __file__, 1, "Worker: %s", (str(entry).replace("\n", " "),), None
    )


def test_worker_log_filter_keeps_ours_and_drops_beams() -> None:
    from apache_beam.portability.api import beam_fn_api_pb2

    from pipeline.local_runner import WorkerLogFilter

    warn = beam_fn_api_pb2.LogEntry.Severity.WARN
    info = beam_fn_api_pb2.LogEntry.Severity.INFO
    beam_file = "/v/lib/python3.11/site-packages/apache_beam/runners/worker/sdk_worker_main.py:421"
    ours = _forwarded("/repo/transforms/cassandra_io.py:620", 'unit 3: "range" split', warn)
    beams = _forwarded(beam_file, "No semi_persistent_directory found", warn)
    driver = _forwarded("/v/lib/site-packages/cassandra/policies.py:290", "Using dc1", info)
    driver_warning = _forwarded("/v/lib/site-packages/cassandra/cluster.py:9", "host down", warn)
    quiet = WorkerLogFilter(keep_beam=False)
    assert quiet.filter(ours)
    assert (ours.name, ours.getMessage()) == ("transforms.cassandra_io", 'unit 3: "range" split')
    assert not quiet.filter(beams)
    assert not quiet.filter(driver)
    assert quiet.filter(driver_warning) and driver_warning.getMessage() == "host down"
    verbose = WorkerLogFilter(keep_beam=True)
    assert verbose.filter(_forwarded(beam_file, "No semi_persistent_directory found", warn))
    assert verbose.filter(_forwarded("/x/site-packages/cassandra/policies.py:1", "dc", info))
    other = logging.LogRecord("x", logging.WARNING, __file__, 1, "not forwarded %s", ("a",), None)
    assert quiet.filter(other) and other.getMessage() == "not forwarded a"
    with_trace = _forwarded("/repo/transforms/sinks.py:10", "failed", warn, trace="Trace line")
    assert quiet.filter(with_trace) and with_trace.getMessage() == "failed"
    with_trace = _forwarded("/repo/transforms/sinks.py:10", "failed", warn, trace="Trace line")
    assert verbose.filter(with_trace) and with_trace.getMessage() == "failed\nTrace line"


def test_worker_imports_beam_without_pyarrow() -> None:
    """A local SDK worker starts without pyarrow (about 45 MB less per worker), and the
    Parquet format can still import it afterwards."""
    script = (
        "import sys; import pipeline.worker; print('pyarrow' in sys.modules); "
        "import transforms.formats.parquet_arrow; print('pyarrow' in sys.modules)"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=True
    )
    assert done.stdout == "False\nTrue\n"


def test_one_line_logs_drop_tracebacks() -> None:
    """A record logged with an exception (the driver's control connection does) prints as
    one line ending with the exception's first line; --log-level DEBUG does not install it."""
    from pipeline.local_runner import OneLineLogs

    try:
        raise ConnectionResetError("[Errno 104] Connection reset by peer\nsecond line")
    except ConnectionResetError:
        record = logging.LogRecord(
            "cassandra.cluster",
            logging.WARNING,
            __file__,
            1,
            "Error connecting to %s:",
            ("127.0.1.3:9042",),
            sys.exc_info(),
        )
    handler = logging.StreamHandler(io.StringIO())
    handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
    handler.addFilter(OneLineLogs())
    handler.handle(record)
    assert handler.stream.getvalue() == (
        "WARNING cassandra.cluster: Error connecting to 127.0.1.3:9042: "
        "ConnectionResetError: [Errno 104] Connection reset by peer\n"
    )
    plain = logging.LogRecord("x", logging.WARNING, __file__, 1, "no %s", ("error",), None)
    assert OneLineLogs().filter(plain) and plain.getMessage() == "no error"


# --- the same export on every runner ---------------------------------------------------------


@pytest.mark.prism
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "avro"])
def test_fnapi_and_prism_export_the_same_rows(
    exports: Any, request: pytest.FixtureRequest, fmt: str
) -> None:
    fnapi = _check_export(exports("fnapi", fmt, request), fmt)
    prism = _check_export(exports("prism", fmt, request), fmt)
    assert prism == fnapi


@pytest.mark.flink
@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "avro"])
def test_flink_exports_the_same_rows(
    exports: Any, request: pytest.FixtureRequest, flink_job_server: Any, fmt: str
) -> None:
    out = exports("flink", fmt, request)
    assert _work_units(out) >= SPLITS > PARALLELISM  # several work units per worker
    flink = _check_export(out, fmt)
    assert flink == _check_export(exports("fnapi", fmt, request), fmt)


# --- kill mid-run, resume on the FnApiRunner ---------------------------------------------------


def _committed_markers(out: Path) -> list[Path]:
    return sorted((out / "_manifest" / "ranges").glob("[0-9]*.json"))


@pytest.mark.slow
@pytest.mark.parametrize(
    "runner",
    [
        pytest.param("prism_job_server", marks=pytest.mark.prism),
        pytest.param("flink", marks=pytest.mark.flink),
    ],
)
def test_killed_export_resumes_exactly_on_fnapi(
    runner: str,
    exports: Any,
    request: pytest.FixtureRequest,
    hosts: str,
    big_table: str,
    tmp_path: Path,
) -> None:
    """SIGKILL the CLI (and what it started) once some units committed, cancel the orphaned
    job on the job server; --resume on the FnApiRunner finishes with the exact rows."""
    runner_args = _runner_args(runner, request)
    out = tmp_path / "out"
    # A read rate limit makes the run last ~10 s, so the kill lands mid-way.
    argv = runner_args + helpers.export_argv(hosts, big_table, out, "csv", SPLITS)
    argv += ["--max-rows-per-second", "10000"]
    proc = subprocess.Popen(
        helpers.cli_command() + argv,
        cwd=helpers.REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while len(_committed_markers(out)) < 3:
            assert proc.poll() is None, proc.stderr.read().decode() if proc.stderr else ""
            assert time.monotonic() < deadline, "no work unit committed in 300 s"
            time.sleep(0.2)
    finally:
        killed = runners.kill_process_tree(proc.pid, reap_root=False)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    endpoint = _job_endpoint(runner, request)
    try:
        cancelled = runners.cancel_jobs(endpoint)
        states = runners.wait_jobs_finished(endpoint, timeout=120)
    except Exception:
        if runner != "flink":
            raise
        # Cancel over the job API failed: restarting the server is the sure way to end its
        # job, and the restarted server must then hold no job at all.
        server = request.getfixturevalue("flink_job_server").restart()
        cancelled, states = [], runners.job_states(server.endpoint)
        assert states == {}, f"the restarted Flink job server still lists jobs: {states}"
    print(f"\ncancelled {cancelled}; jobs now {states}")
    assert states or runner == "flink", "the job server lists no job at all"
    assert all(state in ("CANCELLED", "FAILED", "DONE") for state in states.values())
    committed = len(_committed_markers(out))
    print(f"\nkilled {runner} run (pids {killed}) with {committed} of {_work_units(out)} units")
    assert 0 < committed < _work_units(out)
    assert not (out / "_SUCCESS").exists()

    result = helpers.run_cli_subprocess(
        ["--resume", str(out), "--hosts", hosts, "--runner=FnApiRunner"]
        + ["--progress-interval", "0"],
        timeout=EXPORT_TIMEOUT,
    )
    assert result.code == 0, result.describe()
    assert (out / "_SUCCESS").exists()
    assert not list((out / "_temporary").glob("*"))
    clean = _check_export(exports("fnapi", "csv", request), "csv")
    assert _check_export(out, "csv") == clean


@pytest.mark.prism
@pytest.mark.slow
def test_cancel_jobs_cancels_a_running_export(
    request: pytest.FixtureRequest, hosts: str, big_table: str, tmp_path: Path
) -> None:
    """The job API call used on Flink after a killed client, on a job that is still running:
    it ends CANCELLED, and the CLI that submitted it fails with a resumable output."""
    endpoint = request.getfixturevalue("prism_job_server")
    out = tmp_path / "out"
    argv = _runner_args("prism_job_server", request) + helpers.export_argv(
        hosts, big_table, out, "csv", SPLITS
    )
    proc = subprocess.Popen(
        helpers.cli_command() + argv + ["--max-rows-per-second", "10000"],
        cwd=helpers.REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 300
        while not _committed_markers(out):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "no work unit committed in 300 s"
            time.sleep(0.2)
        before = runners.job_states(endpoint)
        cancelled = runners.cancel_jobs(endpoint)
        states = runners.wait_jobs_finished(endpoint, timeout=120)
        _, stderr = proc.communicate(timeout=120)
    finally:
        runners.kill_process_tree(proc.pid, reap_root=False)
        proc.wait(timeout=30)
    running = [job for job, state in before.items() if state == "RUNNING"]
    assert len(running) == 1 and cancelled == running
    assert states[running[0]] == "CANCELLED"
    assert proc.returncode == 1, stderr
    assert "rerun with --resume" in stderr
    assert not (out / "_SUCCESS").exists()


def test_run_configs_name_what_dev_runners_provides(monkeypatch: Any) -> None:
    """prism.yaml points at the binary prism-path builds for the pinned SDK; flink.yaml at
    the port flink-start uses, with the client options the Flink tests run with."""
    from pipeline.config import parse_settings

    monkeypatch.delenv("CASSANDRA_EXPORT_CACHE", raising=False)
    monkeypatch.delenv("PRISM_LOCATION", raising=False)
    prism = parse_settings(["--config", str(helpers.REPO / "run_configs" / "prism.yaml")])
    expected = Path.home() / ".cache" / "cassandra-export" / "prism" / f"v{runners.beam_version()}"
    assert f"--prism_location={expected / 'prism'}" in prism.beam_args
    assert "--runner=PrismRunner" in prism.beam_args
    flink = parse_settings(["--config", str(helpers.REPO / "run_configs" / "flink.yaml")])
    server = runners.FlinkJobServer(job_port=8099)
    assert flink.beam_args == server.pipeline_args(parallelism=PARALLELISM)


# --- the job server's process handling, without Flink ---------------------------------------

_FAKE_JAVA = """#!/bin/sh
# Stand-in for java: runs the 'jar' (a Python script) with the arguments after it.
while [ "$1" != "-jar" ]; do shift; done
shift
exec {python} "$@"
"""

_FAKE_SERVER = """
import signal, socket, sys, time
args = sys.argv[1:]
port = int(args[args.index("--job-port") + 1])
if {ignore_term}:
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
time.sleep(0.5)
server = socket.socket()
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind(("localhost", port))
server.listen()
while True:
    conn, _ = server.accept()
    conn.close()
"""


def _fake_job_server(tmp_path: Path, ignore_term: bool = False) -> runners.FlinkJobServer:
    java = tmp_path / "java"
    java.write_text(_FAKE_JAVA.format(python=sys.executable))
    java.chmod(0o755)
    jar = tmp_path / "beam-runners-flink-fake.py"
    jar.write_text(textwrap.dedent(_FAKE_SERVER).format(ignore_term=ignore_term))
    return runners.FlinkJobServer(
        jar=jar, java=str(java), run_root=tmp_path / "run", startup_timeout=30
    )


def test_job_server_process_start_stop_and_strays(tmp_path: Path) -> None:
    """Start waits for the port; stop ends it (SIGKILL when SIGTERM is ignored); kill_strays
    finds a server whose owner died, by its pid file, and leaves other processes alone."""
    server = _fake_job_server(tmp_path).start()
    assert server.is_running() and runners._port_open(server.job_port)
    assert (server.run_dir / "pid").read_text().strip() == str(server._pid)
    assert server.pipeline_args()[:3] == [
        "--runner=PortableRunner",
        f"--job_endpoint=localhost:{server.job_port}",
        "--environment_type=LOOPBACK",
    ]
    server.stop(timeout=10)
    assert not server.is_running() and not (server.run_dir / "pid").exists()

    stubborn = _fake_job_server(tmp_path, ignore_term=True).start()
    pid = stubborn._pid
    started = time.monotonic()
    stubborn.stop(timeout=2)
    assert time.monotonic() - started < 30
    assert not runners.psutil.pid_exists(pid) or runners.psutil.Process(pid).status() == "zombie"

    # A detached server whose owner is gone: only its pid file is left to find it by.
    orphan = _fake_job_server(tmp_path).start(detach=True)
    orphan_pid = orphan._pid
    unrelated = tmp_path / "run" / "1"
    unrelated.mkdir(parents=True)
    (unrelated / "pid").write_text(f"{os.getpid()}\n")  # a live pid that is no job server
    assert runners.kill_strays(tmp_path / "run") == [orphan_pid]
    assert runners.psutil.pid_exists(os.getpid())
    assert runners.kill_strays(tmp_path / "run") == []
    orphan._proc.wait(timeout=10)  # reap it


def test_flink_jar_unavailable_is_remembered(tmp_path: Path, monkeypatch: Any) -> None:
    """When Maven serves no job server, later calls fail at once instead of asking again."""
    monkeypatch.setenv("CASSANDRA_EXPORT_CACHE", str(tmp_path))
    monkeypatch.delenv("BEAM_FLINK_JOB_SERVER_JAR", raising=False)
    marker = tmp_path / "flink" / "9.9.9" / ".unavailable"
    marker.parent.mkdir(parents=True)
    marker.write_text("not served here")
    started = time.monotonic()
    with pytest.raises(runners.RunnerUnavailable, match="not served here"):
        runners.flink_job_server_jar("9.9.9")
    assert time.monotonic() - started < 1
    jar = tmp_path / "job-server.jar"
    jar.write_bytes(b"PK")
    monkeypatch.setenv("BEAM_FLINK_JOB_SERVER_JAR", str(jar))
    assert runners.flink_job_server_jar("9.9.9") == jar
