"""Sending a restore's writes: bounded in-flight async requests, retries with backoff, and
which failures are safe to resend (a list append only when it certainly was not applied).

One sender serves the units of a bundle one after another: a unit is closed when its last
write is sent, and what it closes with (its done marker) runs once every write sent before
it is acknowledged. So the next unit's file is read and decoded while the node still
writes the last requests of the one before, instead of either side waiting for the other.

Kept apart from the writer DoFn (``cassandra_write``) so that what is retried, and why, can
be read and tested on its own.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from transforms.cassandra_session import backoff_seconds, is_retryable

__all__ = [
    "list_check_consistency",
    "RestoreWriteError",
    "safe_to_resend",
    "UnitCounts",
    "WriteSender",
]


class RestoreWriteError(RuntimeError):
    """A write that failed after its retries."""


@dataclass
class UnitCounts:
    rows: int = 0
    partitions: int = 0
    cells: int = 0
    statements: int = 0
    batches: int = 0
    expired_cells: int = 0
    list_elements_present: int = 0
    retries: int = 0
    server_warnings: int = 0  # warnings Cassandra sent back with acknowledged writes

    def to_json(self) -> dict[str, int]:
        return dict(self.__dict__)


class WriteSender:
    """Bounded in-flight async writes with retries; fails on the first hopeless error.

    Requests are acknowledged oldest first, so "every write sent before this point was
    acknowledged" is a count: ``close_unit(finish)`` records the point and ``finish`` runs
    when the count reaches it. A failed write drops every recorded point: no unit is
    finished after a write it may hold failed."""

    def __init__(
        self,
        session: Any,
        max_in_flight: int,
        retries: int,
        counts: UnitCounts,
        execute: Callable[[Any], Any] | None = None,
    ) -> None:
        """``execute(request)`` sends one request and returns its future (by default
        ``session.execute_async``; the columnar restore sends encoded batches). ``counts``
        count the retries and node warnings of the writes sent from now on (set
        ``counts`` again for the next unit's)."""
        self.session = session
        self.execute = execute or session.execute_async
        self.max_in_flight = max_in_flight
        self.retries = retries
        self.counts = counts
        self.pending: deque[tuple[Any, bool, Any, UnitCounts]] = deque()
        self._sent = 0
        self._acknowledged = 0
        self._closes: deque[tuple[int, Callable[[], None]]] = deque()

    def make_room(self) -> None:
        """Wait for a free request slot. Called before a partition's statements are built,
        so the TTLs computed for them are not aged by time spent waiting here."""
        while len(self.pending) >= self.max_in_flight:
            self._wait_oldest()

    def send(self, statement: Any, appends_list: bool) -> None:
        # A large partition may overshoot the bound set by make_room, never twice over.
        while len(self.pending) >= 2 * self.max_in_flight:
            self._wait_oldest()
        self.pending.append((statement, appends_list, self.execute(statement), self.counts))
        self._sent += 1

    def close_unit(self, finish: Callable[[], None]) -> None:
        """Run ``finish`` once every write sent so far is acknowledged: now, if none is in
        flight, else when the oldest of them are waited for (by a later ``make_room``,
        ``send`` or ``drain``)."""
        self._closes.append((self._sent, finish))
        self._run_closes()

    def drain(self) -> None:
        """Wait for every write in flight (and run the closes they complete)."""
        while self.pending:
            self._wait_oldest()

    def abandon(self) -> None:
        """Wait for writes still in flight before a unit fails, so a retry of the unit never
        races its own earlier appends. Units closed before the failure are still finished
        when their writes succeed (as they were when each unit was drained before the next
        one started); the outcome of the writes after them is ignored."""
        try:
            while self._closes:
                self._wait_oldest()
        except Exception:
            pass
        while self.pending:
            future = self.pending.popleft()[2]
            try:
                future.result()
            except Exception:
                pass

    def _run_closes(self) -> None:
        while self._closes and self._closes[0][0] <= self._acknowledged:
            self._closes.popleft()[1]()

    def _wait_oldest(self) -> None:
        statement, appends_list, future, counts = self.pending.popleft()
        attempt = 0
        while True:
            try:
                future.result()
                self._note_warnings(future, counts)
                break
            except Exception as exc:
                if attempt >= self.retries or not safe_to_resend(exc, appends_list):
                    self._closes.clear()
                    raise RestoreWriteError(
                        f"write failed after {attempt} retries: {type(exc).__name__}: {exc}"
                    ) from None
                attempt += 1
                counts.retries += 1
                time.sleep(backoff_seconds(attempt))
                future = self.execute(statement)
        self._acknowledged += 1
        self._run_closes()

    def _note_warnings(self, future: Any, counts: UnitCounts) -> None:
        """Count the warnings the node attached to an acknowledged write (a batch over its
        size or partition-count threshold, say) and log each distinct text once."""
        warnings = getattr(future, "warnings", None)
        if not warnings:
            return
        counts.server_warnings += len(warnings)
        for text in warnings:
            if text not in _LOGGED_WARNINGS and len(_LOGGED_WARNINGS) < _MAX_LOGGED_WARNINGS:
                _LOGGED_WARNINGS.add(text)
                _LOG.warning("Cassandra warned about a restore write: %s", text)


# Distinct node warnings logged per worker process (each is counted in the summary).
_MAX_LOGGED_WARNINGS = 5
_LOGGED_WARNINGS: set[str] = set()
_LOG = logging.getLogger(__name__)


def safe_to_resend(exc: BaseException, appends_list: bool) -> bool:
    """Retry timestamped writes freely; a batch appending to a list only when the coordinator
    certainly did not apply it (a timeout may have applied it: the unit fails and its redo
    reads the target first)."""
    if not is_retryable(exc):
        return False
    if not appends_list:
        return True
    from cassandra import Unavailable
    from cassandra.cluster import NoHostAvailable
    from cassandra.protocol import IsBootstrappingErrorMessage, OverloadedErrorMessage

    return isinstance(
        exc, Unavailable | NoHostAvailable | OverloadedErrorMessage | IsBootstrappingErrorMessage
    )


_QUORUM_LEVELS = ("QUORUM", "LOCAL_QUORUM", "EACH_QUORUM", "ALL")


def list_check_consistency(write_consistency: str) -> str:
    """The level a redone unit reads lists at: one that sees every acknowledged write of the
    earlier attempt. A quorum read overlaps a quorum write; after weaker writes only ALL does
    (a replica down then fails the unit, and a later --resume checks again)."""
    level = write_consistency.upper()
    return level if level in _QUORUM_LEVELS else "ALL"
