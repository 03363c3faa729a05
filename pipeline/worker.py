"""SDK worker process of local multi-process runs: Beam's ``sdk_worker_main``, quiet.

Beam's worker imports its optional GCP clients, whose import logs a warning through the
root logger; with no handler on the root yet, that call installs a stderr handler, and
every INFO line of the worker's start-up then lands on the user's console (about 15
lines per worker). A NullHandler on the root before Beam is imported prevents that;
the worker still forwards its log records to the runner, which shows ours
(``pipeline.local_runner.WorkerLogFilter``).
"""

from __future__ import annotations

import logging
import sys

from pipeline.arrow_memory import use_system_allocator

logging.getLogger().addHandler(logging.NullHandler())
use_system_allocator()  # before Beam imports pyarrow

from apache_beam.runners.worker import sdk_worker_main  # noqa: E402

if __name__ == "__main__":
    sdk_worker_main.main(sys.argv)
