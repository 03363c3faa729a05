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

from transforms.driver_decoders import TypeDecoder, use_decoder

__all__ = ["UuidDecoder", "decode_uuids_fast"]

# The driver's decoder names of the types whose values are uuid.UUID objects of 16 bytes.
_NAMES = ("DesUUIDType", "DesTimeUUIDType")


class UuidDecoder(TypeDecoder):
    """The ``cqltype`` a driver ``GenericDeserializer`` calls: ``deserialize(bytes,
    protocol_version)`` -> the ``uuid.UUID`` that ``UUID(bytes=...)`` gives."""

    __slots__ = ()

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
    use_decoder(_NAMES, UuidDecoder)
