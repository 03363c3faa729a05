"""Decoders of our own put in place of the driver's for a CQL type, in one way.

The driver's Cython row parser finds a type's decoder by the name ``"Des" + type name``
in its ``deserializers`` module and wraps anything else in a ``GenericDeserializer``,
which calls ``cqltype.deserialize(bytes, protocol_version)`` and, before that, reads two
attributes of the ``cqltype`` for a zero-byte value: ``empty_binary_ok`` (decode it) and
``support_empty_values`` (read it as EMPTY, else null). :class:`TypeDecoder` carries both,
copied from the driver's type, so a decoder built on it cannot miss one;
:func:`use_decoder` registers one for the names given.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

__all__ = ["TypeDecoder", "use_decoder"]


class TypeDecoder:
    """Base of a decoder the driver calls as a ``cqltype``: the zero-byte attributes the
    driver reads, as the driver's type ``cql_type`` has them; a subclass adds
    ``deserialize(data, protocol_version)``."""

    __slots__ = ("empty_binary_ok", "support_empty_values")

    def __init__(self, cql_type: Any) -> None:
        self.empty_binary_ok = cql_type.empty_binary_ok
        self.support_empty_values = cql_type.support_empty_values


def use_decoder(names: Iterable[str], decoder: Callable[[Any], TypeDecoder]) -> None:
    """Makes the driver's Cython row parser decode the types ``names`` (``"Des"`` + the
    driver's type name, as it looks them up) with ``decoder(cql_type)``; done once per
    process, before any result is decoded. A driver without its Cython decoders is left
    as it is."""
    try:
        from cassandra import deserializers
    except ImportError:  # pure-Python driver build
        return
    generic = deserializers.GenericDeserializer
    for name in names:
        # What find_deserializer calls with the type must return a driver Deserializer.
        deserializers.__dict__[name] = lambda cql_type: generic(decoder(cql_type))
