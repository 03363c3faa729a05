"""The planned column set: which columns are read, which get a writetime or TTL, in what order.

A :class:`TablePlan` is built once, at pipeline construction, from the table's
metadata, and is plain data: workers get it pickled and never look at the schema
again, so a column added during the export cannot change the output's shape.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from transforms.cql_types import CqlType, parse_cql_type

__all__ = [
    "build_table_plan",
    "CLUSTERING",
    "COLLECTION_LIST",
    "COLLECTION_MAX",
    "COLLECTION_MIN",
    "COLLECTION_POLICIES",
    "ColumnPlan",
    "DEFAULT_COLLECTION_POLICY",
    "OutputField",
    "PARTITION_KEY",
    "PlanError",
    "quote_identifier",
    "REGULAR",
    "resolve_identifier",
    "STATIC",
    "supports_multicell_writetime",
    "TablePlan",
]

_LOG = logging.getLogger(__name__)

PARTITION_KEY = "partition_key"
CLUSTERING = "clustering"
STATIC = "static"
REGULAR = "regular"

# --collection-writetime: what a non-frozen collection's per-element writetimes (and TTLs)
# become in the files. The one list of choices and the one default, used by the option,
# the normalizer, the writers and ReadCassandraWithWritetime.
COLLECTION_MAX = "max"  # the latest element write
COLLECTION_MIN = "min"  # the earliest
COLLECTION_LIST = "list"  # every element's, in element order
COLLECTION_POLICIES = (COLLECTION_MAX, COLLECTION_MIN, COLLECTION_LIST)
DEFAULT_COLLECTION_POLICY = COLLECTION_MAX

# CQL keywords that must be quoted when used as identifiers (reserved words).
_RESERVED = frozenset(
    """add allow alter and apply asc authorize batch begin by columnfamily create default delete
    desc describe drop entries execute from full grant if in index infinity insert into is keyspace
    limit mbean mbeans modify nan norecursive not null of on or order primary rename replace revoke
    schema select set table to token truncate unlogged unset update use using view where with
    """.split()
)


def quote_identifier(name: str) -> str:
    """CQL spelling of an identifier: bare when lowercase and unreserved, else double-quoted."""
    if name and name.isidentifier() and name == name.lower() and name.isascii():
        if name not in _RESERVED and not name.startswith("_"):
            return name
    return '"' + name.replace('"', '""') + '"'


class PlanError(ValueError):
    """The requested export does not fit the table (unknown column, ineligible column...)."""


@dataclass(frozen=True)
class ColumnPlan:
    """One table column as exported."""

    name: str
    cql_type: CqlType
    kind: str  # partition_key, clustering, static, regular

    @property
    def is_key(self) -> bool:
        return self.kind in (PARTITION_KEY, CLUSTERING)

    def writetime_ineligible_reason(self, multicell_supported: bool) -> str | None:
        if self.kind == PARTITION_KEY:
            return "it is a partition key column (Cassandra keeps no writetime for keys)"
        if self.kind == CLUSTERING:
            return "it is a clustering column (Cassandra keeps no writetime for keys)"
        if self.cql_type.is_counter:
            return "it is a counter (Cassandra rejects WRITETIME/TTL of counters)"
        if self.cql_type.is_multicell and not multicell_supported:
            return "it is a non-frozen collection or UDT, which needs Cassandra 5.0 or later"
        return None


@dataclass(frozen=True)
class OutputField:
    """One output column: a value, or the writetime / TTL of a value column."""

    name: str
    role: str  # value, writetime, ttl
    column: ColumnPlan


@dataclass(frozen=True)
class TablePlan:
    """Everything a worker needs to read and write one table."""

    keyspace: str
    table: str
    columns: tuple[ColumnPlan, ...]
    writetime_columns: tuple[str, ...]
    ttl_columns: tuple[str, ...]
    writetime_suffix: str = "_writetime"
    ttl_suffix: str = "_ttl"
    release_version: str = ""
    cluster_name: str = ""
    warnings: tuple[str, ...] = field(default=())
    user_types: tuple[tuple[str, tuple[str, ...], tuple[str, ...]], ...] = ()

    @property
    def partition_key(self) -> tuple[ColumnPlan, ...]:
        return tuple(c for c in self.columns if c.kind == PARTITION_KEY)

    @property
    def columns_by_name(self) -> dict[str, ColumnPlan]:
        return {c.name: c for c in self.columns}

    @property
    def output_fields(self) -> tuple[OutputField, ...]:
        by_name = self.columns_by_name
        fields = [OutputField(c.name, "value", c) for c in self.columns]
        fields += [
            OutputField(n + self.writetime_suffix, "writetime", by_name[n])
            for n in self.writetime_columns
        ]
        fields += [OutputField(n + self.ttl_suffix, "ttl", by_name[n]) for n in self.ttl_columns]
        return tuple(fields)

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.output_fields)

    @property
    def qualified_table(self) -> str:
        return f"{quote_identifier(self.keyspace)}.{quote_identifier(self.table)}"

    def select_cql(self, with_token: bool = True) -> str:
        """The one query per token range: token first (unless the reader computes it from
        the key columns, ``with_token=False``), then values, writetimes, TTLs."""
        pk = ", ".join(quote_identifier(c.name) for c in self.partition_key)
        selectors = [f"token({pk})"] if with_token else []
        # Top-level timestamps are selected as they are and read as bigint by the reader
        # (transforms.wire_timestamps), not converted by the node.
        selectors += [quote_identifier(column.name) for column in self.columns]
        selectors += [f"WRITETIME({quote_identifier(n)})" for n in self.writetime_columns]
        selectors += [f"TTL({quote_identifier(n)})" for n in self.ttl_columns]
        return (
            f"SELECT {', '.join(selectors)} FROM {self.qualified_table} "
            f"WHERE token({pk}) > ? AND token({pk}) <= ?"
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "keyspace": self.keyspace,
            "table": self.table,
            "columns": [
                {"name": c.name, "type": str(c.cql_type), "kind": c.kind} for c in self.columns
            ],
            "writetime_columns": list(self.writetime_columns),
            "ttl_columns": list(self.ttl_columns),
            "writetime_suffix": self.writetime_suffix,
            "ttl_suffix": self.ttl_suffix,
            "release_version": self.release_version,
            "cluster_name": self.cluster_name,
            "user_types": {name: [list(f), list(t)] for name, f, t in self.user_types},
        }

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> TablePlan:
        """The plan stored in a manifest (never re-read from the live schema)."""
        user_types = {
            name: (tuple(ft[0]), tuple(ft[1])) for name, ft in value.get("user_types", {}).items()
        }
        columns = tuple(
            ColumnPlan(c["name"], parse_cql_type(c["type"], user_types), c["kind"])
            for c in value["columns"]
        )
        return cls(
            keyspace=value["keyspace"],
            table=value["table"],
            columns=columns,
            writetime_columns=tuple(value["writetime_columns"]),
            ttl_columns=tuple(value["ttl_columns"]),
            writetime_suffix=value.get("writetime_suffix", "_writetime"),
            ttl_suffix=value.get("ttl_suffix", "_ttl"),
            release_version=value.get("release_version", ""),
            cluster_name=value.get("cluster_name", ""),
            user_types=tuple((n, f, t) for n, (f, t) in sorted(user_types.items())),
        )


def supports_multicell_writetime(release_version: str) -> bool:
    """Cassandra 5.0 and later return per-element writetimes of non-frozen collections."""
    try:
        major = int(release_version.split(".")[0])
    except (ValueError, IndexError):
        return True
    return major >= 5


# One name of a comma-separated list: a quoted part may hold commas (``"x,y",z``).
_LIST_ITEM = re.compile(r'(?:"(?:[^"]|"")*"|[^,"]|")+')


def _split_names(value: str | Sequence[str] | None) -> list[str] | None:
    if value is None:
        return None
    if isinstance(value, str):
        items = [v.strip() for v in _LIST_ITEM.findall(value)]
    else:
        items = [str(v).strip() for v in value]
    return [v for v in items if v]


def resolve_identifier(name: str, available: Iterable[str]) -> str | None:
    """A keyspace, table or column name as users type it: ``"Quoted"`` exactly, else the
    exact name, else the unique case-insensitive match."""
    available = list(available)
    if len(name) >= 2 and name.startswith('"') and name.endswith('"'):
        name = name[1:-1].replace('""', '"')
        return name if name in available else None
    if name in available:
        return name
    matches = [n for n in available if n.lower() == name.lower()]
    return matches[0] if len(matches) == 1 else None


def build_table_plan(
    *,
    keyspace: str,
    table: str,
    column_types: Sequence[tuple[str, str, str]],
    user_types: Mapping[str, tuple[Sequence[str], Sequence[str]]],
    release_version: str,
    cluster_name: str = "",
    columns: str | Sequence[str] | None = None,
    writetime_columns: str | Sequence[str] | None = "*",
    ttl_columns: str | Sequence[str] | None = None,
    writetime_suffix: str = "_writetime",
    ttl_suffix: str = "_ttl",
) -> TablePlan:
    """Plan the export of one table from its metadata.

    ``column_types`` lists ``(name, cql_type_string, kind)`` in table order:
    partition key, clustering key, then the other columns.
    """
    all_columns = [
        ColumnPlan(name, parse_cql_type(type_string, user_types), kind)
        for name, type_string, kind in column_types
    ]
    table_label = f"{keyspace}.{table}"
    exported = _exported_columns(all_columns, columns, table_label)
    timed = _TimedColumns(
        all_columns, exported, table_label, supports_multicell_writetime(release_version)
    )
    wt = timed.choose("writetime-columns", writetime_columns)
    ttl = timed.choose("ttl-columns", ttl_columns)
    _check_suffixes(writetime_suffix, ttl_suffix, both_used=bool(wt and ttl))
    plan = TablePlan(
        keyspace=keyspace,
        table=table,
        columns=tuple(exported),
        writetime_columns=wt,
        ttl_columns=ttl,
        writetime_suffix=writetime_suffix,
        ttl_suffix=ttl_suffix,
        release_version=release_version,
        cluster_name=cluster_name,
        warnings=timed.warnings(release_version),
        user_types=tuple(
            (name, tuple(fields), tuple(types))
            for name, (fields, types) in sorted(user_types.items())
        ),
    )
    _check_output_names(plan, {c.name for c in all_columns})
    return plan


def _exported_columns(
    all_columns: Sequence[ColumnPlan], columns: str | Sequence[str] | None, table_label: str
) -> list[ColumnPlan]:
    """The columns ``--columns`` selects, in table order; key columns always (all: none given)."""
    selected = _split_names(columns)
    if not selected:
        return list(all_columns)
    names = [c.name for c in all_columns]
    chosen: set[str] = set()
    for raw in selected:
        name = resolve_identifier(raw, names)
        if name is None:
            raise PlanError(
                f"--columns: table {table_label} has no column {raw!r}; "
                f"its columns are: {', '.join(names)}"
            )
        chosen.add(name)
    return [c for c in all_columns if c.is_key or c.name in chosen]


class _TimedColumns:
    """Chooses the columns of ``--writetime-columns`` and ``--ttl-columns`` among the exported
    ones, and remembers the columns that ``'*'`` leaves out on a cluster older than 5.0 (one
    warning per column, naming every option it is left out of)."""

    def __init__(
        self,
        all_columns: Sequence[ColumnPlan],
        exported: Sequence[ColumnPlan],
        table_label: str,
        multicell_ok: bool,
    ) -> None:
        self.by_name = {c.name: c for c in all_columns}
        self.exported = exported
        self.order = {c.name: i for i, c in enumerate(exported)}
        self.table_label = table_label
        self.multicell_ok = multicell_ok
        self.left_out: dict[str, tuple[list[str], str]] = {}

    def choose(self, option: str, value: str | Sequence[str] | None) -> tuple[str, ...]:
        """The column names ``value`` ('*', 'none' or a list) gives ``--option``, in export order."""
        names = _split_names(value)
        if not names or names == ["none"]:
            return ()
        if names == ["*"]:
            return self._every_eligible(option)
        return self._named(option, names)

    def _every_eligible(self, option: str) -> tuple[str, ...]:
        result = []
        for column in self.exported:
            reason = column.writetime_ineligible_reason(self.multicell_ok)
            if reason is None:
                result.append(column.name)
            elif column.cql_type.is_multicell and not self.multicell_ok:
                self.left_out.setdefault(column.name, ([], reason))[0].append(f"--{option}")
        return tuple(result)

    def _named(self, option: str, names: Sequence[str]) -> tuple[str, ...]:
        result: list[str] = []
        for raw in names:
            name = resolve_identifier(raw, self.by_name)
            if name is None:
                raise PlanError(f"--{option}: table {self.table_label} has no column {raw!r}")
            if name not in self.order:
                raise PlanError(
                    f"--{option}: column {name!r} is not among the exported "
                    f"--columns; add it there too"
                )
            reason = self.by_name[name].writetime_ineligible_reason(self.multicell_ok)
            if reason is not None:
                raise PlanError(
                    f"--{option}: column {name!r} cannot have a "
                    f"{'TTL' if option.startswith('ttl') else 'writetime'}: {reason}"
                )
            if name not in result:
                result.append(name)
        return tuple(sorted(result, key=self.order.__getitem__))

    def warnings(self, release_version: str) -> tuple[str, ...]:
        """One line per column '*' left out."""
        return tuple(
            f"column {name!r} is left out of {' and '.join(options)}: {reason} "
            f"(this cluster runs {release_version})"
            for name, (options, reason) in self.left_out.items()
        )


def _check_suffixes(writetime_suffix: str, ttl_suffix: str, *, both_used: bool) -> None:
    if not writetime_suffix:
        raise PlanError("--writetime-suffix must not be empty")
    if not ttl_suffix:
        raise PlanError("--ttl-suffix must not be empty")
    if writetime_suffix == ttl_suffix and both_used:
        raise PlanError("--writetime-suffix and --ttl-suffix must differ")


def _check_output_names(plan: TablePlan, table_columns: set[str]) -> None:
    """No two output columns share a name, and no writetime / TTL column takes the name of
    a column of the table (exported or not)."""
    seen: dict[str, OutputField] = {}
    for f in plan.output_fields:
        clash = seen.get(f.name)
        if clash is not None or (f.role != "value" and f.name in table_columns):
            option = "--writetime-suffix" if f.role == "writetime" else "--ttl-suffix"
            what = "the table's column of that name"
            if f.name not in table_columns and clash is not None:  # two outputs, one name
                what = f"the {clash.role} column of {clash.column.name!r}"
            raise PlanError(
                f"output column {f.name!r} ({f.role} of {f.column.name!r}) would clash with "
                f"{what}; choose another suffix with {option} (for example {option}=_wt)"
            )
        seen[f.name] = f
