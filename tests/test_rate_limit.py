"""The rate limit's bookkeeping (transforms/rate_limit.py), without Cassandra.

* ``book``: rows start when the schedule is free; a reader behind the schedule catches
  up on at most one second of it (older time is forgiven, not saved up).
* ``SharedBucket``: two buckets on one file (two processes of a job) book on one
  schedule, with a fake clock: every wait is exact. Real processes and threads booking
  at once never lose a booking (the file lock), counted exactly.
* ``limiter_for``: the shared bucket runs at the job's whole rate; without one each
  process holds its readers' even shares.
* The launcher's choice: a shared bucket whenever all workers run on its machine as its
  processes; the even split for every other layout.

The rate measured end to end against a real node is in tests/test_reliability.py.
"""

from __future__ import annotations

import fcntl
import os
import signal
import struct
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from pipeline.config import Settings
from pipeline.validation import rate_limit
from tests.helpers import REPO
from transforms import rate_limit as rate_limit_module
from transforms.cassandra_session import RateLimit
from transforms.rate_limit import (
    BOOKING_SECONDS,
    CATCH_UP_SECONDS,
    STALE_SECONDS,
    BucketClaim,
    RateLimiter,
    SharedBucket,
    book,
    leave_limiter,
    limiter_for,
    remove_bucket,
    sweep_stale_buckets,
)


class FakeClock:
    def __init__(self, now: float) -> None:
        self.now = now
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)


def stored(path: Path) -> float:
    return struct.unpack("<d", path.read_bytes())[0]


def test_book_starts_when_the_schedule_is_free_and_catches_up_one_second_at_most() -> None:
    assert CATCH_UP_SECONDS == 1.0
    assert book(next_at=10.0, now=10.0, rows=250, rate=1000.0) == (10.25, 0.0)
    assert book(next_at=10.5, now=10.0, rows=250, rate=1000.0) == (10.75, 0.5)
    # 0.5 s behind: the rows count from where the schedule was, no wait.
    assert book(next_at=9.5, now=10.0, rows=250, rate=1000.0) == (9.75, 0.0)
    # Free since 2.0: only the last second counts, the 7 s before are forgiven.
    assert book(next_at=2.0, now=10.0, rows=500, rate=1000.0) == (9.5, 0.0)
    assert book(next_at=2.0, now=10.0, rows=500, rate=1000.0, catch_up=0.0) == (10.5, 0.0)


def test_two_buckets_on_one_file_share_one_schedule(tmp_path: Path) -> None:
    """Two processes' buckets: each booking waits for every earlier one, whoever made it."""
    path = tmp_path / "bucket"
    clock = FakeClock(100.0)
    first = SharedBucket(str(path), 1000.0, clock, clock.sleep)
    second = SharedBucket(str(path), 1000.0, clock, clock.sleep)
    first.acquire(250)  # the schedule starts now: no wait
    second.acquire(250)
    first.acquire(500)
    second.acquire(0)  # nothing to book
    assert clock.sleeps == [0.25, 0.5]
    assert stored(path) == 101.0
    clock.now = 200.0  # idle for 99 s: one second of it is caught up, no more
    second.acquire(250)
    first.acquire(750)
    assert clock.sleeps == [0.25, 0.5]
    assert stored(path) == 200.0
    second.acquire(250)
    first.acquire(250)
    assert clock.sleeps == [0.25, 0.5, 0.25]
    assert stored(path) == 200.5


def test_small_acquires_book_a_chunk_at_a_time(tmp_path: Path) -> None:
    """At 1,024 rows/s a booking is at least 16 rows (1/64 s): 33 acquires of one row book
    three chunks on the file; each row waits for its chunk's place on the schedule."""
    assert BOOKING_SECONDS == 1 / 64
    path = tmp_path / "bucket"
    clock = FakeClock(100.0)  # stopped: every wait is from 100.0
    bucket = SharedBucket(str(path), 1024.0, clock, clock.sleep)
    for _ in range(33):
        bucket.acquire(1)
    assert clock.sleeps == [1 / 64] * 16 + [2 / 64]
    assert stored(path) == 100.0 + 3 / 64
    bucket.acquire(40)  # 15 rows left of the last chunk: 25 more booked, no less
    assert clock.sleeps[-1] == 3 / 64
    assert stored(path) == 100.0 + 3 / 64 + 25 / 1024


def test_unlimited_bucket_creates_no_file(tmp_path: Path) -> None:
    path = tmp_path / "bucket"
    SharedBucket(str(path), 0.0).acquire(1000)
    assert not path.exists()


def book_many(path: str, bookings: int) -> None:
    """Book one row per second ``bookings`` times on a clock stopped at 0: the file then
    holds exactly the rows booked, unless a booking was lost."""
    bucket = SharedBucket(path, 1.0, clock=lambda: 0.0, sleep=lambda _s: None)
    for _ in range(bookings):
        bucket.acquire(1)


def test_processes_and_threads_never_lose_a_booking(tmp_path: Path) -> None:
    """Two processes and two threads of this one book 1,500 rows each at the same time."""
    path = str(tmp_path / "bucket")
    code = "import sys; from tests.test_rate_limit import book_many; book_many(sys.argv[1], 1500)"
    processes = [
        subprocess.Popen([sys.executable, "-c", code, path], cwd=str(REPO)) for _ in range(2)
    ]
    threads = [threading.Thread(target=book_many, args=(path, 1500)) for _ in range(2)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert [p.wait(timeout=120) for p in processes] == [0, 0]
    assert stored(Path(path)) == 6000.0


def test_limiter_for_a_shared_bucket_runs_at_the_jobs_rate(tmp_path: Path) -> None:
    limit = RateLimit(3000.0, workers=2, bucket_path=str(tmp_path / "bucket"))
    first = limiter_for(limit)
    second = limiter_for(limit)
    assert first is second
    assert isinstance(first, SharedBucket)
    assert first.rate == 3000.0
    leave_limiter(first)
    leave_limiter(second)
    assert first.rate == 3000.0
    first.acquire(1)
    assert os.path.exists(limit.bucket_path or "")
    remove_bucket(limit)
    assert not os.path.exists(limit.bucket_path or "")
    remove_bucket(limit)  # already gone: nothing to do


def test_limiter_without_a_bucket_adds_up_the_readers_of_one_process() -> None:
    """Without a shared bucket, two worker threads of one process share its limiter at
    twice the per-worker share (the bug: one limiter at the per-worker rate, halving the
    total)."""
    limit = RateLimit(2468.0, workers=2)
    first = limiter_for(limit)
    second = limiter_for(limit)
    try:
        assert first is second
        assert isinstance(first, RateLimiter)
        assert first.rate == 2468.0
    finally:
        leave_limiter(first)
    assert isinstance(second, RateLimiter)
    assert second.rate == 1234.0  # one reader left
    leave_limiter(second)


def _settings(*beam_args: str, rate: int = 3000) -> Settings:
    return Settings({"max_rows_per_second": rate}, set(), list(beam_args))


@pytest.mark.parametrize(
    ("beam_args", "workers"),
    [
        ((), 1),
        (("--direct_running_mode=multi_threading", "--direct_num_workers=2"), 2),
        (("--direct_running_mode=multi_processing", "--direct_num_workers=2"), 2),
        (("--runner=PrismRunner", "--parallelism=3"), 3),
        (("--runner=dask", "--num_workers=2"), 2),
        (("--runner=PrismRunner", "--environment_type=PROCESS"), 1),
    ],
)
def test_workers_on_the_launchers_machine_share_one_bucket(
    beam_args: tuple[str, ...], workers: int
) -> None:
    limit = rate_limit(_settings(*beam_args))
    assert (limit.rows_per_second, limit.workers) == (3000.0, workers)
    assert limit.bucket_path is not None
    assert os.path.basename(limit.bucket_path).startswith("cassandra-export-rate-")
    assert rate_limit(_settings(*beam_args)).bucket_path != limit.bucket_path  # one per launch


@pytest.mark.parametrize(
    ("beam_args", "workers"),
    [
        (("--runner=DataflowRunner", "--max_num_workers=4"), 4),
        (("--runner=FlinkRunner", "--parallelism=2"), 2),
        (("--runner=dask", "--dask_client_address=tcp://10.0.0.5:8786", "--num_workers=3"), 3),
        # A scheduler at a loopback address may be a tunnel to workers elsewhere.
        (("--runner=dask", "--dask_client_address=tcp://127.0.0.1:8786"), 1),
        (("--direct_num_workers=2", "--environment_type=DOCKER"), 2),
    ],
)
def test_workers_elsewhere_split_the_limit_evenly(beam_args: tuple[str, ...], workers: int) -> None:
    limit = rate_limit(_settings(*beam_args))
    assert limit == RateLimit(3000.0, workers, None)
    assert limit.per_worker() == 3000.0 / workers


def test_no_limit_no_bucket() -> None:
    assert rate_limit(_settings("--direct_num_workers=2", rate=0)) == RateLimit()


def test_a_process_schedule_starts_at_its_first_booking(monkeypatch: pytest.MonkeyPatch) -> None:
    """Created long before its first page, the process's schedule still gives no catch-up
    at the start: the second booking waits for the first."""
    clock = FakeClock(50.0)
    monkeypatch.setattr(rate_limit_module.time, "monotonic", clock)
    monkeypatch.setattr(rate_limit_module.time, "sleep", clock.sleep)
    limiter = RateLimiter(1000.0)
    clock.now = 80.0
    limiter.acquire(500)
    limiter.acquire(500)
    assert clock.sleeps == [0.5]


NOW = 1_900_000_000.0
OLD = NOW - STALE_SECONDS - 1


def _bucket(directory: Path, hex_digits: str, mtime: float, owner: bool = True) -> list[Path]:
    """A bucket file (and its owner file) as a launch leaves them, modified at ``mtime``."""
    paths = [directory / f"cassandra-export-rate-{hex_digits}"]
    if owner:
        paths.append(directory / f"cassandra-export-rate-{hex_digits}.owner")
    for path in paths:
        path.write_bytes(b"")
        os.utime(path, (mtime, mtime))
    return paths


def test_sweep_removes_stale_buckets_and_keeps_live_ones(tmp_path: Path) -> None:
    stale = _bucket(tmp_path, "a" * 32, OLD)
    ownerless = _bucket(tmp_path, "b" * 32, OLD, owner=False)
    live = _bucket(tmp_path, "c" * 32, OLD)
    young = _bucket(tmp_path, "d" * 32, NOW - 10)  # its launcher may not have locked it yet
    booked = _bucket(tmp_path, "e" * 32, OLD)
    os.utime(booked[0], (NOW - 10, NOW - 10))  # workers still book (their launcher was killed)
    other = tmp_path / "cassandra-export-rate-notours"
    other.write_bytes(b"")
    os.utime(other, (OLD, OLD))
    fd = os.open(live[1], os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)  # as the live launcher holds it
        removed = sweep_stale_buckets(str(tmp_path), now=NOW)
    finally:
        os.close(fd)
    assert sorted(removed) == sorted(str(p) for p in stale + ownerless)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        p.name for p in live + young + booked + [other]
    )
    # the live launcher has gone (its lock with it): its files go at the next sweep
    assert sorted(sweep_stale_buckets(str(tmp_path), now=NOW)) == sorted(str(p) for p in live)


def test_a_claim_keeps_its_bucket_until_released_and_a_killed_launcher_leaves_it_stale(
    tmp_path: Path,
) -> None:
    limit = RateLimit(
        100.0, workers=1, bucket_path=str(tmp_path / f"cassandra-export-rate-{'f' * 32}")
    )
    claim = BucketClaim(limit)
    SharedBucket(limit.bucket_path or "", 100.0).acquire(1)  # a worker makes the bucket
    later = os.path.getmtime(limit.bucket_path or "") + STALE_SECONDS + 1
    assert sweep_stale_buckets(str(tmp_path), now=later) == []
    assert len(list(tmp_path.iterdir())) == 2
    claim.release()
    assert list(tmp_path.iterdir()) == []
    # a launcher's process killed with SIGKILL while it held its claim
    path = str(tmp_path / f"cassandra-export-rate-{'0' * 32}")
    code = (
        "import sys, time\n"
        "from transforms.cassandra_session import RateLimit\n"
        "from transforms.rate_limit import BucketClaim, SharedBucket\n"
        "BucketClaim(RateLimit(100.0, workers=1, bucket_path=sys.argv[1]))\n"
        "SharedBucket(sys.argv[1], 100.0).acquire(1)\n"
        "print('claimed', flush=True)\n"
        "time.sleep(60)\n"
    )
    launcher = subprocess.Popen(
        [sys.executable, "-c", code, path], cwd=str(REPO), stdout=subprocess.PIPE, text=True
    )
    try:
        assert launcher.stdout is not None and launcher.stdout.readline() == "claimed\n"
        later = os.path.getmtime(path) + STALE_SECONDS + 1
        assert sweep_stale_buckets(str(tmp_path), now=later) == []  # alive: kept
        launcher.send_signal(signal.SIGKILL)
        launcher.wait(30)
    finally:
        if launcher.poll() is None:
            launcher.kill()
            launcher.wait(30)
        if launcher.stdout is not None:
            launcher.stdout.close()
    assert sorted(sweep_stale_buckets(str(tmp_path), now=later)) == [path, path + ".owner"]
    assert list(tmp_path.iterdir()) == []


def test_claim_bucket_sweeps_the_temporary_directory_at_launch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(rate_limit_module.tempfile, "tempdir", str(tmp_path))
    now = os.path.getmtime(tmp_path)
    stale = _bucket(tmp_path, "1" * 32, now - STALE_SECONDS - 60)
    claim = rate_limit_module.claim_bucket(RateLimit())  # no limit: no bucket of its own
    claim.release()
    assert all(not p.exists() for p in stale)
