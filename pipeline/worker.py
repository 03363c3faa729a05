"""SDK worker process of local multi-process runs: Beam's ``sdk_worker_main``, quiet and
without pyarrow.

Beam's worker imports its optional GCP clients, whose import logs a warning through the
root logger; with no handler on the root yet, that call installs a stderr handler, and
every INFO line of the worker's start-up then lands on the user's console (about 15
lines per worker). A NullHandler on the root before Beam is imported prevents that;
the worker still forwards its log records to the runner, which shows ours
(``pipeline.local_runner.WorkerLogFilter``).

Beam imports pyarrow when it can (``apache_beam.io.parquetio``, the Arrow batch
converters of ``apache_beam.typehints``), for features no pipeline of this project uses;
that import costs each worker about 45 MB of resident memory (measured: 149 MB with it,
104 MB without, at start) and 0.3 s. Beam is therefore imported while pyarrow cannot be
found; afterwards it can again, so the Parquet format imports it when a worker reads or
writes Parquet.
"""

from __future__ import annotations

import importlib.abc
import logging
import sys
from typing import Any

from pipeline.arrow_memory import use_system_allocator

logging.getLogger().addHandler(logging.NullHandler())
use_system_allocator()  # before Beam imports pyarrow


class _WithoutPyarrow(importlib.abc.MetaPathFinder):
    """A finder that reports pyarrow missing, for Beam's optional ``import pyarrow``."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name == "pyarrow" or name.startswith("pyarrow."):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


_finder = _WithoutPyarrow()
sys.meta_path.insert(0, _finder)
try:
    from apache_beam.runners.worker import sdk_worker_main
finally:
    sys.meta_path.remove(_finder)

if __name__ == "__main__":
    sdk_worker_main.main(sys.argv)
