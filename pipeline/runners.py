"""The Beam runners the exporter knows, in one table: where the workers run, whether the
launcher waits for the job, and which option sets the number of workers.

Everything the launcher decides from ``--runner`` is decided here, from this table.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from apache_beam.options.pipeline_options import (
    DirectOptions,
    PipelineOptions,
    PortableOptions,
    StandardOptions,
)

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
        drops_deferred_work: the rest a DoFn hands back is dropped even with one worker
            (Beam's DaskRunner runs a restriction once, whole, and reports success):
            ``--checkpoint-rows`` is refused there.
        partitions_option: the option that spreads the work units over parallel tasks
            when the runner does not do so itself (set from the unit count unless given).
        finalize_in_launcher: the job ends with the committed pieces and the launcher runs
            Finalize once it has waited for them. On Dask the pipeline's global count is a
            GroupByKey, a task shuffle whose cost grows faster than the partition count
            (measured: 100 partitions 14 s, 200 41 s, 400 103 s); without it the job is
            Create -> read -> commit, one independent task per partition.
    """

    name: str
    local: bool
    detached: bool
    workers_option: str
    keeps_checkpoint_residuals: bool = True
    drops_deferred_work: bool = False
    partitions_option: str | None = None
    finalize_in_launcher: bool = False


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
    # Dask: only Create, ParDo, GroupByKey and Flatten are translated (Reshuffle passes
    # through), so parallelism comes from how Create is partitioned; no Beam metrics.
    Runner(
        "DaskRunner",
        False,
        False,
        "--num_workers",
        keeps_checkpoint_residuals=False,
        drops_deferred_work=True,
        partitions_option="--dask_npartitions",
        finalize_in_launcher=True,
    ),
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

# Options that name where the work runs: with none of them the export picks the layout.
LAYOUT_OPTIONS = ("--runner", "--direct_running_mode", *WORKER_COUNT_OPTIONS)

# Up to this estimated table size (about 500,000 rows of a narrow table) an export without a
# named layout runs in-process: starting worker processes costs about 2 s and 2.3 CPU-s,
# more than a second worker saves on a table this small.
LIGHT_START_MAX_BYTES = 32 * 2**20

# Beam knows its DaskRunner only by its class path; ``--runner dask`` names it here.
DASK_RUNNER_PATH = "apache_beam.runners.dask.dask_runner.DaskRunner"
_ALIASES = {"dask": DASK_RUNNER_PATH, "daskrunner": DASK_RUNNER_PATH}

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


def resolve_runner_alias(args: list[str]) -> list[str]:
    """``args`` with ``--runner dask`` (or ``DaskRunner``) replaced by the class path Beam
    needs; every other argument unchanged."""
    resolved = list(args)
    for i, arg in enumerate(resolved):
        if arg.startswith("--runner="):
            name = arg.split("=", 1)[1]
            resolved[i] = "--runner=" + _ALIASES.get(name.lower(), name)
        elif arg == "--runner" and i + 1 < len(resolved):
            resolved[i + 1] = _ALIASES.get(resolved[i + 1].lower(), resolved[i + 1])
    return resolved


def mentions_dask(args: list[str]) -> bool:
    """Whether ``args`` use Dask (its runner or a ``--dask_*`` option): Beam's DaskOptions
    must then be registered (by importing its runner module) before the options are parsed."""
    for i, arg in enumerate(args):
        if arg.startswith("--dask_"):
            return True
        value = arg.split("=", 1)[1] if arg.startswith("--runner=") else None
        if arg == "--runner" and i + 1 < len(args):
            value = args[i + 1]
        if value is not None and value.lower() in (*_ALIASES, DASK_RUNNER_PATH.lower()):
            return True
    return False


def with_partitions(beam_args: list[str], work_items: int) -> list[str]:
    """``beam_args`` plus the runner's partitions option set to ``work_items`` (one work
    unit per task, so every worker gets units), unless that option or Dask's
    ``--dask_partition_size`` is given, or there is nothing to spread."""
    option = runner_of(beam_args).partitions_option
    if option is None or work_items < 1:
        return list(beam_args)
    given = (option, "--dask_partition_size")
    if any(a == o or a.startswith(o + "=") for a in beam_args for o in given):
        return list(beam_args)
    return [*beam_args, f"{option}={work_items}"]


def names_layout(args: list[str]) -> bool:
    """Whether ``args`` name a runner or a worker layout (a config file's options included)."""
    return any(a == o or a.startswith(o + "=") for a in args for o in LAYOUT_OPTIONS)


def auto_layout(
    beam_args: list[str], estimated_bytes: int | None, checkpoint_rows: int
) -> list[str]:
    """The layout of an export whose user named none: FnApiRunner in-process, one worker
    (no worker processes to start) for a table estimated under ``LIGHT_START_MAX_BYTES``,
    of unknown size, or read with ``--checkpoint-rows`` (which needs one worker); one worker
    process per core otherwise."""
    cores = os.cpu_count() or 1
    if estimated_bytes is None or estimated_bytes < LIGHT_START_MAX_BYTES:
        return list(beam_args)
    if checkpoint_rows or cores < 2:
        return list(beam_args)
    return [*beam_args, "--direct_running_mode=multi_processing", f"--direct_num_workers={cores}"]


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


# Worker environments that run the SDK workers as processes of this machine (sharing its
# temporary directory); DOCKER and EXTERNAL ones may not.
_HOST_ENVIRONMENTS = ("LOOPBACK", "PROCESS")


def workers_share_machine(beam_args: list[str]) -> bool:
    """Whether every worker runs on the launcher's machine as a process that sees its
    temporary directory, so that all can take rows from one rate-limit bucket: a local
    runner (any running mode) in its default, LOOPBACK or PROCESS environment, or Dask with
    no scheduler named (the runner then starts a cluster here). A named Dask scheduler may
    have workers anywhere, even at a loopback address (an SSH tunnel), so it does not."""
    runner = runner_of(beam_args)
    if runner.name == "DaskRunner":
        return not any(a.startswith("--dask_client_address") for a in beam_args)
    environment = PipelineOptions(beam_args).view_as(PortableOptions).environment_type
    return runner.local and (not environment or environment.upper() in _HOST_ENVIRONMENTS)


def loses_checkpoint_residuals(beam_args: list[str]) -> bool:
    """Whether ``--checkpoint-rows`` would lose rows: a runner that drops the rest a DoFn
    hands back, running more than one worker."""
    runner = runner_of(beam_args)
    if runner.drops_deferred_work:
        return True
    if runner.keeps_checkpoint_residuals:
        return False
    workers = PipelineOptions(beam_args).view_as(DirectOptions).direct_num_workers
    count = (os.cpu_count() or 1) if workers == 0 else max(1, int(workers or 1))
    return count > 1


def _executing_threads(dask_worker: Any) -> int:
    """Run on each Dask worker: how many of its threads execute a task now."""
    return len(dask_worker.active_threads)


def dask_tasks_executing(beam_args: list[str]) -> int:
    """Tasks the workers of the Dask cluster named in ``beam_args`` execute right now (0 if
    no scheduler is named: the cluster the runner then starts ends with the launcher).

    A launcher killed mid-run leaves its job to the scheduler: tasks it had started keep
    running on their workers (a thread cannot be stopped) although the scheduler forgets
    them at once, so only the workers can tell."""
    from apache_beam.runners.dask.dask_runner import DaskOptions

    options = PipelineOptions(beam_args).view_as(DaskOptions)
    if not options.address and not options.scheduler_file:
        return 0
    from distributed import Client

    with Client(
        options.address,
        scheduler_file=options.scheduler_file,
        timeout=options.timeout if isinstance(options.timeout, int) else 30,
        set_as_default=False,
    ) as client:
        return sum(client.run(_executing_threads).values())
