"""Fakes for the reader's pure logic (claims, windows, paging, prefetch): no Cassandra.

Shared by ``test_reader_logic`` (synchronous sessions) and ``test_reader_prefetch``
(sessions with ``execute_async``). Rows are ``(token, pk, ck)`` tuples sorted by token.
"""

from __future__ import annotations

import random
from typing import Any

import numpy
import pytest
from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker

from transforms.cassandra_session import ConnectionConfig
from transforms.columnar import ColumnPage
from transforms.elements import PieceKey, RowBatch
from transforms.range_reader import _RangeReader
from transforms.token_ranges import MAX_TOKEN, MIN_TOKEN


class Result:
    def __init__(self, rows: list[tuple[Any, ...]], paging_state: Any) -> None:
        self.current_rows = rows
        self.paging_state = paging_state


class Bound:
    def __init__(self, values: tuple[int, int]) -> None:
        self.values = values
        self.routing_token = None


class Statement:
    def bind(self, values: tuple[int, int]) -> Bound:
        return Bound(values)


class Counter:
    def inc(self, n: int = 1) -> None:
        pass


class Limiter:
    def acquire(self, rows: int) -> None:
        pass


class Tracker:
    """OffsetRestrictionTracker plus defer_remainder, as Beam's tracker view offers; refuses
    every claim after ``stop_claims_after`` of them (a runner's split) when given."""

    def __init__(self, restriction: OffsetRange, stop_claims_after: int | None = None) -> None:
        self.inner = OffsetRestrictionTracker(restriction)
        self.residual: OffsetRange | None = None
        self.claims = 0
        self.stop_claims_after = stop_claims_after

    def current_restriction(self) -> OffsetRange:
        return self.inner.current_restriction()

    def try_claim(self, position: int) -> bool:
        self.claims += 1
        if self.stop_claims_after is not None and self.claims > self.stop_claims_after:
            return False
        return self.inner.try_claim(position)

    def defer_remainder(self) -> None:
        split = self.inner.try_split(0)
        if split:
            self.residual = split[1]


class Fn:
    """What ``_RangeReader`` uses of its ReadRangesFn."""

    def __init__(
        self,
        session: Any,
        retries: int = 2,
        batch_size: int = 7,
        checkpoint_rows: int = 0,
        slots: Any = None,
    ) -> None:
        self.connection = ConnectionConfig(retries=retries)
        self.batch_size = batch_size
        self.checkpoint_rows = checkpoint_rows
        self._statement = Statement()
        self._token_statement = self._statement
        self._client_tokens = None  # rows start with their token
        self._session = session
        self._slots = slots
        self._limiter = Limiter()
        self.pages_counter = Counter()


def make_table(
    partitions: int, rows_per_partition: int, seed: int = 1
) -> list[tuple[int, int, int]]:
    """``partitions`` random distinct tokens, ``rows_per_partition`` rows each."""
    rng = random.Random(seed)
    tokens = sorted({rng.randint(MIN_TOKEN + 1, MAX_TOKEN) for _ in range(partitions)})
    assert len(tokens) == partitions
    return [(t, i, c) for i, t in enumerate(tokens) for c in range(rows_per_partition)]


def read(fn: Fn, tracker: Tracker, on_batch: Any = None) -> tuple[list[Any], _RangeReader]:
    """Run one reader over ``tracker``'s restriction; the rows of every batch, in order."""
    start = tracker.current_restriction().start - 1
    reader = _RangeReader(fn, tracker, PieceKey(0, start, start))
    rows: list[tuple[Any, ...]] = []
    for batch in reader.run():
        assert isinstance(batch, RowBatch)
        rows.extend(batch.rows)
        if on_batch is not None:
            on_batch(rows)
    return rows, reader


def read_range(fn: Fn, start: int, end: int) -> tuple[list[Any], Tracker, _RangeReader]:
    """Read the token range ``(start, end]`` with ``fn``: the rows, the tracker and the reader."""
    tracker = Tracker(OffsetRange(start + 1, end + 1))
    rows, reader = read(fn, tracker)
    return rows, tracker, reader


def as_column_page(rows: list[tuple[Any, ...]]) -> list[Any]:
    """A page of integer rows as the column handler gives it: ``[ColumnPage]`` of masked
    int64 columns (None masked); an empty page stays an empty list."""
    if not rows:
        return rows
    columns = []
    for values in zip(*rows, strict=True):
        data = numpy.array([0 if v is None else v for v in values], dtype="<i8")
        columns.append(numpy.ma.MaskedArray(data, mask=[v is None for v in values]))
    return [ColumnPage(columns, len(rows))]


def serve_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every page a fake session answers reaches the reader as columns."""
    finish = _RangeReader._finish

    def columns(self: _RangeReader, sent: Any) -> tuple[list[Any], Any]:
        rows, paging_state = finish(self, sent)
        return as_column_page(list(rows)), paging_state

    monkeypatch.setattr(_RangeReader, "_finish", columns)
