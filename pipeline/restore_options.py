"""Restore options: one table feeds the ``cassandra-restore`` parser and its config files.

Connection and TLS options are the export's own specs (same names, same checks); the rest is
restore's. Like the export, each option has a dashed and an underscored spelling.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

from pipeline.option_spec import (
    OptionSpec,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from pipeline.options import (
    CONSISTENCY_LEVELS,
    SPECS_BY_DEST,
    NoExitParser,
    add_export_arguments,
)

_SHARED = (
    "hosts",
    "port",
    "local_dc",
    "username",
    "credentials_file",
    "ssl",
    "ssl_ca_file",
    "ssl_cert_file",
    "ssl_key_file",
    "ssl_check_hostname",
    "connect_timeout",
    "protocol_version",
)

RESTORE_OPTION_SPECS: tuple[OptionSpec, ...] = (
    *(SPECS_BY_DEST[name] for name in _SHARED),
    replace(
        SPECS_BY_DEST["consistency"], help="write consistency level", choices=CONSISTENCY_LEVELS
    ),
    OptionSpec(
        "write-timeout",
        "seconds before a write request times out",
        type=positive_float,
        default=30.0,
        group="connection",
    ),
    OptionSpec(
        "retries",
        "retries of a failed write (timeouts, unavailable) before the unit fails",
        type=non_negative_int,
        default=6,
        group="connection",
    ),
    OptionSpec(
        "max-rows-per-second",
        "total write rate limit in rows over all workers (0: none)",
        type=non_negative_float,
        default=0.0,
        group="connection",
    ),
    OptionSpec(
        "max-in-flight",
        "concurrent write requests per worker thread (of the work unit being restored and "
        "the last ones of the unit before it)",
        type=positive_int,
        default=32,
        group="connection",
    ),
    OptionSpec(
        "batch-statements",
        "statements per unlogged batch of one partition (a row's statements are never split)",
        type=positive_int,
        default=128,
        group="connection",
    ),
    OptionSpec(
        "batch-partitions",
        "small partitions of one replica range per unlogged batch (1: each alone); the node "
        "logs a warning above its unlogged_batch_across_partitions_warn_threshold (10)",
        type=positive_int,
        default=10,
        group="connection",
    ),
    # What to restore, and where
    OptionSpec(
        "input",
        "the export directory to restore (local path, gs://, s3://)",
        group="restore",
        metavar="EXPORT",
    ),
    OptionSpec(
        "keyspace",
        "keyspace of the target table (default: the exported table's)",
        group="restore",
    ),
    OptionSpec(
        "table",
        "target table, TABLE or KEYSPACE.TABLE (default: the exported table)",
        group="restore",
    ),
    OptionSpec(
        "create-table",
        "create the target table (and its UDTs) from the export's recorded schema if missing",
        flag=True,
        group="restore",
    ),
    OptionSpec(
        "allow-partial",
        "restore the committed units of an unfinished export",
        flag=True,
        group="restore",
    ),
    OptionSpec(
        "timestamp",
        "writetime for columns exported without one: 'now' (fixed when the restore starts) "
        "or T (RFC 3339 or epoch s/ms/us)",
        group="restore",
        metavar="now|T",
    ),
    OptionSpec(
        "counters",
        "restore a counter table by adding the exported values (not idempotent: see docs/restore.md)",
        choices=("add",),
        group="restore",
    ),
    OptionSpec(
        "restore-log",
        "directory of the restore's manifest of finished units, for a read-only export "
        "(default: inside the export; --restore-manifest is the same option)",
        group="restore",
        metavar="DIR",
        aliases=("restore-manifest",),
    ),
    OptionSpec(
        "resume",
        "continue an unfinished restore into the same target",
        flag=True,
        group="restore",
    ),
    OptionSpec(
        "overwrite",
        "restore every unit again (lists are checked against the target first)",
        flag=True,
        group="restore",
    ),
    # Misc
    SPECS_BY_DEST["config"],
    SPECS_BY_DEST["log_level"],
    SPECS_BY_DEST["progress_interval"],
)

RESTORE_SPECS_BY_DEST: dict[str, OptionSpec] = {s.dest: s for s in RESTORE_OPTION_SPECS}


def restore_parser() -> argparse.ArgumentParser:
    """The ``cassandra-restore`` argument parser (no defaults: parse_settings fills them)."""
    parser = NoExitParser(
        prog="cassandra-restore",
        description=(
            "Put an export made by cassandra-export back into a Cassandra table with the "
            "WRITETIME and TTL of every cell. Beam options (--runner, --direct_num_workers, "
            "...) pass through."
        ),
        epilog=(
            "Credentials: CASSANDRA_USERNAME / CASSANDRA_PASSWORD or --credentials-file. "
            "Runner default: FnApiRunner (local). See docs/restore.md."
        ),
        allow_abbrev=False,
    )
    add_export_arguments(parser, with_defaults=False, specs=RESTORE_OPTION_SPECS)
    return parser
