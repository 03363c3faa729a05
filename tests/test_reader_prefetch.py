"""Page prefetch of the token-range reader: the next page is requested before the current
one is processed, a failed prefetch is retried from its own paging state, and a query
slot is freed by every answer, also one nobody reads. A fake asynchronous session
stands in for Cassandra; the real reads are covered by the export tests."""

from __future__ import annotations

import threading
from typing import Any

import pytest
from apache_beam.io.restriction_trackers import OffsetRange
from cassandra import ReadTimeout

from tests.reader_fakes import Fn, Result, Tracker, make_table, read
from transforms import range_reader
from transforms.token_ranges import MAX_TOKEN, MIN_TOKEN


class _Future:
    """Answered at once, like a response that arrived before anyone waited."""

    def __init__(self, result: Result | None, error: Exception | None) -> None:
        self._result = result
        self._error = error

    def result(self) -> Result:
        if self._error is not None:
            raise self._error
        assert self._result is not None
        return self._result

    def add_callbacks(
        self, callback: Any, errback: Any, callback_args: Any = (), errback_args: Any = ()
    ) -> None:
        if self._error is not None:
            errback(self._error, *errback_args)
        else:
            callback(self._result, *callback_args)


class _AsyncSession:
    """Rows (token, pk, ck) sorted by token; pages of ``fetch_size``; a log of events."""

    def __init__(self, rows: list[tuple[int, int, int]], fetch_size: int, fail: Any = None):
        self.rows = sorted(rows)
        self.fetch_size = fetch_size
        self.fail = fail or (lambda after, upto, offset, attempt: False)
        self.events: list[tuple[str, int]] = []
        self.attempts: dict[tuple[int, int, int], int] = {}

    def execute_async(self, bound: Any, paging_state: Any = None) -> _Future:
        after, upto = bound.values
        offset = paging_state or 0
        key = (after, upto, offset)
        attempt = self.attempts[key] = self.attempts.get(key, 0) + 1
        self.events.append(("request", offset))
        if self.fail(after, upto, offset, attempt):
            error = ReadTimeout(
                "injected", consistency=1, required_responses=1, received_responses=0
            )
            return _Future(None, error)
        matching = [r for r in self.rows if after < r[0] <= upto]
        page = matching[offset : offset + self.fetch_size]
        more = offset + self.fetch_size < len(matching)
        return _Future(Result(page, offset + self.fetch_size if more else None), None)

    def execute(self, bound: Any, paging_state: Any = None) -> Result:
        raise AssertionError("the reader should use execute_async when the session has it")


def _fn(session: _AsyncSession, slots: Any = None) -> Fn:
    return Fn(session, retries=3, batch_size=5, slots=slots)


def _table(partitions: int, rows_per_partition: int) -> list[tuple[int, int, int]]:
    return make_table(partitions, rows_per_partition, seed=3)


def _read(fn: Fn, tracker: Tracker) -> list[tuple[Any, ...]]:
    def processed(rows: list[Any]) -> None:
        fn._session.events.append(("processed", len(rows)))

    return read(fn, tracker, on_batch=processed)[0]


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(range_reader.time, "sleep", lambda s: None)


def _whole_ring() -> Tracker:
    return Tracker(OffsetRange(MIN_TOKEN + 1, MAX_TOKEN + 1))


def test_the_next_page_is_requested_before_this_page_is_processed() -> None:
    table = _table(40, 3)
    session = _AsyncSession(table, fetch_size=10)
    rows = _read(_fn(session), _whole_ring())
    assert rows == [r[1:] for r in table]
    kinds = [kind for kind, _ in session.events]
    # Page 2 is requested before the first batch of page 1 reaches the caller.
    assert kinds[:2] == ["request", "request"]
    assert kinds.count("request") == -(-len(table) // 10)


def test_a_failed_prefetch_is_retried_from_its_paging_state() -> None:
    table = _table(50, 4)

    def fail(after: int, upto: int, offset: int, attempt: int) -> bool:
        return offset in (20, 110) and attempt <= 2

    session = _AsyncSession(table, fetch_size=10, fail=fail)
    rows = _read(_fn(session), _whole_ring())
    assert rows == [r[1:] for r in table]  # every row once, in order
    assert session.attempts[(MIN_TOKEN, MAX_TOKEN, 20)] == 3


def test_query_slots_are_freed_by_every_answer_also_an_unread_prefetch() -> None:
    table = _table(60, 2)
    slots = threading.BoundedSemaphore(1)
    session = _AsyncSession(table, fetch_size=10)
    # The runner takes the rest of the range after 7 partitions: the prefetched page
    # is never read, and its slot must still come back.
    rows = _read(_fn(session, slots=slots), Tracker(OffsetRange(MIN_TOKEN + 1, MAX_TOKEN + 1), 7))
    assert rows == [r[1:] for r in table[:14]]
    assert slots.acquire(blocking=False)
    slots.release()


def test_errors_that_are_not_retryable_propagate() -> None:
    class Broken(_AsyncSession):
        def execute_async(self, bound: Any, paging_state: Any = None) -> _Future:
            if paging_state:
                raise RuntimeError("driver bug")
            return super().execute_async(bound, paging_state)

    session = Broken(_table(30, 1), fetch_size=10)
    with pytest.raises(RuntimeError, match="driver bug"):
        _read(_fn(session, slots=threading.BoundedSemaphore(1)), _whole_ring())
