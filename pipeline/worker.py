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
"""

from __future__ import annotations

import logging
import sys

from pipeline.arrow_memory import import_without_pyarrow, use_system_allocator

logging.getLogger().addHandler(logging.NullHandler())
use_system_allocator()  # before anything imports pyarrow
sdk_worker_main = import_without_pyarrow("apache_beam.runners.worker.sdk_worker_main")

if __name__ == "__main__":
    sdk_worker_main.main(sys.argv)
