"""Settings to the typed configurations of an export, validated: every bad input becomes
one UsageError naming the option (exit 2) before anything is written."""

from __future__ import annotations

import os
import re
from typing import Any

from pipeline.config import Settings, credentials
from pipeline.options import SPECS_BY_DEST, UsageError
from pipeline.runners import worker_count, workers_share_machine
from transforms import manifest as mf
from transforms.cassandra_session import ConnectionConfig, RateLimit, parse_host
from transforms.formats import SinkConfig, check_sink
from transforms.normalize import WritetimeFilter, parse_time_micros
from transforms.rate_limit import new_bucket_path


def output_directory(settings: Settings) -> str:
    """The export's directory: ``--output`` or ``--resume OUT`` (which must agree)."""
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
    check_output_is_directory(output)
    return output


# ``KS.TABLE`` split at the first dot outside double quotes (``"My.Ks"."T"``); group 1 is
# None when there is no such dot (``t``, ``"a.b"``). Quotes are kept: names resolve later.
QUALIFIED_NAME = re.compile(r'(?:("(?:[^"]|"")*"|[^."]*)\.)?(.*)', re.DOTALL)


def split_table(settings: Settings) -> tuple[str, str]:
    """(keyspace, table) from --keyspace and --table (or --table KS.TABLE, either part
    quoted)."""
    keyspace = settings.get("keyspace")
    table = settings.get("table")
    ks_part, table_part = QUALIFIED_NAME.fullmatch(table or "").groups()
    if table and ks_part is not None:
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


def connection_config(settings: Settings) -> ConnectionConfig:
    """The ConnectionConfig of the settings, with the job's rate limit (:func:`rate_limit`)."""
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
        protocol_version=int(settings["protocol_version"]),
        read_timeout=settings["read_timeout"],
        fetch_size=settings["fetch_size"],
        retries=settings["retries"],
        max_concurrent_queries=settings["max_concurrent_queries"],
        rate_limit=rate_limit(settings),
    )


def rate_limit(settings: Settings) -> RateLimit:
    """``--max-rows-per-second`` for the workers: one bucket shared by every process of the
    job when all run on this machine (a new file path for each launch, created by the first
    worker that reads); otherwise split evenly over the workers the job runs with."""
    rate = float(settings["max_rows_per_second"])
    if not rate:
        return RateLimit()
    shared = workers_share_machine(settings.beam_args)
    return RateLimit(
        rows_per_second=rate,
        workers=worker_count(settings.beam_args),
        bucket_path=new_bucket_path() if shared else None,
    )


def row_filter(settings: Settings, incremental_after: int | None) -> WritetimeFilter:
    """The writetime/TTL row filter; an incremental export's bound narrows --writetime-after."""

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


def incremental_start(settings: Settings) -> tuple[int | None, dict[str, Any] | None]:
    """With --incremental-from PREV: the writetime bound (PREV's start minus the overlap)
    and the ``incremental_from`` record; (None, None) otherwise."""
    previous = settings.get("incremental_from")
    if not previous:
        return None, None
    if _nested(previous, settings.get("output") or ""):
        raise UsageError(
            f"--incremental-from {previous} and --output name the same directory (or one holds "
            "the other): the new export would replace the one it starts from; choose another "
            "--output"
        )
    try:
        prev_manifest = mf.load_export(mf.Layout(previous))
    except mf.ManifestError as exc:
        raise UsageError(f"--incremental-from: {exc}") from None
    if not mf.exists(mf.Layout(previous).success):
        raise UsageError(
            f"--incremental-from: {previous} is not a finished export (no _SUCCESS): rows it "
            "has not exported yet would be missing from the chain; finish it with --resume first"
        )
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


def _nested(a: str, b: str) -> bool:
    """Whether directories ``a`` and ``b`` are the same or one lies inside the other."""

    def norm(path: str) -> str:
        return (path if "://" in path else os.path.abspath(path)).rstrip("/") + "/"

    a, b = norm(a), norm(b)
    return a.startswith(b) or b.startswith(a)


def check_incremental_table(origin: dict[str, Any] | None, table: str) -> None:
    """Refuse --incremental-from an export of another table: its start time says nothing about
    which rows of this table were already exported."""
    if origin is not None and origin["table"] != table:
        raise UsageError(
            f"--incremental-from: {origin['path']} is an export of another table "
            f"({origin['table']}), not of {table}; give an export of {table}"
        )


def check_output_is_directory(output: str) -> None:
    """A local --output must be a directory (or not exist yet) under a writable parent."""
    if "://" in output:
        return
    if os.path.exists(output) and not os.path.isdir(output):
        raise UsageError(f"--output {output} is a file, not a directory")
    parent = os.path.dirname(os.path.abspath(output))
    probe = parent
    while probe and not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if probe and not os.access(probe, os.W_OK):
        raise UsageError(f"--output {output}: {probe} is not writable")


def sink_config(settings: Settings) -> SinkConfig:
    """The output format settings (SinkConfig validates their combination)."""
    try:
        sink = SinkConfig(
            format=settings["format"],
            compression=settings["compression"],
            delimiter=settings["delimiter"],
            null_value=settings["null_value"],
            writetime_format=settings["writetime_format"],
            avro_codec=settings["avro_codec"],
            parquet_codec=settings["parquet_codec"],
            parquet_row_group_rows=settings["parquet_row_group_rows"],
        )
        check_sink(sink)
        return sink
    except ValueError as exc:
        raise UsageError(str(exc)) from None


# Output options that only one format reads: given with another format they do nothing.
_FORMAT_OPTIONS = {
    "delimiter": "csv",
    "null_value": "csv",
    "avro_codec": "avro",
    "parquet_codec": "parquet",
    "parquet_row_group_rows": "parquet",
}


def unused_format_options(settings: Settings) -> list[str]:
    """A warning for each format option given that the chosen ``--format`` does not read
    (``--delimiter`` with Parquet): accepted, as DSBulk accepts settings of other
    connectors, but said, so that nobody expects a tab-separated Parquet file."""
    fmt = settings["format"]
    return [
        f"--{name.replace('_', '-')} applies to --format {owner} only; ignored with --format {fmt}"
        for name, owner in _FORMAT_OPTIONS.items()
        if name in settings.explicit and owner != fmt
    ]
