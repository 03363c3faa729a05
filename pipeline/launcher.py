"""Launch an export: validate, plan from the live cluster (or the manifest on resume),
prepare the output directory, build and run the pipeline, report progress and a summary."""

from __future__ import annotations

import logging
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from pipeline.config import Settings, credentials, parse_settings
from pipeline.options import OUTPUT_AFFECTING, SPECS_BY_DEST, UsageError
from transforms import manifest as mf
from transforms.cassandra_io import (
    ConnectionConfig,
    TableNotFound,
    connect,
    describe_table,
    parse_host,
    partitions_per_range,
    plan_described_table,
    ring_tokens,
)
from transforms.normalize import WritetimeFilter, parse_time_micros
from transforms.restore_manifest import export_schema
from transforms.sinks import SinkConfig
from transforms.table_plan import PlanError, TablePlan
from transforms.token_ranges import WorkUnit, make_work_units, plan_ranges

_LOG = logging.getLogger("cassandra_export")

# Options recorded in export.json but free to differ on resume.
_NOT_RECORDED = {"config", "resume", "overwrite", "log_level", "progress_interval", "output"}


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


def _split_table(settings: Settings) -> tuple[str, str]:
    keyspace = settings.get("keyspace")
    table = settings.get("table")
    if table and "." in table and not table.startswith('"'):
        ks_part, _, table_part = table.partition(".")
        if keyspace and keyspace != ks_part:
            raise UsageError(
                f"--table {table} names keyspace {ks_part} but --keyspace is {keyspace}"
            )
        keyspace, table = ks_part, table_part
    if not table:
        raise UsageError("--table is required (--table TABLE --keyspace KS, or --table KS.TABLE)")
    if not keyspace:
        raise UsageError("--keyspace is required (or give --table KEYSPACE.TABLE)")
    return keyspace, table


def _workers(beam_args: list[str]) -> int:
    for name in ("--direct_num_workers", "--parallelism", "--max_num_workers", "--num_workers"):
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


def connection_config(settings: Settings) -> ConnectionConfig:
    hosts = tuple(h.strip() for h in str(settings["hosts"]).split(",") if h.strip())
    if not hosts:
        raise UsageError("--hosts: give at least one contact point, e.g. --hosts 10.0.0.1:9042")
    if not 0 < settings["port"] < 65536:
        raise UsageError(f"--port: {settings['port']} is not a port number (1-65535)")
    for host in hosts:
        try:
            parse_host(host, settings["port"])
        except ValueError:
            raise UsageError(f"--hosts: {host!r} is not host[:port]") from None
    username, password = credentials(settings)
    for name in ("ssl_ca_file", "ssl_cert_file", "ssl_key_file"):
        path = settings.get(name)
        if path:
            try:
                with open(path, "rb"):
                    pass
            except OSError as exc:
                flag = SPECS_BY_DEST[name].flags[0]
                raise UsageError(f"{flag}: cannot read {path}: {exc.strerror}") from None
    if settings.get("ssl_cert_file") and not settings.get("ssl_key_file"):
        raise UsageError("--ssl-cert-file needs --ssl-key-file (the client's private key)")
    rate = float(settings["max_rows_per_second"])
    return ConnectionConfig(
        hosts=hosts,
        port=settings["port"],
        local_dc=settings.get("local_dc"),
        username=username,
        password=password,
        ssl_enabled=bool(settings["ssl"] or settings.get("ssl_ca_file")),
        ssl_ca_file=settings.get("ssl_ca_file"),
        ssl_cert_file=settings.get("ssl_cert_file"),
        ssl_key_file=settings.get("ssl_key_file"),
        ssl_check_hostname=bool(settings["ssl_check_hostname"]),
        consistency=settings["consistency"],
        connect_timeout=settings["connect_timeout"],
        read_timeout=settings["read_timeout"],
        fetch_size=settings["fetch_size"],
        retries=settings["retries"],
        max_concurrent_queries=settings["max_concurrent_queries"],
        max_rows_per_second_per_worker=rate / _workers(settings.beam_args) if rate else 0.0,
    )


def _scrub(text: str, secret: str | None) -> str:
    return text.replace(secret, "***") if secret else text


def connect_or_explain(config: ConnectionConfig) -> tuple[Any, Any]:
    """Connect, turning driver errors into one clear line (never with the password)."""
    from cassandra import AuthenticationFailed
    from cassandra.cluster import NoHostAvailable

    where = ", ".join(config.hosts)
    try:
        return _connect_quietly(config)
    except NoHostAvailable as exc:
        errors = list(exc.errors.values())
        if any(isinstance(e, AuthenticationFailed) for e in errors):
            who = f"user {config.username!r}" if config.username else "no credentials"
            raise UsageError(
                f"authentication failed at {where} with {who}: check CASSANDRA_USERNAME / "
                "CASSANDRA_PASSWORD or --credentials-file"
            ) from None
        reason = _first_reason(errors)
        hint = ""
        lowered = reason.lower()
        if config.ssl_enabled and ("violation of protocol" in lowered or "alert" in lowered):
            # The node closed the TLS handshake: it wants a client certificate it trusts.
            hint = (
                " (TLS: the nodes closed the handshake; if they require client certificates "
                "(require_client_auth), give --ssl-cert-file and --ssl-key-file signed by a CA "
                "in their truststore)"
                if not config.ssl_cert_file
                else " (TLS: the nodes refused the client certificate of --ssl-cert-file: is "
                "it signed by a CA in their truststore?)"
            )
        elif "ssl" in reason.lower() or "certificate" in reason.lower():
            hint = " (TLS: check --ssl-ca-file and the nodes' certificates)"
        elif "connection reset" in reason.lower() and not config.ssl_enabled:
            hint = " (if the nodes require TLS, add --ssl-ca-file CA.pem or --ssl)"
        elif "authenticat" in reason.lower():
            hint = " (the cluster requires a user and password: set CASSANDRA_USERNAME and "
            hint += "CASSANDRA_PASSWORD)"
        raise UsageError(
            _scrub(f"cannot connect to Cassandra at {where}: {reason}{hint}", config.password)
        ) from None
    except ValueError as exc:
        raise UsageError(f"--hosts: {exc}") from None
    except Exception as exc:  # driver errors of many kinds, one line each
        raise UsageError(
            _scrub(f"cannot connect to Cassandra at {where}: {exc}", config.password)
        ) from None


def _connect_quietly(config: ConnectionConfig) -> tuple[Any, Any]:
    """connect() without the driver's own log tracebacks: its failure becomes one line."""
    driver_log = logging.getLogger("cassandra")
    previous = driver_log.level
    if not logging.getLogger().isEnabledFor(logging.DEBUG):
        driver_log.setLevel(logging.CRITICAL)
    try:
        return connect(config)
    finally:
        driver_log.setLevel(previous)


def _first_reason(errors: list[Any]) -> str:
    if not errors:
        return "no host answered"
    error = errors[0]
    text = str(error) or type(error).__name__
    if isinstance(error, tuple | list) and error:
        text = str(error[-1])
    text = text.replace("\n", " ")
    if "Connection refused" in text or "Errno 111" in text:
        return "connection refused (is Cassandra running there? check --hosts and --port)"
    if "timed out" in text.lower():
        return "connection timed out (check --hosts, --port and firewalls)"
    return text[:300]


def _export_config(settings: Settings, plan: TablePlan, workers: int) -> dict[str, Any]:
    config: dict[str, Any] = {
        "table": f"{plan.keyspace}.{plan.table}",
        "columns": [c.name for c in plan.columns],
        "writetime_columns": list(plan.writetime_columns),
        "ttl_columns": list(plan.ttl_columns),
        "batch_size": settings["batch_size"],
        "concurrency": workers,
    }
    options = {
        k: v
        for k, v in sorted(settings.values.items())
        if k not in _NOT_RECORDED and k in SPECS_BY_DEST
    }
    options["keyspace"], options["table"] = plan.keyspace, plan.table
    config["options"] = options
    for key in OUTPUT_AFFECTING:
        if key not in ("keyspace", "table", "columns", "writetime_columns", "ttl_columns"):
            config[key] = options.get(key)
    return config


def _row_filter(settings: Settings, incremental_after: int | None) -> WritetimeFilter:
    def parse(name: str) -> int | None:
        value = settings.get(name)
        if value in (None, ""):
            return None
        try:
            return parse_time_micros(value)
        except ValueError as exc:
            raise UsageError(f"{SPECS_BY_DEST[name].flags[0]}: {exc}") from None

    after = parse("writetime_after")
    before = parse("writetime_before")
    if incremental_after is not None:
        after = incremental_after if after is None else max(after, incremental_after)
    try:
        return WritetimeFilter(
            after=after,
            before=before,
            mode=settings["writetime_filter"],
            ttl_expiring_before=parse("ttl_expiring_before"),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


def _incremental_start(settings: Settings) -> tuple[int | None, dict[str, Any] | None]:
    previous = settings.get("incremental_from")
    if not previous:
        return None, None
    try:
        prev_manifest = mf.load_export(mf.Layout(previous))
    except mf.ManifestError as exc:
        raise UsageError(f"--incremental-from: {exc}") from None
    started = int(prev_manifest["started_at_micros"])
    overlap = int(float(settings["incremental_overlap"]) * 1_000_000)
    origin = {
        "path": previous if "://" in previous else os.path.abspath(previous),
        "started_at": prev_manifest.get("started_at"),
        "started_at_micros": started,
        "overlap_seconds": settings["incremental_overlap"],
        "writetime_after_micros": started - overlap,
        "table": prev_manifest["export_config"].get("table"),
        "incremental_from": prev_manifest.get("incremental_from"),
    }
    return started - overlap, origin


def _check_resume_options(settings: Settings, stored: dict[str, Any]) -> None:
    for key in sorted(settings.explicit):
        if key not in OUTPUT_AFFECTING:
            continue
        given = settings.values.get(key)
        previous = stored.get(key)
        if key == "table" and isinstance(given, str) and "." in given:
            given = given.split(".", 1)[1]
        if _normalized(given) != _normalized(previous):
            flag = SPECS_BY_DEST[key].flags[0]
            raise UsageError(
                f"--resume: {flag} is {given!r} but the export being resumed used "
                f"{previous!r}; an option that changes the output cannot change on resume "
                "(drop it, or start a new export with --overwrite or another --output)"
            )


def _normalized(value: Any) -> Any:
    if isinstance(value, str):
        parts = [p.strip() for p in value.split(",")]
        return ",".join(parts)
    return value


def prepare_export(settings: Settings) -> ExportJob:
    """Validate and plan; on success the output directory holds export.json."""
    resume = settings.get("resume")
    output = settings.get("output")
    if isinstance(resume, str):
        if output and output.rstrip("/") != resume.rstrip("/"):
            raise UsageError("--resume OUT and --output name different directories")
        output = resume
    if not output:
        raise UsageError("--output OUT is required (a local path, gs://... or s3://...)")
    if resume and settings.get("overwrite"):
        raise UsageError("--resume and --overwrite exclude each other")
    layout = mf.Layout(output)
    _check_output_is_directory(output)

    job = _prepare_resume(settings, layout) if resume else _prepare_new(settings, layout)
    if job.checkpoint_rows and _local_runner_workers(settings.beam_args) > 1:
        # FnApiRunner's ParallelBundleManager drops the residuals of self-checkpointed
        # restrictions (defer_remainder), so the rest of every checkpointed unit would be
        # lost (Finalize then fails on the gap). Pieces only help rebalancing: read units whole.
        job.checkpoint_rows = 0
        job.warnings.append(
            "--checkpoint-rows is ignored with --direct_num_workers other than 1: Beam's local "
            "runner loses the work a checkpoint hands back when it runs several workers"
        )
    return job


def _local_runner_workers(beam_args: list[str]) -> int:
    """Workers of the local FnApiRunner / DirectRunner; 1 for any other runner."""
    import os

    from apache_beam.options.pipeline_options import (
        DirectOptions,
        PipelineOptions,
        StandardOptions,
    )

    options = PipelineOptions(beam_args)
    runner = options.view_as(StandardOptions).runner or "DirectRunner"
    name = str(runner).rsplit(".", 1)[-1].lower().removesuffix("runner")
    if name not in ("fnapi", "direct", "switchingdirect"):
        return 1
    workers = options.view_as(DirectOptions).direct_num_workers
    return (os.cpu_count() or 1) if workers == 0 else max(1, int(workers or 1))


def _check_output_is_directory(output: str) -> None:
    if "://" in output:
        return
    import os

    if os.path.exists(output) and not os.path.isdir(output):
        raise UsageError(f"--output {output} is a file, not a directory")
    parent = os.path.dirname(os.path.abspath(output))
    probe = parent
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if probe and not os.access(probe, os.W_OK):
        raise UsageError(f"--output {output}: {probe} is not writable")


def _plan_from_cluster(settings: Settings, connection: ConnectionConfig) -> tuple[TablePlan, Any]:
    keyspace, table = _split_table(settings)
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
        return plan, (tokens, estimates, schema)
    finally:
        cluster.shutdown()


def _auto_splits(tokens: list[int], estimates: dict[tuple[int, int], int], workers: int) -> int:
    """Enough units for every worker to stay busy, about 100k partitions each at most."""
    estimated = sum(max(0, c) for c in estimates.values())
    by_size = -(-estimated // 100_000) if estimated else 0
    return max(32, 4 * workers, len(tokens) + 1, min(by_size, 4096))


def _sink(settings: Settings) -> SinkConfig:
    try:
        return SinkConfig(
            format=settings["format"],
            compression=settings["compression"],
            delimiter=settings["delimiter"],
            null_value=settings["null_value"],
            writetime_format=settings["writetime_format"],
            avro_codec=settings["avro_codec"],
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None


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
    sink = _sink(settings)
    incremental_after, origin = _incremental_start(settings)
    row_filter = _row_filter(settings, incremental_after)
    connection = connection_config(settings)
    plan, (tokens, estimates, schema) = _plan_from_cluster(settings, connection)
    if (row_filter.after is not None or row_filter.before is not None) and not (
        plan.writetime_columns
    ):
        raise UsageError(
            "a writetime filter needs writetime columns, but --writetime-columns selects none"
        )
    if row_filter.ttl_expiring_before is not None and not plan.ttl_columns:
        raise UsageError("--ttl-expiring-before needs TTL columns: add --ttl-columns '*'")
    workers = _workers(settings.beam_args)
    splits = settings["splits"] or _auto_splits(tokens, estimates, workers)
    units = make_work_units(plan_ranges(tokens, splits, estimates))
    export_config = _export_config(settings, plan, workers)
    if settings.get("overwrite") and not mf.is_empty_dir(layout.root):
        mf.delete_tree(layout.root)
    started = time.time_ns() // 1000
    from transforms.cql_types import format_writetime_iso

    manifest = {
        "format_version": mf.MANIFEST_VERSION,
        "tool": "cassandra-writetime-export 0.1.0",
        "started_at": format_writetime_iso(started),
        "started_at_micros": started,
        "cluster": {"name": plan.cluster_name, "release_version": plan.release_version},
        "export_config": export_config,
        "plan": plan.to_json(),
        "schema": schema,
        "units": [u.to_json() for u in units],
        "incremental_from": origin,
        "row_filter": {
            "writetime_after_micros": row_filter.after,
            "writetime_before_micros": row_filter.before,
            "mode": row_filter.mode,
            "ttl_expiring_before_micros": row_filter.ttl_expiring_before,
        },
    }
    try:
        mf.write_json(layout.export_json, manifest)
    except Exception as exc:
        raise UsageError(f"--output {layout.root}: cannot write there ({exc})") from None
    return ExportJob(
        layout=layout,
        plan=plan,
        units=units,
        work_items=[(u.unit_id, u.start, u.start, u.end) for u in units],
        connection=connection,
        sink=sink,
        policy=settings["collection_writetime"],
        row_filter=row_filter,
        batch_size=settings["batch_size"],
        checkpoint_rows=settings["checkpoint_rows"],
        single_file=bool(settings["single_file"]),
        stats_chart=bool(settings["stats_chart"]),
        export_config=export_config,
        warnings=list(plan.warnings),
    )


def _prepare_resume(settings: Settings, layout: mf.Layout) -> ExportJob:
    try:
        manifest = mf.load_export(layout)
        markers = mf.read_markers(layout)
    except mf.ManifestError as exc:
        raise UsageError(f"--resume: {exc}") from None
    stored = dict(manifest["export_config"].get("options", {}))
    _check_resume_options(settings, stored)
    # Output-affecting options come from the manifest; the rest may change (runner, hosts...).
    values = dict(settings.values)
    for key in OUTPUT_AFFECTING:
        if key in stored:
            values[key] = stored[key]
    # Everything else not given again (hosts, port, TLS files, consistency, batch size...)
    # is taken from the manifest too, so `--resume OUT` alone continues the same export.
    for key, value in stored.items():
        if key not in settings.explicit and key in values and key not in _NOT_RECORDED:
            values[key] = value
    merged = Settings(values=values, explicit=settings.explicit, beam_args=settings.beam_args)
    try:
        plan = TablePlan.from_json(manifest["plan"])
        units = [WorkUnit.from_json(u) for u in manifest["units"]]
    except (KeyError, TypeError, ValueError) as exc:
        raise UsageError(f"--resume: {layout.export_json} is malformed ({exc})") from None
    sink = _sink(merged)
    row_filter_json = manifest.get("row_filter") or {}
    try:
        row_filter = WritetimeFilter(
            after=row_filter_json.get("writetime_after_micros"),
            before=row_filter_json.get("writetime_before_micros"),
            mode=row_filter_json.get("mode", "any"),
            ttl_expiring_before=row_filter_json.get("ttl_expiring_before_micros"),
        )
    except ValueError as exc:
        raise UsageError(f"--resume: {layout.export_json}: {exc}") from None
    connection = connection_config(merged)
    cluster, session = connect_or_explain(connection)
    try:
        try:
            describe_table(cluster, session, plan.keyspace, plan.table)
        except TableNotFound as exc:
            raise UsageError(f"--resume: {exc}") from None
    finally:
        cluster.shutdown()
    covered = mf.completed_ranges(markers)
    problems = [p for p in mf.check_exact_cover(covered) if p.startswith("overlap")]
    if problems:
        raise UsageError(
            f"--resume: the committed ranges in {layout.ranges_dir} overlap ({problems[0]}); "
            "the manifest was changed by hand, start a new export with --overwrite"
        )
    work = mf.remaining_work(units, markers)
    job = ExportJob(
        layout=layout,
        plan=plan,
        units=units,
        work_items=work,
        connection=connection,
        sink=sink,
        policy=values["collection_writetime"],
        row_filter=row_filter,
        batch_size=values["batch_size"],
        checkpoint_rows=values["checkpoint_rows"],
        single_file=bool(values["single_file"]),
        stats_chart=bool(settings["stats_chart"]),
        export_config=manifest["export_config"],
        pieces_already_done=len(markers),
        rows_already_done=sum(int(m["rows"]) for m in markers),
    )
    job.already_complete = not work and mf.exists(layout.success)
    if not job.already_complete:
        mf.delete_files(mf.orphan_files(layout, markers))
        if mf.exists(layout.success):
            mf.delete_files([layout.success])
    return job


# --- running ------------------------------------------------------------------------------


def _is_remote_runner(beam_args: list[str]) -> bool:
    return any("dataflow" in a.lower() for a in beam_args if a.startswith("--runner"))


def run(argv: list[str], out: Any = None) -> int:
    """Parse, plan, run and report; returns the exit code. Raises UsageError on bad input."""
    out = out or sys.stdout
    settings = parse_settings(argv)
    logging.basicConfig(
        level=getattr(logging, settings["log_level"]),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
        force=True,
    )
    if settings["log_level"] != "DEBUG":
        for noisy in ("apache_beam", "cassandra"):
            logging.getLogger(noisy).setLevel(logging.WARNING)
    # Beam logs a failing DoFn with its traceback (apache_beam.runners.common, ERROR) before
    # the runner re-raises it; the CLI reports that failure as one line. The traceback shows
    # with --log-level DEBUG or CASSANDRA_EXPORT_DEBUG.
    quiet = settings["log_level"] != "DEBUG" and not os.environ.get("CASSANDRA_EXPORT_DEBUG")
    logging.getLogger("apache_beam.runners.common").setLevel(
        logging.CRITICAL if quiet else logging.NOTSET
    )
    from pipeline.local_runner import OneLineLogs, install_worker_log_filter

    install_worker_log_filter(getattr(logging, settings["log_level"]), keep_beam=not quiet)
    if quiet:
        for handler in logging.getLogger().handlers:
            handler.addFilter(OneLineLogs())
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
    from pipeline.graph import build_pipeline
    from pipeline.progress import ProgressReporter

    pipeline = build_pipeline(job, settings.beam_args)
    remote = _is_remote_runner(settings.beam_args)
    reporter = None
    if not remote and settings["progress_interval"] > 0:
        reporter = ProgressReporter(job, settings["progress_interval"], sys.stderr)
        reporter.start()
    started = time.monotonic()
    try:
        result = pipeline.run()
        if remote:
            print(
                f"submitted: the job writes {job.layout.root} and marks it done with _SUCCESS",
                file=out,
            )
            return 0
        result.wait_until_finish()
    finally:
        if reporter is not None:
            reporter.stop()
    elapsed = time.monotonic() - started
    from pipeline.progress import print_summary

    print_summary(job, elapsed, out)
    return 0
