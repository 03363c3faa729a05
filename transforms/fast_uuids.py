"""``uuid`` and ``timeuuid`` values decoded at half the cost.

The driver makes each of these values with ``uuid.UUID(bytes=...)``, whose constructor
checks its five keyword arguments, slices and converts the bytes, and range-checks the
integer: about 1 us a value, most of what decoding a page of a table keyed by UUIDs costs.
(Its Cython build has a decoder of its own for ``uuid``; ``timeuuid`` goes through the
type's Python ``deserialize`` and costs more.)

:func:`decode_uuids_fast` makes the driver decode both types with :class:`UuidDecoder`,
which builds the same ``uuid.UUID`` object directly: its integer from the 16 bytes and
``is_safe`` unknown, exactly what ``UUID(bytes=...)`` sets. A value of any other length
goes to ``UUID(bytes=...)`` itself, so the error is the driver's. Inside collections,
tuples and UDTs the same decoder is used, since the driver finds element decoders the
same way.
"""

from __future__ import annotations

import uuid
from typing import Any

__all__ = ["UuidDecoder", "decode_uuids_fast"]

# The driver's type names whose values are uuid.UUID objects built from 16 bytes.
_TYPES = ("UUIDType", "TimeUUIDType")


class UuidDecoder:
    """The ``cqltype`` a driver ``GenericDeserializer`` calls: ``deserialize(bytes,
    protocol_version)`` -> the ``uuid.UUID`` that ``UUID(bytes=...)`` gives."""

    __slots__ = ("empty_binary_ok", "support_empty_values")

    def __init__(self, cql_type: Any) -> None:
        # Both read by the driver before it calls deserialize: a zero-byte value is decoded
        # (empty_binary_ok) or read as EMPTY (support_empty_values) or as null.
        self.empty_binary_ok = cql_type.empty_binary_ok
        self.support_empty_values = cql_type.support_empty_values

    @staticmethod
    def deserialize(
        data: bytes,
        protocol_version: int,
        _new: Any = object.__new__,
        _set: Any = object.__setattr__,
        _int: Any = int.from_bytes,
        _uuid: Any = uuid.UUID,
        _unknown: Any = uuid.SafeUUID.unknown,
    ) -> uuid.UUID:
        if len(data) != 16:
            return _uuid(bytes=data)  # the driver's error for a malformed value
        value = _new(_uuid)
        _set(value, "int", _int(data, "big"))
        _set(value, "is_safe", _unknown)
        return value


def decode_uuids_fast() -> None:
    """Makes the driver decode every ``uuid`` and ``timeuuid`` with :class:`UuidDecoder`;
    done once per process, at connect, before any result is decoded. A driver without its
    Cython decoders is left as it is."""
    try:
        from cassandra import deserializers
    except ImportError:  # pure-Python driver build
        return
    generic = deserializers.GenericDeserializer
    for name in _TYPES:
        # find_deserializer looks a type's decoder up by "Des" + the type's name and calls
        # it with the type; what it returns must be a driver Deserializer.
        deserializers.__dict__["Des" + name] = lambda cql_type: generic(UuidDecoder(cql_type))
