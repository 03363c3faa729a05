"""CQL values as the driver returns them, for the tests of the CQL type modules: the
driver's type class of a parsed type, a value serialized and read back, driver maps, the
float32 a CQL float arrives as, and the user types the tests parse with."""

from __future__ import annotations

import struct
from typing import Any

from cassandra import cqltypes
from cassandra.util import OrderedMapSerializedKey

from transforms.cql_types import CqlType, parse_cql_type

PROTOCOL = 5

USER_TYPES = {
    "address": (("street", "zip", "tags"), ("text", "int", "frozen<list<text>>")),
    "person": (("name", "home", "born"), ("text", "frozen<address>", "timestamp")),
    "MyType": (("my field", "1st", "x"), ("text", "int", "double")),
}


def f32(value: float) -> float:
    """The float32 value the driver returns for a CQL float."""
    return struct.unpack(">f", struct.pack(">f", value))[0]


def driver_type(t: CqlType) -> Any:
    """The driver's cqltypes class for ``t``."""
    if t.frozen and t.is_collection:  # the driver's tuples and UDTs are frozen already
        unfrozen = CqlType(t.name, t.params)
        return cqltypes.FrozenType.apply_parameters([driver_type(unfrozen)])
    if t.name == "list":
        return cqltypes.ListType.apply_parameters([driver_type(t.params[0])])
    if t.name == "set":
        return cqltypes.SetType.apply_parameters([driver_type(t.params[0])])
    if t.name == "map":
        return cqltypes.MapType.apply_parameters([driver_type(p) for p in t.params])
    if t.name == "tuple":
        return cqltypes.TupleType.apply_parameters([driver_type(p) for p in t.params])
    if t.name == "vector":
        return cqltypes.VectorType.apply_parameters([driver_type(t.params[0]), t.dimension], None)
    if t.name == "udt":
        return cqltypes.UserType.make_udt_class(
            "ks", t.udt_name, t.field_names, tuple(driver_type(p) for p in t.params)
        )
    return cqltypes._cqltypes[t.name]


def as_driver_returns(type_string: str, value: Any) -> Any:
    """``value`` serialized and read back by the driver, so it has the driver's own types.
    A top-level set is serialized in sorted order, as Cassandra sends the sets of these
    cases (the export keeps a set in the order it came: ``cassandra_session``)."""
    cass_type = driver_type(parse_cql_type(type_string, USER_TYPES))
    if isinstance(value, set | frozenset):
        value = sorted(value)
    return cass_type.from_binary(cass_type.to_binary(value, PROTOCOL), PROTOCOL)


def case_ids(cases: list[tuple[Any, ...]]) -> list[str]:
    """Test ids by CQL type and position (values such as 10**5000 have no usable str)."""
    return [f"{case[0]}-{index}" for index, case in enumerate(cases)]


def driver_map(key_type: Any, pairs: list[tuple[Any, Any]]) -> OrderedMapSerializedKey:
    """A map built the way cassandra.cqltypes.MapType.deserialize_safe builds it."""
    themap = OrderedMapSerializedKey(key_type, PROTOCOL)
    for key, value in pairs:
        themap._insert_unchecked(key, key_type.serialize(key, PROTOCOL), value)
    return themap
