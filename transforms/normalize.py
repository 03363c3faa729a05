"""Writetime normalizing and filtering: collection writetime policies, writetime filters.

Both steps work on :class:`RowBatch` elements (rows as tuples in plan order:
values, then writetimes, then TTLs) and pass :class:`PieceEnd` through untouched,
so they can sit between the reader and the writer without breaking a piece.
"""

from __future__ import annotations

import calendar
import re
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.elements import NAMESPACE, PieceElement, PieceEnd, RowBatch
from transforms.table_plan import (
    COLLECTION_LIST,
    COLLECTION_MAX,
    COLLECTION_MIN,
    COLLECTION_POLICIES,
    DEFAULT_COLLECTION_POLICY,
    TablePlan,
)

__all__ = [
    "FilterByWritetime",
    "FilterByWritetimeFn",
    "latest",
    "normalize_columns_fn",
    "normalize_row_fn",
    "NormalizeWritetimes",
    "NormalizeWritetimesFn",
    "parse_time_micros",
    "WritetimeFilter",
]


def _collapse(policy: str) -> Callable[[Any], Any]:
    """Per-element writetimes/TTLs of one collection cell -> one value (or a list)."""
    if policy == COLLECTION_LIST:

        def as_list(values: Any) -> Any:
            if not isinstance(values, list | tuple):
                return values
            values = list(values)
            return values or None

        return as_list
    pick = max if policy == COLLECTION_MAX else min

    def collapse(values: Any) -> Any:
        if not isinstance(values, list | tuple):
            return values  # null, or already one value: normalizing twice changes nothing
        if values and None not in values:
            return pick(values)
        present = [v for v in values if v is not None]
        return pick(present) if present else None

    return collapse


# A collection cell's latest element writetime (or TTL): what filters and statistics use,
# whatever --collection-writetime the files get. Other values pass as they are.
latest = _collapse(COLLECTION_MAX)


def normalize_row_fn(
    plan: TablePlan, policy: str = DEFAULT_COLLECTION_POLICY
) -> Callable[[tuple[Any, ...]], tuple[Any, ...]] | None:
    """A function that applies the collection writetime policy to one row; None when the
    plan has no collection writetimes or TTLs (rows pass unchanged)."""
    if policy not in COLLECTION_POLICIES:
        raise ValueError(f"collection writetime policy must be one of {COLLECTION_POLICIES}")
    positions = _collection_positions(plan)
    if not positions:
        return None
    collapse = _collapse(policy)

    def normalize(row: tuple[Any, ...]) -> tuple[Any, ...]:
        out = list(row)
        for p in positions:
            out[p] = collapse(out[p])
        return tuple(out)

    return normalize


def _collection_positions(plan: TablePlan) -> list[int]:
    """Positions (plan order) of the writetime and TTL columns of non-frozen collections
    and UDTs: the ones that hold a list per cell."""
    by_name = plan.columns_by_name
    positions = []
    offset = len(plan.columns)
    for names in (plan.writetime_columns, plan.ttl_columns):
        for i, name in enumerate(names):
            if by_name[name].cql_type.is_multicell:
                positions.append(offset + i)
        offset += len(names)
    return positions


ColumnsFn = Callable[[list[Any]], tuple[list[Any], list[Any]]]


def normalize_columns_fn(plan: TablePlan, policy: str) -> ColumnsFn | None:
    """For the columns of a ``ColumnBatch``: a function that gives (the columns statistics
    take, the columns the file gets), each list column of element writetimes or TTLs made
    one integer per cell (masked where null): the latest for statistics, the policy's for
    the file. None when a file needs the lists (policy ``list``) or there are none (the
    columns pass as they are)."""
    if policy not in COLLECTION_POLICIES:
        raise ValueError(f"collection writetime policy must be one of {COLLECTION_POLICIES}")
    positions = _collection_positions(plan)
    if policy == COLLECTION_LIST or not positions:
        return None
    import numpy

    def reduced(column: Any, collapse: Callable[[Any], Any]) -> Any:
        values = [collapse(v) for v in column.tolist()]
        mask = numpy.fromiter((v is None for v in values), dtype=bool, count=len(values))
        data = numpy.array([0 if v is None else v for v in values], dtype=numpy.int64)
        return numpy.ma.MaskedArray(data, mask=mask)

    earliest = _collapse(COLLECTION_MIN) if policy == COLLECTION_MIN else None

    def normalize(columns: list[Any]) -> tuple[list[Any], list[Any]]:
        latest_columns = list(columns)
        for p in positions:
            latest_columns[p] = reduced(columns[p], latest)
        if earliest is None:
            return latest_columns, latest_columns
        file_columns = list(columns)
        for p in positions:
            file_columns[p] = reduced(columns[p], earliest)
        return latest_columns, file_columns

    return normalize


@beam.typehints.with_input_types(PieceElement)
@beam.typehints.with_output_types(PieceElement)
class NormalizeWritetimesFn(beam.DoFn):
    """Collection writetimes/TTLs -> max, min or list, per ``--collection-writetime``."""

    def __init__(self, plan: TablePlan, policy: str = DEFAULT_COLLECTION_POLICY) -> None:
        self.plan = plan
        self.policy = policy

    def setup(self) -> None:
        self._normalize = normalize_row_fn(self.plan, self.policy)

    def process(self, element: RowBatch | PieceEnd) -> Iterator[RowBatch | PieceEnd]:
        if isinstance(element, RowBatch):
            normalize = self._normalize
            if normalize is None:
                yield element
            else:
                yield RowBatch(element.piece, [normalize(r) for r in element.rows])
        else:
            yield element


class NormalizeWritetimes(beam.PTransform):
    """Apply the collection writetime policy to a PCollection of row batches.

    Usage::

        batches | NormalizeWritetimes(plan, "min")

    On Cassandra 5 a non-frozen collection's writetime and TTL arrive as one value per
    element; this turns each into the one value (or the list) the policy asks for. Piece
    ends pass through unchanged.
    """

    def __init__(self, plan: TablePlan, policy: str = DEFAULT_COLLECTION_POLICY) -> None:
        """Check the policy.

        Args:
            plan: the columns of the batches, with their writetime and TTL columns.
            policy: ``"max"`` (the latest element write), ``"min"`` (the earliest) or
                ``"list"`` (every element's, in element order).

        Raises:
            ValueError: ``policy`` is none of those.
        """
        super().__init__()
        if policy not in COLLECTION_POLICIES:
            raise ValueError(f"policy must be one of {COLLECTION_POLICIES}, not {policy!r}")
        self.plan = plan
        self.policy = policy

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        return pcoll | "Normalize" >> beam.ParDo(NormalizeWritetimesFn(self.plan, self.policy))


# --- time parsing ------------------------------------------------------------------------

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})(?:[Tt ](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,9}))?)?"
    r"(Z|z|[+-]\d{2}:?\d{2})?)?$"
)


def parse_time_micros(text: str | int) -> int:
    """RFC 3339 (UTC unless an offset is given) or epoch s/ms/us by magnitude -> micros."""
    value = str(text).strip()
    if re.fullmatch(r"[+-]?\d+", value):
        number = int(value)
        magnitude = abs(number)
        if magnitude < 10**11:  # seconds until year 5138
            return number * 1_000_000
        if magnitude < 10**14:  # milliseconds
            return number * 1_000
        return number
    match = _RFC3339.match(value)
    if not match:
        raise ValueError(
            f"{value!r} is not a time: use RFC 3339 (2024-01-31T12:00:00Z) "
            f"or epoch seconds, milliseconds or microseconds"
        )
    year, month, day, hour, minute, second, fraction, zone = match.groups()
    try:
        import datetime as dt

        dt.date(int(year), int(month), int(day))
        if int(hour or 0) > 23 or int(minute or 0) > 59 or int(second or 0) > 60:
            raise ValueError
    except ValueError:
        raise ValueError(f"{value!r} is not a valid date and time") from None
    seconds = calendar.timegm(
        (int(year), int(month), int(day), int(hour or 0), int(minute or 0), int(second or 0))
    )
    micros = seconds * 1_000_000 + (int((fraction or "").ljust(6, "0")[:6]) if fraction else 0)
    if zone and zone not in ("Z", "z"):
        sign = 1 if zone[0] == "+" else -1
        digits = zone[1:].replace(":", "")
        micros -= sign * (int(digits[:2]) * 3600 + int(digits[2:]) * 60) * 1_000_000
    return micros


# --- filters -----------------------------------------------------------------------------


@dataclass(frozen=True)
class WritetimeFilter:
    """Keep rows by writetime: bounds inclusive, ``any`` or ``all`` of the non-null ones."""

    after: int | None = None
    before: int | None = None
    mode: str = "any"
    ttl_expiring_before: int | None = None  # micros; keep rows with a cell expiring before

    def __post_init__(self) -> None:
        if self.mode not in ("any", "all"):
            raise ValueError("writetime filter mode must be 'any' or 'all'")
        if self.after is not None and self.before is not None and self.after > self.before:
            raise ValueError("--writetime-after is later than --writetime-before")

    @property
    def active(self) -> bool:
        return (
            self.after is not None
            or self.before is not None
            or self.ttl_expiring_before is not None
        )

    def predicate(self, plan: TablePlan) -> Callable[[tuple[Any, ...]], bool]:
        """A function row -> keep? over the plan's writetime (and TTL) columns."""
        n_values = len(plan.columns)
        wt_positions = list(range(n_values, n_values + len(plan.writetime_columns)))
        ttl_start = n_values + len(plan.writetime_columns)
        ttl_positions = list(range(ttl_start, ttl_start + len(plan.ttl_columns)))
        low = self.after if self.after is not None else -(2**63)
        high = self.before if self.before is not None else 2**63 - 1
        check_wt = self.after is not None or self.before is not None
        want_all = self.mode == "all"
        expiring = self.ttl_expiring_before

        def keep(row: tuple[Any, ...]) -> bool:
            if check_wt:
                writetimes = [w for w in (latest(row[p]) for p in wt_positions) if w is not None]
                if not writetimes:
                    return False
                if want_all:
                    if not all(low <= w <= high for w in writetimes):
                        return False
                elif not any(low <= w <= high for w in writetimes):
                    return False
            if expiring is not None:
                now = int(time.time() * 1_000_000)
                ttls = [latest(row[p]) for p in ttl_positions]
                if not any(t is not None and now + t * 1_000_000 <= expiring for t in ttls):
                    return False
            return True

        return keep


@beam.typehints.with_input_types(PieceElement)
@beam.typehints.with_output_types(PieceElement)
class FilterByWritetimeFn(beam.DoFn):
    """Drops rows outside the writetime bounds; counts what it drops."""

    def __init__(self, plan: TablePlan, row_filter: WritetimeFilter) -> None:
        self.plan = plan
        self.row_filter = row_filter
        self.filtered = Metrics.counter(NAMESPACE, "rows_filtered_out")

    def setup(self) -> None:
        self._keep = self.row_filter.predicate(self.plan)

    def process(self, element: RowBatch | PieceEnd) -> Iterator[RowBatch | PieceEnd]:
        if isinstance(element, RowBatch):
            keep = self._keep
            rows = [r for r in element.rows if keep(r)]
            dropped = len(element.rows) - len(rows)
            if dropped:
                self.filtered.inc(dropped)
            if rows:
                yield RowBatch(element.piece, rows)
        else:
            yield element


class FilterByWritetime(beam.PTransform):
    """Keep rows whose writetimes fall in the filter's bounds.

    Usage::

        batches | FilterByWritetime(plan, WritetimeFilter(after=1700000000000000))

    CQL cannot filter on ``WRITETIME()``, so this runs on the workers, before any
    formatting; dropped rows are counted in the ``rows_filtered_out`` metric.
    """

    def __init__(self, plan: TablePlan, row_filter: WritetimeFilter) -> None:
        """Check that the filter can apply to ``plan``.

        Args:
            plan: the columns of the batches, with their writetime and TTL columns.
            row_filter: inclusive bounds in microseconds, ``any`` or ``all``, and an
                optional TTL expiry bound.

        Raises:
            ValueError: writetime bounds given while ``plan`` reads no writetime.
        """
        super().__init__()
        if (
            row_filter.active
            and not plan.writetime_columns
            and (row_filter.after is not None or row_filter.before is not None)
        ):
            raise ValueError("a writetime filter needs at least one writetime column")
        self.plan = plan
        self.row_filter = row_filter

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        return pcoll | "Filter" >> beam.ParDo(FilterByWritetimeFn(self.plan, self.row_filter))
