"""Pure restore logic: which timestamped statements put one exported row back.

A cell is written with the writetime and TTL it had: cells of one row that share
(writetime, TTL) form one ``UPDATE ... USING TIMESTAMP t AND TTL n`` statement. With
per-element writetimes (``--collection-writetime list``) a set or map is added element
group by element group (``s = s + {...}``), a non-frozen UDT field by field
(``u.f = ...``), and a list appended run by run in element order (``l = l + [...]``).
Statics are written once per partition, with the partition key only. A row whose exported
regular cells are all null gets ``INSERT`` of its key columns, the only CQL that writes a
row marker. ``TTL 0`` is always explicit so a table's ``default_time_to_live`` cannot give
a cell a TTL it did not have.

Nothing here talks to Cassandra: ``transforms.cassandra_write`` prepares, binds and sends.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any, NamedTuple

from transforms.cql_types import parse_cql_type
from transforms.table_plan import CLUSTERING, PARTITION_KEY, STATIC, quote_identifier

__all__ = [
    "ADD",
    "Assignment",
    "bindable",
    "build_restore_plan",
    "COUNTER",
    "FIELD",
    "list_check_columns",
    "list_check_cql",
    "MARKER",
    "pack_batches",
    "PARTITION",
    "RestoreColumn",
    "RestorePlan",
    "ROW",
    "RowStatementBuilder",
    "RowWrites",
    "SET_VALUE",
    "Shape",
    "Statement",
    "statement_cql",
    "TtlClock",
    "udt_field_values",
]

SET_VALUE = "set"  # c = ?
ADD = "add"  # c = c + ?   (set union, map merge, list append, counter increment)
FIELD = "field"  # c.f = ?

ROW = "row"  # UPDATE ... WHERE full primary key
PARTITION = "partition"  # UPDATE ... WHERE partition key (statics)
MARKER = "marker"  # INSERT INTO ... (key columns): the row marker
COUNTER = "counter"  # UPDATE ... SET c = c + ? (no timestamp, no TTL)


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

    scope: str  # ROW, PARTITION, MARKER, COUNTER
    assignments: tuple[Assignment, ...] = ()


@dataclass
class Statement:
    """One statement to bind: its shape and values in bind order."""

    shape: Shape
    values: tuple[Any, ...]
    cells: int
    appends_list: bool = False


def statement_cql(plan: RestorePlan, shape: Shape) -> str:
    """The CQL of a shape. Bind order: timestamp, TTL, assigned values, key values (UPDATE);
    key values, timestamp (INSERT); assigned values, key values (counters)."""
    keys = plan.partition_key if shape.scope == PARTITION else plan.partition_key + plan.clustering
    where = " AND ".join(f"{quote_identifier(c.name)} = ?" for c in keys)
    if shape.scope == MARKER:
        names = ", ".join(quote_identifier(c.name) for c in keys)
        marks = ", ".join("?" for _ in keys)
        return (
            f"INSERT INTO {plan.qualified_table} ({names}) VALUES ({marks}) "
            "USING TIMESTAMP ? AND TTL 0"
        )
    sets = ", ".join(a.cql() for a in shape.assignments)
    if shape.scope == COUNTER:
        return f"UPDATE {plan.qualified_table} SET {sets} WHERE {where}"
    return f"UPDATE {plan.qualified_table} USING TIMESTAMP ? AND TTL ? SET {sets} WHERE {where}"


def list_check_columns(plan: RestorePlan, scope: str) -> tuple[RestoreColumn, ...]:
    """The list columns a redone unit reads back: all of a row's (ROW), or the static ones
    of a static-only partition (PARTITION)."""
    if scope == ROW:
        return plan.list_columns
    return tuple(c for c in plan.list_columns if c.kind == STATIC)


def list_check_cql(plan: RestorePlan, scope: str = ROW) -> str:
    """The read a redone unit makes before appending to lists: each list with its element
    writetimes, for one row (ROW) or the statics of one partition (PARTITION)."""
    keys = plan.partition_key if scope == PARTITION else plan.partition_key + plan.clustering
    where = " AND ".join(f"{quote_identifier(c.name)} = ?" for c in keys)
    selectors = []
    for column in list_check_columns(plan, scope):
        name = quote_identifier(column.name)
        selectors += [name, f"WRITETIME({name})"]
    limit = " LIMIT 1" if scope == PARTITION else ""
    return f"SELECT {', '.join(selectors)} FROM {plan.qualified_table} WHERE {where}{limit}"


# --- one row -------------------------------------------------------------------------------


@dataclass
class RowWrites:
    """The statements of one row (never split across batches) and what they count."""

    statements: list[Statement] = field(default_factory=list)
    cells: int = 0
    expired: int = 0
    list_elements_present: int = 0


class TtlClock:
    """Turns an exported TTL (seconds left when the unit was read) into the TTL that keeps
    the original expiry instant at ``now``; None when the cell has expired since."""

    def __init__(self, read_started_s: int, now_s: int) -> None:
        self.offset = read_started_s - now_s

    def restored(self, ttl: int | None) -> int | None:
        if ttl is None:
            return 0
        left = int(ttl) + self.offset
        return left if left > 0 else None


def bindable(column: RestoreColumn, value: Any) -> Any:
    """A whole value as the driver binds it: a UDT given as a mapping becomes a tuple in
    field order (the driver's UDT serializer reads UDT values by position)."""
    if column.udt_fields and isinstance(value, Mapping):
        return tuple(value.get(f) for f in column.udt_fields)
    return value


def udt_field_values(column: RestoreColumn, value: Any) -> list[Any]:
    """The field values of a UDT value given as a mapping, a tuple or an object."""
    if isinstance(value, Mapping):
        return [value.get(f) for f in column.udt_fields]
    if isinstance(value, tuple | list):
        return list(value) + [None] * (len(column.udt_fields) - len(value))
    return [getattr(value, f, None) for f in column.udt_fields]


def _per_element(values: Any, count: int) -> list[Any]:
    if isinstance(values, list):
        return values + [None] * (count - len(values))
    return [values] * count


class RowStatementBuilder:
    """Builds the statements of decoded rows for one plan."""

    def __init__(self, plan: RestorePlan) -> None:
        self.plan = plan
        # The plan's derived column lists, computed once: they are read for every row.
        self.partition_names = tuple(c.name for c in plan.partition_key)
        self.clustering_names = tuple(c.name for c in plan.clustering)
        self.key_names = self.partition_names + self.clustering_names
        self.data_columns = plan.data_columns
        self.list_columns = plan.list_columns
        self.counter_table = plan.is_counter_table
        # Per data column, what row_writes reads for every cell: name, static, whether it
        # is a plain value (not a counter, not a multi-cell collection or UDT: the common
        # case, written inline), its whole-value assignment, UDT-ness, writetime and TTL.
        self._cells = tuple(
            (
                c,
                c.name,
                c.kind == STATIC,
                c.multicell is None and not c.counter,
                c.whole,
                bool(c.udt_fields),
                c.has_writetime,
                c.has_ttl,
            )
            for c in self.data_columns
        )

    def key_values(self, values: Mapping[str, Any], scope: str) -> tuple[Any, ...]:
        names = self.partition_names if scope == PARTITION else self.key_names
        return tuple(values[n] for n in names)

    def is_static_only(self, values: Mapping[str, Any]) -> bool:
        return any(values.get(n) is None for n in self.clustering_names)

    def list_elements(
        self, row: Any, clock: TtlClock
    ) -> dict[str, list[tuple[Any, int, int | None]]]:
        """List columns of ``row``: (element, timestamp, restored TTL or None if expired)."""
        found = {}
        for column in self.list_columns:
            value = row.values.get(column.name)
            if value is None or self.is_static_only(row.values) and column.kind != STATIC:
                continue
            items = list(value)
            stamps = _per_element(self._timestamps(row, column), len(items))
            ttls = _per_element(row.ttls.get(column.name) if column.has_ttl else None, len(items))
            found[column.name] = [
                (item, int(stamp), clock.restored(ttl))
                for item, stamp, ttl in zip(items, stamps, ttls, strict=True)
            ]
        return found

    def _timestamps(self, row: Any, column: RestoreColumn) -> Any:
        if column.has_writetime:
            return row.writetimes.get(column.name)
        return self.plan.fixed_timestamp

    def row_writes(
        self,
        row: Any,
        clock: TtlClock,
        *,
        with_statics: bool,
        marker_timestamp: int,
        present: Mapping[str, Counter] | None = None,
        element_key: Callable[[str, Any], Any] | None = None,
    ) -> RowWrites:
        """Every statement of one decoded row. ``present`` (a redone unit) holds, per list
        column, the (element key, writetime) pairs the target already has: those are not
        appended again."""
        values = row.values
        writetimes = row.writetimes
        ttls_of = row.ttls
        fixed = self.plan.fixed_timestamp
        out = RowWrites()
        static_only = self.is_static_only(values)
        groups: dict[tuple[str, int, int], list[tuple[Assignment, Any, int]]] = {}
        counters: list[tuple[Assignment, Any]] = []
        list_runs: list[Statement] = []
        regular_cells = 0
        lists = self.list_elements(row, clock) if self.list_columns else {}
        for column, name, is_static, plain, whole, udt, has_wt, has_ttl in self._cells:
            value = values.get(name)
            if value is None or (is_static and not with_statics):
                continue
            if static_only and not is_static:
                continue
            if not is_static:
                regular_cells += 1
            if plain:  # what _add does, inline: most cells of most tables go here
                ttl = ttls_of.get(name) if has_ttl else None
                restored = 0 if ttl is None else clock.restored(ttl)
                if restored is None:
                    out.expired += 1
                    continue
                stamp = writetimes.get(name) if has_wt else fixed
                key = (PARTITION if is_static else ROW, int(stamp), restored)
                group = groups.get(key)
                if group is None:
                    group = groups[key] = []
                group.append((whole, bindable(column, value) if udt else value, 1))
                out.cells += 1
                continue
            if column.counter:
                counters.append((Assignment(name, ADD), value))
                out.cells += 1
                continue
            scope = PARTITION if is_static else ROW
            stamps = self._timestamps(row, column)
            ttls = row.ttls.get(name) if has_ttl else None
            if column.multicell is None:
                self._add(
                    groups, out, scope, column.whole, bindable(column, value), stamps, ttls, clock
                )
            elif column.multicell == "list":
                elements = lists[column.name]
                if present and column.name in present and element_key is not None:
                    have = Counter(present[column.name])
                    kept = []
                    for element in elements:
                        key = (element_key(column.name, element[0]), element[1])
                        if have[key] > 0:
                            have[key] -= 1
                            out.list_elements_present += 1
                        else:
                            kept.append(element)
                    elements = kept
                list_runs += self._list_runs(column, scope, elements, values, out)
            elif column.multicell in ("set", "map") and isinstance(stamps, list):
                items = list(value.items()) if column.multicell == "map" else list(value)
                element_groups: dict[tuple[int, Any], list[Any]] = {}
                for item, stamp, ttl in zip(
                    items,
                    _per_element(stamps, len(items)),
                    _per_element(ttls, len(items)),
                    strict=True,
                ):
                    element_groups.setdefault((int(stamp), ttl), []).append(item)
                for (stamp, ttl), members in element_groups.items():
                    restored = clock.restored(ttl)
                    if restored is None:
                        out.expired += len(members)
                        continue
                    packed = dict(members) if column.multicell == "map" else list(members)
                    groups.setdefault((scope, stamp, restored), []).append(
                        (Assignment(column.name, ADD), packed, len(members))
                    )
                    out.cells += len(members)
            elif column.multicell == "udt" and isinstance(stamps, list):
                fields = udt_field_values(column, value)
                n = len(column.udt_fields)
                for name, item, stamp, ttl in zip(
                    column.udt_fields,
                    fields,
                    _per_element(stamps, n),
                    _per_element(ttls, n),
                    strict=True,
                ):
                    if item is not None and stamp is not None:
                        assignment = Assignment(column.name, FIELD, name)
                        self._add(groups, out, scope, assignment, item, stamp, ttl, clock)
            else:
                self._add(
                    groups, out, scope, column.whole, bindable(column, value), stamps, ttls, clock
                )

        for (scope, stamp, ttl), members in groups.items():
            assignments, assigned, cells = zip(*members, strict=True)
            keys = self.key_values(values, scope)
            out.statements.append(
                Statement(Shape(scope, assignments), (stamp, ttl, *assigned, *keys), sum(cells))
            )
        out.statements += list_runs
        if counters:
            shape = Shape(COUNTER, tuple(a for a, _ in counters))
            keys = self.key_values(values, ROW)
            out.statements.append(
                Statement(shape, (*(v for _, v in counters), *keys), len(counters))
            )
        if not static_only and regular_cells == 0 and not self.counter_table:
            keys = self.key_values(values, ROW)
            out.statements.append(Statement(Shape(MARKER), (*keys, marker_timestamp), 0))
        return out

    @staticmethod
    def _add(
        groups: dict[tuple[str, int, int], list[tuple[Assignment, Any, int]]],
        out: RowWrites,
        scope: str,
        assignment: Assignment,
        item: Any,
        stamp: Any,
        ttl: Any,
        clock: TtlClock,
    ) -> None:
        """One cell into its (scope, writetime, TTL) group, or counted as expired."""
        restored = clock.restored(ttl)
        if restored is None:
            out.expired += 1
            return
        groups.setdefault((scope, int(stamp), restored), []).append((assignment, item, 1))
        out.cells += 1

    def _list_runs(
        self,
        column: RestoreColumn,
        scope: str,
        elements: list[tuple[Any, int, int | None]],
        values: Mapping[str, Any],
        out: RowWrites,
    ) -> list[Statement]:
        """Consecutive elements sharing (timestamp, TTL): one append each, in element order."""
        runs: list[Statement] = []
        shape = Shape(scope, (Assignment(column.name, ADD),))
        keys = self.key_values(values, scope)
        current: list[Any] = []
        current_key: tuple[int, int] | None = None

        def flush() -> None:
            if current and current_key is not None:
                runs.append(
                    Statement(
                        shape,
                        (current_key[0], current_key[1], list(current), *keys),
                        len(current),
                        True,
                    )
                )

        for item, stamp, ttl in elements:
            if ttl is None:
                out.expired += 1
                continue
            if (stamp, ttl) != current_key:
                flush()
                current = []
                current_key = (stamp, ttl)
            current.append(item)
            out.cells += 1
        flush()
        return runs


def pack_batches(rows: Sequence[RowWrites], max_statements: int) -> list[list[Statement]]:
    """Statements of one partition in batches of at most ``max_statements``; a row's
    statements always share one batch (a single-partition batch is applied atomically, which
    the list check of a redone unit relies on), so a larger row gets a batch of its own."""
    batches: list[list[Statement]] = []
    current: list[Statement] = []
    for row in rows:
        if not row.statements:
            continue
        if current and len(current) + len(row.statements) > max_statements:
            batches.append(current)
            current = []
        current.extend(row.statements)
    if current:
        batches.append(current)
    return batches
