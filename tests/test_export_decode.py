"""Tests for transforms.export_decode: unit files written by the exporter's own writers
(transforms.sinks) decode back to exactly the values they were written from.

Every case gives a value as the reader hands it to the writer (the driver's shapes: int
milliseconds for a top-level timestamp, datetimes nested in collections, namedtuples for
UDTs) and the value decoding must return. Values are compared through ``canon``, which
keeps types, order, float bits and decimal scale, so ``1 == 1.0 == True`` cannot pass.
"""

from __future__ import annotations

import collections
import datetime
import gzip
import json
import math
import struct
import uuid
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from cassandra.util import Date, Duration, OrderedMap, Time

from transforms.export_decode import (
    DecodedRow,
    ExportFileError,
    ExportLayout,
    UdtValue,
    read_unit_rows,
)
from transforms.formats import SinkConfig, get_format
from transforms.normalize import normalize_row_fn
from transforms.table_plan import CLUSTERING, PARTITION_KEY, REGULAR, TablePlan, build_table_plan


def f32(value: float) -> float:
    return struct.unpack("<f", struct.pack("<f", value))[0]


NAN, INF = float("nan"), float("inf")
Addr = collections.namedtuple("Addr", ["street", "zip", "tags"])
Odd = collections.namedtuple("Odd", ["a_b", "n2nd"])  # the driver's names for "a-b", "2nd"
UUID1 = uuid.UUID("123e4567-e89b-42d3-a456-426614174000")
TIMEUUID = uuid.UUID("e7f5b5a0-8b5b-11ee-b9d1-0242ac120002")
TEXT = "héllo, \"wörld\"\nline2 ✓ 'q'\r\n;\t"
DT = datetime.datetime(2023, 11, 14, 22, 13, 20, 123000)
DT_BEFORE_EPOCH = datetime.datetime(1969, 12, 31, 23, 59, 59, 999000)
USER_TYPES = {
    "addr": (("street", "zip", "tags"), ("text", "int", "frozen<set<text>>")),
    "odd": (("a-b", "2nd"), ("int", "text")),
}

# column name -> (CQL type, [(value as written, value decoded), ...]); None is null.
CASES: dict[str, tuple[str, list[tuple[Any, Any]]]] = {
    "c_text": ("text", [(TEXT, TEXT), ("", ""), ("NULL", "NULL"), ('"', '"'), (None, None)]),
    "c_ascii": ("ascii", [("plain", "plain"), ("", ""), (",", ",")]),
    "c_varchar": ("varchar", [("v ✓", "v ✓")]),
    "c_tinyint": ("tinyint", [(-128, -128), (127, 127), (0, 0)]),
    "c_smallint": ("smallint", [(-32768, -32768), (32767, 32767)]),
    "c_int": ("int", [(-(2**31), -(2**31)), (2**31 - 1, 2**31 - 1)]),
    "c_bigint": ("bigint", [(-(2**63), -(2**63)), (2**63 - 1, 2**63 - 1)]),
    "c_varint": (
        "varint",
        [(-(10**60), -(10**60)), (0, 0), (7 * 10**5000 + 1, 7 * 10**5000 + 1)],
    ),
    "c_decimal": (
        "decimal",
        [
            (Decimal("1.50"), Decimal("1.50")),
            (
                Decimal("-12345678901234567890.1234567890"),
                Decimal("-12345678901234567890.1234567890"),
            ),
            (Decimal("0.000000000123"), Decimal("0.000000000123")),
            (Decimal("1E-1200"), Decimal("1E-1200")),
            (Decimal("-0"), Decimal("-0")),
            # a positive exponent is written in scientific notation: its scale is kept
            (Decimal("1.5E+3"), Decimal("1.5E+3")),
            (Decimal("-1E+10"), Decimal("-1E+10")),
        ],
    ),
    "c_float": (
        "float",
        [
            (f32(0.1), f32(0.1)),
            (NAN, NAN),
            (INF, INF),
            (-INF, -INF),
            (f32(3.4028234663852886e38), f32(3.4028234663852886e38)),
            (f32(1.401298464324817e-45), f32(1.401298464324817e-45)),
            (-0.0, -0.0),
            (16777216.0, 16777216.0),
        ],
    ),
    "c_double": (
        "double",
        [
            (0.30000000000000004, 0.30000000000000004),
            (NAN, NAN),
            (INF, INF),
            (-INF, -INF),
            (1e16, 1e16),
            (5e-324, 5e-324),
            (-0.0, -0.0),
        ],
    ),
    "c_boolean": ("boolean", [(True, True), (False, False)]),
    "c_blob": ("blob", [(b"\x00\x01\xfe\xff", b"\x00\x01\xfe\xff"), (b"", b"")]),
    "c_uuid": ("uuid", [(UUID1, UUID1)]),
    "c_timeuuid": ("timeuuid", [(TIMEUUID, TIMEUUID)]),
    "c_timestamp": (
        "timestamp",
        [
            (1_700_000_000_123, 1_700_000_000_123),
            (-1, -1),
            (0, 0),
            (253_402_300_800_000, 253_402_300_800_000),  # year 10000: written as the integer
            (-62_135_596_800_001, -62_135_596_800_001),  # before year 1
            (-(2**63), -(2**63)),
        ],
    ),
    "c_date": (
        "date",
        [
            (Date(0), Date(0)),
            (Date(-719_162), Date(-719_162)),  # 0001-01-01
            (Date(2_932_896), Date(2_932_896)),  # 9999-12-31
            (Date(2_932_897), Date(2_932_897)),  # year 10000: days as the integer
            (Date(-719_163), Date(-719_163)),  # year 0
            (Date(-(2**31)), Date(-(2**31))),
            (Date(2**31 - 1), Date(2**31 - 1)),
        ],
    ),
    "c_time": (
        "time",
        [
            (Time(0), Time(0)),
            (Time(86_399_999_999_999), Time(86_399_999_999_999)),
            (Time(1), Time(1)),
        ],
    ),
    "c_duration": (
        "duration",
        [
            (Duration(14, 3, 14_706_007_000_000), Duration(14, 3, 14_706_007_000_000)),
            (Duration(0, 0, -3_600_000_000_000), Duration(0, 0, -3_600_000_000_000)),
            (Duration(0, 0, 0), Duration(0, 0, 0)),
            (Duration(-13, -2, -500_000_000), Duration(-13, -2, -500_000_000)),
            (Duration(0, 1, -5), Duration(0, 1, -5)),  # mixed signs, hand-built
            (Duration(1, -1, 1_500_000_000), Duration(1, -1, 1_500_000_000)),
            (Duration(0, 0, 2**63 - 1), Duration(0, 0, 2**63 - 1)),
        ],
    ),
    "c_inet": ("inet", [("192.168.1.10", "192.168.1.10"), ("2001:db8::1", "2001:db8::1")]),
    "c_list": ("list<int>", [([3, 1, 2], [3, 1, 2]), ([], []), (None, None)]),
    "c_set": ("set<text>", [(["a", "b", ""], ["a", "b", ""])]),
    "c_map": ("map<text, int>", [({"z": 1, "a": 2, "": 3}, {"z": 1, "a": 2, "": 3})]),
    "c_map_int": ("map<int, text>", [({2: "two", -1: "one"}, {2: "two", -1: "one"})]),
    "c_map_ts": (
        "map<timestamp, blob>",
        [({DT: b"\x01", DT_BEFORE_EPOCH: b""}, {1_700_000_000_123: b"\x01", -1: b""})],
    ),
    "c_map_misc": (
        "frozen<map<boolean, double>>",
        [({False: -INF, True: 0.5}, {False: -INF, True: 0.5})],
    ),
    "c_map_uuid": ("map<uuid, decimal>", [({UUID1: Decimal("2.50")}, {UUID1: Decimal("2.50")})]),
    "c_map_list_key": (
        "map<frozen<list<int>>, int>",
        [({(1, 2): 3, (): 4}, OrderedMap([([1, 2], 3), ([], 4)]))],
    ),
    "c_map_udt_key": (
        "map<frozen<addr>, int>",
        [
            (
                {Addr("a", 1, None): 5},
                OrderedMap([(UdtValue(street="a", zip=1, tags=None), 5)]),
            )
        ],
    ),
    "c_map_tuple_key": (
        "map<frozen<tuple<int, text>>, float>",
        [({(1, "x"): f32(0.1), (2, None): NAN}, {(1, "x"): f32(0.1), (2, None): NAN})],
    ),
    "c_nested": (
        "map<text, frozen<list<frozen<set<int>>>>>",
        [({"k": [[1, 2], []]}, {"k": [[1, 2], []]})],
    ),
    "c_list_ts": ("frozen<list<timestamp>>", [([DT, DT_BEFORE_EPOCH], [1_700_000_000_123, -1])]),
    "c_set_date": ("set<date>", [([Date(-800_000), Date(5)], [Date(-800_000), Date(5)])]),
    "c_list_misc": (
        "list<frozen<tuple<duration, time, blob, varint, inet>>>",
        [
            (
                [(Duration(1, 2, 3), Time(4), b"\xff", 10**30, "::1")],
                [(Duration(1, 2, 3), Time(4), b"\xff", 10**30, "::1")],
            )
        ],
    ),
    "c_set_float": ("set<float>", [([-INF, f32(0.1), NAN], [-INF, f32(0.1), NAN])]),
    "c_tuple": (
        "tuple<int, text, double>",
        [((1, "one", 2.5), (1, "one", 2.5)), ((None, "", None), (None, "", None))],
    ),
    "c_udt": (
        "addr",
        [
            (
                Addr("Main St", 12345, ["b", "home"]),
                UdtValue(street="Main St", zip=12345, tags=["b", "home"]),
            ),
            (Addr(None, None, None), UdtValue(street=None, zip=None, tags=None)),
        ],
    ),
    "c_frozen_udt": ("frozen<odd>", [(Odd(7, "x"), UdtValue({"a-b": 7, "2nd": "x"}))]),
    "c_vector": ("vector<float, 3>", [([1.0, -2.5, f32(0.1)], [1.0, -2.5, f32(0.1)])]),
    "c_vector_text": ("vector<text, 2>", [(["", "a"], ["", "a"])]),
    "c_counter": ("counter", [(-(2**63), -(2**63)), (5, 5)]),
}

ROWS = max(len(values) for _, values in CASES.values())
# Writetimes (micros) and TTLs by row: out-of-range years are written as integers.
WRITETIMES = [
    1_700_000_000_123_456,
    0,
    -1,
    253_402_300_800_000_007,
    -62_135_596_800_000_001,
    2**63 - 1,
    1,
    -(2**63) + 1,
]
TTLS = [None, 1, 630_720_000, 86_400, 7, None, 2, 3]


def canon(value: Any) -> Any:
    """A comparable form that keeps type, order, float bits and decimal scale."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, int):
        return ("int", value)
    if isinstance(value, float):
        return ("float", struct.pack("<d", value) if not math.isnan(value) else "nan")
    if isinstance(value, Decimal):
        return ("decimal", value.as_tuple())
    if isinstance(value, UdtValue):
        return ("udt", [(k, canon(v)) for k, v in value.items()])
    if isinstance(value, dict | OrderedMap):
        return (type(value).__name__, [(canon(k), canon(v)) for k, v in value.items()])
    if isinstance(value, list):
        return ("list", [canon(v) for v in value])
    if isinstance(value, tuple):
        return ("tuple", [canon(v) for v in value])
    return (type(value).__name__, value)


def all_types_plan() -> TablePlan:
    columns = [("pk", "int", PARTITION_KEY), ("ck", "text", CLUSTERING)]
    columns += [(name, cql_type, REGULAR) for name, (cql_type, _) in CASES.items()]
    return build_table_plan(
        keyspace="ks",
        table="all_types",
        column_types=columns,
        user_types=USER_TYPES,
        release_version="5.0.8",
        writetime_columns="*",
        ttl_columns="*",
    )


def element_count(value: Any, cql_type: str) -> int:
    if value is None:
        return 0
    return 3 if cql_type == "addr" else len(value)


def source_rows(plan: TablePlan) -> list[tuple[Any, ...]]:
    """Rows as the reader yields them: values, writetimes (lists for multicell), TTLs."""
    by_name = plan.columns_by_name
    rows = []
    for i in range(ROWS):
        values: list[Any] = [i, f"row{i}"]
        for _, cases in CASES.values():
            values.append(cases[i][0] if i < len(cases) else None)
        meta = []
        for names, times in ((plan.writetime_columns, WRITETIMES), (plan.ttl_columns, TTLS)):
            for j, name in enumerate(names):
                column = by_name[name]
                value = values[[c.name for c in plan.columns].index(name)]
                t = times[(i + j) % len(times)]
                if column.cql_type.is_multicell:
                    count = element_count(value, CASES[name][0])
                    # per element: distinct times, None where a UDT field is null
                    elements = [None if t is None else t - k for k in range(count)]
                    if CASES[name][0] == "addr" and value is not None:
                        elements = [
                            e if f is not None else None
                            for e, f in zip(elements, value, strict=True)
                        ]
                    meta.append(elements if value is not None else None)
                else:
                    meta.append(None if value is None else t)
        rows.append(tuple(values) + tuple(meta))
    return rows


def expected_rows(plan: TablePlan, policy: str) -> list[DecodedRow]:
    normalize = normalize_row_fn(plan, policy)
    n_values = len(plan.columns)
    n_wt = len(plan.writetime_columns)
    out = []
    for i, row in enumerate(source_rows(plan)):
        row = normalize(row) if normalize else row
        values: dict[str, Any] = {"pk": i, "ck": f"row{i}"}
        for name, (_, cases) in CASES.items():
            values[name] = cases[i][1] if i < len(cases) else None
        out.append(
            DecodedRow(
                values,
                dict(zip(plan.writetime_columns, row[n_values : n_values + n_wt], strict=True)),
                dict(zip(plan.ttl_columns, row[n_values + n_wt :], strict=True)),
            )
        )
    return out


def manifest_of(plan: TablePlan, sink: SinkConfig, policy: str) -> dict[str, Any]:
    """The parts of _manifest/export.json that the launcher writes and decoding reads."""
    return {
        "export_config": {
            "format": sink.format,
            "compression": sink.compression,
            "delimiter": sink.delimiter,
            "null_value": sink.null_value,
            "writetime_format": sink.writetime_format,
            "avro_codec": sink.avro_codec,
            "collection_writetime": policy,
        },
        "plan": plan.to_json(),
    }


def write_unit(path: Path | str, plan: TablePlan, sink: SinkConfig, policy: str, rows: list) -> str:
    normalize = normalize_row_fn(plan, policy)
    rows = [normalize(r) for r in rows] if normalize else rows
    fmt = get_format(sink.format)
    target = str(path) + fmt.file_extension(sink)
    writer = fmt.open_writer(target, plan, sink, policy)
    half = len(rows) // 2
    writer.write_rows(rows[:half])  # two batches: separators between batches too
    writer.write_rows(rows[half:])
    writer.close()
    return target


def assert_rows_equal(actual: list[DecodedRow], expected: list[DecodedRow]) -> None:
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        for part in ("values", "writetimes", "ttls"):
            got_part, want_part = getattr(got, part), getattr(want, part)
            assert list(got_part) == list(want_part)
            for name in want_part:
                assert canon(got_part[name]) == canon(want_part[name]), (
                    part,
                    name,
                    got.values["pk"],
                )


SINKS = [
    (SinkConfig("csv", "none", ",", "", "iso"), "list"),
    (SinkConfig("csv", "gzip", ";", "NULL", "micros"), "max"),
    (SinkConfig("csv", "zstd", "\t", "", "iso"), "min"),
    (SinkConfig("csv", "none", "|", "\\N", "micros"), "list"),
    (SinkConfig("jsonl", "gzip", writetime_format="iso"), "list"),
    (SinkConfig("jsonl", "none", writetime_format="micros"), "max"),
    (SinkConfig("json", "zstd", writetime_format="iso"), "list"),
    (SinkConfig("json", "none", writetime_format="micros"), "min"),
    (SinkConfig("avro", avro_codec="deflate"), "list"),
    (SinkConfig("avro", avro_codec="null"), "max"),
]


@pytest.mark.parametrize(("sink", "policy"), SINKS, ids=lambda s: getattr(s, "extension", s))
def test_every_type_round_trips(tmp_path: Path, sink: SinkConfig, policy: str) -> None:
    plan = all_types_plan()
    path = write_unit(tmp_path / "part-00000", plan, sink, policy, source_rows(plan))
    layout = ExportLayout.from_manifest(manifest_of(plan, sink, policy))
    assert_rows_equal(list(read_unit_rows(path, layout)), expected_rows(plan, policy))


@pytest.mark.parametrize("chunk_rows", [1, 2, 3, 1000])
@pytest.mark.parametrize(("sink", "policy"), SINKS, ids=lambda s: getattr(s, "extension", s))
def test_rows_decoded_a_chunk_at_a_time(
    tmp_path: Path, sink: SinkConfig, policy: str, chunk_rows: int
) -> None:
    """Any chunk size gives the same rows, in order (quoted and unquoted CSV, JSON lines
    split by lines; JSON and Avro sliced after parsing)."""
    plan = all_types_plan()
    path = write_unit(tmp_path / "part-00000", plan, sink, policy, source_rows(plan))
    layout = ExportLayout.from_manifest(manifest_of(plan, sink, policy))
    rows = list(read_unit_rows(path, layout, chunk_rows=chunk_rows))
    assert_rows_equal(rows, expected_rows(plan, policy))


@pytest.mark.parametrize("fmt", ["csv", "csv-quoted", "jsonl", "json", "avro"])
@pytest.mark.parametrize("chunk_rows", [1, 7, 50])
def test_small_unit_in_chunks(tmp_path: Path, fmt: str, chunk_rows: int) -> None:
    """50 rows in chunks of 1, 7 (the last chunk short) and 50 (one chunk): every row once,
    in file order."""
    plan = small_plan()
    text = "q" if fmt == "csv-quoted" else "plain"  # a comma makes the CSV writer quote
    data = [
        (i, f"{text} {i}" + ("," if fmt == "csv-quoted" else ""), [i], i, [i], None, [i])
        for i in range(50)
    ]
    sink = SinkConfig(fmt.removesuffix("-quoted"), writetime_format="micros")
    path = write_unit(tmp_path / "part", plan, sink, "list", data)
    layout = ExportLayout.from_manifest(manifest_of(plan, sink, "list"))
    rows = list(read_unit_rows(path, layout, 50, chunk_rows=chunk_rows))
    assert [(r.values["pk"], r.values["s"]) for r in rows] == [(d[0], d[1]) for d in data]


def test_bad_value_in_a_later_chunk(tmp_path: Path) -> None:
    """The file's structure is checked before the first row; a bad value in a later chunk
    fails when that chunk is decoded, after the earlier chunks' rows, naming the field."""
    path, layout = written(tmp_path, SinkConfig("csv", writetime_format="micros"))
    rewrite(path, lambda b: b.replace(b"\r\n30,", b"\r\nthirty,", 1))
    rows = read_unit_rows(path, layout, 50, chunk_rows=10)
    got = []
    with pytest.raises(ExportFileError) as caught:
        for row in rows:
            got.append(row.values["pk"])
    assert got == list(range(30))
    assert caught.value.reason == "field 'pk': bad value (ValueError: 'thirty' is not an integer)"


def test_wrong_field_count_in_a_later_chunk_names_its_record(tmp_path: Path) -> None:
    path, layout = written(tmp_path, SinkConfig("csv", writetime_format="micros"))
    rewrite(path, lambda b: b.replace(b"\r\n23,", b"\r\n23,extra,", 1))
    with pytest.raises(ExportFileError) as caught:
        list(read_unit_rows(path, layout, chunk_rows=4))
    assert caught.value.reason == "CSV record 25 has 8 fields, the header 7"


def test_row_count_checked_before_the_first_row(tmp_path: Path) -> None:
    """A file with fewer rows than its marker fails before any row is handed out."""
    for fmt in ("csv", "jsonl"):
        (tmp_path / fmt).mkdir()
        path, layout = written(tmp_path / fmt, SinkConfig(fmt, writetime_format="micros"))
        with pytest.raises(ExportFileError) as caught:
            read_unit_rows(path, layout, 51, chunk_rows=10)
        assert caught.value.reason == (
            "holds 50 rows but its export marker records 51: the file is truncated or was replaced"
        )


def test_layout_from_manifest() -> None:
    plan = all_types_plan()
    sink = SinkConfig("csv", "gzip", ";", "NULL", "micros")
    layout = ExportLayout.from_manifest(manifest_of(plan, sink, "list"))
    assert (layout.format, layout.compression, layout.delimiter, layout.null_value) == (
        "csv",
        "gzip",
        ";",
        "NULL",
    )
    assert (layout.writetime_format, layout.collection_policy) == ("micros", "list")
    assert layout.field_names == plan.field_names
    by_name = {f.name: f for f in layout.fields}
    assert (by_name["c_list"].role, by_name["c_list"].per_element) == ("value", False)
    assert (by_name["c_list_writetime"].role, by_name["c_list_writetime"].column) == (
        "writetime",
        "c_list",
    )
    assert by_name["c_list_writetime"].per_element is True
    assert by_name["c_udt_ttl"].per_element is True
    assert by_name["c_frozen_udt_writetime"].per_element is False
    assert str(by_name["c_nested"].cql_type) == "map<text, frozen<list<frozen<set<int>>>>>"


def test_layout_takes_types_from_schema_or_arguments() -> None:
    plan = all_types_plan()
    manifest = manifest_of(plan, SinkConfig(), "max")
    for column in manifest["plan"]["columns"]:
        del column["type"]
    del manifest["plan"]["user_types"]
    with pytest.raises(ValueError, match="records no CQL type for column 'pk'"):
        ExportLayout.from_manifest(manifest)
    schema_types = {n: [[f, t] for f, t in zip(*ft, strict=True)] for n, ft in USER_TYPES.items()}
    column_types = {c.name: str(c.cql_type) for c in plan.columns}
    from_args = ExportLayout.from_manifest(manifest, column_types, schema_types)
    manifest["schema"] = {
        "columns": [
            {"name": c.name, "cql_type": str(c.cql_type), "kind": c.kind} for c in plan.columns
        ],
        "types": schema_types,
    }
    from_schema = ExportLayout.from_manifest(manifest)
    assert (
        from_args
        == from_schema
        == ExportLayout.from_manifest(manifest_of(plan, SinkConfig(), "max"))
    )
    with pytest.raises(ValueError, match="column 'c_int' is int in the manifest, not bigint"):
        ExportLayout.from_manifest(manifest, {"c_int": "bigint"})


def test_udt_value_binds_with_the_driver() -> None:
    from cassandra.cqltypes import Int32Type, UserType, UTF8Type

    udt = UserType.make_udt_class("ks", "u", ("street", "zip"), (UTF8Type, Int32Type))
    value = UdtValue(street="a", zip=1)
    assert udt.serialize(value, 4) == b"\x00\x00\x00\x01a\x00\x00\x00\x04\x00\x00\x00\x01"
    assert value == {"street": "a", "zip": 1}
    assert (value[0], value[1], value["zip"]) == ("a", 1, 1)


# --- CSV: null and empty text ----------------------------------------------------------------


def small_plan() -> TablePlan:
    return build_table_plan(
        keyspace="ks",
        table="t",
        column_types=[
            ("pk", "int", PARTITION_KEY),
            ("s", "text", REGULAR),
            ("l", "list<int>", REGULAR),
        ],
        user_types={},
        release_version="5.0.8",
        writetime_columns="*",
        ttl_columns="*",
    )


@pytest.mark.parametrize("null_value", ["", "NULL"])
def test_csv_null_and_empty_text_stay_apart(tmp_path: Path, null_value: str) -> None:
    plan = small_plan()
    sink = SinkConfig("csv", null_value=null_value)
    rows = [
        (1, "", [1], 10, [5], None, None),
        (2, None, None, None, None, None, None),
        (3, "NULL", None, 7, None, 9, None),
    ]
    path = write_unit(tmp_path / "p", plan, sink, "list", rows)
    decoded = list(
        read_unit_rows(path, ExportLayout.from_manifest(manifest_of(plan, sink, "list")))
    )
    assert [r.values for r in decoded] == [
        {"pk": 1, "s": "", "l": [1]},
        {"pk": 2, "s": None, "l": None},
        {"pk": 3, "s": "NULL", "l": None},
    ]
    assert [r.writetimes for r in decoded] == [
        {"s": 10, "l": [5]},
        {"s": None, "l": None},
        {"s": 7, "l": None},
    ]
    assert [r.ttls for r in decoded] == [
        {"s": None, "l": None},
        {"s": None, "l": None},
        {"s": 9, "l": None},
    ]


def test_iso_writetime_is_exact_integer_micros(tmp_path: Path) -> None:
    plan = small_plan()
    sink = SinkConfig("csv", writetime_format="iso")
    micros = [1_700_000_000_000_000, 1_699_999_999_999_999, 253_402_300_799_999_999, 2**63 - 1]
    rows = [(i, "x", None, m, None, None, None) for i, m in enumerate(micros)]
    path = write_unit(tmp_path / "p", plan, sink, "max", rows)
    text = Path(path).read_text()
    assert "2023-11-14T22:13:20.000000Z" in text and "9999-12-31T23:59:59.999999Z" in text
    layout = ExportLayout.from_manifest(manifest_of(plan, sink, "max"))
    assert [r.writetimes["s"] for r in read_unit_rows(path, layout)] == micros


# --- errors ------------------------------------------------------------------------------------


def written(tmp_path: Path, sink: SinkConfig, rows: int = 50) -> tuple[str, ExportLayout]:
    plan = small_plan()
    data = [(i, f'text {i}, "q"', [i, i + 1], i, [i, i], None, [i, None]) for i in range(rows)]
    path = write_unit(tmp_path / "part", plan, sink, "list", data)
    return path, ExportLayout.from_manifest(manifest_of(plan, sink, "list"))


def error_of(path: str, layout: ExportLayout) -> str:
    with pytest.raises(ExportFileError) as caught:
        list(read_unit_rows(path, layout))
    assert caught.value.path == path
    message = str(caught.value)
    assert message == f"{path}: {caught.value.reason}" and "\n" not in message
    return caught.value.reason


def rewrite(path: str, change: Any) -> None:
    Path(path).write_bytes(change(Path(path).read_bytes()))


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json"])
def test_truncated_gzip(tmp_path: Path, fmt: str) -> None:
    path, layout = written(tmp_path, SinkConfig(fmt, "gzip"))
    rewrite(path, lambda b: b[: len(b) // 2])
    assert error_of(path, layout) == (
        "bad gzip data: EOFError: Compressed file ended before the end-of-stream marker was reached"
    )


def test_corrupt_gzip(tmp_path: Path) -> None:
    path, layout = written(tmp_path, SinkConfig("csv", "gzip"))
    rewrite(path, lambda b: b"XX" + b[2:])
    assert error_of(path, layout) == "bad gzip data: BadGzipFile: Not a gzipped file (b'XX')"


def test_truncated_zstd(tmp_path: Path) -> None:
    path, layout = written(tmp_path, SinkConfig("jsonl", "zstd"))
    rewrite(path, lambda b: b[:-3])
    assert error_of(path, layout) == (
        "bad zstd data: EOFError: compressed data ends before the end of its frame"
    )


def test_empty_compressed_file(tmp_path: Path) -> None:
    path, layout = written(tmp_path, SinkConfig("csv", "gzip"))
    rewrite(path, lambda b: b"")
    assert error_of(path, layout) == "empty file, not gzip data"


def test_missing_file(tmp_path: Path) -> None:
    _, layout = written(tmp_path, SinkConfig("csv"))
    reason = error_of(str(tmp_path / "absent.csv"), layout)
    assert reason.startswith("cannot read: ")


def test_csv_truncated_mid_record(tmp_path: Path) -> None:
    path, layout = written(tmp_path, SinkConfig("csv"))
    rewrite(path, lambda b: b[:-5])
    assert error_of(path, layout) == "truncated: the last CSV record has no line end"


def test_csv_unbalanced_quote(tmp_path: Path) -> None:
    path, layout = written(tmp_path, SinkConfig("csv"))
    rewrite(path, lambda b: b.replace(b'"q""', b'"q"', 1))
    assert error_of(path, layout) == "malformed CSV: an unbalanced or stray quote"


def test_csv_wrong_field_count(tmp_path: Path) -> None:
    path, layout = written(tmp_path, SinkConfig("csv", writetime_format="micros"))
    rewrite(path, lambda b: b.replace(b"\r\n3,", b"\r\n3,extra,", 1))
    assert error_of(path, layout) == "CSV record 5 has 8 fields, the header 7"


def test_csv_header_mismatch(tmp_path: Path) -> None:
    path, layout = written(tmp_path, SinkConfig("csv"))
    rewrite(path, lambda b: b.replace(b"s_ttl", b"s_tt1", 1))
    assert error_of(path, layout) == (
        "CSV header pk,s,l,s_writetime,l_writetime,s_tt1,l_ttl is not the layout's "
        "pk,s,l,s_writetime,l_writetime,s_ttl,l_ttl"
    )


def test_csv_bad_value(tmp_path: Path) -> None:
    path, layout = written(tmp_path, SinkConfig("csv", writetime_format="micros"))
    rewrite(path, lambda b: b.replace(b"\r\n3,", b"\r\nthree,", 1))
    assert error_of(path, layout) == "field 'pk': bad value (ValueError: 'three' is not an integer)"


def test_jsonl_bad_line(tmp_path: Path) -> None:
    path, layout = written(tmp_path, SinkConfig("jsonl"))
    rewrite(path, lambda b: b.replace(b'{"pk":3,', b'{"pk":3', 1))
    assert error_of(path, layout) == "bad JSON on line 4: Expecting ',' delimiter"


def test_jsonl_truncated(tmp_path: Path) -> None:
    path, layout = written(tmp_path, SinkConfig("jsonl"))
    rewrite(path, lambda b: b[:-1])
    assert error_of(path, layout) == "truncated: the last JSON line has no line end"


def test_json_truncated(tmp_path: Path) -> None:
    path, layout = written(tmp_path, SinkConfig("json"))
    rewrite(path, lambda b: b[:-4])
    assert error_of(path, layout) == "truncated: the JSON array has no closing line"


def test_json_wrong_fields(tmp_path: Path) -> None:
    path, layout = written(tmp_path, SinkConfig("jsonl"))
    rewrite(path, lambda b: b.replace(b'"s_ttl"', b'"x_ttl"', 1))
    assert error_of(path, layout) == (
        "JSON row 1 has fields ['pk', 's', 'l', 's_writetime', 'l_writetime', 'x_ttl', 'l_ttl'], "
        "not the layout's ['pk', 's', 'l', 's_writetime', 'l_writetime', 's_ttl', 'l_ttl']"
    )


def test_avro_truncated(tmp_path: Path) -> None:
    path, layout = written(tmp_path, SinkConfig("avro"), rows=2000)
    rewrite(path, lambda b: b[: len(b) - 100])
    assert error_of(path, layout).startswith("bad Avro data: ")


def test_avro_corrupt_block(tmp_path: Path) -> None:
    path, layout = written(tmp_path, SinkConfig("avro"), rows=2000)
    rewrite(path, lambda b: b[: len(b) // 2] + bytes(64) + b[len(b) // 2 + 64 :])
    assert error_of(path, layout).startswith("bad Avro data: ")


def test_avro_fields_not_the_layout(tmp_path: Path) -> None:
    path, _ = written(tmp_path, SinkConfig("avro"))
    other = build_table_plan(
        keyspace="ks",
        table="t",
        column_types=[("pk", "int", PARTITION_KEY), ("s", "text", REGULAR)],
        user_types={},
        release_version="5.0.8",
    )
    layout = ExportLayout.from_manifest(manifest_of(other, SinkConfig("avro"), "list"))
    assert error_of(path, layout) == (
        "Avro fields pk,s,l,s_writetime,l_writetime,s_ttl,l_ttl are not the layout's "
        "pk,s,s_writetime"
    )


def test_gzip_members_are_read_whole(tmp_path: Path) -> None:
    """Two gzip members (a file appended to) decode as one text."""
    path, layout = written(tmp_path, SinkConfig("jsonl", "gzip"), rows=3)
    body = gzip.decompress(Path(path).read_bytes())
    Path(path).write_bytes(gzip.compress(body[:10]) + gzip.compress(body[10:]))
    assert [r.values["pk"] for r in read_unit_rows(path, layout)] == [0, 1, 2]
    assert json.loads(body.splitlines()[0])["pk"] == 0


@pytest.mark.parametrize(
    "sink",
    [SinkConfig("csv"), SinkConfig("jsonl", "gzip"), SinkConfig("json"), SinkConfig("avro")],
    ids=lambda s: get_format(s.format).file_extension(s),
)
def test_unit_without_rows(tmp_path: Path, sink: SinkConfig) -> None:
    plan = small_plan()
    path = write_unit(tmp_path / "empty", plan, sink, "list", [])
    layout = ExportLayout.from_manifest(manifest_of(plan, sink, "list"))
    assert list(read_unit_rows(path, layout)) == []


def test_csv_header_only_names_checked(tmp_path: Path) -> None:
    plan = small_plan()
    path = write_unit(tmp_path / "empty", plan, SinkConfig("csv"), "list", [])
    rewrite(path, lambda b: b.replace(b"pk,", b"pk2,"))
    layout = ExportLayout.from_manifest(manifest_of(plan, SinkConfig("csv"), "list"))
    assert error_of(path, layout) == (
        "CSV header pk2,s,l,s_writetime,l_writetime,s_ttl,l_ttl is not the layout's "
        "pk,s,l,s_writetime,l_writetime,s_ttl,l_ttl"
    )


@pytest.mark.parametrize(
    "sink",
    [SinkConfig("csv", "zstd"), SinkConfig("avro")],
    ids=lambda s: get_format(s.format).file_extension(s),
)
def test_reads_through_beam_filesystems(sink: SinkConfig) -> None:
    """A unit on another Beam filesystem (memory://, as gs:// or s3://) reads the same."""
    from tests import memfs

    plan = small_plan()
    rows = [(1, "a", [1, 2], 10, [10, 11], 5, [5, None])]
    path = write_unit("memory://decode-test/part", plan, sink, "list", rows)
    try:
        layout = ExportLayout.from_manifest(manifest_of(plan, sink, "list"))
        (row,) = read_unit_rows(path, layout)
        assert (row.values, row.writetimes, row.ttls) == (
            {"pk": 1, "s": "a", "l": [1, 2]},
            {"s": 10, "l": [10, 11]},
            {"s": 5, "l": [5, None]},
        )
    finally:
        memfs.reset("memory://decode-test/")


# --- RFC 3339 columns read by NumPy -----------------------------------------------------------

_YEAR_1_MILLIS = -62_135_596_800_000
_YEAR_9999_END_MILLIS = 253_402_300_799_999


@pytest.mark.parametrize("per_second", [1000, 1_000_000])
def test_rfc3339_column_equals_the_value_parser(per_second: int) -> None:
    """Whole columns read by NumPy give exactly what the per-value parser gives, for the
    calendar's edges, out-of-range integers and a random sample of the range."""
    import random

    import numpy

    from transforms.cql_text import rfc3339_array_texts
    from transforms.value_decoders import _COLUMN_FORMS, _timestamp_millis, _writetime_micros

    parse = _timestamp_millis if per_second == 1000 else _writetime_micros
    column = _COLUMN_FORMS[parse]
    scale = per_second // 1000
    low, high = _YEAR_1_MILLIS * scale, (_YEAR_9999_END_MILLIS + 1) * scale - 1
    leap_day = 951_782_400 * per_second  # 2000-02-29T00:00:00
    edges = [low, high, 0, -1, 1, leap_day, leap_day - 1, leap_day + 86_400 * per_second]
    edges += [-4_107_542_400 * per_second, 4_107_542_400 * per_second - 1]  # 1839, 2100
    generator = random.Random(7)
    sample = [generator.randint(low, high) for _ in range(20_000)]
    values = edges + sample
    texts = rfc3339_array_texts(numpy.array(values), per_second)
    assert column(texts) == values == [parse(t) for t in texts]
    outside = [low - 1, high + 1, -(2**63), 2**63 - 1]
    mixed = values[:5] + outside
    mixed_texts = rfc3339_array_texts(numpy.array(mixed), per_second)
    assert mixed_texts[5:] == [str(v) for v in outside]
    assert column(mixed_texts) == mixed


@pytest.mark.parametrize(
    "bad",
    [
        "2023-02-29T00:00:00.000Z",  # not a leap year
        "2023-13-01T00:00:00.000Z",
        "0000-01-01T00:00:00.000Z",
        "2023-04-31T00:00:00.000Z",
        "2023-01-01 00:00:00.000Z",
        "2023-01-01T00:00:00.000z",
        "2023-01-01T0a:00:00.000Z",
    ],
)
def test_rfc3339_column_refuses_what_the_value_parser_refuses(bad: str) -> None:
    from transforms.value_decoders import _COLUMN_FORMS, _timestamp_millis

    with pytest.raises(ValueError) as per_value:
        _timestamp_millis(bad)
    with pytest.raises(ValueError) as whole:
        _COLUMN_FORMS[_timestamp_millis](["2023-01-01T00:00:00.000Z", bad])
    assert str(whole.value) == str(per_value.value)


def test_rfc3339_column_reads_hours_as_the_value_parser_does() -> None:
    """The per-value parser adds hours, minutes and seconds as numbers (99:99:99 included);
    the column form gives the same integers."""
    from transforms.value_decoders import _COLUMN_FORMS, _timestamp_millis

    text = "2024-02-29T99:99:99.999Z"
    assert _COLUMN_FORMS[_timestamp_millis]([text]) == [_timestamp_millis(text)]
    assert _timestamp_millis(text) == 1_709_164_800_000 + (99 * 3600 + 99 * 60 + 99) * 1000 + 999


def test_rfc3339_column_lengths_that_only_sum_right() -> None:
    """Texts whose lengths add up to whole fixed-width texts but are not each one such text
    (a row's 'Z' moved to the next) are read one by one, and refused."""
    from transforms.value_decoders import _COLUMN_FORMS, _timestamp_millis

    with pytest.raises(ValueError, match="'2023-01-01T00:00:00.000' is not an integer"):
        _COLUMN_FORMS[_timestamp_millis](["2023-01-01T00:00:00.000", "Z2023-01-01T00:00:00.000Z"])
