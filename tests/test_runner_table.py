"""``pipeline.runners``: the runner table the launcher decides from (pure, no Cassandra); the
local processes' Arrow allocator and where pyarrow is loaded (``pipeline.arrow_memory``)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pipeline.config import parse_settings
from pipeline.options import UsageError
from pipeline.runners import (
    DASK_RUNNER_PATH,
    is_detached,
    loses_checkpoint_residuals,
    mentions_dask,
    resolve_runner_alias,
    runner_of,
    with_partitions,
    worker_count,
)
from tests.helpers import REPO


@pytest.mark.parametrize(
    ("args", "name", "local", "detached"),
    [
        ([], "FnApiRunner", True, False),
        (["--runner=FnApiRunner"], "FnApiRunner", True, False),
        (["--runner", "fn_api_runner"], "FnApiRunner", True, False),
        (["--runner=DirectRunner"], "DirectRunner", True, False),
        (["--runner=PrismRunner"], "PrismRunner", True, False),
        (
            ["--runner=PortableRunner", "--job_endpoint=localhost:8099"],
            "PortableRunner",
            False,
            False,
        ),
        (["--runner=FlinkRunner"], "FlinkRunner", False, False),
        (["--runner=SparkRunner"], "SparkRunner", False, False),
        (["--runner=DaskRunner"], "DaskRunner", False, False),
        (["--runner=dask"], "DaskRunner", False, False),
        (["--runner=apache_beam.runners.dask.dask_runner.DaskRunner"], "DaskRunner", False, False),
        (["--runner=DataflowRunner"], "DataflowRunner", False, True),
        (["--runner", "DataflowRunner"], "DataflowRunner", False, True),
        (["--runner=TestDataflowRunner"], "TestDataflowRunner", False, True),
        (
            ["--runner=apache_beam.runners.dataflow.dataflow_runner.DataflowRunner"],
            "DataflowRunner",
            False,
            True,
        ),
        (["--runner=SomeoneElsesRunner"], "(other)", False, False),
    ],
)
def test_runner_table(args: list[str], name: str, local: bool, detached: bool) -> None:
    runner = runner_of(args)
    assert (runner.name, runner.local, runner.detached) == (name, local, detached)
    assert is_detached(args) is detached


@pytest.mark.parametrize(
    ("args", "workers"),
    [
        ([], 1),
        (["--direct_num_workers=3"], 3),
        (["--direct_num_workers", "2", "--parallelism=8"], 2),
        (["--parallelism", "4"], 4),
        (["--max_num_workers=10", "--num_workers=2"], 10),
        (["--num_workers=5"], 5),
        (["--direct_num_workers=0"], os.cpu_count() or 1),
    ],
)
def test_worker_count(args: list[str], workers: int) -> None:
    assert worker_count(args) == workers


def test_worker_count_refuses_a_non_integer() -> None:
    with pytest.raises(UsageError, match=r"^--parallelism: 'x' is not an integer$"):
        worker_count(["--parallelism=x"])


@pytest.mark.parametrize(
    ("args", "loses"),
    [
        ([], False),
        (["--direct_num_workers=1"], False),
        (["--direct_num_workers=2"], True),
        (["--runner=FnApiRunner", "--direct_num_workers=2"], True),
        (["--runner=PrismRunner", "--direct_num_workers=2"], False),
        (["--runner=FlinkRunner", "--parallelism=4"], False),
        (["--runner=DataflowRunner", "--max_num_workers=4"], False),
        (["--runner=dask", "--num_workers=1"], True),
        (["--runner=dask", "--num_workers=4"], True),
    ],
)
def test_checkpoint_residuals_lost_only_by_the_local_runner_with_workers(
    args: list[str], loses: bool
) -> None:
    assert loses_checkpoint_residuals(args) is loses


@pytest.mark.parametrize(
    ("args", "resolved"),
    [
        (["--runner=dask"], [f"--runner={DASK_RUNNER_PATH}"]),
        (["--runner", "Dask", "--x=1"], ["--runner", DASK_RUNNER_PATH, "--x=1"]),
        (["--runner=DaskRunner"], [f"--runner={DASK_RUNNER_PATH}"]),
        (["--runner=FnApiRunner"], ["--runner=FnApiRunner"]),
        (["--runner", "PrismRunner"], ["--runner", "PrismRunner"]),
    ],
)
def test_dask_alias_resolves_to_beams_class_path(args: list[str], resolved: list[str]) -> None:
    assert resolve_runner_alias(args) == resolved


@pytest.mark.parametrize(
    ("args", "dask"),
    [
        (["--runner=dask"], True),
        (["--runner", "DaskRunner"], True),
        ([f"--runner={DASK_RUNNER_PATH}"], True),
        (["--dask_client_address=tcp://h:1"], True),
        (["--runner=FnApiRunner", "--direct_num_workers=2"], False),
        ([], False),
    ],
)
def test_mentions_dask(args: list[str], dask: bool) -> None:
    assert mentions_dask(args) is dask


@pytest.mark.parametrize(
    ("args", "units", "expected"),
    [
        (["--runner=dask"], 40, ["--runner=dask", "--dask_npartitions=40"]),
        (["--runner=dask", "--dask_npartitions=3"], 40, ["--runner=dask", "--dask_npartitions=3"]),
        (
            ["--runner=dask", "--dask_partition_size=5"],
            40,
            ["--runner=dask", "--dask_partition_size=5"],
        ),
        (["--runner=dask"], 0, ["--runner=dask"]),
        (["--runner=FnApiRunner"], 40, ["--runner=FnApiRunner"]),
        (["--runner=PrismRunner"], 40, ["--runner=PrismRunner"]),
    ],
)
def test_dask_partitions_follow_the_work_units(
    args: list[str], units: int, expected: list[str]
) -> None:
    assert with_partitions(args, units) == expected


def test_cli_parses_dask_options_with_the_alias() -> None:
    """DaskOptions exist only once Beam's Dask runner module is imported: the CLI does so."""
    settings = parse_settings(
        ["--table", "ks.t", "--output", "/tmp/x", "--runner", "dask"]
        + ["--dask_client_address=tcp://127.0.0.1:1", "--dask_npartitions=7"]
    )
    assert settings.beam_args == [
        "--runner",
        DASK_RUNNER_PATH,
        "--dask_client_address=tcp://127.0.0.1:1",
        "--dask_npartitions=7",
    ]
    assert runner_of(settings.beam_args).name == "DaskRunner"


@pytest.mark.parametrize(
    ("module", "preset", "backend"),
    [
        ("pipeline.cli", None, "system"),
        ("pipeline.worker", None, "system"),
        ("pipeline.worker", "jemalloc", "jemalloc"),
    ],
)
def test_processes_give_arrow_the_system_allocator(
    module: str, preset: str | None, backend: str
) -> None:
    """The launcher and the local workers make Arrow allocate with the C library's
    allocator (pipeline/arrow_memory.py) before Beam imports pyarrow; a value the user
    set is kept."""
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    if preset is not None:
        env["ARROW_DEFAULT_MEMORY_POOL"] = preset
    code = f"import {module}, pyarrow; print(pyarrow.default_memory_pool().backend_name)"
    result = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert result.stdout == f"{backend}\n"


_SKIPPED_THEN_IMPORTED = """
import sys
import pipeline.cli, pipeline.restore_cli, pipeline.worker
print(sorted(m for m in ("apache_beam.io.gcp.bigquery", "requests", "urllib3") if m in sys.modules))
from apache_beam.io.gcp.bigquery import WriteToBigQuery
print(WriteToBigQuery.__module__)
"""


def test_processes_import_beam_without_its_bigquery_io_which_stays_importable() -> None:
    """Beam's optional BigQuery IO (with requests and urllib3, about 6 MB per process) is
    not loaded by the launchers or the local workers (``SKIPPED_BEAM_MODULES``), and a
    later import of it works. A fresh interpreter, so that no other test's imports count."""
    result = subprocess.run(
        [sys.executable, "-c", _SKIPPED_THEN_IMPORTED],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, result.stdout) == (0, "[]\napache_beam.io.gcp.bigquery\n"), (
        result.stderr
    )


# Run by a fresh interpreter: the two launchers' modules, then an export pipeline for a CSV
# and for a Parquet export and a restore pipeline, built and serialized as a run would
# submit them (DoFns pickled, format registry included), but not run.
_PLAN_WITHOUT_RUNNING = """
import sys
import pipeline.cli, pipeline.restore_cli
from pipeline.graph import build_pipeline
from pipeline.job import ExportJob
from pipeline.restore_graph import build_restore_pipeline
from transforms import manifest as mf
from transforms.cassandra_session import ConnectionConfig
from transforms.cassandra_write import RestoreUnit, WriteSettings
from transforms.formats import SinkConfig, check_sink
from transforms.normalize import WritetimeFilter
from transforms.restore_plan import build_restore_plan
from transforms.table_plan import build_table_plan
from transforms.token_ranges import WorkUnit

out = sys.argv[1]
args = ["--runner=FnApiRunner", "--direct_running_mode=multi_processing",
        "--direct_num_workers=2"]
columns = (("id", "int", "partition_key"), ("status", "text", "regular"))
plan = build_table_plan(keyspace="shop", table="orders", column_types=columns,
                        user_types={}, release_version="5.0.8")
connection = ConnectionConfig(hosts=("127.0.0.1",))
for fmt in ("csv", "parquet"):
    sink = SinkConfig(format=fmt)
    check_sink(sink)
    job = ExportJob(layout=mf.Layout(f"{out}/{fmt}"), plan=plan, units=[WorkUnit(0, -10, 10)],
                    work_items=[(0, -10, -10, 10)], connection=connection, sink=sink,
                    policy="max", row_filter=WritetimeFilter(), batch_size=1000,
                    checkpoint_rows=0, single_file=True, stats_chart=False, export_config={})
    build_pipeline(job, args).to_runner_api()
restore_plan = build_restore_plan(
    "shop", "orders_copy",
    [{"name": n, "cql_type": t, "kind": k} for n, t, k in columns], {}, ["status"], [])
unit = RestoreUnit("00000", f"{out}/parquet/data/part-00000.parquet", 0)
manifest = {"export_config": {"format": "parquet"}}
settings = WriteSettings(export_root=f"{out}/parquet", restore_root=f"{out}/restore")
build_restore_pipeline([unit], connection, restore_plan, manifest, settings, args).to_runner_api()
print(sorted(m for m in sys.modules if m.split(".")[0] == "pyarrow"))
"""


def test_launchers_plan_csv_and_parquet_runs_without_pyarrow(tmp_path: Path) -> None:
    """pyarrow (about 45 MB per process) is imported only where a Parquet file is written or
    read: neither the export's nor the restore's launcher loads it, not even for a Parquet
    export (the format registry imports the pyarrow side at its first call). A fresh
    interpreter, so that no other test's imports count."""
    result = subprocess.run(
        [sys.executable, "-c", _PLAN_WITHOUT_RUNNING, str(tmp_path)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, result.stdout) == (0, "[]\n"), result.stderr


# Run by a fresh interpreter: a pipeline on the local multi-process runner the exports use.
# Its first stage reports whether a worker has pyarrow loaded; the second (after the shuffle,
# so it starts when the first has ended) imports pyarrow and reports its allocator.
_WORKER_REPORT = """
import sys
import pipeline.cli
import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions
from pipeline.graph import local_runner

path = sys.argv[1]

def loaded(_):
    import os, sys
    return f"{os.getpid()} {'pyarrow' in sys.modules}"

def allocator(line):
    import os, pyarrow
    return f"{line} {os.getpid()} {pyarrow.default_memory_pool().backend_name}"

def append(line):
    with open(path, "a") as handle:
        handle.write(line + "\\n")

options = PipelineOptions(["--runner=FnApiRunner", "--direct_running_mode=multi_processing",
                           "--direct_num_workers=2"])
with beam.Pipeline(runner=local_runner(options), options=options) as p:
    _ = (p | beam.Create(range(8)) | beam.Map(loaded) | beam.Reshuffle()
         | beam.Map(allocator) | beam.Map(append))
import os
print("pyarrow" in sys.modules, os.getpid())
"""


def test_local_workers_load_pyarrow_only_when_used_with_the_system_allocator(
    tmp_path: Path,
) -> None:
    """The workers Beam's local runner starts (``pipeline.worker``, not our Dockerfile's
    environment) run without pyarrow until a step imports it, and then Arrow allocates
    with the system allocator, although the launcher's own environment does not name it."""
    env = {k: v for k, v in os.environ.items() if k != "ARROW_DEFAULT_MEMORY_POOL"}
    reports = tmp_path / "reports.txt"
    result = subprocess.run(
        [sys.executable, "-c", _WORKER_REPORT, str(reports)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr
    launcher_loaded, launcher = result.stdout.split()
    assert launcher_loaded == "False"
    reported = [line.split() for line in reports.read_text().splitlines()]
    assert len(reported) == 8
    assert {(was_loaded, backend) for _, was_loaded, _, backend in reported} == {
        ("False", "system")
    }
    pids = {pid for first, _, second, _ in reported for pid in (first, second)}
    assert launcher not in pids and len(pids) >= 1  # steps ran in the worker processes


# Run by a fresh interpreter: threads allocating at the same time (blocks of 1 KB, from
# malloc), then the number of glibc arenas as malloc_info reports them. argv[1]: the module
# imported first.
_ARENAS = """
import ctypes, importlib, sys, threading
importlib.import_module(sys.argv[1])
barrier = threading.Barrier(4)
def allocate():
    barrier.wait()
    kept = [bytes(1024) for _ in range(2000)]
threads = [threading.Thread(target=allocate) for _ in range(4)]
for thread in threads: thread.start()
for thread in threads: thread.join()
libc = ctypes.CDLL(None)
libc.open_memstream.restype = ctypes.c_void_p
buffer, size = ctypes.c_char_p(), ctypes.c_size_t()
stream = libc.open_memstream(ctypes.byref(buffer), ctypes.byref(size))
libc.malloc_info(0, ctypes.c_void_p(stream))
libc.fclose(ctypes.c_void_p(stream))
print(buffer.value.count(b"<heap nr="))
"""


@pytest.mark.parametrize(("module", "arenas"), [("pipeline.worker", 1), ("json", 5)])
def test_local_workers_allocate_from_one_malloc_arena(module: str, arenas: int) -> None:
    """A local worker's threads share glibc's main arena (``pipeline.worker``); without it
    (a module that changes nothing) each of 4 threads gets an arena of its own."""
    result = subprocess.run(
        [sys.executable, "-c", _ARENAS, module],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert (result.returncode, result.stdout) == (0, f"{arenas}\n"), result.stderr


_TRIM = """
import ctypes
from transforms.elements import trim_heap
libc = ctypes.CDLL(None)
libc.malloc.restype = ctypes.c_void_p
blocks = [libc.malloc(100_000) for _ in range(200)]  # below the mmap threshold: the heap
for block in blocks[:-1]:  # the last one stays: the free space is not at the heap's top
    libc.free(ctypes.c_void_p(block))
print(trim_heap())
"""


def test_trim_heap_gives_free_pages_back() -> None:
    """``trim_heap`` after a writer freed 20 MB in the middle of the heap gives pages back
    (glibc's malloc_trim says it released memory)."""
    result = subprocess.run(
        [sys.executable, "-c", _TRIM], cwd=REPO, capture_output=True, text=True, timeout=120
    )
    assert (result.returncode, result.stdout) == (0, "True\n"), result.stderr
