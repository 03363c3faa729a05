"""Pure restore logic: the statements of one partition in unlogged batches, bounded by a
number of statements (``--batch-statements``) and by their estimated bytes
(``MAX_BATCH_BYTES``), without ever splitting what must be applied together: a row (when it
fits the bytes), and always a row's list appends."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from transforms.restore_plan import Statement
from transforms.restore_rows import RowWrites

__all__ = ["MAX_BATCH_BYTES", "pack_batches", "statement_bytes", "value_bytes"]

# The most estimated data bytes in one batch of one partition. Cassandra refuses a request
# over ``native_transport_max_message_size`` (16 MiB by default) and a mutation over
# ``max_mutation_size`` (half of ``commitlog_segment_size``: 16 MiB by default, less on a node
# with smaller segments), and a single-partition batch is one request and one mutation. 1 MiB
# is a sixteenth of both, which leaves room for what the estimate leaves out and for nodes
# configured with smaller segments; it keeps ``--max-in-flight`` (32) such requests near the
# node's per-client budget of request bytes in flight (``native_transport_max_request_data_
# in_flight_per_ip``, a fortieth of the heap: 25.6 MiB on a test node's 1 GiB); and at 1 MiB
# a request's own cost is negligible beside its data's. Rows of ordinary size never reach it (128 rows of 8 KiB).
MAX_BATCH_BYTES = 1 << 20
# What a statement adds to its values in a batch: its prepared id and counts (the 4-byte
# length of each value is counted with the value).
_STATEMENT_OVERHEAD = 24
_VALUE_OVERHEAD = 4
_SCALAR_BYTES = 16  # ints, floats, UUIDs, dates...: at most 16 bytes encoded (varints aside)


def value_bytes(value: Any) -> int:
    """An estimate of a bound value's encoded size (exact for blobs and texts, which are what
    makes a row large; collections by their elements)."""
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value) if value.isascii() else len(value.encode("utf-8"))
    if isinstance(value, bytes | bytearray | memoryview):
        return len(value)
    if isinstance(value, list | tuple | set | frozenset):  # before Mapping: a costlier check
        return sum(_VALUE_OVERHEAD + value_bytes(v) for v in value)
    if isinstance(value, dict | Mapping):
        return sum(2 * _VALUE_OVERHEAD + value_bytes(k) + value_bytes(v) for k, v in value.items())
    return _SCALAR_BYTES


def statement_bytes(statement: Statement) -> int:
    """An estimate of a statement's size in a batch: its bound values and their framing
    (``value_bytes`` of each; ints and texts, most values, inline: this runs for every
    statement the row path writes)."""
    total = _STATEMENT_OVERHEAD + _VALUE_OVERHEAD * len(statement.values)
    for value in statement.values:
        kind = type(value)
        if kind is int:
            total += _SCALAR_BYTES
        elif kind is str:
            total += len(value) if value.isascii() else len(value.encode("utf-8"))
        else:
            total += value_bytes(value)
    return total


def _units(row: RowWrites, max_bytes: int) -> list[tuple[list[Statement], int]]:
    """The pieces of a row that must share a batch, with their estimated bytes: the whole
    row when it fits ``max_bytes``. A larger row is cut into its statements, except that all
    its list appends stay together: a redone unit checks a row's lists against the target,
    which is exact only when the row's appends were applied all or none (one batch, applied
    atomically); every other statement rewrites the same cells with the same timestamps."""
    if len(row.statements) == 1:
        return [(row.statements, statement_bytes(row.statements[0]))]
    sizes = [statement_bytes(s) for s in row.statements]
    total = sum(sizes)
    if total <= max_bytes:
        return [(row.statements, total)]
    units: list[tuple[list[Statement], int]] = []
    appends: list[Statement] = []
    appends_size = 0
    for statement, size in zip(row.statements, sizes, strict=True):
        if statement.appends_list:
            appends.append(statement)
            appends_size += size
        else:
            units.append(([statement], size))
    if appends:
        units.append((appends, appends_size))
    return units


def pack_batches(
    rows: Sequence[RowWrites], max_statements: int, max_bytes: int = MAX_BATCH_BYTES
) -> list[list[Statement]]:
    """Statements of one partition in batches of at most ``max_statements`` statements and
    ``max_bytes`` estimated bytes (``statement_bytes``). A row's statements share one batch
    (a larger row gets a batch of its own), unless the row alone is over ``max_bytes``: then
    its statements are packed separately, its list appends all in one batch (see ``_units``);
    a statement over ``max_bytes`` goes alone. The batches of a partition are sent
    concurrently, in no particular order; each is applied atomically (one partition), so
    a row's list appends are applied all or none, which the list check of a redone unit
    relies on."""
    batches: list[list[Statement]] = []
    current: list[Statement] = []
    current_bytes = 0
    for row in rows:
        if not row.statements:
            continue
        for statements, size in _units(row, max_bytes):
            if current and (
                len(current) + len(statements) > max_statements or current_bytes + size > max_bytes
            ):
                batches.append(current)
                current, current_bytes = [], 0
            current.extend(statements)
            current_bytes += size
    if current:
        batches.append(current)
    return batches
