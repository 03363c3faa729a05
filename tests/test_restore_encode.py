"""Restore's encoded writes (no node): every column encoder gives, value by value, the bytes
the driver writes for a bound value ([int] length, then its ``serialize``), an encoded
BATCH is byte for byte the driver's own ``BatchMessage`` of the same statements, and a
partition's routing key is the driver's."""

from __future__ import annotations

import datetime
import io
import math
import struct
import uuid
from decimal import Decimal
from typing import Any

import pytest
from cassandra import ConsistencyLevel, cqltypes
from cassandra.protocol import BatchMessage
from cassandra.query import BatchType, SimpleStatement
from cassandra.util import Date, Duration, Time

from transforms.restore_encode import (
    _message_class,
    column_encoder,
    encode_bigint,
    encode_int,
    member_prefix,
    routing_key,
)

UDT = cqltypes.UserType.make_udt_class(
    "ks", "addr", ["street", "zip"], [cqltypes.UTF8Type, cqltypes.Int32Type]
)

# (driver type, values): edge values of every type a restore binds
CASES: list[tuple[Any, list[Any]]] = [
    (cqltypes.Int32Type, [0, 1, -1, 2**31 - 1, -(2**31)]),
    (cqltypes.LongType, [0, -1, 2**63 - 1, -(2**63)]),
    (cqltypes.DoubleType, [0.0, -0.0, 0.30000000000000004, math.inf, -math.inf, 1e308, 5]),
    (cqltypes.FloatType, [0.0, 0.10000000149011612, -3.5, math.inf]),
    (cqltypes.ShortType, [0, -(2**15), 2**15 - 1]),
    (cqltypes.ByteType, [0, -128, 127]),
    (cqltypes.BooleanType, [True, False]),
    (cqltypes.DateType, [0, -1, 1_700_000_000_123, 253_402_300_800_000, -62_135_596_800_001]),
    (cqltypes.DateType, [datetime.datetime(2020, 1, 2, 3, 4, 5, 678000), 12]),  # the driver's
    (cqltypes.UTF8Type, ["", "plain", "é ü 漢字 🙂", 'a,b"c\r\n']),
    (cqltypes.VarcharType, ["", "x" * 70_000]),
    (cqltypes.AsciiType, ["", "plain ascii"]),
    (cqltypes.BytesType, [b"", b"\x00\x01\xfe\xff", bytearray(b"ab")]),
    (cqltypes.UUIDType, [uuid.UUID(int=0), uuid.UUID("12345678-1234-5678-1234-567812345678")]),
    (cqltypes.TimeUUIDType, [uuid.UUID("a1b2c3d4-0000-11ee-8000-000000000001")]),
    (cqltypes.DecimalType, [Decimal("1.50"), Decimal("-0.000000000123"), Decimal("1500")]),
    (cqltypes.IntegerType, [0, -1, 2**200, -(2**200)]),
    (cqltypes.InetAddressType, ["192.168.1.10", "::1"]),
    (cqltypes.SimpleDateType, [Date(0), Date(-1), Date(2_932_896)]),
    (cqltypes.TimeType, [Time(0), Time(86_399_999_999_999)]),
    (cqltypes.DurationType, [Duration(1, 2, 3), Duration(-1, -2, -3)]),
    (cqltypes.ListType.apply_parameters([cqltypes.Int32Type]), [[1, 2], []]),
    (cqltypes.SetType.apply_parameters([cqltypes.UTF8Type]), [["a", "b"], []]),
    (
        cqltypes.MapType.apply_parameters([cqltypes.Int32Type, cqltypes.UTF8Type]),
        [{1: "one", 2: "two"}, {}],
    ),
    (cqltypes.TupleType.apply_parameters([cqltypes.Int32Type, cqltypes.UTF8Type]), [(1, "a")]),
    (UDT, [("Elm", 3), ("Oak", None)]),
]


def driver_bytes(cql_type: Any, value: Any, version: int) -> bytes:
    data = cql_type.serialize(value, version)
    return struct.pack(">i", len(data)) + data


@pytest.mark.parametrize("version", [4, 5])
@pytest.mark.parametrize(
    "cql_type, values", CASES, ids=[f"{t.__name__}-{i}" for i, (t, _) in enumerate(CASES)]
)
def test_column_encoder_gives_the_drivers_bytes(
    cql_type: Any, values: list[Any], version: int
) -> None:
    encode = column_encoder(cql_type, version)
    assert encode(values) == [driver_bytes(cql_type, v, version) for v in values]
    with_nulls = [None, *values, None]
    assert encode(with_nulls) == [None, *(driver_bytes(cql_type, v, version) for v in values), None]


def test_nan_encodes_as_the_driver_does() -> None:
    for cql_type in (cqltypes.DoubleType, cqltypes.FloatType):
        assert column_encoder(cql_type, 5)([math.nan]) == [driver_bytes(cql_type, math.nan, 5)]


def test_prepare_is_applied_before_encoding() -> None:
    encode = column_encoder(UDT, 5, lambda value: (value["street"], value["zip"]))
    assert encode([{"street": "Elm", "zip": 3}, None]) == [driver_bytes(UDT, ("Elm", 3), 5), None]


def test_values_the_driver_refuses_are_refused() -> None:
    with pytest.raises(struct.error):
        column_encoder(cqltypes.Int32Type, 5)([2**31])
    with pytest.raises(TypeError):
        column_encoder(cqltypes.UUIDType, 5)(["not a uuid"])
    with pytest.raises(TypeError):
        column_encoder(cqltypes.DateType, 5)(["2020-01-01"])


def test_bind_values_of_timestamp_and_ttl() -> None:
    assert encode_bigint(1_700_000_000_000_001) == driver_bytes(
        cqltypes.LongType, 1_700_000_000_000_001, 5
    )
    assert encode_int(86_400) == driver_bytes(cqltypes.Int32Type, 86_400, 5)


def test_routing_key_is_the_drivers() -> None:
    parts = [b"\x00\x00\x00\x07", b"abc", b""]
    encoded = [struct.pack(">i", len(p)) + p for p in parts]
    for n in (1, 2, 3):
        statement = SimpleStatement("SELECT 1")
        statement.routing_key = parts[:n]
        assert routing_key(encoded[:n]) == statement.routing_key


class Prepared:
    def __init__(self, query_id: bytes, width: int) -> None:
        self.query_id = query_id
        self.column_metadata = [None] * width


# (protocol version, keyspace): a keyspace is sent from protocol v5 on
VERSIONS_AND_KEYSPACES = [(4, None), (5, None), (5, "ks")]


@pytest.mark.parametrize("version, keyspace", VERSIONS_AND_KEYSPACES)
@pytest.mark.parametrize("timestamp", [None, 1_700_000_000_000_000])
@pytest.mark.parametrize("serial", [None, ConsistencyLevel.LOCAL_SERIAL])
def test_encoded_batch_is_the_drivers_batch_message(
    version: int, keyspace: str | None, timestamp: int | None, serial: Any
) -> None:
    statements = [
        (b"\x01" * 16, [encode_bigint(5)[4:], encode_int(0)[4:], b"text", b"\x00\x00\x00\x01"]),
        (b"\x02" * 16, [encode_int(7)[4:], b""]),
        (b"\x01" * 16, [encode_bigint(6)[4:], encode_int(10)[4:], b"", b"\x00\x00\x00\x02"]),
    ]
    like = BatchMessage(
        BatchType.UNLOGGED,
        [(True, qid, values) for qid, values in statements],
        ConsistencyLevel.LOCAL_QUORUM,
        serial,
        timestamp,
        keyspace,
    )
    expected = io.BytesIO()
    like.send_body(expected, version)
    members = b"".join(
        member_prefix(Prepared(qid, len(values)))
        + b"".join(struct.pack(">i", len(v)) + v for v in values)
        for qid, values in statements
    )
    encoded = _message_class()(members, len(statements), like)
    got = io.BytesIO()
    encoded.send_body(got, version)
    assert got.getvalue() == expected.getvalue()
    assert encoded.opcode == like.opcode


def test_the_encoded_writes_load_no_numpy() -> None:
    """``execute_encoded`` shares its driver request path with the columnar reader
    (``cassandra_session.send_adjusted``), whose module needs NumPy: the restore's encoder
    and that path import neither NumPy nor the driver until they are used."""
    import subprocess
    import sys

    code = (
        "import sys, transforms.restore_encode, transforms.cassandra_session; "
        "print(sorted({m.split('.')[0] for m in sys.modules} & {'numpy', 'cassandra'}))"
    )
    found = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert found == "[]\n"


# (driver type, NumPy values of a TypedColumn): every fixed-width wire form at its edges
TYPED_CASES: list[tuple[Any, list[Any], str]] = [
    (cqltypes.Int32Type, [0, 1, -1, 2**31 - 1, -(2**31)], "int64"),
    (cqltypes.LongType, [0, -1, 2**63 - 1, -(2**63), 1_700_000_000_000_001], "int64"),
    (cqltypes.ShortType, [0, -(2**15), 2**15 - 1], "int64"),
    (cqltypes.ByteType, [0, -128, 127], "int64"),
    (cqltypes.DateType, [0, -1, 253_402_300_800_000, -62_135_596_800_001], "int64"),
    (cqltypes.TimestampType, [1_700_000_000_123, -(2**63), 2**63 - 1], "int64"),
    (cqltypes.BooleanType, [True, False], "bool"),
    (
        cqltypes.DoubleType,
        [0.0, -0.0, 0.30000000000000004, math.inf, -math.inf, 1e308, 5e-324, math.nan],
        "float64",
    ),
    (cqltypes.FloatType, [0.0, -0.0, 0.10000000149011612, -3.5, math.inf, 1e-45], "float64"),
]


@pytest.mark.parametrize(
    "cql_type, values, dtype",
    TYPED_CASES,
    ids=[f"{t.__name__}-{i}" for i, (t, _, _) in enumerate(TYPED_CASES)],
)
def test_typed_columns_encode_as_the_driver(cql_type: Any, values: list[Any], dtype: str) -> None:
    import numpy

    from transforms.typed_column import TypedColumn

    encode = column_encoder(cql_type, 5)
    array = numpy.array(values, dtype)
    assert encode(TypedColumn(array)) == [driver_bytes(cql_type, v, 5) for v in values]
    nulls = numpy.zeros(len(values) + 2, bool)
    nulls[[0, -1]] = True
    padded = numpy.concatenate([array[:1], array, array[:1]])  # any value under a null
    expected = [None, *(driver_bytes(cql_type, v, 5) for v in values), None]
    assert encode(TypedColumn(padded, nulls)) == expected


def test_typed_values_without_a_wire_form_go_value_by_value() -> None:
    """Out of range for the type, a double that is not a float32, NaN as a float, another
    kind of value: the list path (the driver's bytes, or its error)."""
    import numpy

    from transforms.typed_column import TypedColumn

    with pytest.raises(struct.error):
        column_encoder(cqltypes.Int32Type, 5)(TypedColumn(numpy.array([1, 2**31])))
    with pytest.raises(struct.error):
        column_encoder(cqltypes.ByteType, 5)(TypedColumn(numpy.array([-129])))
    floats = [0.1, math.nan, 3.0]
    encode = column_encoder(cqltypes.FloatType, 5)
    assert encode(TypedColumn(numpy.array(floats))) == [
        driver_bytes(cqltypes.FloatType, v, 5) for v in floats
    ]
    with pytest.raises(OverflowError):
        encode(TypedColumn(numpy.array([1e39])))
    doubles = column_encoder(cqltypes.DoubleType, 5)(TypedColumn(numpy.array([1, -2])))
    assert doubles == [driver_bytes(cqltypes.DoubleType, v, 5) for v in (1, -2)]
    texts = column_encoder(cqltypes.UTF8Type, 5)
    with pytest.raises(AttributeError):  # the driver's own error for an int as text
        texts(TypedColumn(numpy.array([1])))
    assert column_encoder(cqltypes.LongType, 5)(TypedColumn(numpy.array([], "int64"))) == []


@pytest.mark.parametrize("cql_type", [cqltypes.UTF8Type, cqltypes.VarcharType, cqltypes.AsciiType])
def test_text_columns_encode_as_the_driver(cql_type: Any) -> None:
    """A TextColumn (the CSV reader's Arrow strings): empty texts, nulls, quotes and line
    breaks, long texts, a slice of a larger array; non-ASCII where the type allows it."""
    import pyarrow

    from transforms.typed_column import TextColumn

    texts = ["", None, "plain", 'a,b"c\r\n', "x" * 70_000, None, ""]
    if cql_type is not cqltypes.AsciiType:
        texts += ["é ü 漢字 🙂", "\x00"]
    expected = [None if t is None else driver_bytes(cql_type, t, 5) for t in texts]
    encode = column_encoder(cql_type, 5)
    assert encode(TextColumn(pyarrow.array(texts, pyarrow.string()))) == expected
    sliced = pyarrow.array(["skipped", *texts, "skipped"], pyarrow.string()).slice(1, len(texts))
    assert encode(TextColumn(sliced)) == expected
    assert encode(TextColumn(pyarrow.array([None, None], pyarrow.string()))) == [None, None]
    assert encode(TextColumn(pyarrow.array([], pyarrow.string()))) == []


def test_text_columns_the_driver_refuses_are_refused() -> None:
    import pyarrow

    from transforms.typed_column import TextColumn

    with pytest.raises(UnicodeError):
        column_encoder(cqltypes.AsciiType, 5)(TextColumn(pyarrow.array(["a", "é"])))
    inet = column_encoder(cqltypes.InetAddressType, 5)  # no text form: the driver's serializer
    assert inet(TextColumn(pyarrow.array(["::1", None]))) == [
        driver_bytes(cqltypes.InetAddressType, "::1", 5),
        None,
    ]
