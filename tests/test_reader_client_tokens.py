"""The reader with partition tokens computed from the key (no ``token(pk)`` selected): claims,
window splits, self-checkpoints, and the fall back to ``token(pk)`` when a computed token
fails its check. A fake session stands in for Cassandra; the hash itself is compared with
the server's in ``test_partition_token`` and whole exports run on Cassandra elsewhere."""

from __future__ import annotations

from operator import itemgetter
from typing import Any

import pytest
from apache_beam.io.restriction_trackers import OffsetRange
from cassandra import ReadTimeout

from tests.reader_fakes import (
    Bound,
    Fn,
    Result,
    Tracker,
    make_table,
    read,
    read_range,
    serve_columns,
)
from transforms import range_reader
from transforms.token_ranges import MAX_TOKEN, MIN_TOKEN


class _Statement:
    def __init__(self, with_token: bool) -> None:
        self.with_token = with_token

    def bind(self, values: tuple[int, int]) -> Bound:
        bound = Bound(values)
        bound.with_token = self.with_token  # type: ignore[attr-defined]
        return bound


class _Session:
    """Rows ``(token, pk, ck)`` in the server's order; answers with or without the token."""

    def __init__(self, rows: list[tuple[int, int, int]], fetch_size: int, fail: Any = None):
        self.rows = sorted(rows)
        self.fetch_size = fetch_size
        self.fail = fail or (lambda after, upto, offset: False)
        self.queries: list[tuple[bool, int, int]] = []  # (with token, after, upto) per page

    def execute(self, bound: Any, paging_state: Any = None) -> Result:
        after, upto = bound.values
        offset = paging_state or 0
        self.queries.append((bound.with_token, after, upto))
        if self.fail(after, upto, offset):
            raise ReadTimeout("injected", consistency=1, required_responses=1, received_responses=0)
        matching = [r for r in self.rows if after < r[0] <= upto]
        page = matching[offset : offset + self.fetch_size]
        if not bound.with_token:
            page = [r[1:] for r in page]
        more = offset + self.fetch_size < len(matching)
        return Result(page, offset + self.fetch_size if more else None)


class _Tokens:
    """PartitionTokens over ``(pk, ck)`` rows: the token of pk from a table (or a wrong one)."""

    def __init__(self, tokens: dict[int, int]) -> None:
        self.key_of = itemgetter(0)
        self.positions = (0,)
        self.tokens = tokens

    def token(self, key: int) -> int:
        if key is None:
            raise TypeError("an empty key value")
        return self.tokens[key]


def _fn(session: _Session, tokens: dict[int, int], **kwargs: Any) -> Fn:
    fn = Fn(session, **kwargs)
    fn._statement = _Statement(with_token=False)
    fn._token_statement = _Statement(with_token=True)
    fn._client_tokens = _Tokens(tokens)
    return fn


def _true_tokens(table: list[tuple[int, int, int]]) -> dict[int, int]:
    return {pk: token for token, pk, _ in table}


@pytest.fixture(autouse=True)
def _no_sleep(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(range_reader.time, "sleep", lambda s: None)


@pytest.fixture(autouse=True, params=["row pages", "column pages"])
def _pages(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> None:
    """Each test reads its pages as row tuples, then as columns (``transforms.columnar``)."""
    if request.param == "column pages":
        serve_columns(monkeypatch)


def test_reads_every_row_once_without_selecting_the_token() -> None:
    table = make_table(200, 3)
    session = _Session(table, fetch_size=10)
    rows, tracker, reader = read_range(_fn(session, _true_tokens(table)), MIN_TOKEN, MAX_TOKEN)
    assert rows == [(pk, ck) for _, pk, ck in table]
    tracker.inner.check_done()
    assert reader.token_fallbacks == 0
    assert {with_token for with_token, _, _ in session.queries} == {False}
    assert tracker.claims == 201  # each partition once, then past the end


def test_ring_edges_are_claimed_with_client_tokens() -> None:
    table = [(MIN_TOKEN + 1, 1, 0), (0, 3, 0), (MAX_TOKEN, 2, 0)]
    rows, tracker, reader = read_range(
        _fn(_Session(table, fetch_size=1), _true_tokens(table)), MIN_TOKEN, MAX_TOKEN
    )
    assert rows == [(1, 0), (3, 0), (2, 0)]
    tracker.inner.check_done()
    assert reader.token_fallbacks == 0


def test_split_windows_skip_the_delivered_rows_by_key() -> None:
    table = make_table(300, 5, seed=7)

    def fail(after: int, upto: int, offset: int) -> bool:
        return (upto - after) > 2**62 and offset >= 23

    fn = _fn(_Session(table, fetch_size=23, fail=fail), _true_tokens(table), retries=2)
    rows, tracker, reader = read_range(fn, MIN_TOKEN, MAX_TOKEN)
    assert rows == [(pk, ck) for _, pk, ck in table]
    assert reader.windows_split >= 1 and reader.token_fallbacks == 0
    tracker.inner.check_done()


def test_self_checkpoints_and_a_runner_split_read_each_row_once() -> None:
    table = make_table(40, 3, seed=3)
    fn = _fn(_Session(table, fetch_size=8), _true_tokens(table), checkpoint_rows=10)
    start, collected, pieces = MIN_TOKEN, [], 0
    while True:
        rows, tracker, _ = read_range(fn, start, MAX_TOKEN)
        collected.extend(rows)
        pieces += 1
        if tracker.residual is None:
            break
        start = tracker.residual.start - 1
        assert rows[-1][0] == [pk for token, pk, _ in table if token == start][0]
    assert collected == [(pk, ck) for _, pk, ck in table]
    assert pieces == 10
    # A runner's split: claims refused after 7 partitions; the residual reads the rest.
    fn = _fn(_Session(table, fetch_size=8), _true_tokens(table))
    tracker = Tracker(OffsetRange(MIN_TOKEN + 1, MAX_TOKEN + 1), stop_claims_after=7)
    first, _ = read(fn, tracker)
    eighth = table[7 * 3][0]
    second, _, _ = read_range(fn, eighth - 1, MAX_TOKEN)
    assert first + second == [(pk, ck) for _, pk, ck in table]


@pytest.mark.parametrize(
    "wrong",
    [
        MIN_TOKEN,  # below the window
        "previous",  # not above the previous partition's token (or a collision)
        None,  # no serialization (an empty key value)
    ],
)
def test_a_token_failing_its_check_falls_back_to_server_tokens(wrong: Any) -> None:
    table = make_table(60, 4, seed=5)
    tokens = _true_tokens(table)
    pk_20, pk_21 = table[20 * 4][1], table[21 * 4][1]
    tokens[pk_21] = tokens[pk_20] if wrong == "previous" else wrong
    if wrong is None:
        # The key value decodes to None in every row of that partition.
        table = [(t, None if pk == pk_21 else pk, ck) for t, pk, ck in table]
    session = _Session(table, fetch_size=9)
    rows, tracker, reader = read_range(_fn(session, tokens), MIN_TOKEN, MAX_TOKEN)
    assert rows == [(pk, ck) for _, pk, ck in table]
    assert reader.token_fallbacks == 1
    tracker.inner.check_done()
    # The page that held partition 21 was the last one read without the token; the window
    # was read again from the last complete partition (20's predecessor) with token().
    switch = [q[0] for q in session.queries].index(True)
    assert session.queries[switch] == (True, table[19 * 4][0], MAX_TOKEN)
    assert all(q[0] for q in session.queries[switch:])
    assert not any(q[0] for q in session.queries[:switch])
