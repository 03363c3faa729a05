"""Export options: one table of option specs feeds the CLI, config files, Beam and Flex templates.

Every option has a CLI spelling with dashes (``--writetime-columns``) and one with
underscores (``--writetime_columns``, the Beam and Dataflow spelling); config files
may use either. ``output_affecting`` options are the ones a resume must not change.
What an option is (``OptionSpec``) and the parsers of its value are in
``pipeline.option_spec``, shared with the restore's table.
"""

from __future__ import annotations

import argparse
import re
from collections.abc import Callable, Sequence
from typing import Any

from apache_beam.options.pipeline_options import PipelineOptions

from pipeline.option_spec import (
    OptionSpec,
    boolean,
    delimiter,
    describe_type,
    non_negative_float,
    non_negative_int,
    positive_float,
    positive_int,
)
from transforms.formats import FORMATS as FORMAT_REGISTRY
from transforms.formats.base import (
    AVRO_CODECS,
    COMPRESSIONS,
    PARQUET_CODECS,
    PARQUET_ROW_GROUP_ROWS,
    WRITETIME_FORMATS,
)
from transforms.table_plan import COLLECTION_POLICIES, DEFAULT_COLLECTION_POLICY


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


CONSISTENCY_LEVELS = (
    "ANY",
    "ONE",
    "TWO",
    "THREE",
    "QUORUM",
    "ALL",
    "LOCAL_QUORUM",
    "EACH_QUORUM",
    "LOCAL_ONE",
)
# Cassandra refuses ANY for reads ("ANY ConsistencyLevel is only supported for writes").
READ_CONSISTENCY_LEVELS = tuple(level for level in CONSISTENCY_LEVELS if level != "ANY")
# Native protocol versions every supported Cassandra (4.0 to 5.0) speaks. 4 by default:
# version 5 frames every message with CRC checksums, which on a one-node benchmark cost the
# node about a third more CPU per exported row (see docs/export.md).
PROTOCOL_VERSIONS = ("4", "5")
FORMATS = tuple(FORMAT_REGISTRY)


OPTION_SPECS: tuple[OptionSpec, ...] = (
    # Connection
    OptionSpec(
        "hosts",
        "contact points host[:port],... (a port here wins over --port)",
        default="127.0.0.1",
        group="connection",
        metavar="HOST[:PORT],...",
    ),
    OptionSpec(
        "port",
        "native protocol port for hosts given without one",
        type=positive_int,
        default=9042,
        group="connection",
    ),
    OptionSpec(
        "local-dc",
        "local datacenter for DC-aware routing (default: the first contact point's)",
        group="connection",
    ),
    OptionSpec(
        "username",
        "user name (also CASSANDRA_USERNAME); the password comes only from "
        "CASSANDRA_PASSWORD or --credentials-file",
        group="connection",
    ),
    OptionSpec(
        "credentials-file",
        "file with 'username=...' and 'password=...' lines",
        group="connection",
        metavar="FILE",
    ),
    OptionSpec("ssl", "connect with TLS", flag=True, group="connection"),
    OptionSpec(
        "ssl-ca-file",
        "PEM file of the CA that signed the nodes' certificates (implies --ssl)",
        group="connection",
        metavar="FILE",
    ),
    OptionSpec(
        "ssl-cert-file",
        "client certificate (PEM) for mutual TLS",
        group="connection",
        metavar="FILE",
    ),
    OptionSpec(
        "ssl-key-file",
        "client private key (PEM) for mutual TLS",
        group="connection",
        metavar="FILE",
    ),
    OptionSpec(
        "ssl-check-hostname",
        "check that the node's certificate names its address",
        flag=True,
        group="connection",
    ),
    OptionSpec(
        "consistency",
        "read consistency level",
        default="LOCAL_QUORUM",
        choices=READ_CONSISTENCY_LEVELS,
        group="connection",
    ),
    OptionSpec(
        "protocol-version",
        "native protocol version: 4, or 5 for checksummed frames (costs the node and "
        "this tool more CPU per row)",
        default="4",
        choices=PROTOCOL_VERSIONS,
        group="connection",
    ),
    OptionSpec(
        "fetch-size",
        "rows per page; 0 sizes pages from their bytes (about 4 MiB, 100 to 50000 rows)",
        type=non_negative_int,
        default=0,
        group="connection",
    ),
    OptionSpec(
        "read-timeout",
        "seconds before a page request times out",
        type=positive_float,
        default=30.0,
        group="connection",
    ),
    OptionSpec(
        "connect-timeout",
        "seconds to connect",
        type=positive_float,
        default=10.0,
        group="connection",
    ),
    OptionSpec(
        "retries",
        "retries of a failed page (timeouts, unavailable) before the range "
        "is split or the export fails",
        type=non_negative_int,
        default=6,
        group="connection",
    ),
    OptionSpec(
        "max-rows-per-second",
        "total read rate limit over all workers (0: none)",
        type=non_negative_float,
        default=0.0,
        group="connection",
    ),
    OptionSpec(
        "max-concurrent-queries",
        "concurrent page requests per worker process (0: one per work unit in flight)",
        type=non_negative_int,
        default=0,
        group="connection",
    ),
    # What to read
    OptionSpec("keyspace", "keyspace of the table", output_affecting=True, group="table"),
    OptionSpec(
        "table", "table to export (or KEYSPACE.TABLE)", output_affecting=True, group="table"
    ),
    OptionSpec(
        "columns",
        "columns to export, comma separated (default: all; key columns are always included)",
        output_affecting=True,
        group="table",
        metavar="COL,...",
    ),
    OptionSpec(
        "writetime-columns",
        "'*' for every eligible column, a list, or 'none'",
        default="*",
        output_affecting=True,
        group="table",
        metavar="*|COL,...",
    ),
    OptionSpec(
        "ttl-columns",
        "'*' for every eligible column, a list, or 'none'",
        default="none",
        output_affecting=True,
        group="table",
        metavar="*|COL,...",
    ),
    OptionSpec(
        "writetime-suffix",
        "suffix of writetime column names",
        default="_writetime",
        output_affecting=True,
        group="table",
    ),
    OptionSpec(
        "ttl-suffix",
        "suffix of TTL column names",
        default="_ttl",
        output_affecting=True,
        group="table",
    ),
    OptionSpec(
        "collection-writetime",
        "how a non-frozen collection's per-element writetimes are exported",
        default=DEFAULT_COLLECTION_POLICY,
        choices=COLLECTION_POLICIES,
        output_affecting=True,
        group="table",
    ),
    OptionSpec(
        "splits",
        "number of token sub-ranges (work units); 0 plans from the ring and size estimates",
        type=non_negative_int,
        default=0,
        group="table",
    ),
    OptionSpec(
        "batch-size",
        "rows carried per pipeline element",
        type=positive_int,
        default=1000,
        group="table",
    ),
    OptionSpec(
        "checkpoint-rows",
        "a worker hands back the rest of a work unit after this "
        "many rows, so runners can rebalance (0: never)",
        type=non_negative_int,
        default=0,
        group="table",
    ),
    # Output
    OptionSpec(
        "output", "output directory (local path, gs://, s3://)", group="output", metavar="OUT"
    ),
    OptionSpec(
        "format",
        "output format",
        default="csv",
        choices=FORMATS,
        output_affecting=True,
        group="output",
    ),
    OptionSpec(
        "writetime-format",
        "writetimes as RFC 3339 text or integer microseconds",
        default=WRITETIME_FORMATS[0],
        choices=WRITETIME_FORMATS,
        output_affecting=True,
        group="output",
    ),
    OptionSpec(
        "delimiter",
        "CSV field delimiter ('\\t' for tab)",
        type=delimiter,
        default=",",
        output_affecting=True,
        group="output",
    ),
    OptionSpec(
        "null-value", "CSV text for null", default="", output_affecting=True, group="output"
    ),
    OptionSpec(
        "compression",
        "compression of text formats",
        default="none",
        choices=tuple(COMPRESSIONS),
        output_affecting=True,
        group="output",
    ),
    OptionSpec(
        "avro-codec",
        "Avro block codec",
        default=AVRO_CODECS[0],
        choices=AVRO_CODECS,
        output_affecting=True,
        group="output",
    ),
    OptionSpec(
        "parquet-codec",
        "Parquet column compression",
        default=PARQUET_CODECS[0],
        choices=PARQUET_CODECS,
        output_affecting=True,
        group="output",
    ),
    OptionSpec(
        "parquet-row-group-rows",
        "rows per Parquet row group",
        type=positive_int,
        default=PARQUET_ROW_GROUP_ROWS,
        output_affecting=True,
        group="output",
    ),
    OptionSpec(
        "single-file",
        "also merge the parts into one file OUT/export.<ext> at the end",
        flag=True,
        output_affecting=True,
        group="output",
    ),
    OptionSpec("overwrite", "delete what OUT holds and export anew", flag=True, group="output"),
    OptionSpec(
        "resume",
        "continue the export in OUT (or in --output)",
        group="output",
        metavar="OUT",
        optional_value=True,
    ),
    OptionSpec(
        "stats-chart",
        "draw _manifest/stats.png, a writetime histogram per column",
        flag=True,
        output_affecting=False,
        group="output",
    ),
    # Writetime filters and incremental
    OptionSpec(
        "writetime-after",
        "keep rows written at or after T (RFC 3339 or epoch s/ms/us)",
        output_affecting=True,
        group="filter",
        metavar="T",
    ),
    OptionSpec(
        "writetime-before",
        "keep rows written at or before T (inclusive)",
        output_affecting=True,
        group="filter",
        metavar="T",
    ),
    OptionSpec(
        "writetime-filter",
        "'any': one writetime in range keeps the row; 'all': every non-null one must be",
        default="any",
        choices=("any", "all"),
        output_affecting=True,
        group="filter",
    ),
    OptionSpec(
        "ttl-expiring-before",
        "keep rows with a cell whose TTL expires before T",
        output_affecting=True,
        group="filter",
        metavar="T",
    ),
    OptionSpec(
        "incremental-from",
        "export only rows written since the export in PREV_OUT started",
        output_affecting=True,
        group="filter",
        metavar="PREV_OUT",
    ),
    OptionSpec(
        "incremental-overlap",
        "seconds subtracted from the previous start",
        type=non_negative_float,
        default=60.0,
        output_affecting=True,
        group="filter",
    ),
    # Misc
    OptionSpec(
        "config", "YAML file of options (command-line options win)", group="misc", metavar="FILE"
    ),
    OptionSpec(
        "log-level",
        "logging level",
        default="INFO",
        choices=("DEBUG", "INFO", "WARNING", "ERROR"),
        group="misc",
    ),
    OptionSpec(
        "progress-interval",
        "seconds between progress lines (0: none)",
        type=non_negative_float,
        default=5.0,
        group="misc",
    ),
)

SPECS_BY_DEST: dict[str, OptionSpec] = {spec.dest: spec for spec in OPTION_SPECS}
OUTPUT_AFFECTING: tuple[str, ...] = tuple(s.dest for s in OPTION_SPECS if s.output_affecting)


class NoExitParser(argparse.ArgumentParser):
    """An ArgumentParser that raises UsageError instead of printing and exiting."""

    def error(self, message: str) -> None:  # type: ignore[override]
        # "argument --fetch-size/--fetch_size: 'x' is not ..." -> "--fetch-size: 'x' is not ..."
        match = re.match(r"argument (--[\w-]+)(?:/--[\w-]+)*: (.*)$", message, re.S)
        if match:
            message = f"{match.group(1)}: {match.group(2)}"
        raise UsageError(message)


def _typed(spec: OptionSpec) -> Callable[[str], Any]:
    def convert(text: str) -> Any:
        try:
            return spec.type(text)
        except (ValueError, TypeError) as exc:
            detail = str(exc)
            extra = f" ({detail})" if spec.type is delimiter and detail else ""
            raise argparse.ArgumentTypeError(
                f"{text!r} is not {describe_type(spec)}{extra}"
            ) from None

    convert.__name__ = spec.dest
    return convert


def add_export_arguments(
    parser: argparse.ArgumentParser,
    *,
    with_defaults: bool = True,
    specs: Sequence[OptionSpec] = OPTION_SPECS,
) -> None:
    """Add every option of ``specs`` (export's by default) to ``parser``, dash and underscore
    spellings."""
    groups: dict[str, Any] = {}
    for spec in specs:
        group = groups.get(spec.group)
        if group is None and hasattr(parser, "add_argument_group"):
            group = groups[spec.group] = parser.add_argument_group(f"{spec.group} options")
        target = group or parser
        default = spec.default if with_defaults else None
        if spec.flag:
            target.add_argument(
                *spec.flags,
                dest=spec.dest,
                nargs="?",
                const=True,
                default=default or None,
                type=_typed(OptionSpec(spec.name, spec.help, type=boolean)),
                help=spec.help,
                metavar="BOOL",
            )
        elif spec.optional_value:
            target.add_argument(
                *spec.flags,
                dest=spec.dest,
                nargs="?",
                const=True,
                default=default,
                help=spec.help,
                metavar=spec.metavar,
            )
        else:
            target.add_argument(
                *spec.flags,
                dest=spec.dest,
                type=_typed(spec),
                default=default,
                choices=spec.choices,
                help=spec.help + _default_text(spec),
                metavar=spec.metavar or (None if spec.choices else spec.dest.upper()),
            )


def _default_text(spec: OptionSpec) -> str:
    if spec.default in (None, ""):
        return ""
    return f" (default: {spec.default})"


class ExportOptions(PipelineOptions):
    """The export options as Beam pipeline options (used by Flex templates and runners)."""

    @classmethod
    def _add_argparse_args(cls, parser: argparse.ArgumentParser) -> None:
        add_export_arguments(parser)
