"""The Beam runners the exporter knows, in one table: where the workers run, whether the
launcher waits for the job, and which option sets the number of workers.

Everything the launcher decides from ``--runner`` is decided here, from this table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from pipeline.options import UsageError


@dataclass(frozen=True)
class Runner:
    """What the launcher needs to know about one Beam runner.

    Attributes:
        name: Beam's name for it (``--runner`` value).
        local: the workers run inside or beside the launcher, on this machine.
        detached: the launcher submits the job and returns; the job then runs on its own
            (its last step, Finalize, still marks the export done). Every other runner
            is waited for, with progress lines, because its workers (LOOPBACK ones, a
            Dask client) stop with the launcher.
        workers_option: the Beam option that sets the number of parallel workers.
        keeps_checkpoint_residuals: a DoFn that hands back the rest of its restriction
            (``--checkpoint-rows``) gets that rest read later. Beam's local runner loses it
            when it runs several workers, so the launcher turns checkpoints off there.
    """

    name: str
    local: bool
    detached: bool
    workers_option: str
    keeps_checkpoint_residuals: bool = True


# Beam's local runner (FnApiRunner's ParallelBundleManager) drops checkpoint residuals.
RUNNERS: tuple[Runner, ...] = (
    Runner("FnApiRunner", True, False, "--direct_num_workers", keeps_checkpoint_residuals=False),
    Runner("DirectRunner", True, False, "--direct_num_workers", keeps_checkpoint_residuals=False),
    Runner(
        "SwitchingDirectRunner",
        True,
        False,
        "--direct_num_workers",
        keeps_checkpoint_residuals=False,
    ),
    Runner("PrismRunner", True, False, "--parallelism"),
    Runner("PortableRunner", False, False, "--parallelism"),
    Runner("FlinkRunner", False, False, "--parallelism"),
    Runner("SparkRunner", False, False, "--parallelism"),
    Runner("DaskRunner", False, False, "--num_workers"),
    Runner("DataflowRunner", False, True, "--max_num_workers"),
    Runner("TestDataflowRunner", False, True, "--max_num_workers"),
)

# Every option that sets a worker count, looked for in this order (the first one given wins).
WORKER_COUNT_OPTIONS = (
    "--direct_num_workers",
    "--parallelism",
    "--max_num_workers",
    "--num_workers",
)

_BY_KEY = {r.name.lower().removesuffix("runner"): r for r in RUNNERS}
# A runner this table does not know: waited for like a portable runner, workers elsewhere.
_UNKNOWN = Runner("(other)", False, False, "--parallelism")


def runner_of(beam_args: list[str]) -> Runner:
    """The table entry of ``--runner`` in ``beam_args`` (default: FnApiRunner, the
    exporter's local runner). A dotted class path names the runner by its class name."""
    runner = PipelineOptions(beam_args).view_as(StandardOptions).runner or "FnApiRunner"
    key = str(runner).rsplit(".", 1)[-1].lower().removesuffix("runner")
    if key in ("fn_api_", "fn_api"):
        key = "fnapi"
    return _BY_KEY.get(key, _UNKNOWN)


def is_detached(beam_args: list[str]) -> bool:
    """Whether the launcher only submits the job (Dataflow) instead of waiting for it."""
    return runner_of(beam_args).detached


def worker_count(beam_args: list[str]) -> int:
    """Workers the job runs with, from the first worker-count option given (else 1); the
    read rate limit is split over them. Raises UsageError on a value that is no integer."""
    for name in WORKER_COUNT_OPTIONS:
        for i, arg in enumerate(beam_args):
            value = None
            if arg.startswith(name + "="):
                value = arg.split("=", 1)[1]
            elif arg == name and i + 1 < len(beam_args):
                value = beam_args[i + 1]
            if value is not None:
                try:
                    workers = int(value)
                    # Beam reads 0 as "one worker per CPU".
                    return max(1, workers if workers > 0 else (os.cpu_count() or 1))
                except ValueError:
                    raise UsageError(f"{name}: {value!r} is not an integer") from None
    return 1


def loses_checkpoint_residuals(beam_args: list[str]) -> bool:
    """Whether ``--checkpoint-rows`` would lose rows: a runner that drops the rest a DoFn
    hands back, running more than one worker."""
    runner = runner_of(beam_args)
    if runner.keeps_checkpoint_residuals:
        return False
    workers = PipelineOptions(beam_args).view_as(DirectOptions).direct_num_workers
    count = (os.cpu_count() or 1) if workers == 0 else max(1, int(workers or 1))
    return count > 1
