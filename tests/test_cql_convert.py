"""Tests for transforms.cql_convert: the CQL type table in CSV, JSON and Avro, for values as
the driver returns them (scalars, collections, tuples, UDTs, vectors)."""

from __future__ import annotations

import collections
import copy
import csv
import datetime
import io
import json
import math
import random
import struct
import uuid
from decimal import Decimal
from typing import Any

import fastavro
import pytest
from cassandra import cqltypes
from cassandra.util import Date, Duration, OrderedMapSerializedKey, SortedSet, Time

from tests.cql_values import USER_TYPES, as_driver_returns, case_ids, driver_map, f32
from transforms.cql_convert import avro_converter, avro_schema, csv_formatter, json_converter
from transforms.cql_types import AvroNames, CqlType, avro_field_name, parse_cql_type

UUID_1 = uuid.UUID("12345678-1234-5678-1234-567812345678")
TIMEUUID_1 = uuid.UUID("5b6962dd-3f90-11ee-b34e-0242ac120002")
UTC = datetime.UTC
TEXT = CqlType("text")


# ---------------------------------------------------------------------------
# CSV and JSON, scalars
# ---------------------------------------------------------------------------

TIME_1 = Time(((1 * 60 + 2) * 60 + 3) * 1_000_000_000 + 7)
NANOS_4H5M6S7 = ((4 * 60 + 5) * 60 + 6) * 1_000_000_000 + 7
BIG_VARINT = 10**5000 + 7

# (CQL type, value as the driver returns it, CSV text, JSON value)
SCALAR_CASES: list[tuple[str, Any, str, Any]] = [
    ("text", "plain", "plain", "plain"),
    ("text", "", "", ""),
    ("text", 'héllo "q", x\ny ✓', 'héllo "q", x\ny ✓', 'héllo "q", x\ny ✓'),
    ("varchar", "v", "v", "v"),
    ("ascii", "abc", "abc", "abc"),
    ("tinyint", -128, "-128", -128),
    ("smallint", 32767, "32767", 32767),
    ("int", -2147483648, "-2147483648", -2147483648),
    ("bigint", 9223372036854775807, "9223372036854775807", 9223372036854775807),
    ("counter", -5, "-5", -5),
    ("varint", -(10**30), "-1" + "0" * 30, "-1" + "0" * 30),
    ("varint", BIG_VARINT, "1" + "0" * 4999 + "7", "1" + "0" * 4999 + "7"),
    ("decimal", Decimal("1.50"), "1.50", "1.50"),
    ("decimal", Decimal("1e3"), "1E+3", "1E+3"),  # scale -3 kept (1000 would be scale 0)
    ("decimal", Decimal("1000"), "1000", "1000"),
    ("decimal", Decimal("-123e-12"), "-0.000000000123", "-0.000000000123"),
    ("decimal", Decimal("0"), "0", "0"),
    ("decimal", Decimal("1e-5000"), "1E-5000", "1E-5000"),
    ("float", f32(0.1), "0.1", 0.1),
    ("float", f32(1e-45), "1e-45", 1e-45),
    ("float", f32(3.4028235e38), "3.4028235e+38", 3.4028235e38),
    ("float", f32(16777216.0), "16777216.0", 16777216.0),
    ("float", f32(-2.5), "-2.5", -2.5),
    ("float", math.nan, "NaN", "NaN"),
    ("float", math.inf, "Infinity", "Infinity"),
    ("float", -math.inf, "-Infinity", "-Infinity"),
    ("double", 0.1, "0.1", 0.1),
    ("double", f32(0.1), "0.10000000149011612", 0.10000000149011612),
    ("double", 1e16, "1e+16", 1e16),
    ("double", -0.0, "-0.0", -0.0),
    ("double", math.nan, "NaN", "NaN"),
    ("double", math.inf, "Infinity", "Infinity"),
    ("double", -math.inf, "-Infinity", "-Infinity"),
    ("boolean", True, "true", True),
    ("boolean", False, "false", False),
    ("blob", b"\x00\xffA", "0x00ff41", "AP9B"),
    ("blob", b"", "0x", ""),
    ("uuid", UUID_1, "12345678-1234-5678-1234-567812345678", str(UUID_1)),
    ("timeuuid", TIMEUUID_1, "5b6962dd-3f90-11ee-b34e-0242ac120002", str(TIMEUUID_1)),
    # Top-level timestamps arrive as int milliseconds (read as bigint: wire_timestamps).
    ("timestamp", 1700000000123, "2023-11-14T22:13:20.123Z", "2023-11-14T22:13:20.123Z"),
    ("timestamp", 0, "1970-01-01T00:00:00.000Z", "1970-01-01T00:00:00.000Z"),
    ("timestamp", -1, "1969-12-31T23:59:59.999Z", "1969-12-31T23:59:59.999Z"),
    ("timestamp", 253402300799999, "9999-12-31T23:59:59.999Z", "9999-12-31T23:59:59.999Z"),
    ("timestamp", 253402300800000, "253402300800000", "253402300800000"),
    ("timestamp", -62135596800000, "0001-01-01T00:00:00.000Z", "0001-01-01T00:00:00.000Z"),
    ("timestamp", -62135596800001, "-62135596800001", "-62135596800001"),
    ("timestamp", -(2**63), str(-(2**63)), str(-(2**63))),
    # Nested timestamps arrive as the driver's naive UTC datetime.
    (
        "timestamp",
        datetime.datetime(2023, 11, 14, 22, 13, 20, 123000),
        "2023-11-14T22:13:20.123Z",
        "2023-11-14T22:13:20.123Z",
    ),
    (
        "timestamp",
        datetime.datetime(
            2023, 11, 14, 23, 13, 20, 123000, tzinfo=datetime.timezone(datetime.timedelta(hours=1))
        ),
        "2023-11-14T22:13:20.123Z",
        "2023-11-14T22:13:20.123Z",
    ),
    ("date", Date(19675), "2023-11-14", "2023-11-14"),
    ("date", Date(0), "1970-01-01", "1970-01-01"),
    ("date", Date(-1), "1969-12-31", "1969-12-31"),
    ("date", Date(-719162), "0001-01-01", "0001-01-01"),
    ("date", Date(2932896), "9999-12-31", "9999-12-31"),
    ("date", Date(-719163), "-719163", "-719163"),
    ("date", Date(2932897), "2932897", "2932897"),
    ("date", Date(-(2**31)), str(-(2**31)), str(-(2**31))),
    ("time", TIME_1, "01:02:03.000000007", "01:02:03.000000007"),
    ("time", Time(0), "00:00:00.000000000", "00:00:00.000000000"),
    ("time", Time(86_399_999_999_999), "23:59:59.999999999", "23:59:59.999999999"),
    (
        "duration",
        Duration(14, 3, NANOS_4H5M6S7),
        "P1Y2M3DT4H5M6.000000007S",
        {"months": 14, "days": 3, "nanoseconds": NANOS_4H5M6S7},
    ),
    (
        "duration",
        Duration(-14, -3, -NANOS_4H5M6S7),
        "-P1Y2M3DT4H5M6.000000007S",
        {"months": -14, "days": -3, "nanoseconds": -NANOS_4H5M6S7},
    ),
    ("duration", Duration(0, 0, 0), "PT0S", {"months": 0, "days": 0, "nanoseconds": 0}),
    ("duration", Duration(1, 0, 0), "P1M", {"months": 1, "days": 0, "nanoseconds": 0}),
    ("duration", Duration(0, -1, 0), "-P1D", {"months": 0, "days": -1, "nanoseconds": 0}),
    (
        "duration",
        Duration(0, 0, 500_000_000),
        "PT0.5S",
        {"months": 0, "days": 0, "nanoseconds": 500_000_000},
    ),
    (
        "duration",
        Duration(0, 0, 90_000 * 1_000_000_000),
        "PT25H",
        {"months": 0, "days": 0, "nanoseconds": 90_000_000_000_000},
    ),
    (
        "duration",
        Duration(1, -1, 0),
        "P1M-1D",
        {"months": 1, "days": -1, "nanoseconds": 0},
    ),
    ("inet", "192.168.0.1", "192.168.0.1", "192.168.0.1"),
    ("inet", "2001:db8::1", "2001:db8::1", "2001:db8::1"),
]


def _same(actual: Any, expected: Any) -> bool:
    """Exact equality, including the float's sign bit and its type."""
    if isinstance(expected, float):
        return isinstance(actual, float) and struct.pack(">d", actual) == struct.pack(
            ">d", expected
        )
    return type(actual) is type(expected) and actual == expected


@pytest.mark.parametrize(
    "type_string, value, csv_text, json_value", SCALAR_CASES, ids=case_ids(SCALAR_CASES)
)
def test_scalar_csv_and_json(type_string: str, value: Any, csv_text: str, json_value: Any) -> None:
    t = parse_cql_type(type_string)
    assert csv_formatter(t)(value) == csv_text
    assert _same(json_converter(t)(value), json_value)
    json.dumps(json_converter(t)(value), allow_nan=False)


@pytest.mark.parametrize("type_string", sorted({case[0] for case in SCALAR_CASES}))
def test_null(type_string: str) -> None:
    t = parse_cql_type(type_string)
    assert csv_formatter(t)(None) == ""
    assert csv_formatter(t, null_value="NULL")(None) == "NULL"
    assert json_converter(t)(None) is None
    assert avro_converter(t)(None) is None


def test_empty_string_is_not_null() -> None:
    assert csv_formatter(TEXT, null_value="\\N")("") == ""
    assert json_converter(TEXT)("") == ""
    assert avro_converter(TEXT)("") == ""


# ---------------------------------------------------------------------------
# CSV and JSON, collections, tuples, UDTs, vectors
# ---------------------------------------------------------------------------

STAMP = datetime.datetime(2023, 11, 14, 22, 13, 20, 123000)
Address = collections.namedtuple("Address", ["street", "zip", "tags"])

# (CQL type, value given to the driver, CSV text, JSON value); values are passed through the
# driver's own serializer and deserializer, so the converters see SortedSet,
# OrderedMapSerializedKey, the driver's UDT namedtuple, Date, Time, Duration, datetime.
COMPOSITE_CASES: list[tuple[str, Any, str, Any]] = [
    ("list<int>", [3, 1, 2], "[3,1,2]", [3, 1, 2]),
    ("list<text>", [], "[]", []),
    ("set<text>", {"b", "a", "c"}, '["a","b","c"]', ["a", "b", "c"]),
    ("set<int>", {10, -2, 3}, "[-2,3,10]", [-2, 3, 10]),
    # Maps and sets keep the order the driver gives, which is Cassandra's order.
    ("map<text, int>", {"a": 1, "b": 2}, '{"a":1,"b":2}', {"a": 1, "b": 2}),
    ("map<int, text>", {2: "y", 1: "x"}, '{"2":"y","1":"x"}', {"2": "y", "1": "x"}),
    ("map<boolean, double>", {True: 1.5}, '{"true":1.5}', {"true": 1.5}),
    (
        "map<timestamp, boolean>",
        {STAMP: True},
        '{"2023-11-14T22:13:20.123Z":true}',
        {"2023-11-14T22:13:20.123Z": True},
    ),
    (
        "map<frozen<list<int>>, text>",
        {(1, 2): "x"},
        '{"[1,2]":"x"}',
        {"[1,2]": "x"},
    ),
    ("map<blob, text>", {b"\x00\xff": "b"}, '{"AP8=":"b"}', {"AP8=": "b"}),
    (
        "map<uuid, frozen<set<uuid>>>",
        {UUID_1: {UUID_1}},
        f'{{"{UUID_1}":["{UUID_1}"]}}',
        {str(UUID_1): [str(UUID_1)]},
    ),
    ("map<double, int>", {math.nan: 1}, '{"NaN":1}', {"NaN": 1}),
    ("map<varint, int>", {10**20: 1}, '{"100000000000000000000":1}', {"100000000000000000000": 1}),
    (
        "list<frozen<map<text, double>>>",
        [{"a": math.nan, "b": -math.inf}],
        '[{"a":"NaN","b":"-Infinity"}]',
        [{"a": "NaN", "b": "-Infinity"}],
    ),
    ("list<float>", [f32(0.1)], "[0.1]", [0.1]),
    ("list<double>", [f32(0.1)], "[0.10000000149011612]", [0.10000000149011612]),
    ("list<blob>", [b"\x00\xff"], '["AP8="]', ["AP8="]),
    ("list<varint>", [12], '["12"]', ["12"]),
    ("list<decimal>", [Decimal("1.50")], '["1.50"]', ["1.50"]),
    ("list<timestamp>", [STAMP], '["2023-11-14T22:13:20.123Z"]', ["2023-11-14T22:13:20.123Z"]),
    ("list<date>", [Date(19675)], '["2023-11-14"]', ["2023-11-14"]),
    ("list<time>", [TIME_1], '["01:02:03.000000007"]', ["01:02:03.000000007"]),
    (
        "list<duration>",
        [Duration(1, 2, 3)],
        '[{"months":1,"days":2,"nanoseconds":3}]',
        [{"months": 1, "days": 2, "nanoseconds": 3}],
    ),
    ("list<inet>", ["10.0.0.1"], '["10.0.0.1"]', ["10.0.0.1"]),
    ("list<boolean>", [True, False], "[true,false]", [True, False]),
    (
        "tuple<int, text, timestamp>",
        (1, "a", STAMP),
        '[1,"a","2023-11-14T22:13:20.123Z"]',
        [1, "a", "2023-11-14T22:13:20.123Z"],
    ),
    ("tuple<int, text, timestamp>", (1, None, None), "[1,null,null]", [1, None, None]),
    (
        "frozen<tuple<int, frozen<tuple<text, date>>>>",
        (1, ("x", Date(0))),
        '[1,["x","1970-01-01"]]',
        [1, ["x", "1970-01-01"]],
    ),
    (
        "frozen<address>",
        Address("Main St", 12345, ["home", "work"]),
        '{"street":"Main St","zip":12345,"tags":["home","work"]}',
        {"street": "Main St", "zip": 12345, "tags": ["home", "work"]},
    ),
    (
        "address",
        Address("Main St", None, None),
        '{"street":"Main St","zip":null,"tags":null}',
        {"street": "Main St", "zip": None, "tags": None},
    ),
    (
        "frozen<person>",
        ("Ann", Address("Elm", 1, []), STAMP),
        '{"name":"Ann","home":{"street":"Elm","zip":1,"tags":[]},'
        '"born":"2023-11-14T22:13:20.123Z"}',
        {
            "name": "Ann",
            "home": {"street": "Elm", "zip": 1, "tags": []},
            "born": "2023-11-14T22:13:20.123Z",
        },
    ),
    (
        '"MyType"',
        ("v", 1, 2.5),
        '{"my field":"v","1st":1,"x":2.5}',
        {"my field": "v", "1st": 1, "x": 2.5},
    ),
    ("vector<float, 3>", [0.1, 0.2, -1.5], "[0.1,0.2,-1.5]", [0.1, 0.2, -1.5]),
    ("vector<double, 2>", [0.1, 1e300], "[0.1,1e+300]", [0.1, 1e300]),
    (
        "list<text>",
        ["a,b", 'say "hi"', "line1\nline2\r\n", "naïve ✓ 日本", "", "\\"],
        '["a,b","say \\"hi\\"","line1\\nline2\\r\\n","naïve ✓ 日本","","\\\\"]',
        ["a,b", 'say "hi"', "line1\nline2\r\n", "naïve ✓ 日本", "", "\\"],
    ),
    (
        "map<text, text>",
        {'k,"1"\n': 'v,"1"\n'},
        '{"k,\\"1\\"\\n":"v,\\"1\\"\\n"}',
        {'k,"1"\n': 'v,"1"\n'},
    ),
]


@pytest.mark.parametrize(
    "type_string, value, csv_text, json_value", COMPOSITE_CASES, ids=case_ids(COMPOSITE_CASES)
)
def test_composite_csv_and_json(
    type_string: str, value: Any, csv_text: str, json_value: Any
) -> None:
    t = parse_cql_type(type_string, USER_TYPES)
    driver_value = as_driver_returns(type_string, value)
    assert csv_formatter(t)(driver_value) == csv_text
    assert json_converter(t)(driver_value) == json_value
    assert json.loads(csv_text) == json_value


def test_driver_value_types() -> None:
    # The converters are tested against these exact driver types.
    assert isinstance(as_driver_returns("set<int>", {1}), SortedSet)
    assert isinstance(as_driver_returns("map<int, int>", {1: 1}), OrderedMapSerializedKey)
    assert isinstance(as_driver_returns("list<timestamp>", [STAMP])[0], datetime.datetime)
    assert isinstance(as_driver_returns("list<date>", [Date(1)])[0], Date)
    assert isinstance(as_driver_returns("list<time>", [TIME_1])[0], Time)
    assert isinstance(as_driver_returns("list<duration>", [Duration(1, 1, 1)])[0], Duration)
    assert as_driver_returns("frozen<address>", ("a", 1, ["t"]))._fields == (
        "street",
        "zip",
        "tags",
    )


def test_literal_driver_containers() -> None:
    int_key = cqltypes.Int32Type
    themap = driver_map(int_key, [(2, SortedSet(["b", "a"])), (1, SortedSet())])
    t = parse_cql_type("map<int, frozen<set<text>>>")
    assert csv_formatter(t)(themap) == '{"2":["a","b"],"1":[]}'
    assert json_converter(t)(themap) == {"2": ["a", "b"], "1": []}
    assert json_converter(t)({2: ["x"]}) == {"2": ["x"]}  # a plain dict works too


def test_udt_is_read_by_position_not_attribute() -> None:
    t = parse_cql_type('"MyType"', USER_TYPES)
    # The driver renames fields that are not Python identifiers, or gives a plain tuple.
    renamed = as_driver_returns('"MyType"', ("v", 1, 2.5))
    assert renamed._fields != ("my field", "1st", "x")
    expected = {"my field": "v", "1st": 1, "x": 2.5}
    assert json_converter(t)(renamed) == expected
    assert json_converter(t)(("v", 1, 2.5)) == expected
    assert json_converter(t)(("v",)) == {"my field": "v", "1st": None, "x": None}


def test_converters_follow_the_cql_type_not_the_python_type() -> None:
    # The same Python value is written by each column's own type, whatever came first.
    value = [f32(0.1)]
    as_float = csv_formatter(parse_cql_type("list<float>"))
    as_double = csv_formatter(parse_cql_type("list<double>"))
    assert (as_float(value), as_double(value), as_float(value)) == (
        "[0.1]",
        "[0.10000000149011612]",
        "[0.1]",
    )
    as_ints = csv_formatter(parse_cql_type("list<int>"))
    as_texts = csv_formatter(parse_cql_type("list<text>"))
    assert as_ints([1]) == "[1]"
    assert as_texts(["1"]) == '["1"]'


def test_nested_timestamps_from_the_driver_are_exact() -> None:
    rng = random.Random(7)
    to_json = json_converter(parse_cql_type("list<timestamp>"))
    bounds = (-62135596800000, 253402300799999)
    values = [rng.randint(*bounds) for _ in range(3000)] + list(bounds) + [0, -1, 1]
    for millis in values:
        (stamp,) = as_driver_returns("list<timestamp>", [millis])
        expected = datetime.datetime(1970, 1, 1) + datetime.timedelta(milliseconds=millis)
        assert to_json([stamp]) == [expected.isoformat(timespec="milliseconds") + "Z"]


def test_special_text_survives_json_in_csv() -> None:
    texts = ["a,b", 'say "hi"', "line1\nline2", "cr\r\nlf", "naïve ✓ 日本", "", "tab\t;"]
    row_types = [
        parse_cql_type("text"),
        parse_cql_type("list<text>"),
        parse_cql_type("map<text, frozen<list<text>>>"),
        parse_cql_type("frozen<address>", USER_TYPES),
    ]
    values = [texts[0], texts, {t: [t] for t in texts}, ('x,"\n', None, texts)]
    formatters = [csv_formatter(t, null_value="NULL") for t in row_types]
    driver_values = [as_driver_returns(str(t), v) for t, v in zip(row_types, values, strict=True)]
    out = io.StringIO(newline="")
    csv.writer(out).writerow([f(v) for f, v in zip(formatters, driver_values, strict=True)])
    (row,) = list(csv.reader(io.StringIO(out.getvalue(), newline="")))
    assert row[0] == texts[0]
    assert json.loads(row[1]) == texts
    assert json.loads(row[2]) == {t: [t] for t in texts}
    assert json.loads(row[3]) == {"street": 'x,"\n', "zip": None, "tags": texts}


# ---------------------------------------------------------------------------
# Avro
# ---------------------------------------------------------------------------


def _strip_logical_types(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _strip_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_strip_logical_types(s) for s in schema]
    return schema


def _row_schema(columns: list[tuple[str, CqlType]]) -> tuple[dict[str, Any], list[str]]:
    names = AvroNames()
    used: set[str] = set()
    record_name = names.record_name("row")
    fields, field_names = [], []
    for column, t in columns:
        field = avro_field_name(column, used)
        field_names.append(field)
        fields.append({"name": field, "type": ["null", avro_schema(t, field, names)]})
    return {"type": "record", "name": record_name, "fields": fields}, field_names


def _raw_round_trip(schema: dict[str, Any], record: dict[str, Any]) -> dict[str, Any]:
    """Write with the logical schema, read the stored primitives back."""
    buffer = io.BytesIO()
    fastavro.schemaless_writer(buffer, fastavro.parse_schema(copy.deepcopy(schema)), record)
    buffer.seek(0)
    raw_schema = fastavro.parse_schema(_strip_logical_types(schema))
    return fastavro.schemaless_reader(buffer, raw_schema, None)


DURATION_RECORD = {
    "type": "record",
    "name": "duration",
    "fields": [
        {"name": "months", "type": "int"},
        {"name": "days", "type": "int"},
        {"name": "nanoseconds", "type": "long"},
    ],
}

# (CQL type, driver value, Avro schema, datum as stored)
AVRO_CASES: list[tuple[str, Any, Any, Any]] = [
    ("text", "héllo", "string", "héllo"),
    ("text", "", "string", ""),
    ("ascii", "a", "string", "a"),
    ("tinyint", -128, "int", -128),
    ("smallint", 7, "int", 7),
    ("int", -2147483648, "int", -2147483648),
    ("bigint", 2**63 - 1, "long", 2**63 - 1),
    ("counter", -(2**63), "long", -(2**63)),
    ("varint", -(10**30), "string", "-1" + "0" * 30),
    ("decimal", Decimal("-123e-12"), "string", "-0.000000000123"),
    ("float", f32(0.1), "float", f32(0.1)),
    ("float", f32(-3.4028235e38), "float", f32(-3.4028235e38)),
    ("double", 0.1, "double", 0.1),
    ("double", math.inf, "double", math.inf),
    ("boolean", True, "boolean", True),
    ("blob", b"\x00\xff", "bytes", b"\x00\xff"),
    ("uuid", UUID_1, {"type": "string", "logicalType": "uuid"}, str(UUID_1)),
    ("timeuuid", TIMEUUID_1, {"type": "string", "logicalType": "uuid"}, str(TIMEUUID_1)),
    (
        "timestamp",
        1700000000123,
        {"type": "long", "logicalType": "timestamp-millis"},
        1700000000123,
    ),
    (
        "timestamp",
        -(2**63),
        {"type": "long", "logicalType": "timestamp-millis"},
        -(2**63),
    ),
    (
        "timestamp",
        STAMP,
        {"type": "long", "logicalType": "timestamp-millis"},
        1700000000123,
    ),
    ("date", Date(19675), {"type": "int", "logicalType": "date"}, 19675),
    ("date", Date(-(2**31)), {"type": "int", "logicalType": "date"}, -(2**31)),
    ("time", TIME_1, "long", 3723000000007),
    (
        "duration",
        Duration(-14, -3, -NANOS_4H5M6S7),
        DURATION_RECORD,
        {"months": -14, "days": -3, "nanoseconds": -NANOS_4H5M6S7},
    ),
    ("inet", "::1", "string", "::1"),
    ("list<int>", [3, 1], {"type": "array", "items": "int"}, [3, 1]),
    ("set<text>", SortedSet(["b", "a"]), {"type": "array", "items": "string"}, ["a", "b"]),
    ("vector<float, 2>", [f32(0.1), 2.0], {"type": "array", "items": "float"}, [f32(0.1), 2.0]),
    (
        "map<text, bigint>",
        driver_map(cqltypes.UTF8Type, [("b", 2), ("a", 1)]),
        {"type": "map", "values": "long"},
        {"b": 2, "a": 1},
    ),
    (
        "map<int, text>",
        driver_map(cqltypes.Int32Type, [(2, "y"), (1, "x")]),
        {
            "type": "array",
            "items": {
                "type": "record",
                "name": "c_entry",
                "fields": [{"name": "key", "type": "int"}, {"name": "value", "type": "string"}],
            },
        },
        [{"key": 2, "value": "y"}, {"key": 1, "value": "x"}],
    ),
    (
        "tuple<int, text>",
        (1, None),
        {
            "type": "record",
            "name": "c",
            "fields": [
                {"name": "f0", "type": ["null", "int"], "default": None},
                {"name": "f1", "type": ["null", "string"], "default": None},
            ],
        },
        {"f0": 1, "f1": None},
    ),
    (
        '"MyType"',
        ("v", None, 2.5),
        {
            "type": "record",
            "name": "MyType",
            "fields": [
                {"name": "my_field", "type": ["null", "string"], "default": None},
                {"name": "_1st", "type": ["null", "int"], "default": None},
                {"name": "x", "type": ["null", "double"], "default": None},
            ],
        },
        {"my_field": "v", "_1st": None, "x": 2.5},
    ),
    (
        "frozen<person>",
        ("Ann", Address("Elm", 1, ["a"]), STAMP),
        {
            "type": "record",
            "name": "person",
            "fields": [
                {"name": "name", "type": ["null", "string"], "default": None},
                {
                    "name": "home",
                    "type": [
                        "null",
                        {
                            "type": "record",
                            "name": "address",
                            "fields": [
                                {"name": "street", "type": ["null", "string"], "default": None},
                                {"name": "zip", "type": ["null", "int"], "default": None},
                                {
                                    "name": "tags",
                                    "type": ["null", {"type": "array", "items": "string"}],
                                    "default": None,
                                },
                            ],
                        },
                    ],
                    "default": None,
                },
                {
                    "name": "born",
                    "type": ["null", {"type": "long", "logicalType": "timestamp-millis"}],
                    "default": None,
                },
            ],
        },
        {
            "name": "Ann",
            "home": {"street": "Elm", "zip": 1, "tags": ["a"]},
            "born": 1700000000123,
        },
    ),
]


@pytest.mark.parametrize(
    "type_string, value, expected_schema, datum", AVRO_CASES, ids=case_ids(AVRO_CASES)
)
def test_avro_schema_and_datum(
    type_string: str, value: Any, expected_schema: Any, datum: Any
) -> None:
    t = parse_cql_type(type_string, USER_TYPES)
    assert avro_schema(t, "c", AvroNames()) == expected_schema
    converted = avro_converter(t)(value)
    assert converted == datum
    schema, (field,) = _row_schema([("c", t)])
    fastavro.parse_schema(copy.deepcopy(schema))
    assert _raw_round_trip(schema, {field: converted}) == {field: datum}
    assert _raw_round_trip(schema, {field: None}) == {field: None}


def test_avro_nan_round_trips() -> None:
    for type_string in ("float", "double"):
        schema, (field,) = _row_schema([("c", parse_cql_type(type_string))])
        stored = _raw_round_trip(schema, {field: avro_converter(CqlType(type_string))(math.nan)})
        assert math.isnan(stored[field])


def test_avro_nested_collections_round_trip() -> None:
    type_string = "map<text, frozen<list<frozen<tuple<timestamp, date, duration, uuid>>>>>"
    t = parse_cql_type(type_string)
    value = as_driver_returns(
        type_string, {"k": [(STAMP, Date(1), Duration(1, 2, 3), UUID_1)], "e": []}
    )
    schema, (field,) = _row_schema([("c", t)])
    converted = avro_converter(t)(value)
    expected = {
        "e": [],
        "k": [
            {
                "f0": 1700000000123,
                "f1": 1,
                "f2": {"months": 1, "days": 2, "nanoseconds": 3},
                "f3": str(UUID_1),
            }
        ],
    }
    assert converted == expected
    assert _raw_round_trip(schema, {field: converted}) == {field: expected}


def test_avro_container_file_round_trip_with_logical_types() -> None:
    columns = [
        ("id", "uuid"),
        ("when", "timestamp"),
        ("day", "date"),
        ("at", "time"),
        ("home", "frozen<address>"),
        ("work", "frozen<address>"),
        ("pair", "frozen<tuple<int, text>>"),
        ("pair 2", "frozen<tuple<int, text>>"),
        ("int", "map<int, frozen<map<int, text>>>"),
        ("spent", "duration"),
        ("waited", "list<duration>"),
        ("tags", "set<text>"),
        ("v", "vector<float, 2>"),
        ("price", "decimal"),
    ]
    types = [parse_cql_type(s, USER_TYPES) for _, s in columns]
    schema, fields = _row_schema(list(zip([c for c, _ in columns], types, strict=True)))
    assert fields == [
        "id", "when", "day", "at", "home", "work", "pair", "pair_2",
        "int", "spent", "waited", "tags", "v", "price",
    ]  # fmt: skip
    record_names = _record_names(schema)
    assert len(record_names) == len(set(record_names))
    assert record_names == [
        "row", "address", "address_2", "pair", "pair_2",
        "int_entry", "int_value_entry", "duration", "duration_2",
    ]  # fmt: skip
    values = [
        UUID_1,
        1700000000123,
        Date(19675),
        TIME_1,
        Address("Main", 1, ["a"]),
        None,
        (1, "x"),
        (None, None),
        driver_map(cqltypes.Int32Type, [(1, {2: "two"})]),
        Duration(1, 2, 3),
        [Duration(0, 0, 5)],
        SortedSet(["z", "y"]),
        [f32(0.5), f32(0.25)],
        Decimal("1.50"),
    ]
    record = {
        field: avro_converter(t)(v) for field, t, v in zip(fields, types, values, strict=True)
    }
    buffer = io.BytesIO()
    fastavro.writer(buffer, fastavro.parse_schema(schema), [record], codec="deflate")
    buffer.seek(0)
    (read,) = list(fastavro.reader(buffer))
    assert read == {
        "id": UUID_1,
        "when": datetime.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC),
        "day": datetime.date(2023, 11, 14),
        "at": 3723000000007,
        "home": {"street": "Main", "zip": 1, "tags": ["a"]},
        "work": None,
        "pair": {"f0": 1, "f1": "x"},
        "pair_2": {"f0": None, "f1": None},
        "int": [{"key": 1, "value": [{"key": 2, "value": "two"}]}],
        "spent": {"months": 1, "days": 2, "nanoseconds": 3},
        "waited": [{"months": 0, "days": 0, "nanoseconds": 5}],
        "tags": ["y", "z"],
        "v": [0.5, 0.25],
        "price": "1.50",
    }


def _record_names(schema: Any) -> list[str]:
    """Every record name in ``schema``, in document order."""
    if isinstance(schema, list):
        return [name for branch in schema for name in _record_names(branch)]
    if not isinstance(schema, dict):
        return []
    names = [schema["name"]] if schema.get("type") == "record" else []
    for key in ("type", "items", "values"):
        names += _record_names(schema.get(key))
    for field in schema.get("fields", []):
        names += _record_names(field["type"])
    return names
