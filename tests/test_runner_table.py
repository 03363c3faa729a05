"""``pipeline.runners``: the runner table the launcher decides from (pure, no Cassandra); the
local processes' Arrow allocator (``pipeline.arrow_memory``)."""

from __future__ import annotations

import os
import subprocess
import sys

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
