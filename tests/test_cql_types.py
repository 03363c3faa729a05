"""Tests for transforms.cql_types: parsing CQL type strings, the scalar type names, and the
names a type's fields take in Avro and Parquet schemas."""

from __future__ import annotations

import pytest

from tests.cql_values import USER_TYPES, driver_type
from transforms import cql_convert
from transforms.cql_types import SCALAR_TYPES, AvroNames, CqlType, avro_field_name, parse_cql_type

# ---------------------------------------------------------------------------
# parse_cql_type
# ---------------------------------------------------------------------------

INT = CqlType("int")
TEXT = CqlType("text")
ADDRESS = CqlType(
    "udt",
    (TEXT, INT, CqlType("list", (TEXT,), frozen=True)),
    udt_name="address",
    field_names=("street", "zip", "tags"),
)

PARSE_CASES = [
    ("int", INT, "int"),
    ("varchar", TEXT, "text"),
    ("counter", CqlType("counter"), "counter"),
    ("frozen<list<int>>", CqlType("list", (INT,), frozen=True), "frozen<list<int>>"),
    ("list<int>", CqlType("list", (INT,)), "list<int>"),
    (
        "map<text, frozen<set<uuid>>>",
        CqlType("map", (TEXT, CqlType("set", (CqlType("uuid"),), frozen=True))),
        "map<text, frozen<set<uuid>>>",
    ),
    ("tuple<int, text>", CqlType("tuple", (INT, TEXT)), "tuple<int, text>"),
    (
        "frozen<tuple<int, frozen<list<timestamp>>>>",
        CqlType("tuple", (INT, CqlType("list", (CqlType("timestamp"),), frozen=True)), frozen=True),
        "frozen<tuple<int, frozen<list<timestamp>>>>",
    ),
    ("vector<float, 3>", CqlType("vector", (CqlType("float"),), dimension=3), "vector<float, 3>"),
    (
        "org.apache.cassandra.db.marshal.VectorType<float, 3>",
        CqlType("vector", (CqlType("float"),), dimension=3),
        "vector<float, 3>",
    ),
    ("vector<float,2>", CqlType("vector", (CqlType("float"),), dimension=2), "vector<float, 2>"),
    ("address", ADDRESS, "address"),
    ("frozen<address>", CqlType(**{**ADDRESS.__dict__, "frozen": True}), "frozen<address>"),
    (
        "frozen<person>",
        CqlType(
            "udt",
            (TEXT, CqlType(**{**ADDRESS.__dict__, "frozen": True}), CqlType("timestamp")),
            frozen=True,
            udt_name="person",
            field_names=("name", "home", "born"),
        ),
        "frozen<person>",
    ),
    (
        '"MyType"',
        CqlType(
            "udt",
            (TEXT, INT, CqlType("double")),
            udt_name="MyType",
            field_names=("my field", "1st", "x"),
        ),
        '"MyType"',
    ),
    (
        ' map < frozen<"MyType"> , list<frozen<tuple<date, time, duration>>> > ',
        CqlType(
            "map",
            (
                CqlType(
                    "udt",
                    (TEXT, INT, CqlType("double")),
                    frozen=True,
                    udt_name="MyType",
                    field_names=("my field", "1st", "x"),
                ),
                CqlType(
                    "list",
                    (
                        CqlType(
                            "tuple",
                            (CqlType("date"), CqlType("time"), CqlType("duration")),
                            frozen=True,
                        ),
                    ),
                ),
            ),
        ),
        'map<frozen<"MyType">, list<frozen<tuple<date, time, duration>>>>',
    ),
]


@pytest.mark.parametrize("type_string, expected, spelled", PARSE_CASES)
def test_parse_cql_type(type_string: str, expected: CqlType, spelled: str) -> None:
    parsed = parse_cql_type(type_string, USER_TYPES)
    assert parsed == expected
    assert str(parsed) == spelled
    assert parse_cql_type(str(parsed), USER_TYPES) == parsed


def test_every_scalar_name_parses() -> None:
    names = "ascii bigint blob boolean counter date decimal double duration float inet int"
    names += " smallint text time timestamp timeuuid tinyint uuid varint"
    for name in names.split():
        assert parse_cql_type(name) == CqlType(name)
        assert parse_cql_type(name.upper()) == CqlType(name)


def test_the_type_table_has_a_row_for_every_scalar_type() -> None:
    """The parser knows the scalars by ``SCALAR_TYPES``, the writers by the table's rows:
    one list in both."""
    names = "ascii bigint blob boolean counter date decimal double duration float inet int"
    names += " smallint text time timestamp timeuuid tinyint uuid varint"
    assert SCALAR_TYPES == frozenset(names.split())
    assert set(cql_convert._SCALARS) == SCALAR_TYPES


def test_parse_matches_driver_spelling() -> None:
    # What the driver itself prints for types built from protocol metadata.
    for type_string in ["list<int>", "map<text, frozen<set<uuid>>>", "frozen<tuple<int, text>>"]:
        cass_type = driver_type(parse_cql_type(type_string))
        assert cass_type.cql_parameterized_type() == type_string


def test_type_properties() -> None:
    def props(type_string: str) -> tuple[bool, bool, bool]:
        t = parse_cql_type(type_string, USER_TYPES)
        return t.is_collection, t.is_multicell, t.is_counter

    assert props("list<int>") == (True, True, False)
    assert props("set<text>") == (True, True, False)
    assert props("map<int, text>") == (True, True, False)
    assert props("frozen<map<int, text>>") == (True, False, False)
    assert props("address") == (False, True, False)
    assert props("frozen<address>") == (False, False, False)
    assert props("tuple<int, text>") == (False, False, False)
    assert props("vector<float, 3>") == (False, False, False)
    assert props("counter") == (False, False, True)
    assert props("int") == (False, False, False)


@pytest.mark.parametrize(
    "type_string, message",
    [
        ("nosuchtype", "nosuchtype"),
        ("list<nosuchtype>", "nosuchtype"),
        ('"Address"', "Address"),
        ("list<int", "end"),
        ("map<int>", "map"),
        ("list<int>>", ">"),
        ("vector<float, x>", "dimension"),
        ("'org.apache.cassandra.db.marshal.DynamicCompositeType'", "cannot parse"),
    ],
)
def test_parse_errors_name_the_type(type_string: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_cql_type(type_string, USER_TYPES)


def test_self_referencing_user_type_is_an_error() -> None:
    with pytest.raises(ValueError, match="loop"):
        parse_cql_type("loop", {"loop": (("me",), ("frozen<loop>",))})


def test_avro_names() -> None:
    names = AvroNames(reserved=["row"])
    assert [
        names.record_name(hint)
        for hint in ["row", "a", "a", "a", "1abc", "a-b c", "", "int", "string", "naïve"]
    ] == ["row_2", "a", "a_2", "a_3", "_1abc", "a_b_c", "_", "int_2", "string_2", "na_ve"]
    used: set[str] = set()
    assert [
        avro_field_name(column, used)
        for column in ["id", "ID", "my col", "my_col", "my-col", "2x", "", "int", "id", "Id_2"]
    ] == ["id", "ID_2", "my_col", "my_col_2", "my_col_3", "_2x", "_", "int", "id_3", "Id_2_2"]
