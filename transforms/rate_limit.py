"""``--max-rows-per-second`` as the workers apply it: one limit for the whole job.

When every worker runs on the launcher's machine (Beam's local runners in any running
mode, a Dask cluster on this machine), all their processes take rows from one
:class:`SharedBucket`, a file under the system's temporary directory: the job's total
rate holds however the work units fall between the processes. When workers may run on
other machines, each worker process holds its even share instead
(:class:`RateLimiter`): the total then never exceeds the limit, but runs below it while
some workers have no work left.

Both pace rows the same way: rows are booked on a schedule at the limit's rate, and a
caller waits until its rows' place on the schedule comes. A reader that fell behind the
schedule (a slow page, a unit's commit, a process still starting) may catch up on at most
``CATCH_UP_SECONDS`` of it; anything older is forgiven, not saved up. Either way no
booking starts before the schedule's start plus the rows booked before it at the rate, so
from the job's first booking to any moment the rows booked are at most the rate times
the time passed plus one page; a reader reads its page before booking it, so rows read
exceed that by at most one page per reader.

The job's :class:`~transforms.cassandra_session.RateLimit` travels with the connection
settings; this module turns it into a limiter in each worker process.
"""

from __future__ import annotations

import contextlib
import fcntl
import math
import os
import re
import struct
import tempfile
import threading
import time
import uuid
from collections.abc import Callable

from transforms.cassandra_session import RateLimit

__all__ = [
    "book",
    "BOOKING_SECONDS",
    "BucketClaim",
    "CATCH_UP_SECONDS",
    "claim_bucket",
    "leave_limiter",
    "limiter_for",
    "new_bucket_path",
    "Limiter",
    "RateLimiter",
    "remove_bucket",
    "SharedBucket",
    "STALE_SECONDS",
    "sweep_stale_buckets",
]

# How far behind the schedule a reader may catch up (faster than the rate, until it is back
# on it): without it, every pause between pages (a unit's commit, a slow page) would be
# lost, and a single reader ran 7% under the limit in tests/test_reliability.py.
CATCH_UP_SECONDS = 1.0

# The least a process books on the shared schedule at a time, in seconds of the rate (rows
# it has booked and not used by the end of the job are at most this much).
BOOKING_SECONDS = 1 / 64

# The shared bucket's file holds one number: when the next rows may be read, in seconds
# of the machine's monotonic clock (one clock for every process of the machine).
_NEXT = struct.Struct("<d")


def book(
    next_at: float, now: float, rows: int, rate: float, catch_up: float = CATCH_UP_SECONDS
) -> tuple[float, float]:
    """Book ``rows`` at ``rate`` rows/s on a schedule whose next free moment is ``next_at``:
    (the schedule's new next free moment, seconds to wait from ``now``). Rows start when
    the schedule is free; one that has been free since earlier than ``catch_up`` seconds
    ago counts from then (what is older is forgiven, not saved up)."""
    start = max(now - catch_up, next_at)
    return start + rows / rate, max(0.0, start - now)


class RateLimiter:
    """A schedule shared by the threads of one worker process, for workers that share no
    bucket.

    Its rate is ``per_reader`` rows per second times the readers (DoFn instances) of this
    process that hold it: a limit split over N workers then adds up to the same total
    whether the workers are N processes or N threads of one process."""

    def __init__(self, per_reader: float) -> None:
        self.per_reader = per_reader
        self.readers = 0
        self._lock = threading.Lock()
        self._next: float | None = None  # no schedule before the first booking

    @property
    def rate(self) -> float:
        """Rows per second for the whole process."""
        return self.per_reader * max(1, self.readers)

    def acquire(self, rows: int) -> None:
        """Wait until ``rows`` more rows keep the process within its rate."""
        if self.per_reader <= 0 or rows <= 0:
            return
        with self._lock:
            now = time.monotonic()
            next_at = now if self._next is None else self._next
            self._next, wait = book(next_at, now, rows, self.rate)
        if wait > 0:
            time.sleep(wait)


class SharedBucket:
    """The schedule of every process of one job on one machine, kept in a file.

    A booking opens the file, takes an exclusive ``flock`` (which also excludes other
    threads of the same process: each booking opens the file anew), books its rows and
    releases the lock before it waits. Rows are booked a chunk at a time, at least
    ``BOOKING_SECONDS`` of the rate (a page, for a reader), and handed out to the process's
    callers from there, so small acquires (the restore's partitions) take the lock a few
    dozen times a second at most. The file is created by the first booking and removed by
    the launcher (:meth:`BucketClaim.release`) when the job ends; a launcher killed before
    that leaves it to the next launch's :func:`sweep_stale_buckets`."""

    def __init__(
        self,
        path: str,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.path = path
        self.rate = rate
        self._clock = clock
        self._sleep = sleep
        self._lock = threading.Lock()
        self._chunk = math.ceil(rate * BOOKING_SECONDS)
        self._credit = 0  # rows booked by this process and not handed out yet
        self._start = 0.0  # when the rows of its latest booking may be read

    def acquire(self, rows: int) -> None:
        """Wait until ``rows`` more rows keep the whole job within its rate."""
        if self.rate <= 0 or rows <= 0:
            return
        with self._lock:
            if self._credit < rows:
                booked = max(rows - self._credit, self._chunk)
                self._start = self._book(booked)
                self._credit += booked
            self._credit -= rows
            start = self._start
        wait = start - self._clock()
        if wait > 0:
            self._sleep(wait)

    def _book(self, rows: int) -> float:
        """Book ``rows`` on the file's schedule; when they may be read."""
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            stored = os.pread(fd, _NEXT.size, 0)
            now = self._clock()
            next_at = _NEXT.unpack(stored)[0] if len(stored) == _NEXT.size else now
            next_at, wait = book(next_at, now, rows, self.rate)
            os.pwrite(fd, _NEXT.pack(next_at), 0)
        finally:
            os.close(fd)  # releases the lock
        return now + wait


Limiter = RateLimiter | SharedBucket

_LOCK = threading.Lock()
_LIMITERS: dict[float, RateLimiter] = {}
_BUCKETS: dict[str, SharedBucket] = {}


def limiter_for(limit: RateLimit) -> Limiter:
    """This process's limiter for ``limit``: the job's shared bucket, or the process's own
    schedule joined by one more reader of the worker's share.

    Each call must be matched by :func:`leave_limiter` (in the DoFn's teardown)."""
    with _LOCK:
        if limit.bucket_path is not None:
            return _BUCKETS.setdefault(
                limit.bucket_path, SharedBucket(limit.bucket_path, limit.rows_per_second)
            )
        per_reader = limit.per_worker()
        limiter = _LIMITERS.setdefault(per_reader, RateLimiter(per_reader))
        limiter.readers += 1
        return limiter


def leave_limiter(limiter: Limiter) -> None:
    """One reader of ``limiter`` is gone: a process's own schedule drops by its share (the
    shared bucket's rate is the job's and stays)."""
    if isinstance(limiter, RateLimiter):
        with _LOCK:
            limiter.readers = max(0, limiter.readers - 1)


_PREFIX = "cassandra-export-rate-"
# A bucket's name, and its owner's: the prefix and a UUID's 32 hex digits (new_bucket_path).
_NAME = re.compile(_PREFIX + r"([0-9a-f]{32})(\.owner)?")
# How long a bucket and its owner file must have been left unmodified before a launch may
# remove them. A launcher holds a lock on its owner file for its whole life, so a live
# launcher's files are never removed; the age only spares what no lock shows alive: a
# launcher in the instant between creating its owner file and locking it, workers that go
# on booking after their launcher was killed (a Dask cluster's), and buckets of launchers
# that made no owner file. Each booking writes the bucket, so a bucket in use is younger
# than this; one whose users stalled longer is made again by their next booking, with a
# fresh schedule.
STALE_SECONDS = 600.0


def new_bucket_path() -> str:
    """A path for one job's shared bucket under the system's temporary directory, new for
    each launch: no earlier job's schedule is ever read."""
    return os.path.join(tempfile.gettempdir(), f"{_PREFIX}{uuid.uuid4().hex}")


def remove_bucket(limit: RateLimit) -> None:
    """Remove the job's shared bucket file, if it has one and a worker created it."""
    if limit.bucket_path is not None:
        with contextlib.suppress(FileNotFoundError):
            os.remove(limit.bucket_path)


class BucketClaim:
    """A launcher's hold on its job's bucket: an ``flock`` on ``<bucket>.owner``, kept until
    :meth:`release` (or the process's end, however it ends), which tells a later launch's
    :func:`sweep_stale_buckets` that the bucket is in use."""

    def __init__(self, limit: RateLimit) -> None:
        self.limit = limit
        self._fd: int | None = None
        if limit.bucket_path is not None:
            fd = os.open(limit.bucket_path + ".owner", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            self._fd = fd

    def release(self) -> None:
        """Remove the bucket and the owner file, then let go of the lock."""
        remove_bucket(self.limit)
        if self._fd is not None and self.limit.bucket_path is not None:
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.limit.bucket_path + ".owner")
            os.close(self._fd)
            self._fd = None


def claim_bucket(limit: RateLimit) -> BucketClaim:
    """At a launch: remove the buckets earlier launchers left behind (a launcher killed with
    SIGKILL cannot remove its own), then hold this job's (see :class:`BucketClaim`)."""
    sweep_stale_buckets()
    return BucketClaim(limit)


def sweep_stale_buckets(
    directory: str | None = None, now: float | None = None, min_age: float = STALE_SECONDS
) -> list[str]:
    """Remove the buckets (and owner files) under ``directory`` (the system's temporary
    directory) whose launcher is gone: its owner file is not locked, or there is none, and
    neither file was modified in the last ``min_age`` seconds. Returns the removed paths."""
    directory = directory or tempfile.gettempdir()
    now = time.time() if now is None else now
    found: dict[str, list[str]] = {}
    try:
        names = os.listdir(directory)
    except OSError:
        return []
    for name in names:
        match = _NAME.fullmatch(name)
        if match:
            found.setdefault(match.group(1), []).append(os.path.join(directory, name))
    removed: list[str] = []
    for paths in found.values():
        try:
            if any(now - os.stat(path).st_mtime < min_age for path in paths):
                continue
        except FileNotFoundError:  # released meanwhile
            continue
        owner = next((path for path in paths if path.endswith(".owner")), None)
        fd = None
        try:
            if owner is not None:
                fd = os.open(owner, os.O_RDWR)
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            # the owner's file (last) under its lock: no launcher holds it any more
            for path in sorted(paths, key=lambda p: p == owner):
                with contextlib.suppress(FileNotFoundError):
                    os.remove(path)
                    removed.append(path)
        except OSError:  # a live launcher's (locked), just released, or another user's
            continue
        finally:
            if fd is not None:
                os.close(fd)
    return removed
