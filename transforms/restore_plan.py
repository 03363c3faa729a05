"""Pure restore logic: the plan of a restore and the CQL of its statements.

A cell is written with the writetime and TTL it had: cells of one row that share
(writetime, TTL) form one ``UPDATE ... USING TIMESTAMP t AND TTL n`` statement. With
per-element writetimes (``--collection-writetime list``) a set or map is added element
group by element group (``s = s + {...}``), a non-frozen UDT field by field
(``u.f = ...``), and a list appended run by run in element order (``l = l + [...]``).
Statics are written once per partition, with the partition key only. A row whose exported
regular cells are all null gets ``INSERT`` of its key columns, the only CQL that writes a
row marker. ``TTL 0`` is always explicit so a table's ``default_time_to_live`` cannot give
a cell a TTL it did not have.

Which statements one decoded row becomes is :mod:`transforms.restore_rows`. Nothing here
talks to Cassandra: ``transforms.cassandra_write`` prepares, binds and sends.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

from transforms.cql_types import parse_cql_type
from transforms.table_plan import CLUSTERING, PARTITION_KEY, STATIC, quote_identifier

__all__ = [
    "ADD",
    "Assignment",
    "build_restore_plan",
    "COUNTER",
    "STATIC_COUNTER",
    "FIELD",
    "list_check_columns",
    "list_check_cql",
    "list_check_key_scope",
    "MARKER",
    "PARTITION",
    "RestoreColumn",
    "RestorePlan",
    "ROW",
    "SET_VALUE",
    "Shape",
    "Statement",
    "statement_cql",
]

SET_VALUE = "set"  # c = ?
ADD = "add"  # c = c + ?   (set union, map merge, list append, counter increment)
FIELD = "field"  # c.f = ?

ROW = "row"  # UPDATE ... WHERE full primary key
PARTITION = "partition"  # UPDATE ... WHERE partition key (statics)
MARKER = "marker"  # INSERT INTO ... (key columns): the row marker
COUNTER = "counter"  # UPDATE ... SET c = c + ? (no timestamp, no TTL)
STATIC_COUNTER = "static_counter"  # the same, WHERE partition key (static counters)


@dataclass(frozen=True)
class RestoreColumn:
    """One exported column as restore writes it."""

    name: str
    kind: str  # partition_key, clustering, static, regular
    cql_type: str
    multicell: str | None = None  # list, set, map or udt when not frozen
    udt_fields: tuple[str, ...] = ()
    counter: bool = False
    has_writetime: bool = False
    has_ttl: bool = False

    @property
    def is_key(self) -> bool:
        return self.kind in (PARTITION_KEY, CLUSTERING)

    @cached_property
    def whole(self) -> Assignment:
        """The assignment that writes the whole value: ``c = ?``."""
        return Assignment(self.name, SET_VALUE)


@dataclass(frozen=True)
class RestorePlan:
    """The target table and how each exported column is written back."""

    keyspace: str
    table: str
    columns: tuple[RestoreColumn, ...]
    fixed_timestamp: int | None = None  # --timestamp: for columns exported without writetime

    @property
    def qualified_table(self) -> str:
        return f"{quote_identifier(self.keyspace)}.{quote_identifier(self.table)}"

    @property
    def partition_key(self) -> tuple[RestoreColumn, ...]:
        return tuple(c for c in self.columns if c.kind == PARTITION_KEY)

    @property
    def clustering(self) -> tuple[RestoreColumn, ...]:
        return tuple(c for c in self.columns if c.kind == CLUSTERING)

    @property
    def data_columns(self) -> tuple[RestoreColumn, ...]:
        return tuple(c for c in self.columns if not c.is_key)

    @property
    def list_columns(self) -> tuple[RestoreColumn, ...]:
        return tuple(c for c in self.columns if c.multicell == "list")

    @property
    def is_counter_table(self) -> bool:
        return any(c.counter for c in self.columns)


def build_restore_plan(
    keyspace: str,
    table: str,
    columns: Sequence[Mapping[str, str]],
    user_types: Mapping[str, Sequence[Sequence[str]]],
    writetime_columns: Iterable[str],
    ttl_columns: Iterable[str],
    fixed_timestamp: int | None = None,
) -> RestorePlan:
    """A plan from the export's recorded columns (``{"name", "cql_type", "kind"}``)."""
    udts = {
        name: ([f for f, _ in fields], [t for _, t in fields])
        for name, fields in user_types.items()
    }
    with_wt, with_ttl = set(writetime_columns), set(ttl_columns)
    planned = []
    for column in columns:
        parsed = parse_cql_type(column["cql_type"], udts)
        planned.append(
            RestoreColumn(
                name=column["name"],
                kind=column["kind"],
                cql_type=column["cql_type"],
                multicell=parsed.name if parsed.is_multicell else None,
                udt_fields=tuple(parsed.field_names) if parsed.name == "udt" else (),
                counter=parsed.is_counter,
                has_writetime=column["name"] in with_wt,
                has_ttl=column["name"] in with_ttl,
            )
        )
    return RestorePlan(keyspace, table, tuple(planned), fixed_timestamp)


# --- statements -------------------------------------------------------------------------------


class Assignment(NamedTuple):
    """``c = ?``, ``c = c + ?`` or ``c.f = ?``. A named tuple: shapes made of these are
    hashed for every statement sent, and a tuple hashes without calling Python code."""

    column: str
    op: str  # SET_VALUE, ADD, FIELD
    field: str | None = None

    def cql(self) -> str:
        name = quote_identifier(self.column)
        if self.op == ADD:
            return f"{name} = {name} + ?"
        if self.op == FIELD:
            return f"{name}.{quote_identifier(self.field or '')} = ?"
        return f"{name} = ?"


class Shape(NamedTuple):
    """What a prepared statement looks like; statements of one shape share one prepare
    (a named tuple, hashed cheaply like ``Assignment``)."""

    scope: str  # ROW, PARTITION, MARKER, COUNTER, STATIC_COUNTER
    assignments: tuple[Assignment, ...] = ()


class Statement(NamedTuple):
    """One statement to bind: its shape and values in bind order (a named tuple: one is
    made for every row restored)."""

    shape: Shape
    values: tuple[Any, ...]
    cells: int
    appends_list: bool = False


def statement_cql(plan: RestorePlan, shape: Shape) -> str:
    """The CQL of a shape. Bind order: timestamp, TTL, assigned values, key values (UPDATE);
    key values, timestamp (INSERT); assigned values, key values (counters)."""
    by_partition = shape.scope in (PARTITION, STATIC_COUNTER)
    keys = plan.partition_key if by_partition else plan.partition_key + plan.clustering
    where = " AND ".join(f"{quote_identifier(c.name)} = ?" for c in keys)
    if shape.scope == MARKER:
        names = ", ".join(quote_identifier(c.name) for c in keys)
        marks = ", ".join("?" for _ in keys)
        return (
            f"INSERT INTO {plan.qualified_table} ({names}) VALUES ({marks}) "
            "USING TIMESTAMP ? AND TTL 0"
        )
    sets = ", ".join(a.cql() for a in shape.assignments)
    if shape.scope in (COUNTER, STATIC_COUNTER):
        return f"UPDATE {plan.qualified_table} SET {sets} WHERE {where}"
    return f"UPDATE {plan.qualified_table} USING TIMESTAMP ? AND TTL ? SET {sets} WHERE {where}"


def list_check_columns(plan: RestorePlan, scope: str) -> tuple[RestoreColumn, ...]:
    """The list columns a redone unit reads back: all of a row's (ROW), or the static ones
    of a static-only partition (PARTITION)."""
    if scope == ROW:
        return plan.list_columns
    return tuple(c for c in plan.list_columns if c.kind == STATIC)


def list_check_key_scope(plan: RestorePlan, scope: str) -> str:
    """The key the list read of ``scope`` restricts: the row's primary key (ROW) when a
    regular list is read, else the partition key (PARTITION): Cassandra refuses a read of
    static columns only that restricts the clustering columns."""
    if scope == ROW and any(c.kind != STATIC for c in plan.list_columns):
        return ROW
    return PARTITION


def list_check_cql(plan: RestorePlan, scope: str = ROW) -> str:
    """The read a redone unit makes before appending to lists: each list with its element
    writetimes, for one row (ROW) or the statics of one partition (PARTITION)."""
    key_scope = list_check_key_scope(plan, scope)
    keys = plan.partition_key if key_scope == PARTITION else plan.partition_key + plan.clustering
    where = " AND ".join(f"{quote_identifier(c.name)} = ?" for c in keys)
    selectors = []
    for column in list_check_columns(plan, scope):
        name = quote_identifier(column.name)
        selectors += [name, f"WRITETIME({name})"]
    limit = " LIMIT 1" if key_scope == PARTITION else ""
    return f"SELECT {', '.join(selectors)} FROM {plan.qualified_table} WHERE {where}{limit}"
