"""Writetime and TTL statistics: per column count, nulls, min / max / mean writetime,
cells with a TTL, min / max TTL, and a histogram of writetimes by day.

Accumulators are plain JSON-able dicts, so each committed work unit stores its own in
its marker and a resumed export merges them: the statistics always describe the
whole export, whichever runs produced its parts. ``WritetimeStatsFn`` is the same
logic as a Beam ``CombineFn`` over row batches.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

import apache_beam as beam
import numpy

from transforms.normalize import latest
from transforms.table_plan import TablePlan

__all__ = [
    "day_of",
    "empty_stats",
    "HELD_ROWS",
    "merge_stats",
    "StatsBuilder",
    "summarize",
    "WritetimeStatsFn",
]

_DAY_MICROS = 86_400_000_000
HELD_ROWS = 4096  # writetime and TTL rows of column batches reduced at once
_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()


def day_of(micros: int) -> str:
    """The UTC day of a writetime, as YYYY-MM-DD (out-of-range days as a day number)."""
    days = micros // _DAY_MICROS
    ordinal = _EPOCH_ORDINAL + days
    if 1 <= ordinal <= dt.date.max.toordinal():
        return dt.date.fromordinal(ordinal).isoformat()
    return f"day{days}"


def _latest_column(column: Sequence[Any]) -> list[Any]:
    """A column of collection writetimes / TTLs (per-element lists, or already one value)
    -> the latest of each cell: statistics see a collection by its latest write."""
    return [latest(v) if type(v) is list else v for v in column]


def _widen(acc: list[Any], count: int, low: int, high: int) -> None:
    """Add ``count`` values between ``low`` and ``high`` to an accumulator [count, min, max...]."""
    acc[0] += count
    if acc[1] is None or low < acc[1]:
        acc[1] = low
    if acc[2] is None or high > acc[2]:
        acc[2] = high


class StatsBuilder:
    """Accumulates statistics over rows of one plan (rows in plan order)."""

    def __init__(self, plan: TablePlan) -> None:
        self.names = [c.name for c in plan.columns]
        self.wt_names = list(plan.writetime_columns)
        self.ttl_names = list(plan.ttl_columns)
        self.n_values = len(self.names)
        self.rows = 0
        self.nulls = [0] * self.n_values
        self.wt = [[0, None, None, 0] for _ in self.wt_names]  # count, min, max, sum
        self.days: list[dict[str, int]] = [{} for _ in self.wt_names]
        self.ttl = [[0, None, None] for _ in self.ttl_names]  # count, min, max
        self._day_cache: dict[int, str] = {}
        self._held: list[list[tuple[Any, Any]]] = []  # see add_columns
        self._held_rows = 0
        by_name = plan.columns_by_name
        # Non-frozen collections and UDTs may hold a list of element writetimes / TTLs.
        self._wt_multicell = [by_name[n].cql_type.is_multicell for n in self.wt_names]
        self._ttl_multicell = [by_name[n].cql_type.is_multicell for n in self.ttl_names]

    def add_rows(self, rows: Iterable[tuple[Any, ...]]) -> None:
        """Column at a time (count, sum, min, max and a Counter run in C; collection cells
        first reduced to their latest element); the same result as :meth:`add_rows_by_row`."""
        rows = rows if isinstance(rows, list | tuple) else list(rows)
        width = self.n_values + len(self.wt_names) + len(self.ttl_names)
        if not rows or set(map(len, rows)) != {width}:
            self.add_rows_by_row(rows)
            return
        columns = list(zip(*rows, strict=True))
        self.rows += len(rows)
        n_values = self.n_values
        nulls = self.nulls
        for i in range(n_values):
            nulls[i] += columns[i].count(None)
        for j, multicell in enumerate(self._wt_multicell):
            column = columns[n_values + j]
            if multicell:
                column = _latest_column(column)
            present = [w for w in column if w is not None] if None in column else column
            if not present:
                continue
            acc = self.wt[j]
            acc[0] += len(present)
            acc[3] += sum(present)
            low, high = min(present), max(present)
            if acc[1] is None or low < acc[1]:
                acc[1] = low
            if acc[2] is None or high > acc[2]:
                acc[2] = high
            hist = self.days[j]
            day_cache = self._day_cache
            if low // _DAY_MICROS == high // _DAY_MICROS:  # all on one day: no need to count
                days: Any = ((low // _DAY_MICROS, len(present)),)
            else:
                days = Counter(map(_DAY_MICROS.__rfloordiv__, present)).items()
            for day_key, count in days:
                day = day_cache.get(day_key)
                if day is None:
                    day = day_cache[day_key] = day_of(day_key * _DAY_MICROS)
                hist[day] = hist.get(day, 0) + count
        ttl_start = n_values + len(self.wt_names)
        for k, multicell in enumerate(self._ttl_multicell):
            column = columns[ttl_start + k]
            if multicell:
                column = _latest_column(column)
            present = [t for t in column if t is not None] if None in column else column
            if not present:
                continue
            acc = self.ttl[k]
            acc[0] += len(present)
            low, high = min(present), max(present)
            if acc[1] is None or low < acc[1]:
                acc[1] = low
            if acc[2] is None or high > acc[2]:
                acc[2] = high

    def add_columns(self, columns: Sequence[Any]) -> None:
        """Columns of a ``ColumnBatch`` (plan order; NumPy masked arrays of numbers or object
        arrays): the same result as :meth:`add_rows` on its rows, the writetime and TTL
        columns reduced by NumPy. Columns that are not numeric go through ``add_rows``.
        The writetime and TTL columns are held (as data and mask) until they hold
        ``HELD_ROWS`` rows or :meth:`to_json` is called, and reduced together: the NumPy
        calls per column are paid per a few thousand rows, not per reader batch."""
        n_values = self.n_values
        meta = columns[n_values:]
        width = n_values + len(self.wt_names) + len(self.ttl_names)
        if len(columns) != width or any(c.dtype.kind not in "iu" for c in meta):
            self.add_rows(list(zip(*[c.tolist() for c in columns], strict=True)))
            return
        rows = len(columns[0]) if columns else 0
        self.rows += rows
        for i in range(n_values):
            column = columns[i]
            if column.dtype.kind == "O":
                self.nulls[i] += column.tolist().count(None)
            else:
                self.nulls[i] += int(numpy.ma.getmaskarray(column).sum())
        if meta:
            self._held.append([(numpy.ma.getdata(c), numpy.ma.getmaskarray(c)) for c in meta])
            self._held_rows += rows
            if self._held_rows >= HELD_ROWS:
                self._reduce_held()

    def _reduce_held(self) -> None:
        """Add the held writetime and TTL columns to the figures (each joined first)."""
        held, self._held, self._held_rows = self._held, [], 0
        if not held:
            return
        columns = []
        for parts in zip(*held, strict=True):
            data = numpy.concatenate([d.astype(numpy.int64, copy=False) for d, _ in parts])
            mask = numpy.concatenate([m for _, m in parts])
            columns.append(data[~mask] if mask.any() else data)
        n_wt = len(self.wt_names)
        for j in range(n_wt):
            if len(columns[j]):
                self._add_writetimes(j, columns[j])
        for k in range(len(self.ttl_names)):
            present = columns[n_wt + k]
            if len(present):
                low, high = int(present.min()), int(present.max())
                _widen(self.ttl[k], len(present), low, high)

    def _add_writetimes(self, j: int, present: Any) -> None:
        """Count, exact sum, min, max and day histogram of non-null writetimes (an int64 array)."""
        acc = self.wt[j]
        low, high = int(present.min()), int(present.max())
        count = len(present)
        if (high - low) * count < 2**63:  # the offsets from ``low`` cannot overflow int64
            total = int((present - low).sum()) + low * count
        else:
            total = sum(present.tolist())
        acc[3] += total
        _widen(acc, count, low, high)
        hist = self.days[j]
        day_cache = self._day_cache
        if low // _DAY_MICROS == high // _DAY_MICROS:
            days: Any = ((low // _DAY_MICROS, count),)
        else:
            keys, counts = numpy.unique(present // _DAY_MICROS, return_counts=True)
            days = zip(keys.tolist(), counts.tolist(), strict=True)
        for day_key, n in days:
            day = day_cache.get(day_key)
            if day is None:
                day = day_cache[day_key] = day_of(day_key * _DAY_MICROS)
            hist[day] = hist.get(day, 0) + n

    def add_rows_by_row(self, rows: Iterable[tuple[Any, ...]]) -> None:
        n_values = self.n_values
        n_wt = len(self.wt_names)
        nulls = self.nulls
        day_cache = self._day_cache
        for row in rows:
            self.rows += 1
            for i in range(n_values):
                if row[i] is None:
                    nulls[i] += 1
            for j in range(n_wt):
                w = row[n_values + j]
                if w is None:
                    continue
                if isinstance(w, list):
                    w = latest(w)
                    if w is None:
                        continue
                acc = self.wt[j]
                acc[0] += 1
                acc[3] += w
                if acc[1] is None or w < acc[1]:
                    acc[1] = w
                if acc[2] is None or w > acc[2]:
                    acc[2] = w
                day_key = w // _DAY_MICROS
                day = day_cache.get(day_key)
                if day is None:
                    day = day_cache[day_key] = day_of(w)
                hist = self.days[j]
                hist[day] = hist.get(day, 0) + 1
            for k in range(len(self.ttl_names)):
                t = row[n_values + n_wt + k]
                if isinstance(t, list):
                    t = latest(t)
                if t is None:
                    continue
                acc = self.ttl[k]
                acc[0] += 1
                if acc[1] is None or t < acc[1]:
                    acc[1] = t
                if acc[2] is None or t > acc[2]:
                    acc[2] = t

    def to_json(self) -> dict[str, Any]:
        self._reduce_held()
        return {
            "rows": self.rows,
            "nulls": dict(zip(self.names, self.nulls, strict=True)),
            "writetime": {
                name: {"count": a[0], "min": a[1], "max": a[2], "sum": a[3], "days": d}
                for name, a, d in zip(self.wt_names, self.wt, self.days, strict=True)
            },
            "ttl": {
                name: {"count": a[0], "min": a[1], "max": a[2]}
                for name, a in zip(self.ttl_names, self.ttl, strict=True)
            },
        }


def empty_stats() -> dict[str, Any]:
    return {"rows": 0, "nulls": {}, "writetime": {}, "ttl": {}}


def _min(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else min(a, b)


def _max(a: Any, b: Any) -> Any:
    return b if a is None else a if b is None else max(a, b)


def merge_stats(parts: Iterable[dict[str, Any]]) -> dict[str, Any]:
    total = empty_stats()
    for part in parts:
        total["rows"] += part.get("rows", 0)
        for name, n in part.get("nulls", {}).items():
            total["nulls"][name] = total["nulls"].get(name, 0) + n
        for name, acc in part.get("writetime", {}).items():
            t = total["writetime"].setdefault(
                name, {"count": 0, "min": None, "max": None, "sum": 0, "days": {}}
            )
            t["count"] += acc["count"]
            t["sum"] += acc["sum"]
            t["min"] = _min(t["min"], acc["min"])
            t["max"] = _max(t["max"], acc["max"])
            for day, n in acc.get("days", {}).items():
                t["days"][day] = t["days"].get(day, 0) + n
        for name, acc in part.get("ttl", {}).items():
            t = total["ttl"].setdefault(name, {"count": 0, "min": None, "max": None})
            t["count"] += acc["count"]
            t["min"] = _min(t["min"], acc["min"])
            t["max"] = _max(t["max"], acc["max"])
    return total


def summarize(
    merged: dict[str, Any], plan_json: dict[str, Any], format_time: Any = None
) -> dict[str, Any]:
    """The stats.json body: per column figures, with means and ISO renderings."""
    columns: dict[str, Any] = {}
    for column in plan_json["columns"]:
        name = column["name"]
        entry: dict[str, Any] = {"nulls": merged["nulls"].get(name, 0)}
        wt = merged["writetime"].get(name)
        if wt is not None:
            count = wt["count"]
            # Integer mean (floor) keeps the figure exact and reproducible.
            mean = wt["sum"] // count if count else None
            entry["writetime"] = {
                "count": count,
                "min": wt["min"],
                "max": wt["max"],
                "mean": mean,
            }
            if format_time is not None:
                for key in ("min", "max", "mean"):
                    value = entry["writetime"][key]
                    entry["writetime"][key + "_iso"] = (
                        format_time(value) if value is not None else None
                    )
            entry["writetime"]["histogram_by_day"] = dict(sorted(wt["days"].items()))
        ttl = merged["ttl"].get(name)
        if ttl is not None:
            entry["ttl"] = {"cells_with_ttl": ttl["count"], "min": ttl["min"], "max": ttl["max"]}
        columns[name] = entry
    return {"rows": merged["rows"], "columns": columns}


class WritetimeStatsFn(beam.CombineFn):
    """Beam combine over RowBatch elements (or lists of row tuples) -> merged stats dict."""

    def __init__(self, plan: TablePlan) -> None:
        self.plan = plan

    def create_accumulator(self) -> dict[str, Any]:
        return empty_stats()

    def add_input(self, accumulator: dict[str, Any], element: Any) -> dict[str, Any]:
        rows = getattr(element, "rows", element)
        if not isinstance(rows, list):
            return accumulator
        builder = StatsBuilder(self.plan)
        builder.add_rows(rows)
        return merge_stats([accumulator, builder.to_json()])

    def merge_accumulators(self, accumulators: Iterable[dict[str, Any]]) -> dict[str, Any]:
        return merge_stats(accumulators)

    def extract_output(self, accumulator: dict[str, Any]) -> dict[str, Any]:
        return accumulator
