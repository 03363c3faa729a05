"""Top-level ``timestamp`` columns read as the integer milliseconds they are on the wire.

A CQL ``timestamp`` is 8 bytes on the wire: a signed count of milliseconds since the epoch.
The driver turns it into a ``datetime``, which only holds years 1 to 9999 (Cassandra stores
any 64-bit value) and goes through float seconds. The exporter wants the exact integer, so
its query once selected ``blobAsBigint(timestampAsBlob(c))``: the same 8 bytes typed
``bigint``. That made the node run two functions per row and timestamp column, measured at
1.2 to 1.5 node CPU µs per row on the benchmark's narrow table (one timestamp column):
about a fifth of the node's whole cost per exported row.

The query now selects the column itself, and the reader's own result messages
(:mod:`transforms.columnar`) type each top-level ``timestamp`` column of a page's metadata
``bigint`` before its rows are parsed (:func:`bigint_timestamps`; cassandra-driver 3.30
never asks the node to leave the metadata out, so every page carries it). A page read
through another request path (a session wrapper's own ``execute_async``) arrives with
``datetime`` values, converted exactly by :func:`millis_rows`; years outside 1-9999 can
only be read through the reader's messages. Timestamps nested in collections, tuples and
UDTs stay ``datetime`` (the formatters take both).
"""

from __future__ import annotations

import datetime
from typing import Any

from transforms.cql_text import timestamp_millis

__all__ = ["bigint_timestamps", "millis_rows"]


def bigint_timestamps(column_metadata: Any) -> Any:
    """A result's column metadata (``(keyspace, table, name, type)`` per column, as the
    driver reads it) with every top-level ``timestamp`` column typed ``bigint``; the same
    object when it has none (or is None: no metadata in the message)."""
    if not column_metadata:
        return column_metadata
    from cassandra.cqltypes import DateType, LongType

    if not any(column[3] is DateType for column in column_metadata):
        return column_metadata
    return [
        (*column[:3], LongType) if column[3] is DateType else column for column in column_metadata
    ]


def millis_rows(rows: list[Any]) -> list[Any]:
    """Row tuples with any top-level ``datetime`` as integer milliseconds (exact: the
    driver's float rounding is undone); the same list when it has none."""
    if not any(type(value) is datetime.datetime for row in rows for value in row):
        return rows
    return [
        tuple(timestamp_millis(v) if type(v) is datetime.datetime else v for v in row)
        for row in rows
    ]
