"""Build the export pipeline from a resolved job (no parsing, no I/O here)."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.options.pipeline_options import DirectOptions, PipelineOptions, StandardOptions

from pipeline.job import ExportJob
from pipeline.local_runner import QuietFnApiRunner
from transforms.normalize import FilterByWritetime
from transforms.range_reader import ReadRangesFn
from transforms.restore_manifest import RecordReadStartFn
from transforms.sinks import FinalizeFn, WriteExport, takes_columns


def build_pipeline(job: ExportJob, beam_args: list[str], *, finalize: bool = True) -> beam.Pipeline:
    """Work units -> Reshuffle -> read -> filter -> commit pieces -> finalize.

    Filters and statistics use the latest of a collection's per-element writetimes, so
    rows keep those lists until the writer, which applies ``--collection-writetime``.
    ``finalize=False``: the pipeline ends with the committed pieces, and whoever waits
    for it runs :func:`transforms.sinks.finalize_export` (the launcher, on Dask).
    """
    options = PipelineOptions(beam_args)
    # Pages read as columns where the writer takes them; a row filter works on rows.
    columnar = takes_columns(job.sink, job.plan, job.policy) and not job.row_filter.active
    pipeline = beam.Pipeline(runner=local_runner(options), options=options)
    rows = (
        pipeline
        | "WorkUnits" >> beam.Create(job.work_items)
        | "Reshuffle" >> beam.Reshuffle()
        | "RecordReadStart" >> beam.ParDo(RecordReadStartFn(job.layout.root))
        | "ReadTokenRanges"
        >> beam.ParDo(
            ReadRangesFn(
                job.connection, job.plan, job.batch_size, job.checkpoint_rows, columnar=columnar
            )
        )
    )
    if job.row_filter.active:
        rows = rows | "FilterByWritetime" >> FilterByWritetime(job.plan, job.row_filter)
    pieces = rows | "WriteExport" >> WriteExport(job.plan, job.layout.root, job.sink, job.policy)
    if finalize:
        _ = (
            pieces
            | "CountPieces" >> beam.combiners.Count.Globally()
            | "Finalize"
            >> beam.ParDo(FinalizeFn(job.layout.root, job.single_file, job.stats_chart))
        )
    return pipeline


def local_runner(options: PipelineOptions) -> beam.runners.PipelineRunner | None:
    """FnApiRunner with worker processes: the quiet variant (same runner, no console noise
    from its workers); any other runner: None, Beam picks it from ``--runner``."""
    runner = options.view_as(StandardOptions).runner
    mode = options.view_as(DirectOptions).direct_running_mode
    if runner in ("FnApiRunner", "fn_api_runner") and mode == "multi_processing":
        return QuietFnApiRunner()
    return None
