"""Partition tokens computed on the client, so the node need not compute ``token(pk)`` per row.

Cassandra's Murmur3Partitioner hashes the partition key as it is stored: one column's
serialized value, or for a composite key every component as a 2-byte big-endian length,
the bytes and a 0 end-of-component byte. The driver does the same to route a statement
to its replicas (``BoundStatement.routing_key``, ``Murmur3Token.hash_fn``, its C murmur3).
The reader needs a partition's token only where it claims the partition, so it reads the
key columns it exports anyway, hashes each new key once, and checks the token against the
window it queried (see ``_RangeReader``): a token that is out of the window or not above
the previous partition's makes the reader select ``token(pk)`` again for the rest.

Only key types whose decoded value serializes back to exactly the bytes Cassandra stored
are hashed here; a table with another key type (frozen collections, tuples, UDTs,
durations, vectors) keeps selecting ``token(pk)``.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from operator import itemgetter
from typing import Any

from cassandra import cqltypes
from cassandra.metadata import Murmur3Token

from transforms.table_plan import PARTITION_KEY, TablePlan

__all__ = ["PartitionTokens", "partition_tokens_for"]

_PROTOCOL = 5  # the serializations below do not depend on it


def _packer(fmt: str) -> Callable[[Any], bytes]:
    return struct.Struct(fmt).pack


def _text(value: str) -> bytes:
    return value.encode("utf-8")


def _uuid(value: Any) -> bytes:
    return value.bytes


def _driver(cass_type: Any) -> Callable[[Any], bytes]:
    serialize = cass_type.serialize
    return lambda value: serialize(value, _PROTOCOL)


# How a decoded key value becomes the bytes Cassandra hashed. ``timestamp`` is read as the
# ``bigint`` it is on the wire (an int of milliseconds, ``wire_timestamps``). Only
# types whose decoded values are equal exactly when their stored bytes are: the reader
# tells partitions apart by their decoded key, so float and double (0.0 == -0.0), decimal
# (1.0 == 1.00), varint and boolean (stored bytes that are not the canonical encoding
# decode to the value of the canonical ones) keep ``token(pk)``.
_SERIALIZERS: dict[str, Callable[[Any], bytes]] = {
    "int": _packer(">i"),
    "bigint": _packer(">q"),
    "timestamp": _packer(">q"),
    "smallint": _packer(">h"),
    "tinyint": _packer(">b"),
    "text": _text,
    "ascii": _text,
    "blob": bytes,
    "uuid": _uuid,
    "timeuuid": _uuid,
    "date": _driver(cqltypes.SimpleDateType),
    "time": _driver(cqltypes.TimeType),
    "inet": _driver(cqltypes.InetAddressType),
}

_LENGTH = struct.Struct(">H").pack


class PartitionTokens:
    """The partition key of a row read with ``select_cql(with_token=False)``, and its token."""

    def __init__(self, positions: tuple[int, ...], serializers: tuple[Callable[[Any], bytes], ...]):
        """``positions``: the key columns' indexes in the row; ``serializers``: one per column."""
        self.positions = positions
        self.key_of: Callable[[tuple[Any, ...]], Any] = itemgetter(*positions)
        self._serializers = serializers
        self._single = serializers[0] if len(serializers) == 1 else None

    def token(self, key: Any) -> int:
        """The Murmur3 token of a key as ``key_of`` returns it (a value, or a tuple).
        Raises TypeError, ValueError or struct.error for a value that has no serialization
        (an empty key value decodes to None)."""
        hash_fn = Murmur3Token.hash_fn
        if self._single is not None:
            return hash_fn(self._single(key))
        parts = []
        for serialize, value in zip(self._serializers, key, strict=True):
            data = serialize(value)
            parts.append(_LENGTH(len(data)) + data + b"\x00")
        return hash_fn(b"".join(parts))


def partition_tokens_for(plan: TablePlan) -> PartitionTokens | None:
    """Client tokens for ``plan``'s rows, or None when a key column's type cannot be
    hashed here (then the reader selects ``token(pk)``)."""
    serializers = []
    positions = []
    for index, column in enumerate(plan.columns):
        if column.kind != PARTITION_KEY:
            continue
        serializer = _SERIALIZERS.get(column.cql_type.name)
        if serializer is None or column.cql_type.params:
            return None
        serializers.append(serializer)
        positions.append(index)
    if not serializers:
        return None
    return PartitionTokens(tuple(positions), tuple(serializers))
