"""Arrow's allocator in the exporter's processes: the C library's, not mimalloc.

pyarrow allocates from mimalloc by default, which keeps arenas of about 20 MB per
process once a Parquet row group has been written, although Arrow itself held at most
3 MB at a time (measured on the narrow bench table's rows: +22 MB of RSS after ten
10,000-row pieces with mimalloc, +7 MB with the system allocator, same CPU). A local run
has three such processes (the launcher and two workers). The Parquet writer's pages and
encoders always take Arrow's process-wide default pool, which pyarrow reads once, from
``ARROW_DEFAULT_MEMORY_POOL``, when it is imported: so the variable is set here, before
anything imports Beam (which imports pyarrow). A value the user set is kept.
"""

from __future__ import annotations

import os

__all__ = ["use_system_allocator"]

ENV_VAR = "ARROW_DEFAULT_MEMORY_POOL"


def use_system_allocator() -> None:
    """Make the system allocator Arrow's default in this process and its children; call
    before pyarrow is imported (it has no effect after)."""
    os.environ.setdefault(ENV_VAR, "system")
