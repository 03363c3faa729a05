"""CQL values as text a whole column at a time, by NumPy: what :mod:`transforms.cql_text`
writes value by value, with no Python call per value.
"""

from __future__ import annotations

import functools
import itertools
import operator
from collections.abc import Sequence
from typing import Any

import numpy

__all__ = ["uuid_bytes", "uuid_texts"]

# Below this many values, value by value: cheaper than NumPy's fixed work per call.
_FEW_VALUES = 128

_UUID_INT = operator.attrgetter("int")
# Where each character of a UUID's text comes from: its 32 hex digits, and the dash that
# follows them (index 32).
_UUID_LAYOUT = [*range(8), 32, *range(8, 12), 32, *range(12, 16), 32, *range(16, 20), 32]
_UUID_LAYOUT += range(20, 32)


@functools.cache
def _hex_pairs() -> Any:
    """The two lowercase hex digits of every byte, as one uint16 each (their ASCII bytes)."""
    return numpy.array([f"{i:02x}".encode("ascii") for i in range(256)]).view(numpy.uint16)


def uuid_bytes(values: Sequence[Any]) -> Any:
    """``uuid.UUID`` values (no None) -> the ASCII bytes of their ``str()`` texts, one row of a
    ``(len(values), 36)`` uint8 array each: their 128-bit integers as bytes, hex digits by
    table lookup."""
    raw = b"".join(map(int.to_bytes, map(_UUID_INT, values), itertools.repeat(16)))
    count = len(raw) // 16
    digits = numpy.empty((count, 33), dtype=numpy.uint8)
    pairs = _hex_pairs()[numpy.frombuffer(raw, dtype=numpy.uint8)]
    digits[:, :32] = pairs.view(numpy.uint8).reshape(count, 32)
    digits[:, 32] = ord("-")
    return numpy.ascontiguousarray(digits[:, _UUID_LAYOUT])


def uuid_texts(values: Sequence[Any]) -> list[str]:
    """``uuid.UUID`` values (no None) as ``str()`` writes each (``8-4-4-4-12`` lowercase hex),
    a column at a time through :func:`uuid_bytes` (``UUID.__str__`` is Python code, about
    3 times the CPU per value). Fewer than ``_FEW_VALUES`` go value by value."""
    if len(values) < _FEW_VALUES:
        return list(map(str, values))
    texts = uuid_bytes(values).view("S36").reshape(len(values))
    return list(map(bytes.decode, texts.tolist()))
