"""Pure logic of the token-range reader: claims, paging, retries, window splitting,
self-checkpoints, restriction coder. A fake session stands in for Cassandra here; the
real reads are tested on Cassandra in the integration tests."""

from __future__ import annotations

from typing import Any

import pytest
from apache_beam.io.restriction_trackers import OffsetRange
from cassandra import ReadTimeout

from tests.reader_fakes import Fn, Result, Tracker, make_table, read_range, serve_columns
from transforms import range_reader
from transforms.cassandra_session import ConnectionConfig
from transforms.elements import PieceKey
from transforms.range_reader import RangeReadError
from transforms.token_ranges import MAX_TOKEN, MIN_TOKEN
from transforms.token_restriction import TokenRangeRestrictionProvider, TokenRestrictionCoder


class _FakeSession:
    """Rows (token, pk, ck) sorted by token; pages of ``fetch_size``; injected failures."""

    def __init__(self, rows: list[tuple[int, int, int]], fetch_size: int, fail: Any = None):
        self.rows = sorted(rows)
        self.fetch_size = fetch_size
        self.fail = fail or (lambda after, upto, offset: False)
        self.calls = 0

    def execute(self, bound: Any, paging_state: Any = None) -> Result:
        after, upto = bound.values
        offset = paging_state or 0
        self.calls += 1
        if self.fail(after, upto, offset):
            raise ReadTimeout("injected", consistency=1, required_responses=1, received_responses=0)
        matching = [r for r in self.rows if after < r[0] <= upto]
        page = matching[offset : offset + self.fetch_size]
        more = offset + self.fetch_size < len(matching)
        return Result(page, offset + self.fetch_size if more else None)


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(range_reader.time, "sleep", lambda s: None)


@pytest.fixture(autouse=True, params=["row pages", "column pages"])
def _pages(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test reads its pages as row tuples, then as columns (``transforms.columnar``)."""
    if request.param == "column pages":
        serve_columns(monkeypatch)


def test_reads_every_row_once_and_finishes_the_restriction() -> None:
    table = make_table(200, 3)
    rows, tracker, reader = read_range(Fn(_FakeSession(table, fetch_size=10)), MIN_TOKEN, MAX_TOKEN)
    assert rows == [(pk, ck) for _, pk, ck in table]
    tracker.inner.check_done()  # claimed past the end
    assert reader.retries == 0 and reader.windows_split == 0


def test_ring_edges_are_read() -> None:
    table = [(MIN_TOKEN + 1, 1, 0), (MAX_TOKEN, 2, 0), (0, 3, 0)]
    rows, tracker, _ = read_range(Fn(_FakeSession(table, fetch_size=1)), MIN_TOKEN, MAX_TOKEN)
    assert sorted(rows) == [(1, 0), (2, 0), (3, 0)]
    tracker.inner.check_done()


def test_sub_range_reads_only_its_tokens() -> None:
    table = [(t, t, 0) for t in (-5, -4, 0, 3, 4, 10)]
    rows, _, _ = read_range(Fn(_FakeSession(table, fetch_size=2)), -4, 4)
    assert rows == [(0, 0), (3, 0), (4, 0)]  # (-4, 4]: -4 excluded, 4 included


def test_transient_timeouts_retry_from_the_paging_state() -> None:
    table = make_table(50, 4)
    failures = {"left": 3}

    def fail(after: int, upto: int, offset: int) -> bool:
        if offset == 40 and failures["left"]:
            failures["left"] -= 1
            return True
        return False

    fn = Fn(_FakeSession(table, fetch_size=20, fail=fail), retries=5)
    rows, tracker, reader = read_range(fn, MIN_TOKEN, MAX_TOKEN)
    assert rows == [(pk, ck) for _, pk, ck in table]
    assert reader.retries == 3 and reader.windows_split == 0
    tracker.inner.check_done()


def test_a_range_that_keeps_failing_is_split_into_windows_without_duplicates() -> None:
    table = make_table(300, 5, seed=7)

    # A wide window fails whenever it is past its first page (like a scan over tombstones).
    def fail(after: int, upto: int, offset: int) -> bool:
        return (upto - after) > 2**62 and offset >= 23

    fn = Fn(_FakeSession(table, fetch_size=23, fail=fail), retries=2)
    rows, tracker, reader = read_range(fn, MIN_TOKEN, MAX_TOKEN)
    assert rows == [(pk, ck) for _, pk, ck in table]  # exactly once, in token order
    assert reader.windows_split >= 1
    tracker.inner.check_done()


class _TracingReader(range_reader._RangeReader):
    """The reader, recording every window it reads: (after, upto, outcome) in order."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.trace: list[tuple[int, int, str]] = []

    def _read_window(self, window_end: int) -> Any:
        after = self.complete
        outcome = yield from super()._read_window(window_end)
        self.trace.append((after, window_end, outcome))
        return outcome


def _traced_read(fn: Fn, start: int, end: int) -> tuple[list[Any], _TracingReader]:
    tracker = Tracker(OffsetRange(start + 1, end + 1))
    reader = _TracingReader(fn, tracker, PieceKey(0, start, start))
    rows = [row for batch in reader.run() for row in batch.rows]
    tracker.inner.check_done()
    return rows, reader


SLOW_TOKEN = 2**61  # the slow partition: a window holding it fails past its first page if
SLOW_WIDTH = 2**59  # wider than this (a scan too heavy for the timeout)


def _slow_partition(after: int, upto: int, offset: int) -> bool:
    return after < SLOW_TOKEN <= upto and upto - after > SLOW_WIDTH and offset > 0


def test_halved_windows_grow_back_after_the_slow_stretch() -> None:
    """One slow partition narrows the windows around it only: each split halves what is left
    of the failed window, each run of GROW_AFTER_PAGES good pages doubles the width, and the
    range after the slow partition is read in a few widening windows, not at the narrowest
    width."""
    table = make_table(2_000, 1, seed=11)
    fn = Fn(_FakeSession(table, fetch_size=10, fail=_slow_partition), retries=1)
    rows, reader = _traced_read(fn, MIN_TOKEN, MAX_TOKEN)
    assert rows == [(pk, ck) for _, pk, ck in table]
    trace = reader.trace
    for (_, upto, outcome), (after, next_upto, _) in zip(trace, trace[1:], strict=False):
        if outcome == "split":  # the next window: half of what the failed one had left
            assert next_upto - after == (upto - after) // 2
    # log2 of each window's width, whether it was read or split, and whether it held the
    # slow partition: wide windows over it split, halved ones pass, then they double again.
    shape = [
        ((upto - after).bit_length() - 1, outcome, after < SLOW_TOKEN <= upto)
        for after, upto, outcome in trace
    ]
    assert shape == [
        (63, "split", True),  # the whole ring: the slow partition's second page times out
        (62, "read", False),  # half of it, read whole: 8+ good pages, back to the rest
        (62, "split", True),
        (61, "split", True),
        (60, "split", True),
        (59, "read", False),  # 2**59 is still too wide, but this window stops short of it
        (60, "split", True),  # grown once, too wide again
        (59, "split", True),
        (58, "read", False),
        (58, "read", True),  # narrow enough: the slow partition is read
        (59, "read", False),  # growing back: 2**59, 2**60, 2**61, then the rest
        (60, "read", False),
        (61, "read", False),
        (56, "read", False),  # the rest of the range (what was left)
    ]
    assert (reader.windows_split, reader.windows_grown, reader.retries) == (6, 6, 12)
    assert reader.window is None  # back to the rest of the range at the end


def test_a_halved_window_never_grows_before_a_run_of_good_pages() -> None:
    """A failure restarts the count: windows keep their halved width while failures come
    sooner than every GROW_AFTER_PAGES pages."""
    table = make_table(400, 1, seed=5)
    calls = {"n": 0}

    def every_fourth_page(after: int, upto: int, offset: int) -> bool:
        calls["n"] += 1
        return (upto - after > 2**62 and offset > 0) or calls["n"] % 4 == 0

    fn = Fn(_FakeSession(table, fetch_size=10, fail=every_fourth_page), retries=3)
    rows, reader = _traced_read(fn, MIN_TOKEN, MAX_TOKEN)
    assert rows == [(pk, ck) for _, pk, ck in table]
    assert (reader.windows_split, reader.windows_grown) == (2, 0)
    last_split = max(i for i, (_, _, o) in enumerate(reader.trace) if o == "split")
    widths = {upto - after for after, upto, _ in reader.trace[last_split + 1 : -1]}
    assert widths == {reader.window}  # the halved width held to the end (the last one capped)


def test_a_range_failing_below_the_minimum_window_raises() -> None:
    table = make_table(10, 1)
    fn = Fn(_FakeSession(table, fetch_size=5, fail=lambda *a: True), retries=1)
    with pytest.raises(RangeReadError, match="failed"):
        read_range(fn, -(2**21), 2**21)


def test_self_checkpoint_hands_back_the_rest_at_a_partition_boundary() -> None:
    table = make_table(40, 3, seed=3)
    fn = Fn(_FakeSession(table, fetch_size=8), checkpoint_rows=10)
    start, end = MIN_TOKEN, MAX_TOKEN
    collected: list[tuple[Any, ...]] = []
    pieces = 0
    while True:
        rows, tracker, _ = read_range(fn, start, end)
        collected.extend(rows)
        pieces += 1
        tracker.inner.check_done()
        if tracker.residual is None:
            break
        # The piece ended on a whole partition; the residual starts right after it.
        start = tracker.residual.start - 1
        assert rows and rows[-1][0] == [r for r in table if r[0] == start][0][1]
    assert collected == [(pk, ck) for _, pk, ck in table]
    assert pieces == 10  # 40 partitions x 3 rows: 10 rows reached after 4 partitions (12 rows)


def test_restriction_coder_round_trips_ring_edges() -> None:
    coder = TokenRestrictionCoder()
    provider = TokenRangeRestrictionProvider()
    full = provider.initial_restriction((0, MIN_TOKEN, MIN_TOKEN, MAX_TOKEN))
    assert (full.start, full.stop) == (MIN_TOKEN + 1, 2**63)
    for r in (full, OffsetRange(-5, 7), OffsetRange(MAX_TOKEN, 2**63)):
        decoded = coder.decode(coder.encode(r))
        assert (decoded.start, decoded.stop) == (r.start, r.stop)


def test_connection_repr_hides_the_password() -> None:
    config = ConnectionConfig(username="reader", password="s3cret-pw")
    assert "s3cret-pw" not in repr(config)
    assert "s3cret-pw" not in str(config.session_key())
