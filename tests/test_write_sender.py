"""WriteSender's units (no node): a unit's close runs only once every write sent before it
is acknowledged, a failed write finishes no unit, and retries and node warnings count to
the unit whose write they were."""

from __future__ import annotations

from typing import Any

import pytest
from cassandra import OperationTimedOut

from transforms.write_sender import RestoreWriteError, UnitCounts, WriteSender


class _Future:
    """A write's outcome, known when it is waited for: each wait is logged in order."""

    def __init__(self, log: list[str], name: str, error: Exception | None) -> None:
        self.log, self.name, self.error = log, name, error
        self.warnings: list[str] | None = None

    def result(self) -> None:
        self.log.append(f"ack {self.name}")
        if self.error is not None:
            raise self.error


class _Writes:
    """``execute``: statement names -> futures; ``errors`` names the failing tries."""

    def __init__(self, log: list[str], errors: dict[str, list[Exception]] | None = None) -> None:
        self.log = log
        self.errors = errors or {}
        self.in_flight: list[int] = []
        self.sender: WriteSender | None = None

    def __call__(self, statement: str) -> _Future:
        assert self.sender is not None
        self.in_flight.append(len(self.sender.pending) + 1)
        tries = self.errors.get(statement, [])
        return _Future(self.log, statement, tries.pop(0) if tries else None)


def _sender(writes: _Writes, max_in_flight: int = 2, retries: int = 0) -> WriteSender:
    sender = WriteSender(None, max_in_flight, retries, UnitCounts(), execute=writes)
    writes.sender = sender
    return sender


def _send_unit(sender: WriteSender, log: list[str], name: str, writes: int) -> UnitCounts:
    counts = sender.counts = UnitCounts()
    for i in range(writes):
        sender.make_room()
        sender.send(f"{name}{i}", False)
    sender.close_unit(lambda: log.append(f"done {name}"))
    return counts


def test_a_unit_is_finished_after_its_last_write_while_the_next_unit_sends() -> None:
    log: list[str] = []
    writes = _Writes(log)
    sender = _sender(writes)
    _send_unit(sender, log, "a", 3)
    assert log == ["ack a0"]  # a1 and a2 still in flight: unit a is not finished
    _send_unit(sender, log, "b", 2)
    assert log == ["ack a0", "ack a1", "ack a2", "done a"]
    sender.drain()
    assert log == ["ack a0", "ack a1", "ack a2", "done a", "ack b0", "ack b1", "done b"]
    assert max(writes.in_flight) == 2  # the bound holds across units


def test_a_unit_with_nothing_in_flight_is_finished_at_once() -> None:
    log: list[str] = []
    sender = _sender(_Writes(log))
    _send_unit(sender, log, "a", 0)
    assert log == ["done a"]


def test_a_failed_write_finishes_no_unit_closed_after_it() -> None:
    log: list[str] = []
    sender = _sender(_Writes(log, {"a1": [ValueError("refused")]}))
    _send_unit(sender, log, "a", 2)
    _send_unit(sender, log, "b", 1)
    with pytest.raises(RestoreWriteError, match="write failed after 0 retries: ValueError"):
        sender.drain()
    sender.abandon()
    assert log == ["ack a0", "ack a1", "ack b0"]


def test_abandon_finishes_the_units_closed_before_a_failure() -> None:
    log: list[str] = []
    sender = _sender(_Writes(log), max_in_flight=4)
    _send_unit(sender, log, "a", 2)
    sender.counts = UnitCounts()
    sender.send("b0", False)  # then unit b fails (bad input, say) before it is closed
    sender.abandon()
    assert log == ["ack a0", "ack a1", "done a", "ack b0"]
    assert not sender.pending


def test_retries_and_warnings_count_to_their_own_unit(monkeypatch: Any) -> None:
    monkeypatch.setattr("transforms.write_sender.backoff_seconds", lambda attempt: 0)
    log: list[str] = []
    writes = _Writes(log, {"a1": [OperationTimedOut("slow"), OperationTimedOut("slow")]})
    sender = _sender(writes, max_in_flight=4, retries=2)
    first = _send_unit(sender, log, "a", 2)
    second = _send_unit(sender, log, "b", 1)
    sender.pending[-1][2].warnings = ["batch too large"]
    sender.drain()
    assert (first.retries, first.server_warnings) == (2, 0)
    assert (second.retries, second.server_warnings) == (0, 1)
    assert log == ["ack a0", "ack a1", "ack a1", "ack a1", "done a", "ack b0", "done b"]
