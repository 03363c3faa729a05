"""How the reader takes one page of rows: it claims each new partition at its token and
batches the rows, with the token selected by the query (``token(pk)`` first in each row) or
computed from the partition key (``transforms.partition_token``).

:class:`PageClaims` holds those loops for ``range_reader._RangeReader``, which owns the
state they carry from page to page (documented there) and the windows, paging and retries.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Generator, Iterable, Iterator, Sequence
from typing import Any

import numpy

from transforms.columnar import ColumnPage
from transforms.elements import ColumnBatch, PieceKey, RowBatch
from transforms.partition_token import PartitionTokens

__all__ = ["NO_KEY", "PIECE_STOPPED", "TOKENS_REFUSED", "PageClaims"]

_LOG = logging.getLogger(__name__)

PIECE_STOPPED = "stopped"  # the tracker refused a claim or a checkpoint deferred the rest
TOKENS_REFUSED = "refused"  # a client token failed its check: read the rest with token()
NO_KEY = object()  # last_key before the first partition


class PageClaims:
    """The per-page loops of ``_RangeReader``; the attributes below are its state."""

    fn: Any
    tracker: Any
    piece: PieceKey
    rows: int
    complete: int
    last_token: int | None
    last_key: Any
    partial: int
    batch: list[tuple[Any, ...]]
    since_checkpoint: int
    tokens: PartitionTokens | None
    statement: Any
    token_fallbacks: int

    def _take_page(
        self, rows: Sequence[Any], skip: int, after: int, window_end: int
    ) -> Generator[RowBatch, None, tuple[str | None, int]]:
        """Claim each new partition of one page and batch its rows; returns (None, or why
        the window's read ends here, and the rows of the current partition still to skip).
        Stops before a new partition when the tracker refuses it or ``checkpoint_rows`` rows
        were read (``PIECE_STOPPED``), or when its client token fails its check
        (``TOKENS_REFUSED``: the reader then selects ``token(pk)`` for the rest).
        A page of columns (``[ColumnPage]``) is claimed a partition at a time."""
        if rows and type(rows[0]) is ColumnPage:
            outcome, skip = yield from self._take_column_page(rows[0], skip, after, window_end)
        elif self.tokens is None:
            return (yield from self._take_page_server_tokens(rows, skip))
        else:
            outcome, skip = yield from self._take_page_client_tokens(rows, skip, after, window_end)
        if outcome == TOKENS_REFUSED:
            self._use_server_tokens(after, window_end)
        return outcome, skip

    def _take_page_server_tokens(
        self, rows: Sequence[Any], skip: int
    ) -> Generator[RowBatch, None, tuple[str | None, int]]:
        """``_take_page`` for rows that start with ``token(pk)``. The hot loop: state in locals."""
        stops_before = self._stops_before
        piece = self.piece
        batch_size = self.fn.batch_size
        batch = self.batch
        complete, last_token, partial = self.complete, self.last_token, self.partial
        read = 0
        since_checkpoint = self.since_checkpoint
        stopped = None
        try:
            for row in rows:
                token = row[0]
                if token == last_token:
                    if skip:
                        skip -= 1
                        continue
                    partial += 1
                else:
                    # A new partition: the previous one is complete.
                    if stops_before(token, since_checkpoint):
                        stopped = PIECE_STOPPED
                        break
                    if last_token is not None:
                        complete = last_token
                    last_token = token
                    partial = 1
                    skip = 0
                batch.append(row[1:])
                read += 1
                since_checkpoint += 1
                if len(batch) >= batch_size:
                    yield RowBatch(piece, batch)
                    batch = []
        finally:
            self.batch = batch
            self.complete, self.last_token, self.partial = complete, last_token, partial
            self.rows += read
            self.since_checkpoint = since_checkpoint
        return stopped, skip

    def _take_page_client_tokens(
        self, rows: Sequence[Any], skip: int, after: int, window_end: int
    ) -> Generator[RowBatch, None, tuple[str | None, int]]:
        """``_take_page`` for rows without the token: a new partition is a new key, its token
        computed here must be above ``after`` and the previous partition's and at most
        ``window_end`` (the server returns partitions in token order within the window),
        else the page ends before it is claimed. The hot loop: state in locals."""
        stops_before = self._stops_before
        piece = self.piece
        batch_size = self.fn.batch_size
        key_of, token_of = self.tokens.key_of, self.tokens.token  # type: ignore[union-attr]
        batch = self.batch
        complete, last_token, partial = self.complete, self.last_token, self.partial
        last_key = self.last_key
        floor = after if last_token is None or last_token < after else last_token
        read = 0
        since_checkpoint = self.since_checkpoint
        stopped = None
        try:
            for row in rows:
                key = key_of(row)
                if key == last_key:
                    if skip:
                        skip -= 1
                        continue
                    partial += 1
                else:
                    try:
                        token = token_of(key)
                    except (TypeError, ValueError, struct.error):
                        token = None
                    if token is None or not floor < token <= window_end:
                        stopped = TOKENS_REFUSED
                        break
                    if stops_before(token, since_checkpoint):
                        stopped = PIECE_STOPPED
                        break
                    if last_token is not None:
                        complete = last_token
                    last_token = floor = token
                    last_key = key
                    partial = 1
                    skip = 0
                batch.append(row)
                read += 1
                since_checkpoint += 1
                if len(batch) >= batch_size:
                    yield RowBatch(piece, batch)
                    batch = []
        finally:
            self.batch = batch
            self.complete, self.last_token, self.partial = complete, last_token, partial
            self.last_key = last_key
            self.rows += read
            self.since_checkpoint = since_checkpoint
        return stopped, skip

    def _take_column_page(
        self, page: ColumnPage, skip: int, after: int, window_end: int
    ) -> Generator[RowBatch, None, tuple[str | None, int]]:
        """``_take_page`` for a page of columns: the partitions' first rows are found with
        NumPy (where a key column changes), each partition is claimed as the row loops
        claim it, then the rows delivered (one contiguous run of the page) are emitted as
        ``ColumnBatch`` elements of at most ``batch_size`` rows, after any rows batched
        before (a page read as rows), so the order is kept."""
        server = self.tokens is None
        positions = (0,) if server else self.tokens.positions  # type: ignore[union-attr]
        keys = [page.columns[p] for p in positions]
        starts = _partition_starts(page.columns, positions)
        runs = zip(starts, starts[1:] + [page.length], strict=True)
        key_at = _value_at(keys[0]) if len(keys) == 1 else _values_at(keys)
        outcome, skip, begin, end = self._claim_runs(runs, key_at, skip, after, window_end)
        if end > begin:
            yield from self._flush()
            columns = page.columns[1:] if server else page.columns
            step = self.fn.batch_size
            for first in range(begin, end, step):
                last = min(end, first + step)
                yield ColumnBatch(self.piece, [c[first:last] for c in columns], last - first)
        return outcome, skip

    def _claim_runs(
        self, runs: Iterable[tuple[int, int]], key_at: Any, skip: int, after: int, window_end: int
    ) -> tuple[str | None, int, int, int]:
        """Claim the partitions of a page, given as runs ``(start, stop)`` of row indexes;
        returns (why the window ends here or None, rows still to skip, and the run of
        rows delivered ``begin:end``). The same state changes as the row loops."""
        client = self.tokens is not None
        token_of = self.tokens.token if client else None  # type: ignore[union-attr]
        complete, last_token, partial = self.complete, self.last_token, self.partial
        last_key = self.last_key if client else last_token
        floor = after if last_token is None or last_token < after else last_token
        since_checkpoint = self.since_checkpoint
        begin = end = 0
        stopped = None
        for start, stop in runs:
            key = key_at(start)
            if key == last_key:
                taken = min(skip, stop - start)
                skip -= taken
                start += taken
                partial += stop - start
            else:
                token = key
                if client:
                    try:
                        token = token_of(key)  # type: ignore[misc]
                    except (TypeError, ValueError, struct.error):
                        token = None
                    if token is None or not floor < token <= window_end:
                        stopped = TOKENS_REFUSED
                        break
                if self._stops_before(token, since_checkpoint):
                    stopped = PIECE_STOPPED
                    break
                if last_token is not None:
                    complete = last_token
                last_token = floor = token
                last_key = key
                partial = stop - start
                skip = 0
            if end == begin:
                begin = start
            end = stop
            since_checkpoint += stop - start
        self.complete, self.last_token, self.partial = complete, last_token, partial
        if client:
            self.last_key = last_key
        self.rows += end - begin
        self.since_checkpoint = since_checkpoint
        return stopped, skip, begin, end

    def _flush(self) -> Iterator[RowBatch]:
        """The rows batched so far, as one RowBatch (before any columns that follow them)."""
        if self.batch:
            yield RowBatch(self.piece, self.batch)
            self.batch = []

    def _stops_before(self, token: int, since_checkpoint: int) -> bool:
        """Whether the piece ends before the partition at ``token``: ``checkpoint_rows`` rows
        were read (the rest is handed back), or the tracker refuses the claim."""
        checkpoint_rows = self.fn.checkpoint_rows
        if checkpoint_rows and since_checkpoint >= checkpoint_rows:
            self.tracker.defer_remainder()
            return True
        return not self.tracker.try_claim(token)

    def _use_server_tokens(self, after: int, window_end: int) -> None:
        """A client token failed its check: select ``token(pk)`` for the rest of the piece.
        The window is read again from ``complete``, skipping the ``partial`` rows of the
        partition being read, as after a split."""
        self.tokens = None
        self.statement = self.fn._token_statement
        self.token_fallbacks += 1
        _LOG.warning(
            "work unit %d: a partition token computed from its key did not fall in the "
            "token range (%d, %d] after the previous partition; reading the rest of the "
            "range with token() from the node",
            self.piece.unit_id,
            after,
            window_end,
        )


def _partition_starts(columns: Sequence[Any], positions: Sequence[int]) -> list[int]:
    """Indexes of the rows where a new partition key (or token) begins: row 0, and every
    row whose key columns differ from the row before (value or null)."""
    length = len(columns[0])
    change = numpy.zeros(length, dtype=bool)
    if length:
        change[0] = True
    for p in positions:
        data = numpy.ma.getdata(columns[p])
        mask = numpy.ma.getmaskarray(columns[p])
        change[1:] |= (data[1:] != data[:-1]) | (mask[1:] != mask[:-1])
    return numpy.flatnonzero(change).tolist()


def _values_at(columns: Sequence[Any]) -> Any:
    """Row ``i`` of several key columns as the tuple ``PartitionTokens.key_of`` gives."""
    getters = [_value_at(column) for column in columns]
    return lambda i: tuple(get(i) for get in getters)


def _value_at(column: Any) -> Any:
    """Row ``i`` of a column as the row parser gives it: a Python value, None if null."""
    data = numpy.ma.getdata(column)
    if data.dtype.kind == "O":
        return data.__getitem__
    mask = numpy.ma.getmaskarray(column)
    return lambda i: None if mask[i] else data[i].item()
