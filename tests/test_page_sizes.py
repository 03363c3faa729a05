"""Pages sized from their bytes (``--fetch-size 0``, the default): after each page, read as
columns or as row tuples, the reader asks for about ``AUTO_PAGE_BYTES`` worth of rows at
that page's size per row, within ``AUTO_MIN_PAGE_ROWS`` .. ``AUTO_MAX_PAGE_ROWS``.

On a real node, through both paths (CSV reads columns, JSON lines rows): a table of small
rows is read in pages of the largest size after the first, a table of 2 KB rows in pages
smaller than the first; every request's fetch size is exactly the rule applied to the page
before it, and the export holds exactly the rows a fixed ``--fetch-size 5000`` gives, each
once.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from cassandra.concurrent import execute_concurrent_with_args

from tests.helpers import export, read_rows
from transforms import range_reader
from transforms.columnar import ColumnPage, RowPage
from transforms.range_reader import (
    AUTO_FIRST_PAGE_ROWS,
    AUTO_MAX_PAGE_ROWS,
    AUTO_MIN_PAGE_ROWS,
    AUTO_PAGE_BYTES,
    auto_page_rows,
)

SMALL = (3, 7_000)  # partitions, rows each: ~40 bytes a row
BIG = (2, 3_000)  # 2,000-character texts
BIG_TEXT = 2_000


# --- the rule ----------------------------------------------------------------------------------


def test_rule_aims_at_the_byte_target_within_the_bounds() -> None:
    # 5,000 rows in 1 MiB: 4 MiB is 20,000 rows.
    assert auto_page_rows(5_000, 1 << 20) == 20_000
    # Small rows: capped.
    assert auto_page_rows(5_000, 100_000) == AUTO_MAX_PAGE_ROWS
    # Rows of 1 MiB: at least the floor.
    assert auto_page_rows(10, 10 << 20) == AUTO_MIN_PAGE_ROWS
    # Floor division, as many whole rows as fit.
    assert auto_page_rows(3, 200) == AUTO_MAX_PAGE_ROWS
    assert auto_page_rows(700, 1_000_000) == AUTO_PAGE_BYTES * 700 // 1_000_000 == 2936
    # Nothing learnt from an empty page or an unknown size.
    assert auto_page_rows(0, 500) is None
    assert auto_page_rows(100, 0) is None


# --- on a real node ----------------------------------------------------------------------------


def _load(session: Any, table: str, partitions: int, rows: int, text: str) -> None:
    session.execute(f"CREATE TABLE {table} (pk int, ck int, v text, PRIMARY KEY (pk, ck))")
    insert = session.prepare(f"INSERT INTO {table} (pk, ck, v) VALUES (?, ?, ?)")
    args = [(pk, ck, f"{text}{pk}-{ck}") for pk in range(partitions) for ck in range(rows)]
    execute_concurrent_with_args(session, insert, args, concurrency=64, raise_on_first_error=True)


@pytest.fixture(scope="module")
def tables(session: Any, ks: str) -> dict[str, str]:
    small, big = f"{ks}.small_rows", f"{ks}.big_rows"
    _load(session, small, *SMALL, "v")
    _load(session, big, *BIG, "x" * BIG_TEXT)
    return {"small": small, "big": big}


PAGE_TYPES = {"csv": ColumnPage, "jsonl": RowPage}


@pytest.fixture
def requests(monkeypatch: pytest.MonkeyPatch) -> list[tuple[Any, ...]]:
    """Every page request of the export run in this process, in order: ("send", fetch
    size), and ("page", rows, message bytes, page type) for each answer with rows."""
    events: list[tuple[Any, ...]] = []
    start, finish = range_reader._RangeReader._start, range_reader._RangeReader._finish

    def recorded_start(self: Any, after: int, upto: int, paging_state: Any) -> Any:
        events.append(("send", self.page_rows))
        return start(self, after, upto, paging_state)

    def recorded_finish(self: Any, sent: Any) -> Any:
        rows, paging_state = finish(self, sent)
        if rows and type(rows[0]) is ColumnPage:
            events.append(("page", rows[0].length, rows[0].nbytes, ColumnPage))
        elif rows:  # an empty answer (a range without rows) teaches nothing
            events.append(("page", len(rows), getattr(rows, "nbytes", 0), type(rows)))
        return rows, paging_state

    monkeypatch.setattr(range_reader._RangeReader, "_start", recorded_start)
    monkeypatch.setattr(range_reader._RangeReader, "_finish", recorded_finish)
    return events


def _export_lines(hosts: str, table: str, out: Path, fmt: str, *extra: str) -> list[str]:
    """The rows exported (with v's writetime), sorted."""
    export(hosts, table, str(out), "--splits", "1", "--format", fmt, *extra)
    rows = read_rows(out)
    assert all(set(r) == {"pk", "ck", "v", "v_writetime"} for r in rows)
    return sorted(f"{r['pk']},{r['ck']},{r['v']},{r['v_writetime']}" for r in rows)


def _expected(partitions: int, rows: int, text: str) -> list[str]:
    return sorted(f"{pk},{ck},{text}{pk}-{ck}" for pk in range(partitions) for ck in range(rows))


def _sent_sizes(events: list[tuple[Any, ...]]) -> tuple[list[int], list[int]]:
    """The fetch sizes of the requests sent before any page with rows was answered (empty
    ranges of the ring), and after; each one checked against the rule applied to the last
    page with rows answered before it was sent."""
    before: list[int] = []
    after: list[int] = []
    last = None
    for event in events:
        if event[0] == "page":
            last = auto_page_rows(event[1], event[2]) or last
            continue
        expected = AUTO_FIRST_PAGE_ROWS if last is None else last
        assert event[1] == expected, (event, expected)
        (before if last is None else after).append(event[1])
    return before, after


@pytest.mark.parametrize("fmt", sorted(PAGE_TYPES))
@pytest.mark.parametrize("kind, shape, text", [("small", SMALL, "v"), ("big", BIG, "x" * BIG_TEXT)])
def test_pages_follow_their_bytes_and_the_export_is_unchanged(
    hosts: str,
    tables: dict[str, str],
    requests: list[tuple[Any, ...]],
    tmp_path: Path,
    kind: str,
    shape: tuple[int, int],
    text: str,
    fmt: str,
) -> None:
    expected = _expected(*shape, text)
    fixed_out = tmp_path / "fixed"
    fixed = _export_lines(hosts, tables[kind], fixed_out, fmt, "--fetch-size", "5000")
    assert [line.rsplit(",", 1)[0] for line in fixed] == expected
    assert {e[1] for e in requests if e[0] == "send"} == {5000}

    requests.clear()
    auto = _export_lines(hosts, tables[kind], tmp_path / "auto", fmt)
    assert auto == fixed  # every row once, the same values and writetimes
    before, after = _sent_sizes(requests)
    assert set(before) == {AUTO_FIRST_PAGE_ROWS}
    pages = [e for e in requests if e[0] == "page"]
    assert {p[3] for p in pages} == {PAGE_TYPES[fmt]}
    assert sum(p[1] for p in pages) == len(expected)
    assert len(after) >= 2
    if kind == "small":
        # ~40-byte rows: every request after the first page asks for the most.
        assert set(after) == {AUTO_MAX_PAGE_ROWS}
    else:
        # ~2 KB rows: 5,000 of them are ~10 MB, so the next pages are ~1,500 rows.
        assert all(p[2] > BIG_TEXT * p[1] for p in pages)
        assert all(AUTO_MIN_PAGE_ROWS < n < AUTO_FIRST_PAGE_ROWS // 2 for n in after)
