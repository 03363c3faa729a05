"""The splittable reader: ``ReadRangesFn`` reads each work unit's token range page by page
and emits ``RowBatch`` elements (``ColumnBatch`` where pages are read as columns, see
``transforms.columnar``), then one ``PieceEnd`` per piece.

Each partition token is claimed once through the restriction tracker, so a unit split by
the runner, checkpointed or retried never delivers a partition twice. A window that keeps
timing out is halved (``_RangeReader._retry_after_backoff``) and grows back after a run of
good pages. The public transform built on it is ``cassandra_io.ReadCassandraWithWritetime``.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Generator, Iterator
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics

from transforms.cassandra_session import (
    ConnectionConfig,
    acquire_session,
    backoff_seconds,
    consistency_level,
    is_retryable,
    query_slots,
    release_session,
    splitting_helps,
)
from transforms.columnar import (
    ColumnPage,
    RowPage,
    columnar_handler,
    send_columnar,
    sized_rows_handler,
    supports_columnar,
)
from transforms.elements import NAMESPACE, PieceElement, PieceEnd, PieceKey, RowBatch, relax_gc
from transforms.page_claims import NO_KEY, PIECE_STOPPED, PageClaims
from transforms.partition_token import PartitionTokens, partition_tokens_for
from transforms.rate_limit import leave_limiter, limiter_for
from transforms.table_plan import TablePlan
from transforms.token_restriction import TOKEN_RANGES
from transforms.wire_timestamps import millis_rows

__all__ = ["AUTO_FIRST_PAGE_ROWS", "RangeReadError", "ReadRangesFn", "auto_page_rows"]

_LOG = logging.getLogger(__name__)

# Pages sized from their bytes (``--fetch-size 0``, the default). A page costs the node a
# fixed amount (the range query resumed from its paging state) besides its rows: on
# Cassandra 5.0, 20,000 narrow rows per page took about 10% less node CPU per row than
# 5,000, and up to 50,000 rows / 4 MiB about 10% less again (7% with writetimes, whose
# bigger rows fill 4 MiB at about 42,000). Pages of wide rows hold fewer rows, so that a
# page (held twice: one read, one being processed) stays a few MiB in memory.
AUTO_FIRST_PAGE_ROWS = 5000  # before any page was measured
AUTO_PAGE_BYTES = 4 << 20  # result message bytes aimed at per page
AUTO_MIN_PAGE_ROWS = 100
AUTO_MAX_PAGE_ROWS = 50000


def auto_page_rows(rows: int, nbytes: int) -> int | None:
    """Rows of the next page after one of ``rows`` rows in ``nbytes`` message bytes:
    ``AUTO_PAGE_BYTES`` worth at that size per row, within ``AUTO_MIN_PAGE_ROWS`` ..
    ``AUTO_MAX_PAGE_ROWS``; None when the page tells nothing (no rows, size unknown)."""
    if rows <= 0 or nbytes <= 0:
        return None
    wanted = AUTO_PAGE_BYTES * rows // nbytes
    return max(AUTO_MIN_PAGE_ROWS, min(AUTO_MAX_PAGE_ROWS, wanted))


@beam.typehints.with_output_types(PieceElement)
class ReadRangesFn(beam.DoFn):
    """Splittable read of ``(unit_id, unit_start, start, end)``: the token range ``(start, end]``
    of work unit ``unit_id``; emits RowBatch..., PieceEnd."""

    def __init__(
        self,
        connection: ConnectionConfig,
        plan: TablePlan,
        batch_size: int = 1000,
        checkpoint_rows: int = 0,
        columnar: bool = True,
    ) -> None:
        """Read the columns of ``plan`` through ``connection``.

        Args:
            connection: the cluster, credentials and per-request settings (consistency,
                fetch size, retries, rate limit).
            plan: the columns read, with their writetimes and TTLs, planned at launch.
            batch_size: rows per emitted ``RowBatch``.
            checkpoint_rows: hand back the rest of a unit after this many rows (0: never),
                so a runner can rebalance.
            columnar: read pages as columns where the driver can (``ColumnBatch``
                elements, whose ``rows`` give the same tuples); False: row tuples only.
        """
        self.connection = connection
        self.columnar = columnar
        self.plan = plan
        self.batch_size = batch_size
        self.checkpoint_rows = checkpoint_rows
        self.rows_counter = Metrics.counter(NAMESPACE, "rows_read")
        self.pages_counter = Metrics.counter(NAMESPACE, "pages")
        self.retries_counter = Metrics.counter(NAMESPACE, "retries")
        self.splits_counter = Metrics.counter(NAMESPACE, "ranges_split")
        self.grown_counter = Metrics.counter(NAMESPACE, "windows_grown")
        self.token_fallbacks_counter = Metrics.counter(NAMESPACE, "client_token_fallbacks")

    def setup(self) -> None:
        relax_gc()
        self._session = acquire_session(self.connection)
        self._client_tokens = _client_tokens(self._session, self.plan)
        self._token_statement = self._prepare(with_token=True)
        self._statement = (
            self._token_statement
            if self._client_tokens is None
            else self._prepare(with_token=False)
        )
        # Pages as columns, or as rows with their sizes; either way top-level timestamps
        # are read as integer milliseconds (transforms.wire_timestamps).
        if self.columnar:
            self._page_handler = columnar_handler()
        else:
            self._page_handler = sized_rows_handler()
        self._limiter = limiter_for(self.connection.rate_limit)
        self._slots = query_slots(self.connection.max_concurrent_queries)

    def _prepare(self, with_token: bool) -> Any:
        statement = self._session.prepare(self.plan.select_cql(with_token=with_token))
        statement.consistency_level = consistency_level(self.connection.consistency)
        return statement

    def display_data(self) -> dict[str, Any]:
        return {
            **self.connection.display_data(),
            "table": f"{self.plan.keyspace}.{self.plan.table}",
            "fetch_size": self.connection.fetch_size or "auto",
            "batch_size": self.batch_size,
            "checkpoint_rows": self.checkpoint_rows,
            "columnar": self.columnar,
        }

    def teardown(self) -> None:
        if getattr(self, "_limiter", None) is not None:
            leave_limiter(self._limiter)
            self._limiter = None
        if getattr(self, "_session", None) is not None:
            release_session(self.connection)
            self._session = None

    def process(
        self,
        element: tuple[int, int, int, int],
        tracker: beam.DoFn.RestrictionParam = TOKEN_RANGES,
    ) -> Iterator[RowBatch | PieceEnd]:
        unit_id, unit_start, _start, _end = element
        restriction = tracker.current_restriction()
        piece = PieceKey(unit_id, unit_start, restriction.start - 1)
        reader = _RangeReader(self, tracker, piece)
        yield from reader.run()
        self.rows_counter.inc(reader.rows)
        self.retries_counter.inc(reader.retries)
        self.splits_counter.inc(reader.windows_split)
        self.grown_counter.inc(reader.windows_grown)
        self.token_fallbacks_counter.inc(reader.token_fallbacks)
        yield PieceEnd(
            piece,
            tracker.current_restriction().stop - 1,
            reader.rows,
            reader.windows_split,
            reader.retries,
        )


class RangeReadError(RuntimeError):
    """A token range kept failing after every retry and split."""


def _client_tokens(session: Any, plan: TablePlan) -> PartitionTokens | None:
    """Partition tokens computed here (no ``token(pk)`` per row), unless the cluster does not
    use Murmur3Partitioner or a key type cannot be hashed client-side."""
    partitioner = getattr(getattr(session.cluster, "metadata", None), "partitioner", None)
    if partitioner and not partitioner.endswith("Murmur3Partitioner"):
        return None
    return partition_tokens_for(plan)


# How reading one token window ended (``_RangeReader._read_window``).
_WINDOW_READ = "read"  # every page of the window was read
_WINDOW_SPLIT = "split"  # the window kept failing: read it again in halves


class _RangeReader(PageClaims):
    """Reads one restriction: windows of the token range, pages, claims, batches.

    The restriction is read as one query per window ``(complete, window_end]``; the window
    is the rest of the range until a window keeps failing, then it is halved; after
    ``GROW_AFTER_PAGES`` pages in a row without a failure it doubles again (back to the rest
    of the range once it covers it), so a slow stretch narrows the windows only while it
    lasts. The state carried from page to page and window to window:

    - ``complete``: every partition with token <= complete has been read whole;
    - ``last_token``: the partition being read (claimed), ``partial`` its rows delivered,
      so that a window read again after a split skips them; ``last_key`` its key when
      tokens are computed here (``tokens``; None: the query selects ``token(pk)`` first);
    - ``window``: the window width in tokens (None: the rest of the range);
      ``good_pages``: pages read since the last failure or change of width;
    - ``batch``: rows not yet emitted; ``since_checkpoint``: rows since the piece began;
    - ``page_rows``: the fetch size of every request (``bound.fetch_size``): the one
      given, or when automatic ``auto_page_rows`` of the last page with a known size.
    """

    MIN_WINDOW = 1 << 20  # never split a failing window below this many tokens
    GROW_AFTER_PAGES = 8  # pages in a row without a failure before a halved window doubles

    def __init__(self, fn: ReadRangesFn, tracker: Any, piece: PieceKey) -> None:
        self.fn = fn
        self.tracker = tracker
        self.piece = piece
        self.rows = 0
        self.retries = 0
        self.windows_split = 0
        self.windows_grown = 0
        self.complete = piece.piece_start
        self.last_token: int | None = None
        self.last_key: Any = NO_KEY
        self.partial = 0
        self.tokens: PartitionTokens | None = fn._client_tokens
        self.statement = fn._statement
        self.token_fallbacks = 0
        self.window: int | None = None
        self.good_pages = 0
        self.batch: list[tuple[Any, ...]] = []
        self.since_checkpoint = 0
        self.auto_pages = not fn.connection.fetch_size
        # Automatic sizes carry over from the worker's previous piece (same table).
        self.page_rows = fn.connection.fetch_size or getattr(fn, "_page_rows", AUTO_FIRST_PAGE_ROWS)

    def run(self) -> Iterator[RowBatch]:
        """Read the restriction, window after window; then claim past its end."""
        while True:
            stop = self.tracker.current_restriction().stop - 1  # never cache the end
            if self.complete >= stop:
                break
            window_end = stop if self.window is None else min(stop, self.complete + self.window)
            outcome = yield from self._read_window(window_end)
            if outcome == PIECE_STOPPED:
                yield from self._flush()
                return
            if outcome == _WINDOW_READ:
                self.complete = window_end
                if self.last_token is not None and self.last_token <= window_end:
                    self.partial = 0  # that partition is complete too
                self._grow_window(stop - self.complete)
        yield from self._flush()
        self.tracker.try_claim(self.tracker.current_restriction().stop)

    def _read_window(self, window_end: int) -> Generator[RowBatch, None, str]:
        """Read ``(complete, window_end]`` page by page, each page prefetched while the one
        before is processed; a failing page is retried from its paging state."""
        skip = self.partial  # after a split, rows of last_token already delivered
        query_after = self.complete  # fixed for the window: a paging state belongs to its query
        paging_state = None
        failures = 0
        pending = None  # the request of the page at paging_state, already sent
        while True:
            try:
                if pending is None:
                    pending = self._start(query_after, window_end, paging_state)
                rows, next_state = self._finish(pending)
            except Exception as exc:
                pending = None  # a retry asks again from the same paging_state
                if not is_retryable(exc):
                    raise
                failures += 1
                self.good_pages = 0
                if self._retry_after_backoff(exc, failures, window_end):
                    continue
                return _WINDOW_SPLIT
            failures = 0
            self.good_pages += 1
            paging_state = next_state
            # Prefetch: the next page is read while this one is processed.
            pending = (
                None if paging_state is None else self._start(query_after, window_end, paging_state)
            )
            outcome, skip = yield from self._take_page(rows, skip, query_after, window_end)
            if outcome is not None:
                return outcome
            # The driver keeps every answered request, and so its page, referenced from
            # its timeout timer until the timeout would have fired (--read-timeout):
            # empty the page once read, or a fast scan holds dozens of pages per worker.
            # A ColumnPage is the request's own result (the list only wraps it): drop
            # its arrays too; the batches emitted hold their own slices.
            if isinstance(rows, list):
                if rows and type(rows[0]) is ColumnPage:
                    rows[0].columns.clear()
                rows.clear()
            if paging_state is None:
                return _WINDOW_READ

    def _retry_after_backoff(self, exc: BaseException, failures: int, window_end: int) -> bool:
        """After a retryable failure: True once backed off for another try; False when the
        retries are spent and the window was halved. Raises RangeReadError when it cannot
        be halved (too narrow, or a failure that a smaller window would not avoid)."""
        self.retries += 1
        if failures <= self.fn.connection.retries:
            time.sleep(backoff_seconds(failures - 1))
            return True
        width = window_end - self.complete
        if width // 2 < self.MIN_WINDOW or not splitting_helps(exc):
            raise RangeReadError(
                f"work unit {self.piece.unit_id}: token range "
                f"({self.complete}, {window_end}] failed {failures} times: {exc}"
            ) from exc
        self._set_window(width // 2)
        self.windows_split += 1
        _LOG.warning(
            "work unit %d: token range (%d, %d] kept failing (%s); "
            "reading it in windows of %d tokens",
            self.piece.unit_id,
            self.complete,
            window_end,
            type(exc).__name__,
            self.window,
        )
        return False

    def _grow_window(self, remaining: int) -> None:
        """After a window read whole: double a halved window once ``GROW_AFTER_PAGES`` pages
        in a row succeeded; a window that would cover the ``remaining`` tokens becomes the
        rest of the range again."""
        if self.window is None or self.good_pages < self.GROW_AFTER_PAGES or remaining <= 0:
            return
        self._set_window(None if self.window * 2 >= remaining else self.window * 2)
        self.windows_grown += 1
        _LOG.debug(
            "work unit %d: windows grow back to %s tokens after %d pages without a failure",
            self.piece.unit_id,
            "the rest of the range" if self.window is None else self.window,
            self.GROW_AFTER_PAGES,
        )

    def _set_window(self, width: int | None) -> None:
        """The one place the window width changes (None: the rest of the range); the count
        of good pages starts again with each width."""
        self.window = width
        self.good_pages = 0

    def _start(self, after: int, upto: int, paging_state: bytes | None) -> Any:
        """Send the request of one page; ``_finish`` waits for it. Never raises: an error
        is raised by ``_finish``, where the retry logic is."""
        bound = self.statement.bind((after, upto))
        bound.routing_token = upto
        bound.fetch_size = self.page_rows
        session = self.fn._session
        slots = self.fn._slots
        if slots is not None:
            slots.acquire()
        execute_async = getattr(session, "execute_async", None)
        if execute_async is None:  # a session without async requests: read it now
            try:
                return _Sent(result=session.execute(bound, paging_state=paging_state))
            except Exception as exc:
                return _Sent(error=exc)
            finally:
                if slots is not None:
                    slots.release()
        handler = getattr(self.fn, "_page_handler", None)
        try:
            # Checked per request: a session swapped after setup (a fault-injecting proxy)
            # is driven through its own execute_async.
            if handler is not None and supports_columnar(session):
                future = send_columnar(session, bound, paging_state, handler)
            else:
                future = execute_async(bound, paging_state=paging_state)
        except Exception as exc:
            if slots is not None:
                slots.release()
            return _Sent(error=exc)
        if slots is not None:  # freed when the answer arrives, even if nobody reads it
            future.add_callbacks(
                _release_slot, _release_slot, callback_args=(slots,), errback_args=(slots,)
            )
        return future

    def _finish(self, sent: Any) -> tuple[list[Any], bytes | None]:
        """The answer of ``_start``: the page (row tuples, or ``[ColumnPage]``) and the
        paging state of the next one."""
        result = sent.result()
        rows = result.current_rows
        if type(rows) is list and not _is_column_page(rows):
            rows = millis_rows(rows)  # not read by the reader's own handlers: a session wrapper
        self.fn.pages_counter.inc()
        count = _row_count(rows)
        self.fn._limiter.acquire(count)
        if self.auto_pages:
            # The next request's size; kept on the DoFn for the worker's next piece.
            size = auto_page_rows(count, _page_bytes(rows))
            if size is not None:
                self.page_rows = self.fn._page_rows = size
        return rows, result.paging_state


def _is_column_page(rows: list[Any]) -> bool:
    return len(rows) == 1 and type(rows[0]) is ColumnPage


def _row_count(rows: list[Any]) -> int:
    """Rows of a page: row tuples, or one ``ColumnPage``."""
    if _is_column_page(rows):
        return rows[0].length
    return len(rows)


def _page_bytes(rows: list[Any]) -> int:
    """The message size of a page: a ``ColumnPage``'s or a ``RowPage``'s, else 0 (unknown:
    a session wrapper's plain rows)."""
    if _is_column_page(rows):
        return rows[0].nbytes
    return rows.nbytes if type(rows) is RowPage else 0


def _release_slot(_result: Any, slots: threading.BoundedSemaphore) -> None:
    slots.release()


class _Sent:
    """A request already answered (or failed), as a future."""

    def __init__(self, result: Any = None, error: BaseException | None = None) -> None:
        self._result = result
        self._error = error

    def result(self) -> Any:
        if self._error is not None:
            raise self._error
        return self._result
