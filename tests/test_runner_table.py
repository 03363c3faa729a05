"""``pipeline.runners``: the runner table the launcher decides from (pure, no Cassandra)."""

from __future__ import annotations

import os

import pytest

from pipeline.options import UsageError
from pipeline.runners import is_detached, loses_checkpoint_residuals, runner_of, worker_count


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
    ],
)
def test_checkpoint_residuals_lost_only_by_the_local_runner_with_workers(
    args: list[str], loses: bool
) -> None:
    assert loses_checkpoint_residuals(args) is loses
