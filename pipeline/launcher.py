"""Launch an export: set up logging, resolve the job (``pipeline.job``), build and run the
pipeline, report progress and a summary."""

from __future__ import annotations

import sys
import time
from typing import Any

from pipeline.config import parse_settings
from pipeline.graph import build_pipeline
from pipeline.job import prepare_export
from pipeline.logs import setup_logging
from pipeline.progress import ProgressReporter, print_summary
from pipeline.runners import runner_of, with_partitions
from transforms.rate_limit import claim_bucket
from transforms.sinks import finalize_export


def run(argv: list[str], out: Any = None) -> int:
    """Parse, plan, run and report; returns the exit code. Raises UsageError on bad input."""
    out = out or sys.stdout
    settings = parse_settings(argv)
    setup_logging(settings["log_level"])
    job = prepare_export(settings)
    for warning in job.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if job.already_complete:
        print(
            f"the export in {job.layout.root} is already complete "
            f"({job.rows_already_done:,} rows in {job.pieces_already_done} parts); nothing to do",
            file=out,
        )
        return 0
    runner = runner_of(settings.beam_args)
    # Dask parallelizes by how Create is partitioned: one work unit per partition.
    beam_args = with_partitions(settings.beam_args, len(job.work_items))
    pipeline = build_pipeline(job, beam_args, finalize=not runner.finalize_in_launcher)
    detached = runner.detached
    claim = claim_bucket(job.connection.rate_limit)  # and old launches' left behind
    reporter = None
    if not detached and settings["progress_interval"] > 0:
        reporter = ProgressReporter(job, settings["progress_interval"], sys.stderr)
        reporter.start()
    started = time.monotonic()
    try:
        result = pipeline.run()
        if detached:
            print(
                f"submitted: the job writes {job.layout.root} and marks it done with _SUCCESS",
                file=out,
            )
            return 0
        result.wait_until_finish()
        if runner.finalize_in_launcher:
            finalize_export(
                job.layout.root, single_file=job.single_file, stats_chart=job.stats_chart
            )
    finally:
        if reporter is not None:
            reporter.stop()
        claim.release()
    print_summary(job, time.monotonic() - started, out)
    return 0
