"""Build the restore pipeline from a resolved job (no parsing, no I/O here)."""

from __future__ import annotations

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.graph import _local_runner
from pipeline.restore_launcher import RestoreJob
from transforms.cassandra_write import RestoreUnitsFn


def build_restore_pipeline(job: RestoreJob, beam_args: list[str]) -> beam.Pipeline:
    """Export unit files -> Reshuffle (so any runner spreads them) -> write each, mark it done."""
    options = PipelineOptions(beam_args)
    pipeline = beam.Pipeline(runner=_local_runner(options), options=options)
    _ = (
        pipeline
        | "ExportUnits" >> beam.Create(job.units)
        | "Reshuffle" >> beam.Reshuffle()
        | "RestoreUnits"
        >> beam.ParDo(RestoreUnitsFn(job.connection, job.plan, job.manifest, job.write))
    )
    return pipeline
