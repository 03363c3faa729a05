"""Pure restore logic: the timestamped statements of one decoded row (their batches:
:mod:`transforms.restore_batches`).

Cells of a row that share (writetime, TTL) form one ``UPDATE ... USING TIMESTAMP t AND
TTL n`` statement (see :mod:`transforms.restore_plan` for the statements' CQL). A row is
built in named steps::

    row_writes(row)
      _cells          each data cell into its (scope, writetime, TTL) group; plain cells
                      inline (most cells of most tables), the others by _collection_cell
      _group_statements  one statement per group, in the order the groups were met
      list runs, counters, the row marker of a key-only row

Nothing here talks to Cassandra: ``transforms.cassandra_write`` prepares, binds and sends.
"""

from __future__ import annotations

import operator
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from cassandra.util import OrderedMap

from transforms.restore_plan import (
    ADD,
    COUNTER,
    FIELD,
    MARKER,
    PARTITION,
    ROW,
    STATIC_COUNTER,
    Assignment,
    RestoreColumn,
    RestorePlan,
    Shape,
    Statement,
)
from transforms.table_plan import STATIC

__all__ = [
    "bindable",
    "key_getter",
    "PARTITION_CHUNK_ROWS",
    "partition_chunks",
    "RowStatementBuilder",
    "RowWrites",
    "TtlClock",
    "udt_field_values",
]

# (scope, writetime, restored TTL) -> [assignments, values, cells]
Groups = dict[tuple[str, int, int], list[Any]]


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


def key_getter(names: Sequence[str]) -> Callable[[Mapping[str, Any]], tuple[Any, ...]]:
    """A function giving the values of ``names`` from a row's values as a tuple (an
    ``itemgetter``, which runs in C; wrapped for a single name, where it gives no tuple)."""
    if len(names) == 1:
        single = operator.itemgetter(names[0])
        return lambda values: (single(values),)
    if not names:
        return lambda values: ()
    return operator.itemgetter(*names)


def _map_of(members: list[tuple[Any, Any]]) -> Any:
    """Some entries of a map as the driver binds them: a dict, or the driver's
    ``OrderedMap`` where a key is unhashable (a UDT decoded as a mapping, a tuple holding
    a list: the decoders give such maps as an ``OrderedMap`` too), which no dict holds, or
    where a dict would take two keys for one (-0.0 and 0.0, which Cassandra tells apart)."""
    try:
        entries = dict(members)
    except TypeError:
        return OrderedMap(members)
    return entries if len(entries) == len(members) else OrderedMap(members)


def _per_element(values: Any, count: int) -> list[Any]:
    if isinstance(values, list):
        return values + [None] * (count - len(values))
    return [values] * count


def _add(
    groups: Groups,
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
    _group(groups, (scope, int(stamp), restored), assignment, item, 1)
    out.cells += 1


def _group(groups: Groups, key: tuple[str, int, int], assignment: Any, item: Any, n: int) -> None:
    group = groups.get(key)
    if group is None:
        groups[key] = [[assignment], [item], n]
    else:
        group[0].append(assignment)
        group[1].append(item)
        group[2] += n


class RowStatementBuilder:
    """Builds the statements of decoded rows for one plan."""

    def __init__(self, plan: RestorePlan) -> None:
        self.plan = plan
        # The plan's derived column lists, computed once: they are read for every row.
        self.partition_names = tuple(c.name for c in plan.partition_key)
        self.clustering_names = tuple(c.name for c in plan.clustering)
        self.key_names = self.partition_names + self.clustering_names
        self._keys_of = {
            PARTITION: key_getter(self.partition_names),
            ROW: key_getter(self.key_names),
        }
        self.list_columns = plan.list_columns
        self.counter_table = plan.is_counter_table
        # Per data column, what row_writes reads for every cell: name, scope, static,
        # whether it is a plain value (not a counter, not a multi-cell collection or UDT:
        # the common case, written inline), its whole-value assignment, UDT-ness,
        # writetime and TTL.
        self._cells = tuple(
            (
                c,
                c.name,
                PARTITION if c.kind == STATIC else ROW,
                c.kind == STATIC,
                c.multicell is None and not c.counter,
                c.whole,
                bool(c.udt_fields),
                c.has_writetime,
                c.has_ttl,
            )
            for c in plan.data_columns
        )

    def key_values(self, values: Mapping[str, Any], scope: str) -> tuple[Any, ...]:
        return self._keys_of[PARTITION if scope == PARTITION else ROW](values)

    def is_static_only(self, values: Mapping[str, Any]) -> bool:
        """Whether a row lacks its clustering values: a partition with static cells only,
        also when its statics were not exported (``--columns``), which leaves it nothing to
        write (a row marker needs the whole primary key)."""
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
        out = RowWrites()
        static_only = self.is_static_only(values)
        groups: Groups = {}
        extra: list[Statement] = []  # list runs, then the counter statement
        regular_cells = self._cells_of(
            row, clock, with_statics, static_only, groups, extra, out, present, element_key
        )
        self._group_statements(groups, values, out)
        out.statements += extra
        if not static_only and regular_cells == 0 and not self.counter_table:
            keys = self._keys_of[ROW](values)
            out.statements.append(Statement(Shape(MARKER), (*keys, marker_timestamp), 0))
        return out

    def _cells_of(
        self,
        row: Any,
        clock: TtlClock,
        with_statics: bool,
        static_only: bool,
        groups: Groups,
        extra: list[Statement],
        out: RowWrites,
        present: Mapping[str, Counter] | None,
        element_key: Callable[[str, Any], Any] | None,
    ) -> int:
        """Each data cell of ``row`` into ``groups`` (list runs and counters into ``extra``);
        returns how many regular (non-static) cells the row has."""
        values, writetimes, ttls_of = row.values, row.writetimes, row.ttls
        fixed = self.plan.fixed_timestamp
        regular_cells = cells = 0
        lists = self.list_elements(row, clock) if self.list_columns else {}
        counters: list[tuple[Assignment, Any]] = []
        static_counters: list[tuple[Assignment, Any]] = []
        for column, name, scope, is_static, plain, whole, udt, has_wt, has_ttl in self._cells:
            value = values.get(name)
            if value is None or (is_static and not with_statics) or (static_only and not is_static):
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
                key = (scope, int(stamp), restored)
                group = groups.get(key)  # what _group does, inline
                if group is None:
                    groups[key] = [[whole], [bindable(column, value) if udt else value], 1]
                else:
                    group[0].append(whole)
                    group[1].append(bindable(column, value) if udt else value)
                    group[2] += 1
                cells += 1
            elif column.counter:
                (static_counters if is_static else counters).append((Assignment(name, ADD), value))
                cells += 1
            elif column.multicell == "list":
                elements = self._absent(column, lists[name], present, element_key, out)
                extra += self._list_runs(column, scope, elements, values, out)
            else:
                self._collection_cell(row, column, scope, value, clock, groups, out)
        out.cells += cells
        extra += self._counter_statements(values, counters, static_counters)
        return regular_cells

    def _counter_statements(
        self,
        values: Mapping[str, Any],
        counters: list[tuple[Assignment, Any]],
        static_counters: list[tuple[Assignment, Any]],
    ) -> list[Statement]:
        """The increments of a row's counters, and of its static counters by the partition
        key alone: Cassandra refuses clustering restrictions on a statement that sets
        statics only."""
        statements = []
        for scope, key_scope, added in (
            (COUNTER, ROW, counters),
            (STATIC_COUNTER, PARTITION, static_counters),
        ):
            if added:
                keys = self._keys_of[key_scope](values)
                shape = Shape(scope, tuple(a for a, _ in added))
                statements.append(Statement(shape, (*(v for _, v in added), *keys), len(added)))
        return statements

    def _group_statements(self, groups: Groups, values: Mapping[str, Any], out: RowWrites) -> None:
        """One statement per (scope, writetime, TTL) group: ``USING TIMESTAMP t AND TTL n``."""
        append = out.statements.append
        for (scope, stamp, ttl), (assignments, assigned, cells) in groups.items():
            keys = self._keys_of[scope](values)
            append(
                Statement(Shape(scope, tuple(assignments)), (stamp, ttl, *assigned, *keys), cells)
            )

    def _collection_cell(
        self,
        row: Any,
        column: RestoreColumn,
        scope: str,
        value: Any,
        clock: TtlClock,
        groups: Groups,
        out: RowWrites,
    ) -> None:
        """A set, map or non-frozen UDT: element group by element group (field by field)
        with per-element writetimes, else the whole value at the column's writetime."""
        stamps = self._timestamps(row, column)
        ttls = row.ttls.get(column.name) if column.has_ttl else None
        if column.multicell in ("set", "map") and isinstance(stamps, list):
            items = list(value.items()) if column.multicell == "map" else list(value)
            element_groups: dict[tuple[int, Any], list[Any]] = {}
            for item, stamp, ttl in zip(
                items, _per_element(stamps, len(items)), _per_element(ttls, len(items)), strict=True
            ):
                element_groups.setdefault((int(stamp), ttl), []).append(item)
            for (stamp, ttl), members in element_groups.items():
                restored = clock.restored(ttl)
                if restored is None:
                    out.expired += len(members)
                    continue
                packed = _map_of(members) if column.multicell == "map" else list(members)
                _group(
                    groups,
                    (scope, stamp, restored),
                    Assignment(column.name, ADD),
                    packed,
                    len(members),
                )
                out.cells += len(members)
        elif column.multicell == "udt" and isinstance(stamps, list):
            n = len(column.udt_fields)
            for name, item, stamp, ttl in zip(
                column.udt_fields,
                udt_field_values(column, value),
                _per_element(stamps, n),
                _per_element(ttls, n),
                strict=True,
            ):
                if item is not None and stamp is not None:
                    assignment = Assignment(column.name, FIELD, name)
                    _add(groups, out, scope, assignment, item, stamp, ttl, clock)
        else:
            _add(groups, out, scope, column.whole, bindable(column, value), stamps, ttls, clock)

    @staticmethod
    def _absent(
        column: RestoreColumn,
        elements: list[tuple[Any, int, int | None]],
        present: Mapping[str, Counter] | None,
        element_key: Callable[[str, Any], Any] | None,
        out: RowWrites,
    ) -> list[tuple[Any, int, int | None]]:
        """The list elements the target does not hold yet (all of them, unless a redone
        unit read the target's list first)."""
        if not present or column.name not in present or element_key is None:
            return elements
        have = Counter(present[column.name])
        kept = []
        for element in elements:
            key = (element_key(column.name, element[0]), element[1])
            if have[key] > 0:
                have[key] -= 1
                out.list_elements_present += 1
            else:
                kept.append(element)
        return kept

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


PARTITION_CHUNK_ROWS = 1000


def partition_chunks(
    rows: Iterator[Any], key_names: list[str], max_rows: int = PARTITION_CHUNK_ROWS
) -> Iterator[tuple[bool, list[Any]]]:
    """Consecutive rows of one partition, at most ``max_rows`` at a time, each chunk with
    whether it opens its partition (an export unit holds whole partitions in token order,
    so rows of one partition are adjacent). Memory stays flat however wide a partition is."""
    current: list[Any] = []
    current_key: str | None = None
    opens = True
    key_of = key_getter(key_names)
    for row in rows:
        # Keys compared by repr, which tells apart what Cassandra does (it compares bytes)
        # and == does not: -0.0 == 0.0, Decimal("10") == Decimal("10.0"), nan != nan.
        key = repr(key_of(row.values))
        if current and (key != current_key or len(current) >= max_rows):
            yield opens, current
            opens = key != current_key
            current = []
        current_key = key
        current.append(row)
    if current:
        yield opens, current
