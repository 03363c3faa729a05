"""Build the restore pipeline from resolved values (no parsing, no I/O here)."""

from __future__ import annotations

from typing import Any

import apache_beam as beam
from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.graph import local_runner
from transforms.cassandra_session import ConnectionConfig
from transforms.cassandra_write import RestoreExportUnits, RestoreUnit, WriteSettings
from transforms.restore_plan import RestorePlan


def build_restore_pipeline(
    units: list[RestoreUnit],
    connection: ConnectionConfig,
    plan: RestorePlan,
    manifest: dict[str, Any],
    write: WriteSettings,
    beam_args: list[str],
) -> beam.Pipeline:
    """Export unit files -> Reshuffle -> write each, mark it done."""
    options = PipelineOptions(beam_args)
    pipeline = beam.Pipeline(runner=local_runner(options), options=options)
    _ = (
        pipeline
        | "ExportUnits" >> beam.Create(units)
        | "Restore" >> RestoreExportUnits(connection, plan, manifest, write)
    )
    return pipeline
