"""``list<int>`` and ``list<bigint>`` values decoded with null elements, and fast.

``WRITETIME()`` and ``TTL()`` of a non-frozen collection or UDT come as a ``list<bigint>``
/ ``list<int>`` with one element per collection element or UDT field, null where an
element has no TTL or a field is null. The driver's Cython list decoder rejects null
elements; its Python one accepts them but goes through a slice and a chain of class
methods per element: about 2.3 us per list of three elements, the larger part of decoding
a page of a collection table's writetimes.

:func:`decode_int_lists` makes the driver decode these two list types with
:class:`IntListDecoder`: one ``struct`` call per list where every element is present,
an element-by-element loop where some are null, and the driver's own decoder for
anything else (empty elements, malformed bytes, protocol versions below 3), so the values
and the errors are the driver's. The same decoder serves ``list<int>`` and
``list<bigint>`` data columns.
"""

from __future__ import annotations

import struct
from typing import Any

from transforms.driver_decoders import TypeDecoder, use_decoder

__all__ = ["IntListDecoder", "decode_int_lists"]

_INT32 = struct.Struct(">i")
# The element types decoded here: their width in bytes and struct code.
_ELEMENTS = {"Int32Type": (4, "i"), "LongType": (8, "q")}
# Lists up to this many elements get a struct of their own (kept per decoder, per size).
_STRUCT_MAX_ELEMENTS = 64


class IntListDecoder(TypeDecoder):
    """The ``cqltype`` a driver ``GenericDeserializer`` calls: ``deserialize(bytes,
    protocol_version)`` -> a list of ints and None, exactly as the driver's Python list
    decoder gives it."""

    __slots__ = ("_base", "_width", "_element", "_structs")

    def __init__(self, list_type: Any) -> None:
        super().__init__(list_type)
        self._base = list_type.deserialize
        self._width, code = _ELEMENTS[list_type.subtypes[0].__name__]
        self._element = struct.Struct(">" + code)
        self._structs: dict[int, struct.Struct] = {}

    def deserialize(self, data: bytes, protocol_version: int) -> Any:
        if protocol_version < 3 or len(data) < 4:
            return self._base(data, protocol_version)
        count = _INT32.unpack_from(data)[0]
        width = self._width
        if 0 < count <= _STRUCT_MAX_ELEMENTS and len(data) == 4 + count * (4 + width):
            fields = self._struct(count).unpack_from(data, 4)
            if fields[0::2].count(width) == count:  # every element present, none empty
                return list(fields[1::2])
        try:
            return self._loop(data, count)
        except (struct.error, _NotSimple):
            return self._base(data, protocol_version)

    def _struct(self, count: int) -> struct.Struct:
        found = self._structs.get(count)
        if found is None:
            code = self._element.format[1:]
            found = self._structs[count] = struct.Struct(">" + ("i" + code) * count)
        return found

    def _loop(self, data: bytes, count: int) -> list[Any]:
        """Element by element: nulls (length -1) and elements of the type's width."""
        values: list[Any] = []
        offset, width, element = 4, self._width, self._element
        for _ in range(count):
            size = _INT32.unpack_from(data, offset)[0]
            offset += 4
            if size < 0:
                values.append(None)
            elif size == width:
                values.append(element.unpack_from(data, offset)[0])
                offset += width
            else:
                raise _NotSimple
        if offset != len(data):
            raise _NotSimple
        return values


class _NotSimple(Exception):
    """A list the fast paths leave to the driver's decoder (empty elements, extra bytes)."""


def decode_int_lists() -> None:
    """Makes the driver decode every ``list<int>`` and ``list<bigint>`` with
    :class:`IntListDecoder`; done once per process, at connect. A driver without its
    Cython decoders already accepts null elements and is left as it is."""
    use_decoder([f"DesListType({element})" for element in _ELEMENTS], IntListDecoder)
