"""Launch a restore: validate the export and the target, plan the units still to do, run the
pipeline, report progress and a summary."""

from __future__ import annotations

import logging
import os
import posixpath
import re
import sys
import threading
import time
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import Settings, parse_settings
from pipeline.options import UsageError
from pipeline.restore_graph import build_restore_pipeline
from pipeline.restore_options import RESTORE_OPTION_SPECS, restore_parser
from pipeline.restore_target import (
    prepare_target,
    refuse_redo_beside_running_tasks,
    target_name,
)
from pipeline.runners import runner_of, with_partitions
from transforms import manifest as mf
from transforms.cassandra_session import ConnectionConfig
from transforms.cassandra_write import RestoreUnit, WriteSettings
from transforms.normalize import parse_time_micros
from transforms.rate_limit import claim_bucket
from transforms.restore_manifest import RestoreLayout, read_starts
from transforms.restore_plan import RestorePlan, build_restore_plan

_MARKER_NAME = r"^\d{5,}(?:\.s\d+)?\.json$"
_MAX_WRITETIME = 2**63 - 1


@dataclass
class RestoreJob:
    """Everything the restore pipeline needs, resolved."""

    export_layout: mf.Layout
    restore_layout: RestoreLayout
    manifest: dict[str, Any]
    plan: RestorePlan
    connection: ConnectionConfig
    write: WriteSettings
    units: list[RestoreUnit]
    units_total: int
    already_done: dict[str, dict[str, Any]] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    @property
    def target(self) -> str:
        return f"{self.plan.keyspace}.{self.plan.table}"


def _schema(manifest: dict[str, Any]) -> dict[str, Any]:
    """The recorded schema; exports made before it was recorded give columns and UDTs only."""
    schema = manifest.get("schema")
    if schema:
        return schema
    plan = manifest["plan"]
    return {
        "keyspace": plan["keyspace"],
        "table": plan["table"],
        "columns": [
            {"name": c["name"], "cql_type": c["type"], "kind": c["kind"]} for c in plan["columns"]
        ],
        "types": {
            name: [list(p) for p in zip(fields, types, strict=True)]
            for name, (fields, types) in plan.get("user_types", {}).items()
        },
    }


def _export_units(
    layout: mf.Layout, manifest: dict[str, Any], warnings: list[str]
) -> list[RestoreUnit]:
    """One unit per committed export piece (its marker), with the time its read started."""
    try:
        starts = read_starts(layout)
    except mf.ManifestError as exc:  # a read stamp that is not what the export writes
        raise UsageError(f"--input: {exc}") from None
    unstamped = 0
    fallback = int(manifest["started_at_micros"])
    data_files = {posixpath.basename(p.replace("\\", "/")) for p in mf.list_files(layout.data_dir)}
    units = []
    for path in mf.list_files(layout.ranges_dir, "*.json"):
        name = posixpath.basename(path.replace("\\", "/"))
        if not re.match(_MARKER_NAME, name):
            continue
        try:
            marker = mf.read_json(path)
            file_name, unit_id = str(marker["file"]), int(marker["unit_id"])
        except (KeyError, TypeError, ValueError):
            raise UsageError(f"--input: marker {path} is malformed") from None
        if file_name not in data_files:
            raise UsageError(
                f"--input: {mf.join(layout.data_dir, file_name)} of committed unit "
                f"{name[:-5]} is missing: the export is damaged"
            )
        unstamped += unit_id not in starts
        units.append(
            RestoreUnit(
                stem=name[: -len(".json")],
                path=mf.join(layout.data_dir, file_name),
                read_started_micros=starts.get(unit_id, fallback),
                expected_rows=int(marker["rows"]) if "rows" in marker else None,
            )
        )
    if unstamped:
        warnings.append(
            f"{unstamped} export units record no read time (exported before restore "
            "existed): their TTLs count from the export's start, so those cells may expire "
            "earlier than on the source by up to the export's duration"
        )
    return units


def _fixed_timestamp(settings: Settings, recorded: dict[str, Any] | None) -> int | None:
    """``--timestamp`` in microseconds, checked even where a resume keeps its first run's."""
    text = settings.get("timestamp")
    micros = time.time_ns() // 1000 if str(text).strip().lower() == "now" else None
    if text and micros is None:
        try:
            micros = parse_time_micros(text)
        except ValueError as exc:
            raise UsageError(f"--timestamp: {exc}") from None
        if not -_MAX_WRITETIME <= micros <= _MAX_WRITETIME:  # Cassandra reserves the minimum
            raise UsageError(
                f"--timestamp: {micros} microseconds is outside the range of a writetime "
                f"({-_MAX_WRITETIME} to {_MAX_WRITETIME})"
            )
    if recorded is not None and recorded.get("fixed_timestamp_micros") is not None:
        return int(recorded["fixed_timestamp_micros"])
    return micros


def prepare_restore(settings: Settings) -> RestoreJob:
    """Validate the export and the target; on success the restore manifest holds restore.json."""
    source, layout, manifest = _load_export(settings)
    schema = _schema(manifest)
    keyspace, table = target_name(settings, schema)
    export_plan = manifest["plan"]
    policy = manifest["export_config"].get("collection_writetime", "max")
    restore_layout = RestoreLayout.for_target(
        source, f"{keyspace}.{table}", settings.get("restore_log")
    )
    recorded = _recorded_run(settings, restore_layout)
    plan = build_restore_plan(
        keyspace,
        table,
        schema["columns"],
        schema.get("types", {}),
        export_plan["writetime_columns"],
        export_plan["ttl_columns"],
        _fixed_timestamp(settings, recorded),
    )
    warnings = _check_plan(settings, plan, policy)
    units = _export_units(layout, manifest, warnings)
    redo_all = bool(settings["overwrite"])
    # An incremental export repeats rows of its base: their lists are checked as in a redo.
    read_lists = redo_all or bool(manifest.get("incremental_from"))
    connection = prepare_target(settings, plan, schema, restore_layout, read_lists)
    done = _done_before(settings, restore_layout, recorded, plan, len(units))
    todo = [
        RestoreUnit(u.stem, u.path, u.read_started_micros, read_lists, u.expected_rows)
        for u in units
        if u.stem not in done
    ]
    if runner_of(settings.beam_args).name == "DaskRunner":
        # Before --overwrite forgets the earlier run's markers: a refusal leaves them all.
        refuse_redo_beside_running_tasks(
            restore_layout, todo, f"{keyspace}.{table}", settings.beam_args
        )
    if recorded is None or redo_all:
        _start_run(source, restore_layout, plan, policy, forget_earlier=redo_all)
    return RestoreJob(
        export_layout=layout,
        restore_layout=restore_layout,
        # The decoder reads types from the schema block; older exports get one derived
        # from their column plan.
        manifest=dict(manifest, schema=schema),
        plan=plan,
        connection=connection,
        write=WriteSettings(
            export_root=source,
            restore_root=restore_layout.root,
            max_batch_statements=settings["batch_statements"],
            max_batch_partitions=settings["batch_partitions"],
            max_in_flight=settings["max_in_flight"],
            retries=settings["retries"],
        ),
        units=todo,
        units_total=len(units),
        already_done=done,
        warnings=warnings,
    )


def _load_export(settings: Settings) -> tuple[str, mf.Layout, dict[str, Any]]:
    """``--input``, its layout and its ``export.json``; refused if unfinished without
    ``--allow-partial``."""
    source = settings.get("input")
    if not source:
        raise UsageError("--input EXPORT is required: the directory cassandra-export wrote")
    layout = mf.Layout(source)
    try:
        manifest = mf.load_export(layout)
    except mf.ManifestError as exc:
        raise UsageError(f"--input: {exc}") from None
    if not mf.exists(layout.success) and not settings["allow_partial"]:
        raise UsageError(
            f"--input: the export in {source} is not finished (no _SUCCESS): finish it with "
            f"cassandra-export --resume {source}, or restore its committed units with "
            "--allow-partial"
        )
    return source, layout, manifest


_DAMAGED = ": the restore manifest is damaged; restore every unit again with --overwrite"


def _recorded_run(settings: Settings, restore_layout: RestoreLayout) -> dict[str, Any] | None:
    """restore.json of an earlier run, if any. A damaged one is bad input, except under
    ``--overwrite``, which starts the run anew and rewrites it; none is under ``--resume``
    (a new run would rewrite the units of a run kept in another log: lists twice)."""
    if not mf.exists(restore_layout.run_json):
        if settings["resume"] and not settings["overwrite"]:
            raise UsageError(
                f"--resume: no restore was started with its manifest in {restore_layout.root}, "
                "so there is nothing to resume: give the --restore-log DIR the earlier run "
                "used, or leave out --resume to start a new restore"
            )
        return None
    try:
        return mf.read_json(restore_layout.run_json)
    except mf.ManifestError as exc:
        if settings["overwrite"]:
            return None
        raise UsageError(f"{exc}{_DAMAGED}") from None


def _done_before(
    settings: Settings,
    restore_layout: RestoreLayout,
    recorded: dict[str, Any] | None,
    plan: RestorePlan,
    units_total: int,
) -> dict[str, dict[str, Any]]:
    """The done markers of the units this run skips (none with ``--overwrite``). An
    unfinished earlier restore needs ``--resume`` (continue it) or ``--overwrite`` (forget
    it: :func:`_start_run`). Reads only."""
    if recorded is None or settings["overwrite"]:
        return {}
    try:
        done = restore_layout.done_markers()
    except mf.ManifestError as exc:
        raise UsageError(f"{exc}{_DAMAGED}") from None
    if len(done) < units_total and not settings["resume"]:
        raise UsageError(
            f"a restore of {settings['input']} into {plan.keyspace}.{plan.table} was started "
            f"and did not finish ({len(done)} of {units_total} units done): continue it with "
            "--resume, or restore every unit again with --overwrite"
        )
    return done


def _start_run(
    source: str,
    restore_layout: RestoreLayout,
    plan: RestorePlan,
    policy: str,
    *,
    forget_earlier: bool,
) -> None:
    """Write restore.json anew; ``forget_earlier`` (``--overwrite``) first deletes the
    earlier run's markers, so that every unit is restored again."""
    if forget_earlier:
        mf.delete_files(mf.list_files(restore_layout.root, "*.json"))
    _write_run_record(source, restore_layout, plan, policy)


def _write_run_record(
    source: str, restore_layout: RestoreLayout, plan: RestorePlan, policy: str
) -> None:
    """restore.json: what this restore is (export, target, start, fixed timestamp, policy)."""
    mf.ensure_dir(restore_layout.root)
    try:
        mf.write_json(
            restore_layout.run_json,
            {
                "export": source if "://" in source else os.path.abspath(source),
                "target": f"{plan.keyspace}.{plan.table}",
                "started_at_micros": time.time_ns() // 1000,
                "fixed_timestamp_micros": plan.fixed_timestamp,
                "collection_writetime": policy,
            },
        )
    except Exception as exc:
        raise UsageError(
            f"cannot write the restore manifest in {restore_layout.root} ({exc}); if the "
            "export is read-only, give --restore-log DIR"
        ) from None


def _check_plan(settings: Settings, plan: RestorePlan, policy: str) -> list[str]:
    """Refuse what would restore silently wrong; warn about what the export did not keep."""
    if plan.is_counter_table and settings.get("counters") != "add":
        raise UsageError(
            f"{plan.keyspace}.{plan.table} is a counter table: counters cannot be written with "
            "a timestamp, only incremented; give --counters add to add the exported values "
            "(a redone unit adds its rows again: see docs/restore.md)"
        )
    without = [c.name for c in plan.data_columns if not c.counter and not c.has_writetime]
    if without and plan.fixed_timestamp is None:
        raise UsageError(
            "the export has no writetime for column(s) "
            + ", ".join(without)
            + ": give --timestamp now or --timestamp T to say which writetime they get"
        )
    warnings = []
    if without:
        # Said even though --timestamp was asked for: an export from Cassandra 4.x has
        # writetimes for most columns but none for its non-frozen collections and UDTs.
        warnings.append(
            f"the export has no writetime for {', '.join(without)}: those cells are restored "
            f"at the --timestamp writetime, {plan.fixed_timestamp} microseconds since the epoch"
        )
    if not without and settings.get("timestamp"):
        warnings.append(
            "--timestamp is not used: the export has a writetime for every column, and each "
            "cell is restored at its own"
        )
    whole = [c.name for c in plan.data_columns if c.multicell and c.has_writetime]
    if whole and policy != "list":
        warnings.append(
            f"the export kept one writetime per collection (--collection-writetime {policy}): "
            f"{', '.join(whole)} are restored whole at that writetime; element writetimes "
            "were not exported"
        )
    whole_ttl = [c.name for c in plan.data_columns if c.multicell and c.has_ttl]
    if whole_ttl and policy != "list":
        # The export's TTL of such a collection is the max (or min) over the elements that
        # had one: elements without a TTL on the source get it too, and expire.
        warnings.append(
            f"the export kept one TTL per collection (--collection-writetime {policy}): "
            f"{', '.join(whole_ttl)} are restored whole with that TTL, also their elements "
            "that had none on the source; export with --collection-writetime list to restore "
            "each element's own"
        )
    no_ttl = [c.name for c in plan.data_columns if not c.counter and not c.has_ttl]
    if no_ttl:
        warnings.append(
            f"the export has no TTL for {', '.join(no_ttl)}: those cells are restored without a TTL"
        )
    return warnings


# --- running ------------------------------------------------------------------------------


class RestoreProgress:
    """Every ``interval`` seconds: units done / total, rows, rows/s (from the done markers)."""

    def __init__(self, job: RestoreJob, interval: float, stream: Any) -> None:
        self.job = job
        self.interval = interval
        self.stream = stream
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="restore-progress", daemon=True)
        self._started = time.monotonic()

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                markers = self.job.restore_layout.done_markers()
            except Exception:  # progress must never break the restore
                continue
            new = [m for s, m in markers.items() if s not in self.job.already_done]
            rows = sum(int(m["rows"]) for m in new)
            elapsed = max(1e-9, time.monotonic() - self._started)
            print(
                f"progress: {len(markers)}/{self.job.units_total} units, {rows:,} rows this run, "
                f"{rows / elapsed:,.0f} rows/s",
                file=self.stream,
                flush=True,
            )


def print_restore_summary(job: RestoreJob, elapsed: float, out: Any) -> None:
    markers = job.restore_layout.done_markers()
    new = [m for s, m in markers.items() if s not in job.already_done]

    def total(key: str) -> int:
        return sum(int(m.get(key, 0)) for m in new)

    rows = total("rows")
    print(
        f"restore complete: {rows:,} rows into {job.target} in {elapsed:.1f} s "
        f"({rows / max(elapsed, 1e-9):,.0f} rows/s)",
        file=out,
    )
    print(
        f"  units: {len(new)} restored this run, {len(job.already_done)} already done, "
        f"{len(markers)}/{job.units_total} in all",
        file=out,
    )
    print(
        f"  cells: {total('cells'):,} written, {total('expired_cells'):,} expired since the "
        f"export (skipped); statements: {total('statements'):,} in {total('batches'):,} batches",
        file=out,
    )
    if total("list_elements_present") or total("retries"):
        print(
            f"  redo: {total('list_elements_present'):,} list elements already on the target "
            f"(not written again); retries: {total('retries'):,}",
            file=out,
        )
    if total("server_warnings"):
        print(
            f"  Cassandra attached {total('server_warnings'):,} warnings to acknowledged "
            "writes (the distinct texts are in the log)",
            file=out,
        )
    print(f"  restore manifest: {job.restore_layout.root}", file=out)


def run(argv: list[str], out: Any = None) -> int:
    """Parse, validate, restore and report; returns the exit code. Raises UsageError."""
    out = out or sys.stdout
    settings = parse_settings(argv, RESTORE_OPTION_SPECS, restore_parser)
    logging.basicConfig(
        level=getattr(logging, settings["log_level"]),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    quiet = settings["log_level"] != "DEBUG" and not os.environ.get("CASSANDRA_EXPORT_DEBUG")
    from pipeline.local_runner import OneLineLogs, install_worker_log_filter

    install_worker_log_filter(getattr(logging, settings["log_level"]), keep_beam=not quiet)
    if quiet:
        for noisy in ("apache_beam", "cassandra"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
        logging.getLogger("apache_beam.runners.common").setLevel(logging.CRITICAL)
        for handler in logging.getLogger().handlers:
            handler.addFilter(OneLineLogs())
    job = prepare_restore(settings)
    for warning in job.warnings:
        print(f"warning: {warning}", file=sys.stderr)
    if not job.units:
        rows = sum(int(m.get("rows", 0)) for m in job.already_done.values())
        print(
            f"the restore of {job.export_layout.root} into {job.target} is already complete "
            f"({rows:,} rows in {len(job.already_done)} units); nothing to do",
            file=out,
        )
        return 0
    # Dask parallelizes by how Create is partitioned: one export unit per partition.
    beam_args = with_partitions(settings.beam_args, len(job.units))
    pipeline = build_restore_pipeline(
        job.units, job.connection, job.plan, job.manifest, job.write, beam_args
    )
    claim = claim_bucket(job.connection.rate_limit)  # and old launches' left behind
    reporter = None
    if settings["progress_interval"] > 0:
        reporter = RestoreProgress(job, settings["progress_interval"], sys.stderr)
        reporter.start()
    started = time.monotonic()
    try:
        pipeline.run().wait_until_finish()
    finally:
        if reporter is not None:
            reporter.stop()
        claim.release()
    print_restore_summary(job, time.monotonic() - started, out)
    return 0
