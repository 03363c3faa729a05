"""WireOrderSet: a set decoded in Cassandra's order answers ``in`` and ``==`` by its
elements, whatever Python's order of them (pure: no node)."""

import ipaddress
import math
import pickle
import uuid

from cassandra import cqltypes, util

from transforms.wire_sets import WireOrderSet, decode_sets_in_wire_order

# Cassandra orders timeuuids by time; Python's UUID order is by the bytes.
_LATER_BUT_SMALLER = uuid.UUID("00000000-0000-1000-8000-000000000001")  # time 0x1000...
_EARLIER_BUT_LARGER = uuid.UUID("ffffffff-0000-1000-8000-000000000001")


def test_membership_does_not_rely_on_python_order() -> None:
    elements = [5.0, -0.0, 0.0, 1.0, -3.0]  # not sorted; -0.0 and 0.0 both kept
    wire = WireOrderSet(elements)
    assert list(wire) == elements
    for element in elements:
        assert element in wire
    assert 2.0 not in wire
    plain = util.SortedSet.__new__(util.SortedSet)
    plain._items = list(elements)  # what the earlier patch built: bisect finds no 5.0
    assert 1.0 not in plain


def test_nan_and_inet_and_timeuuid_members() -> None:
    nan = math.nan
    addresses = [ipaddress.ip_address("10.0.0.2"), ipaddress.ip_address("10.0.0.1")]
    wire = WireOrderSet([nan, 1.0])
    assert nan in wire  # the same object, as for a list
    assert WireOrderSet(addresses)._items == addresses
    times = WireOrderSet([_EARLIER_BUT_LARGER, _LATER_BUT_SMALLER])
    assert _EARLIER_BUT_LARGER in times and _LATER_BUT_SMALLER in times


def test_equality_with_sets_and_sorted_sets() -> None:
    wire = WireOrderSet([3, 1, 2])
    assert wire == {1, 2, 3}
    assert wire == util.SortedSet([1, 2, 3])
    assert wire == WireOrderSet([3, 1, 2])
    assert wire != WireOrderSet([1, 2, 3])  # two wire sets: the order is Cassandra's
    assert wire != {1, 2}
    assert wire != [3, 1, 2]
    assert not wire == {1, 2, 4}


def test_add_discard_and_pickle_keep_order() -> None:
    wire = WireOrderSet([3, 1])
    wire.add(2)
    wire.add(1)
    assert list(wire) == [3, 1, 2]
    wire.discard(1)
    wire.discard(9)
    assert list(wire) == [3, 2]
    copy = pickle.loads(pickle.dumps(wire))
    assert type(copy) is WireOrderSet and list(copy) == [3, 2]


def test_the_driver_decodes_sets_in_wire_order() -> None:
    before = (util.sortedset, cqltypes.SetType.adapter)
    try:
        decode_sets_in_wire_order()
        set_type = cqltypes.SetType.apply_parameters([cqltypes.DoubleType])
        data = set_type.serialize([1.0, -0.0, 0.0], 4)  # the bytes as a node would send
        value = set_type.deserialize(data, 4)
        assert type(value) is WireOrderSet
        assert [repr(v) for v in value] == ["1.0", "-0.0", "0.0"]
        assert 0.0 in value and 1.0 in value
    finally:
        util.sortedset, cqltypes.SetType.adapter = before
