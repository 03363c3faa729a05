"""Sets exactly as Cassandra sends them.

The driver rebuilds every ``set`` it decodes as a ``cassandra.util.SortedSet``: it
re-sorts the elements by Python's order, which differs from Cassandra's for timeuuid,
inet, doubles (NaN, ``-0.0``) and tuples holding nulls, and drops an element Python finds
equal to the one before it (``0.0`` after ``-0.0``, which Cassandra keeps apart). The
per-element writetimes of a set come in Cassandra's order, so a re-sorted set put them on
other elements.

:class:`WireOrderSet` keeps the elements in the order they came, every one of them. It is
still a ``SortedSet`` (the formats and users test for that class) but answers ``in`` and
``==`` by looking at every element: ``SortedSet`` answers them by binary search, which
needs its own sort order and would be wrong here.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from cassandra import cqltypes, util

__all__ = ["WireOrderSet", "decode_sets_in_wire_order"]


class WireOrderSet(util.SortedSet):
    """A decoded ``set`` in Cassandra's order, with membership and equality that do not
    rely on Python's order. Adding an element keeps the rest in place and appends it."""

    def __init__(self, iterable: Iterable[Any] = ()) -> None:
        self._items = list(iterable)

    def __contains__(self, item: Any) -> bool:
        return item in self._items

    def __eq__(self, other: object) -> bool:
        if isinstance(other, WireOrderSet):
            return self._items == other._items
        if not isinstance(other, (set, frozenset, util.SortedSet)):
            return NotImplemented
        return len(other) == len(self._items) and all(item in self._items for item in other)

    def __ne__(self, other: object) -> bool:
        equal = self.__eq__(other)
        return equal if equal is NotImplemented else not equal

    __hash__ = None  # type: ignore[assignment]  # mutable, as SortedSet

    def add(self, item: Any) -> None:
        if item not in self._items:
            self._items.append(item)

    def discard(self, value: Any) -> None:
        if value in self._items:
            self._items.remove(value)

    def remove(self, value: Any) -> None:
        self._items.remove(value)


def decode_sets_in_wire_order() -> None:
    """Makes the driver build every decoded set (Cython and pure-Python deserializers
    alike) as a :class:`WireOrderSet`; done once per process, at connect."""
    util.sortedset = cqltypes.SetType.adapter = WireOrderSet
