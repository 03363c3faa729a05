"""How the reader takes one page of rows: it claims each new partition at its token and
batches the rows, with the token selected by the query (``token(pk)`` first in each row) or
computed from the partition key (``transforms.partition_token``).

:class:`PageClaims` holds those loops for ``range_reader._RangeReader``, which owns the
state they carry from page to page (documented there) and the windows, paging and retries.
"""

from __future__ import annotations

import logging
import struct
from collections.abc import Generator, Sequence
from typing import Any

from transforms.elements import PieceKey, RowBatch
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
        (``TOKENS_REFUSED``: the reader then selects ``token(pk)`` for the rest)."""
        if self.tokens is None:
            return (yield from self._take_page_server_tokens(rows, skip))
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
