"""SDK worker process of local multi-process runs: Beam's ``sdk_worker_main``, quiet and
without pyarrow.

Beam's worker imports its optional GCP clients, whose import logs a warning through the
root logger; with no handler on the root yet, that call installs a stderr handler, and
every INFO line of the worker's start-up then lands on the user's console (about 15
lines per worker). A NullHandler on the root before Beam is imported prevents that;
the worker still forwards its log records to the runner, which shows ours
(``pipeline.local_runner.WorkerLogFilter``).

Beam is imported without pyarrow, and Arrow gets the system allocator (both explained in
``pipeline/arrow_memory.py``): a worker that never writes Parquet never loads pyarrow.

The C heap has one arena (:func:`one_malloc_arena`): glibc otherwise gives threads that
allocate at the same time arenas of their own (the SDK's gRPC and bundle threads, the
driver's event loop, Arrow's writer), each keeping its free pages. Measured on a Parquet
export of 1,000,000 narrow rows: 2-3 MB less per worker at its peak, 5 MB with
``transforms.elements.trim_heap`` after each piece; the bench's CPU per row did not grow
(the threads hold the GIL for most of their work anyway).
"""

from __future__ import annotations

import ctypes
import logging
import sys

from pipeline.arrow_memory import import_without_pyarrow, use_system_allocator

# mallopt's parameter number for the arena count (glibc's malloc.h).
_M_ARENA_MAX = -8


def one_malloc_arena() -> None:
    """Make every thread of this process allocate from glibc's main arena; call before
    threads start. Does nothing on a C library without ``mallopt`` (musl, macOS)."""
    try:
        ctypes.CDLL(None).mallopt(_M_ARENA_MAX, 1)
    except (OSError, AttributeError, TypeError):  # no such C library or function
        pass


one_malloc_arena()
logging.getLogger().addHandler(logging.NullHandler())
use_system_allocator()  # before anything imports pyarrow
sdk_worker_main = import_without_pyarrow("apache_beam.runners.worker.sdk_worker_main")

if __name__ == "__main__":
    sdk_worker_main.main(sys.argv)
