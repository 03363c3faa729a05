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
from pipeline.runners import is_detached, with_partitions


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
    # Dask parallelizes by how Create is partitioned: one work unit per partition.
    pipeline = build_pipeline(job, with_partitions(settings.beam_args, len(job.work_items)))
    detached = is_detached(settings.beam_args)
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
    finally:
        if reporter is not None:
            reporter.stop()
    print_summary(job, time.monotonic() - started, out)
    return 0
