"""The resolved export job: everything the pipeline needs, built once from the settings
and the live cluster (a new export) or from the manifest (a resume).

On success the output directory holds ``_manifest/export.json``; on bad input nothing
that could pass for an export is written (UsageError, exit 2).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from pipeline import validation
from pipeline.config import Settings
from pipeline.connect_errors import connect_or_explain
from pipeline.export_record import export_config, export_record, stored_row_filter
from pipeline.options import UsageError
from pipeline.resume import resumed_settings
from pipeline.runners import auto_layout, loses_checkpoint_residuals, runner_of, worker_count
from transforms import manifest as mf
from transforms.cassandra_schema import (
    TableNotFound,
    describe_table,
    estimated_bytes,
    partitions_per_range,
    plan_described_table,
    ring_tokens,
)
from transforms.cassandra_session import ConnectionConfig
from transforms.formats import SinkConfig
from transforms.normalize import WritetimeFilter
from transforms.restore_manifest import export_schema
from transforms.table_plan import PlanError, TablePlan
from transforms.token_ranges import (
    WorkUnit,
    auto_splits,
    check_exact_cover,
    make_work_units,
    plan_ranges,
)


@dataclass
class ExportJob:
    """Everything the pipeline needs, resolved."""

    layout: mf.Layout
    plan: TablePlan
    units: list[WorkUnit]
    work_items: list[tuple[int, int, int, int]]
    connection: ConnectionConfig
    sink: SinkConfig
    policy: str
    row_filter: WritetimeFilter
    batch_size: int
    checkpoint_rows: int
    single_file: bool
    stats_chart: bool
    export_config: dict[str, Any]
    pieces_already_done: int = 0
    rows_already_done: int = 0
    already_complete: bool = False
    warnings: list[str] = field(default_factory=list)


def prepare_export(settings: Settings) -> ExportJob:
    """Validate and plan; on success the output directory holds export.json."""
    runner = runner_of(settings.beam_args)
    if runner.drops_deferred_work and settings.get("checkpoint_rows"):
        if "checkpoint_rows" in settings.explicit:
            raise UsageError(
                "--checkpoint-rows cannot be used with the Dask runner: Beam's DaskRunner "
                "drops the rest of a work unit that a checkpoint hands back, so those rows "
                "would be lost; leave it out (Dask spreads the work units over partitions "
                "instead: --splits sets how many)"
            )
    output = validation.output_directory(settings)
    layout = mf.Layout(output)
    if settings.get("resume"):
        job = _prepare_resume(settings, layout)
    else:
        job = _prepare_new(settings, layout)
    job.warnings.extend(validation.unused_format_options(settings))
    if job.checkpoint_rows and runner.drops_deferred_work:
        # Recorded by the run being resumed (on another runner): read units whole here.
        job.checkpoint_rows = 0
        job.warnings.append(
            "--checkpoint-rows recorded by the export is ignored on the Dask runner: it would "
            "drop the rest of every checkpointed work unit"
        )
    elif job.checkpoint_rows and loses_checkpoint_residuals(settings.beam_args):
        # FnApiRunner's ParallelBundleManager drops the residuals of self-checkpointed
        # restrictions (defer_remainder), so the rest of every checkpointed unit would be
        # lost (Finalize then fails on the gap). Pieces only help rebalancing: read units whole.
        job.checkpoint_rows = 0
        job.warnings.append(
            "--checkpoint-rows is ignored with --direct_num_workers other than 1: Beam's local "
            "runner loses the work a checkpoint hands back when it runs several workers"
        )
    return job


def _job(
    settings: Settings,
    layout: mf.Layout,
    plan: TablePlan,
    units: list[WorkUnit],
    connection: ConnectionConfig,
    sink: SinkConfig,
    row_filter: WritetimeFilter,
    config: dict[str, Any],
    *,
    stats_chart: bool,
    markers: list[dict[str, Any]] | None = None,
) -> ExportJob:
    """The one ExportJob construction: the work items are the units, or on resume the
    token ranges the committed ``markers`` leave."""
    work = (
        mf.remaining_work(units, markers)
        if markers is not None
        else [(u.unit_id, u.start, u.start, u.end) for u in units]
    )
    markers = markers or []
    return ExportJob(
        layout=layout,
        plan=plan,
        units=units,
        work_items=work,
        connection=connection,
        sink=sink,
        policy=settings["collection_writetime"],
        row_filter=row_filter,
        batch_size=settings["batch_size"],
        checkpoint_rows=settings["checkpoint_rows"],
        single_file=bool(settings["single_file"]),
        stats_chart=stats_chart,
        export_config=config,
        pieces_already_done=len(markers),
        rows_already_done=sum(int(m["rows"]) for m in markers),
        warnings=list(plan.warnings),
    )


def _plan_from_cluster(
    settings: Settings, connection: ConnectionConfig
) -> tuple[TablePlan, list[int], dict[tuple[int, int], int], dict[str, Any]]:
    """The column plan from the live schema, with the ring's tokens, size estimates and the
    schema block restore needs (CQL types, UDTs, CREATE statements). Without a layout named
    by the user, ``settings.beam_args`` get the one the table's size calls for."""
    keyspace, table = validation.split_table(settings)
    cluster, session = connect_or_explain(connection)
    try:
        try:
            described = describe_table(cluster, session, keyspace, table)
        except TableNotFound as exc:
            raise UsageError(str(exc)) from None
        try:
            plan = plan_described_table(
                described,
                columns=settings.get("columns"),
                writetime_columns=settings.get("writetime_columns"),
                ttl_columns=settings.get("ttl_columns"),
                writetime_suffix=settings["writetime_suffix"],
                ttl_suffix=settings["ttl_suffix"],
            )
        except PlanError as exc:
            raise UsageError(str(exc)) from None
        tokens = ring_tokens(cluster)
        estimates = partitions_per_range(session, described.keyspace, described.table)
        schema = export_schema(cluster, described.keyspace, described.table, plan)
        if not settings.layout_named:
            size = estimated_bytes(session, described.keyspace, described.table)
            settings.beam_args = auto_layout(settings.beam_args, size, settings["checkpoint_rows"])
        return plan, tokens, estimates, schema
    finally:
        cluster.shutdown()


def _prepare_new(settings: Settings, layout: mf.Layout) -> ExportJob:
    if not mf.is_empty_dir(layout.root) and not settings.get("overwrite"):
        hint = (
            "; it holds an export: continue it with --resume"
            if mf.exists(layout.export_json)
            else ""
        )
        raise UsageError(
            f"--output {layout.root} is not empty{hint}; use --overwrite to replace what it "
            "holds, or choose another directory"
        )
    sink = validation.sink_config(settings)
    incremental_after, origin = validation.incremental_start(settings)
    row_filter = validation.row_filter(settings, incremental_after)
    connection = validation.connection_config(settings)
    plan, tokens, estimates, schema = _plan_from_cluster(settings, connection)
    validation.check_incremental_table(origin, f"{plan.keyspace}.{plan.table}")
    connection = validation.connection_config(settings)  # the rate limit of that layout
    if (row_filter.after is not None or row_filter.before is not None) and not (
        plan.writetime_columns
    ):
        raise UsageError(
            "a writetime filter needs writetime columns, but --writetime-columns selects none"
        )
    if row_filter.ttl_expiring_before is not None and not plan.ttl_columns:
        raise UsageError("--ttl-expiring-before needs TTL columns: add --ttl-columns '*'")
    workers = worker_count(settings.beam_args)
    splits = settings["splits"] or auto_splits(tokens, estimates, workers)
    units = make_work_units(plan_ranges(tokens, splits, estimates))
    config = export_config(settings, plan, workers)
    if settings.get("overwrite") and not mf.is_empty_dir(layout.root):
        mf.delete_tree(layout.root)
    record = export_record(
        started_micros=time.time_ns() // 1000,
        plan=plan,
        units=units,
        config=config,
        row_filter=row_filter,
        incremental_from=origin,
        schema=schema,
    )
    try:
        mf.write_json(layout.export_json, record)
    except Exception as exc:
        raise UsageError(f"--output {layout.root}: cannot write there ({exc})") from None
    return _job(
        settings,
        layout,
        plan,
        units,
        connection,
        sink,
        row_filter,
        config,
        stats_chart=bool(settings["stats_chart"]),
    )


def _prepare_resume(settings: Settings, layout: mf.Layout) -> ExportJob:
    try:
        manifest = mf.load_export(layout)
        markers = mf.read_markers(layout)
    except mf.ManifestError as exc:
        raise UsageError(f"--resume: {exc}") from None
    merged = resumed_settings(settings, dict(manifest["export_config"].get("options", {})))
    try:
        plan = TablePlan.from_json(manifest["plan"])
        units = [WorkUnit.from_json(u) for u in manifest["units"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"--resume: {layout.export_json} is malformed ({exc})") from None
    sink = validation.sink_config(merged)
    try:
        row_filter = stored_row_filter(manifest)
    except ValueError as exc:
        raise UsageError(f"--resume: {layout.export_json}: {exc}") from None
    connection = validation.connection_config(merged)
    cluster, session = connect_or_explain(connection)
    try:
        try:
            describe_table(cluster, session, plan.keyspace, plan.table)
        except TableNotFound as exc:
            raise UsageError(f"--resume: {exc}") from None
    finally:
        cluster.shutdown()
    covered = mf.completed_ranges(markers)
    problems = [p for p in check_exact_cover(covered) if p.startswith("overlap")]
    if problems:
        raise UsageError(
            f"--resume: the committed ranges in {layout.ranges_dir} overlap ({problems[0]}); "
            "the manifest was changed by hand, start a new export with --overwrite"
        )
    job = _job(
        merged,
        layout,
        plan,
        units,
        connection,
        sink,
        row_filter,
        manifest["export_config"],
        stats_chart=bool(settings["stats_chart"]),
        markers=markers,
    )
    job.already_complete = not job.work_items and mf.exists(layout.success)
    if not job.already_complete:
        mf.delete_files(mf.orphan_files(layout, markers))
        if mf.exists(layout.success):
            mf.delete_files([layout.success])
    return job
