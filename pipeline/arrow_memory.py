"""Arrow in the exporter's processes: pyarrow only where Parquet is written, and then with
the C library's allocator rather than mimalloc.

Beam imports pyarrow when it can (``apache_beam.io.parquetio``, the Arrow batch converters
of ``apache_beam.typehints``), for features no pipeline of this project uses; that import
costs each process about 45 MB of resident memory (a worker measured 149 MB with it, 104 MB
without, at start) and 0.3 s. The launcher (``pipeline.cli``, ``pipeline.restore_cli``)
and the local SDK workers (``pipeline.worker``) therefore import Beam while pyarrow cannot
be found (:func:`import_without_pyarrow`; pymongo, for Beam's MongoDB IO, likewise);
afterwards it can again, so the Parquet format (``transforms/formats/parquet_arrow.py``)
and the Avro string encoder import it in the process that writes or reads such a file,
and no other.

Beam's own ``apache_beam.io`` also imports its BigQuery IO when it can (in a ``try``
that skips BigQuery, Pub/Sub and the GCS client on an ImportError), and with it requests,
urllib3 and about 140 modules: about 6 MB of resident memory in every process. No
pipeline here uses them, so that module is reported missing as well while Beam is first
imported (``SKIPPED_BEAM_MODULES``); Beam's filesystems register GCS on their own, and a
later import of the module (a runner that needs it) works as usual.

pyarrow allocates from mimalloc by default, which keeps arenas of about 20 MB per
process once a Parquet row group has been written, although Arrow itself held at most
3 MB at a time (measured on the narrow bench table's rows: +22 MB of RSS after ten
10,000-row pieces with mimalloc, +7 MB with the system allocator, same CPU). The Parquet
writer's pages and encoders always take Arrow's process-wide default pool, which pyarrow
reads once, from ``ARROW_DEFAULT_MEMORY_POOL``, when it is imported: so the variable is
set here, before anything imports pyarrow, in the launcher (whose environment the
workers inherit) and in each worker. A value the user set is kept.
"""

from __future__ import annotations

import importlib
import importlib.abc
import os
import sys
from types import ModuleType
from typing import Any

__all__ = [
    "HIDDEN_FROM_BEAM",
    "SKIPPED_BEAM_MODULES",
    "import_without_pyarrow",
    "use_system_allocator",
]

ENV_VAR = "ARROW_DEFAULT_MEMORY_POOL"


def use_system_allocator() -> None:
    """Make the system allocator Arrow's default in this process and its children; call
    before pyarrow is imported (it has no effect after)."""
    os.environ.setdefault(ENV_VAR, "system")


# What Beam imports when it can, for features no pipeline of this project uses: pyarrow
# (about 50 MB per process), and pymongo with its bson for ``apache_beam.io.mongodbio``
# (about 7 MB).
HIDDEN_FROM_BEAM = ("pyarrow", "pymongo", "bson")

# Beam modules that ``import apache_beam`` loads only when it can, and that no pipeline here
# uses: the BigQuery IO (with requests and urllib3, about 6 MB per process).
SKIPPED_BEAM_MODULES = frozenset({"apache_beam.io.gcp.bigquery"})


class _WithoutPyarrow(importlib.abc.MetaPathFinder):
    """A finder that reports the ``HIDDEN_FROM_BEAM`` packages and the
    ``SKIPPED_BEAM_MODULES`` missing, for Beam's optional imports of them."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> None:
        if name.partition(".")[0] in HIDDEN_FROM_BEAM or name in SKIPPED_BEAM_MODULES:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None


def import_without_pyarrow(module: str) -> ModuleType:
    """``module``, imported while pyarrow (and the other ``HIDDEN_FROM_BEAM`` packages and
    the ``SKIPPED_BEAM_MODULES``) cannot be found: Beam's optional imports of them then fail quietly. They can be
    imported again afterwards. Has no effect on what was imported before, so call it
    before anything imports Beam."""
    finder = _WithoutPyarrow()
    sys.meta_path.insert(0, finder)
    try:
        return importlib.import_module(module)
    finally:
        sys.meta_path.remove(finder)
