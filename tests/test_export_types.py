"""Core export against a real Cassandra node: every CQL type in every format
(docs/export.md: columns, types).

Rows are written with explicit ``USING TIMESTAMP`` (each column of the main row at its own
microsecond, so a column mix-up cannot go unnoticed) and ``USING TTL``; each export is read
back with the csv / json modules and fastavro and compared field by field with literal
expected values written from the type tables of docs/export.md, never with the exporter's own
converters.

The one tolerance: a TTL is the seconds a cell has left, so it shrinks while the test runs.
A cell written with TTL ``n`` must export a value in ``[n - e, n]``, ``e`` the whole seconds
since the module's first TTL write (a fixed 60 s fails once the module runs longer than a
minute, as it did on a loaded 2-core box: 64 s); everything else, writetimes included, is
exact to the microsecond.
"""

from __future__ import annotations

import csv
import datetime
import io
import json
import math
import struct
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests import helpers
from tests.helpers import iso_micros, utc_micros

UTC = datetime.UTC
# When TTL writes were sent (time.time(), taken before each): a TTL may tick down by the
# whole seconds since the first of them, no more.
TTL_WRITES: list[float] = []


def ttl_written() -> None:
    """Record that TTL writes follow: ``Ttl`` allows the seconds elapsed from now on."""
    TTL_WRITES.append(time.time())


@pytest.fixture(scope="module", autouse=True)
def _ttl_writes_of_this_module() -> None:
    """Forget TTL writes of other modules (test_columnar_cassandra writes these tables too)."""
    TTL_WRITES.clear()


def ttl_slack() -> int:
    """Whole seconds a TTL may have ticked down since the first recorded TTL write: the
    node's whole-second clock at the read minus the one at the write, at most the ceiling of
    the time between them."""
    return math.ceil(time.time() - min(TTL_WRITES))


# --- the all-types table ---------------------------------------------------------------------

T0 = 1_700_000_000_123_456  # 2023-11-14T22:13:20.123456Z: column j of row 'a' is written at
WT_STEP = 1_000_001  # T0 + j * WT_STEP (different second and microsecond per column)
TTL0, TTL_STEP = 100_000, 1_000  # ... with TTL TTL0 + j * TTL_STEP
T_STATIC_1 = 1_690_000_000_000_001
TTL_STATIC_1 = 50_000
T_STATIC_2 = 1_600_000_000_000_000
T_B, T_C, T_D = 1_599_999_999_999_999, 1, 4_102_444_800_000_000  # ..., 1970, 2100

FLOAT32_0_1 = struct.unpack("<f", struct.pack("<f", 0.1))[0]
TS_A = datetime.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=UTC)
TIMEUUID = "e7f5b5a0-8b5b-11ee-b9d1-0242ac120002"
UUID = "123e4567-e89b-42d3-a456-426614174000"
TEXT = "héllo, \"wörld\"\nline2 ✓ 'q'"
DECIMAL = "-12345678901234567890.123456789012345678901234567890"
VARINT = "-123456789012345678901234567890123456789012345678901234567890"
DURATION = {"months": 14, "days": 3, "nanoseconds": 14_706_007_000_000}


def cql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# name, CQL type, row 'a' CQL literal, CSV text, JSON value, Avro datum (fastavro's reading)
TYPES: list[tuple[str, str, str, str, Any, Any]] = [
    ("c_ascii", "ascii", "'plain ascii'", "plain ascii", "plain ascii", "plain ascii"),
    ("c_bigint", "bigint", "9223372036854775807", "9223372036854775807", 2**63 - 1, 2**63 - 1),
    ("c_blob", "blob", "0x0001feff", "0x0001feff", "AAH+/w==", b"\x00\x01\xfe\xff"),
    ("c_boolean", "boolean", "true", "true", True, True),
    ("c_date", "date", "'2024-02-29'", "2024-02-29", "2024-02-29", datetime.date(2024, 2, 29)),
    ("c_decimal", "decimal", DECIMAL, DECIMAL, DECIMAL, DECIMAL),
    (
        "c_double",
        "double",
        "0.30000000000000004",
        "0.30000000000000004",
        0.30000000000000004,
        0.30000000000000004,
    ),
    ("c_duration", "duration", "1y2mo3d4h5m6s7ms", "P1Y2M3DT4H5M6.007S", DURATION, DURATION),
    ("c_float", "float", "0.1", "0.1", 0.1, FLOAT32_0_1),
    (
        "c_frozen_list",
        "frozen<list<text>>",
        "['x', 'y,\"z\"']",
        '["x","y,\\"z\\""]',
        ["x", 'y,"z"'],
        ["x", 'y,"z"'],
    ),
    (
        "c_frozen_map",
        "frozen<map<int, text>>",
        "{2: 'two', 1: 'one'}",
        '{"1":"one","2":"two"}',
        {"1": "one", "2": "two"},
        [{"key": 1, "value": "one"}, {"key": 2, "value": "two"}],
    ),
    ("c_frozen_set", "frozen<set<int>>", "{10, -5}", "[-5,10]", [-5, 10], [-5, 10]),
    (
        "c_frozen_udt",
        "frozen<addr>",
        "{street: 'Elm'}",
        '{"street":"Elm","zip":null,"tags":null}',
        {"street": "Elm", "zip": None, "tags": None},
        {"street": "Elm", "zip": None, "tags": None},
    ),
    ("c_inet", "inet", "'192.168.1.10'", "192.168.1.10", "192.168.1.10", "192.168.1.10"),
    ("c_int", "int", "-2147483648", "-2147483648", -(2**31), -(2**31)),
    ("c_list", "list<int>", "[3, 1, 2]", "[3,1,2]", [3, 1, 2], [3, 1, 2]),
    (
        "c_map",
        "map<text, int>",
        "{'z': 1, 'a': 2}",
        '{"a":2,"z":1}',
        {"a": 2, "z": 1},
        {"a": 2, "z": 1},
    ),
    (
        "c_nested",
        "map<text, frozen<list<int>>>",
        "{'k2': [3], 'k1': [1, 2]}",
        '{"k1":[1,2],"k2":[3]}',
        {"k1": [1, 2], "k2": [3]},
        {"k1": [1, 2], "k2": [3]},
    ),
    ("c_set", "set<text>", "{'b', 'a', 'c'}", '["a","b","c"]', ["a", "b", "c"], ["a", "b", "c"]),
    # blobs and timestamps nested in collections: base64 / RFC 3339 inside the JSON text
    (
        "c_set_blob",
        "set<blob>",
        "{0xff, 0x00}",
        '["AA==","/w=="]',
        ["AA==", "/w=="],
        [b"\x00", b"\xff"],
    ),
    (
        "c_stamps",
        "frozen<list<timestamp>>",
        "['2023-11-14 22:13:20.123+0000', '1969-12-31 23:59:59.999+0000']",
        '["2023-11-14T22:13:20.123Z","1969-12-31T23:59:59.999Z"]',
        ["2023-11-14T22:13:20.123Z", "1969-12-31T23:59:59.999Z"],
        [TS_A, datetime.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC)],
    ),
    ("c_smallint", "smallint", "-32768", "-32768", -32768, -32768),
    ("c_text", "text", cql_text(TEXT), TEXT, TEXT, TEXT),
    (
        "c_time",
        "time",
        "'13:45:30.123456789'",
        "13:45:30.123456789",
        "13:45:30.123456789",
        49_530_123_456_789,
    ),
    (
        "c_timestamp",
        "timestamp",
        "'2023-11-14 22:13:20.123+0000'",
        "2023-11-14T22:13:20.123Z",
        "2023-11-14T22:13:20.123Z",
        TS_A,
    ),
    ("c_timeuuid", "timeuuid", TIMEUUID, TIMEUUID, TIMEUUID, uuid.UUID(TIMEUUID)),
    ("c_tinyint", "tinyint", "-128", "-128", -128, -128),
    (
        "c_tuple",
        "tuple<int, text, double>",
        "(1, 'one', 2.5)",
        '[1,"one",2.5]',
        [1, "one", 2.5],
        {"f0": 1, "f1": "one", "f2": 2.5},
    ),
    (
        "c_udt",
        "addr",
        "{street: 'Main St', zip: 12345, tags: {'home', 'b'}}",
        '{"street":"Main St","zip":12345,"tags":["b","home"]}',
        {"street": "Main St", "zip": 12345, "tags": ["b", "home"]},
        {"street": "Main St", "zip": 12345, "tags": ["b", "home"]},
    ),
    ("c_uuid", "uuid", UUID, UUID, UUID, uuid.UUID(UUID)),
    ("c_varchar", "varchar", "'varchar ✓'", "varchar ✓", "varchar ✓", "varchar ✓"),
    ("c_varint", "varint", VARINT, VARINT, VARINT, VARINT),
    (
        "c_vector",
        "vector<float, 3>",
        "[1.0, -2.5, 0.25]",
        "[1.0,-2.5,0.25]",
        [1.0, -2.5, 0.25],
        [1.0, -2.5, 0.25],
    ),
]
NAMES = [t[0] for t in TYPES]
# Non-frozen collections and UDTs: many cells each, with a writetime per element only on
# Cassandra 5.0 and later (4.x rejects WRITETIME/TTL of them; the exporter leaves them out).
MULTICELL = frozenset({"c_list", "c_map", "c_nested", "c_set", "c_set_blob", "c_udt"})
WT_OF = {name: T0 + j * WT_STEP for j, name in enumerate(NAMES)}
TTL_OF = {name: TTL0 + j * TTL_STEP for j, name in enumerate(NAMES)}
NAN, INF = float("nan"), float("inf")

# Rows 'b', 'c', 'd' of partition 1, each one INSERT without TTL:
# column -> (CQL literal, CSV text, JSON value, Avro datum)
OTHER_ROWS: dict[str, tuple[int, dict[str, tuple[str, str, Any, Any]]]] = {
    "b": (
        T_B,
        {
            "c_date": ("'1970-01-01'", "1970-01-01", "1970-01-01", datetime.date(1970, 1, 1)),
            # a positive exponent stays scientific, so the scale (-2) is kept
            "c_decimal": ("1.5E+3", "1.5E+3", "1.5E+3", "1.5E+3"),
            "c_double": ("NaN", "NaN", "NaN", NAN),
            "c_duration": (
                "-1h",
                "-PT1H",
                {"months": 0, "days": 0, "nanoseconds": -3_600_000_000_000},
                {"months": 0, "days": 0, "nanoseconds": -3_600_000_000_000},
            ),
            "c_float": ("Infinity", "Infinity", "Infinity", INF),
            "c_inet": ("'2001:db8:0:0::1'", "2001:db8::1", "2001:db8::1", "2001:db8::1"),
            "c_time": ("'00:00:00'", "00:00:00.000000000", "00:00:00.000000000", 0),
            "c_timestamp": (
                "-1",
                "1969-12-31T23:59:59.999Z",
                "1969-12-31T23:59:59.999Z",
                datetime.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=UTC),
            ),
            "c_varint": ("0", "0", "0", "0"),
            "c_text": ("''", "", "", ""),
        },
    ),
    "c": (
        T_C,
        {
            "c_double": ("-Infinity", "-Infinity", "-Infinity", -INF),
            "c_float": ("NaN", "NaN", "NaN", NAN),
            "c_inet": ("'::1'", "::1", "::1", "::1"),
        },
    ),
    "d": (
        T_D,
        {
            "c_double": ("Infinity", "Infinity", "Infinity", INF),
            "c_float": ("-Infinity", "-Infinity", "-Infinity", -INF),
        },
    ),
}


def types_for(release_version: str) -> list[tuple[str, str, str, str, Any, Any]]:
    """The rows of TYPES a Cassandra release has: no vector before 5.0."""
    if int(release_version.split(".")[0]) >= 5:
        return list(TYPES)
    return [t for t in TYPES if t[0] != "c_vector"]


def column_lists(
    types: list[tuple[str, str, str, str, Any, Any]], multicell_writetimes: bool = True
) -> tuple[list[str], list[str]]:
    """(data columns in Cassandra's table order, columns with a writetime and TTL under '*')."""
    names = [t[0] for t in types] + ["s_static"]
    eligible = [n for n in names if multicell_writetimes or n not in MULTICELL]
    return ["pk", "ck"] + sorted(names), sorted(eligible)


DATA_COLUMNS, WT_COLUMNS = column_lists(TYPES)  # on 5.0 every non-key column is eligible


class Ttl:
    """Equal to a TTL read back from a cell written with TTL ``n``: an int in [n - e, n],
    ``e`` the seconds elapsed since the first TTL write (``ttl_slack``)."""

    def __init__(self, n: int) -> None:
        self.n = n

    def __eq__(self, other: object) -> bool:
        if isinstance(other, str):
            if not other.lstrip("-").isdigit():
                return False
            other = int(other)
        return isinstance(other, int) and self.n - ttl_slack() <= other <= self.n

    def __repr__(self) -> str:
        return f"Ttl({self.n - ttl_slack()}..{self.n})"


class IsNaN:
    def __eq__(self, other: object) -> bool:
        return isinstance(other, float) and math.isnan(other)

    def __repr__(self) -> str:
        return "NaN"


def _avro_value(value: Any) -> Any:
    return IsNaN() if isinstance(value, float) and math.isnan(value) else value


# Where pyarrow's reading of the Parquet file differs from fastavro's of the Avro file
# (row 'a'): maps are lists of (key, value) pairs, uuids are strings.
PARQUET_A = {
    "c_frozen_map": [(1, "one"), (2, "two")],
    "c_map": [("a", 2), ("z", 1)],
    "c_nested": [("k1", [1, 2]), ("k2", [3])],
    "c_timeuuid": TIMEUUID,
    "c_uuid": UUID,
}
# The Arrow type of each column of the all-types table.
PARQUET_TYPES = {
    "pk": "int32",
    "ck": "string",
    "s_static": "string",
    "c_ascii": "string",
    "c_bigint": "int64",
    "c_blob": "binary",
    "c_boolean": "bool",
    "c_date": "date32[day]",
    "c_decimal": "string",
    "c_double": "double",
    "c_duration": "struct<months: int32, days: int32, nanoseconds: int64>",
    "c_float": "float",
    "c_frozen_list": "list<element: string>",
    "c_frozen_map": "map<int32, string ('c_frozen_map')>",  # pyarrow names the entries
    "c_frozen_set": "list<element: int32>",
    "c_frozen_udt": "struct<street: string, zip: int32, tags: list<element: string>>",
    "c_inet": "string",
    "c_int": "int32",
    "c_list": "list<element: int32>",
    "c_map": "map<string, int32 ('c_map')>",
    "c_nested": "map<string, list<element: int32> ('c_nested')>",
    "c_set": "list<element: string>",
    "c_set_blob": "list<element: binary>",
    "c_stamps": "list<element: timestamp[ms, tz=UTC]>",
    "c_smallint": "int16",
    "c_text": "string",
    "c_time": "time64[ns]",
    "c_timestamp": "timestamp[ms, tz=UTC]",
    "c_timeuuid": "string",
    "c_tinyint": "int8",
    "c_tuple": "struct<f0: int32, f1: string, f2: double>",
    "c_udt": "struct<street: string, zip: int32, tags: list<element: string>>",
    "c_uuid": "string",
    "c_varchar": "string",
    "c_varint": "string",
    "c_vector": "list<element: float>",  # not fixed_size_list: pyarrow cannot read its nulls
}


def expected_rows(
    kind: str,
    writetime_format: str = "iso",
    types: list[tuple[str, str, str, str, Any, Any]] = TYPES,
    multicell_writetimes: bool = True,
    ttl_elapsed: int | None = None,
) -> list[dict[str, Any]]:
    """Rows of the all-types table as ``kind`` ('csv', 'json', 'avro' or 'parquet') reads
    back (Parquet: with pyarrow, see ``helpers.read_parquet``).

    ``types``/``multicell_writetimes``: the table of a release (``types_for``) and whether it
    gives non-frozen collections a writetime. ``ttl_elapsed``: the whole seconds between the
    batch that wrote row 'a' and the read, making every TTL an exact value; None compares
    TTLs with ``Ttl`` (written TTL minus up to the seconds elapsed since it was written).
    """
    index = {"csv": 0, "json": 1, "avro": 2, "parquet": 2}[kind]
    null = "" if kind == "csv" else None
    data_columns, wt_columns = column_lists(types, multicell_writetimes)

    def ttl_value(n: int) -> Any:
        if ttl_elapsed is None:
            return Ttl(n)
        return str(n - ttl_elapsed) if kind == "csv" else n - ttl_elapsed

    def wt(micros: int | None) -> Any:
        if micros is None:
            return null
        if kind in ("avro", "parquet"):
            return micros if writetime_format == "micros" else utc_micros(micros)
        if writetime_format == "micros":
            return str(micros) if kind == "csv" else micros
        return iso_micros(micros)

    def row(pk: int, ck: str | None, values: dict[str, Any], wts: dict[str, int], ttls: dict):
        out: dict[str, Any] = {"pk": str(pk) if kind == "csv" else pk}
        out["ck"] = null if ck is None else ck
        for name in data_columns[2:]:
            out[name] = values.get(name, null)
        for name in wt_columns:
            out[name + "_writetime"] = wt(wts.get(name))
        for name in wt_columns:
            ttl = ttls.get(name)
            out[name + "_ttl"] = null if ttl is None else ttl_value(ttl)
        return out

    static_value = {"s_static": "static one"}
    static_wt = {"s_static": T_STATIC_1}
    static_ttl = {"s_static": TTL_STATIC_1}
    rows = []
    values_a = {t[0]: t[3 + index] for t in types}
    if kind == "parquet":
        values_a |= PARQUET_A
    if kind in ("avro", "parquet"):
        values_a = {k: _avro_value(v) for k, v in values_a.items()}
    rows.append(row(1, "a", values_a | static_value, WT_OF | static_wt, TTL_OF | static_ttl))
    for ck, (micros, columns) in OTHER_ROWS.items():
        values = {name: spec[1 + index] for name, spec in columns.items()}
        if kind in ("avro", "parquet"):
            values = {k: _avro_value(v) for k, v in values.items()}
        rows.append(
            row(
                1,
                ck,
                values | static_value,
                {name: micros for name in columns} | static_wt,
                static_ttl,
            )
        )
    rows.append(row(2, None, {"s_static": "only static"}, {"s_static": T_STATIC_2}, {}))
    return rows


def _sorted_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(rows, key=lambda r: (str(r["pk"]), str(r["ck"] or "")))


def assert_rows(actual: list[dict[str, Any]], expected: list[dict[str, Any]]) -> None:
    """The rows of an export, in any order, equal ``expected`` column by column, in order."""
    actual = _sorted_rows(actual)
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected, strict=True):
        assert list(got) == list(want)  # column order, docs/export.md
        for name in want:
            assert got[name] == want[name], f"row {want['pk']}/{want['ck']} column {name}"


# --- fixtures ---------------------------------------------------------------------------------


def create_all_types(
    session: Any, ks: str, types: list[tuple[str, str, str, str, Any, Any]] = TYPES
) -> str:
    """Create and fill ``ks.all_types`` with the columns of ``types``; returns the table.

    Row 'a' and the static of partition 1 are one unlogged batch: Cassandra computes every
    cell's expiry from the batch's one "now", so all their TTLs count down together and
    read back as (written TTL - the same elapsed seconds).
    """
    session.execute(f"CREATE TYPE {ks}.addr (street text, zip int, tags frozen<set<text>>)")
    columns = ", ".join(f"{name} {cql_type}" for name, cql_type, *_ in types)
    session.execute(
        f"CREATE TABLE {ks}.all_types (pk int, ck text, s_static text static, {columns}, "
        "PRIMARY KEY (pk, ck))"
    )
    table = f"{ks}.all_types"
    ttl_written()
    statements = [
        f"UPDATE {table} USING TIMESTAMP {WT_OF[name]} AND TTL {TTL_OF[name]} "
        f"SET {name} = {literal} WHERE pk = 1 AND ck = 'a'"
        for name, _, literal, *_ in types
    ]
    statements.append(
        f"UPDATE {table} USING TIMESTAMP {T_STATIC_1} AND TTL {TTL_STATIC_1} "
        "SET s_static = 'static one' WHERE pk = 1"
    )
    session.execute("BEGIN UNLOGGED BATCH\n" + ";\n".join(statements) + ";\nAPPLY BATCH")
    for ck, (micros, values) in OTHER_ROWS.items():
        names = ", ".join(values)
        literals = ", ".join(v[0] for v in values.values())
        session.execute(
            f"INSERT INTO {table} (pk, ck, {names}) VALUES (1, '{ck}', {literals}) "
            f"USING TIMESTAMP {micros}"
        )
    session.execute(
        f"UPDATE {table} USING TIMESTAMP {T_STATIC_2} SET s_static = 'only static' WHERE pk = 2"
    )
    return table


@pytest.fixture(scope="module")
def all_types(session: Any, ks: str) -> str:
    return create_all_types(session, ks)


class Exports:
    """Runs each export of a table once per module, on first use; ``results`` keeps each
    run's exit code, stdout and stderr."""

    def __init__(self, hosts: str, base: Path) -> None:
        self.hosts = hosts
        self.base = base
        self.done: dict[tuple[str, tuple[str, ...]], Path] = {}
        self.results: dict[tuple[str, tuple[str, ...]], helpers.CliResult] = {}

    def __call__(self, table: str, *options: str) -> Path:
        key = (table, options)
        if key not in self.done:
            out = self.base / f"out{len(self.done)}"
            self.results[key] = helpers.export(self.hosts, table, out, *options)
            assert (out / "_SUCCESS").exists()
            self.done[key] = out
        return self.done[key]


@pytest.fixture(scope="module")
def exports(hosts: str, tmp_path_factory: pytest.TempPathFactory) -> Exports:
    return Exports(hosts, tmp_path_factory.mktemp("exports"))


ALL = ("--writetime-columns", "*", "--ttl-columns", "*")


# --- every type, every format ------------------------------------------------------------------


def test_csv_every_type(exports: Exports, all_types: str) -> None:
    out = exports(all_types, *ALL, "--format", "csv")
    header, rows = helpers.read_csv_parts(out)
    assert header == (
        DATA_COLUMNS + [n + "_writetime" for n in WT_COLUMNS] + [n + "_ttl" for n in WT_COLUMNS]
    )
    assert_rows(rows, expected_rows("csv"))
    assert all(p.endswith(".csv") for p in helpers.part_files(out))


@pytest.mark.parametrize(
    ("compression", "writetime_format", "extension"),
    [("gzip", "iso", ".csv.gz"), ("zstd", "micros", ".csv.zst"), ("none", "micros", ".csv")],
)
def test_csv_compressed_and_micros(
    exports: Exports, all_types: str, compression: str, writetime_format: str, extension: str
) -> None:
    out = exports(
        all_types,
        *ALL,
        "--format",
        "csv",
        "--compression",
        compression,
        "--writetime-format",
        writetime_format,
    )
    files = helpers.part_files(out)
    assert files and all(p.endswith(extension) for p in files)
    assert_rows(helpers.read_csv_parts(out)[1], expected_rows("csv", writetime_format))


@pytest.mark.parametrize(
    ("fmt", "writetime_format"), [("jsonl", "iso"), ("json", "iso"), ("jsonl", "micros")]
)
def test_json_every_type(exports: Exports, all_types: str, fmt: str, writetime_format: str) -> None:
    out = exports(all_types, *ALL, "--format", fmt, "--writetime-format", writetime_format)
    rows = helpers.read_jsonl(out) if fmt == "jsonl" else helpers.read_json_arrays(out)
    assert_rows(rows, expected_rows("json", writetime_format))
    if fmt == "jsonl":
        text = "".join(helpers.part_text(p) for p in helpers.part_files(out))
        # float is the shortest text that reads back as the same float32, not 0.10000000149...
        assert '"c_float":0.1,' in text
        assert '"c_double":0.30000000000000004,' in text
        assert "ü" not in text and "ö" in text  # UTF-8, not \u escapes


def test_avro_every_type(exports: Exports, all_types: str) -> None:
    out = exports(all_types, *ALL, "--format", "avro")
    schema, rows = helpers.read_avro(out)
    fields = {f["name"]: f for f in schema["fields"]}
    assert list(fields) == (
        DATA_COLUMNS + [n + "_writetime" for n in WT_COLUMNS] + [n + "_ttl" for n in WT_COLUMNS]
    )
    for name, field in fields.items():  # every field a nullable union, null first
        assert field["type"][0] == "null", name
        assert field.get("default", "missing") is None, name
    branch = {name: field["type"][1] for name, field in fields.items()}
    for name in WT_COLUMNS:
        assert branch[name + "_writetime"] == {"type": "long", "logicalType": "timestamp-micros"}
        assert branch[name + "_ttl"] == "int"
    assert branch["c_timestamp"] == {"type": "long", "logicalType": "timestamp-millis"}
    assert branch["c_date"] == {"type": "int", "logicalType": "date"}
    assert branch["c_uuid"] == {"type": "string", "logicalType": "uuid"}
    assert branch["c_blob"] == "bytes"
    assert branch["c_bigint"] == "long" and branch["c_int"] == "int"
    assert branch["c_float"] == "float" and branch["c_double"] == "double"
    assert branch["c_varint"] == "string" and branch["c_decimal"] == "string"
    assert branch["c_time"] == "long"
    assert branch["c_map"]["type"] == "map"
    assert branch["c_frozen_map"]["type"] == "array"  # int keys: array of {key, value}
    assert branch["c_udt"]["type"] == "record" and branch["c_tuple"]["type"] == "record"
    assert_rows(rows, expected_rows("avro"))


def test_avro_writetime_micros_is_a_plain_long(exports: Exports, all_types: str) -> None:
    out = exports(all_types, *ALL, "--format", "avro", "--writetime-format", "micros")
    schema, rows = helpers.read_avro(out)
    branch = {f["name"]: f["type"][1] for f in schema["fields"]}
    assert {branch[n + "_writetime"] for n in WT_COLUMNS} == {"long"}
    assert_rows(rows, expected_rows("avro", "micros"))


@pytest.mark.parametrize("codec", ["deflate", "zstandard", "null"])
def test_avro_codecs_and_single_file(exports: Exports, all_types: str, codec: str) -> None:
    """Every codec's parts and merged file: the codec in the header, every value exact."""
    import fastavro

    out = exports(all_types, *ALL, "--format", "avro", "--avro-codec", codec, "--single-file")
    _, rows = helpers.read_avro(out)
    assert_rows(rows, expected_rows("avro"))
    for path in [*helpers.part_files(out), str(out / "export.avro")]:
        with open(path, "rb") as handle:
            assert fastavro.reader(handle).metadata["avro.codec"] == codec, path
    with open(out / "export.avro", "rb") as handle:
        assert_rows(list(fastavro.reader(handle)), expected_rows("avro"))


PARQUET_META_TYPES = {"iso": "timestamp[us, tz=UTC]", "micros": "int64"}


@pytest.mark.parametrize("writetime_format", ["iso", "micros"])
def test_parquet_every_type(exports: Exports, all_types: str, writetime_format: str) -> None:
    import pyarrow.parquet as pq

    out = exports(all_types, *ALL, "--format", "parquet", "--writetime-format", writetime_format)
    files = helpers.part_files(out)
    assert files and all(p.endswith(".parquet") for p in files)
    schema, rows = helpers.read_parquet(out)
    assert schema.names == (
        DATA_COLUMNS + [n + "_writetime" for n in WT_COLUMNS] + [n + "_ttl" for n in WT_COLUMNS]
    )
    wt_type = PARQUET_META_TYPES[writetime_format]
    assert {f.name: str(f.type) for f in schema} == (
        PARQUET_TYPES
        | {n + "_writetime": wt_type for n in WT_COLUMNS}
        | {n + "_ttl": "int32" for n in WT_COLUMNS}
    )
    assert all(f.nullable for f in schema)
    assert_rows(rows, expected_rows("parquet", writetime_format))
    for path in files:  # zstd by default, every column chunk
        metadata = pq.ParquetFile(path).metadata
        chunks = [
            metadata.row_group(g).column(c).compression
            for g in range(metadata.num_row_groups)
            for c in range(metadata.num_columns)
        ]
        assert set(chunks) <= {"ZSTD"}


def _normalized(value: Any) -> Any:
    """A driver value in a form that compares by content: naive datetimes (the driver's)
    as UTC, NaN as a marker, sets and maps as ordered pairs, UDT namedtuples as tuples."""
    from collections.abc import Mapping

    from cassandra.util import SortedSet

    if isinstance(value, datetime.datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if isinstance(value, float) and math.isnan(value):
        return "NaN"
    if isinstance(value, SortedSet):
        return ("set", [_normalized(v) for v in value])
    if isinstance(value, Mapping):
        return ("map", [(_normalized(k), _normalized(v)) for k, v in value.items()])
    if isinstance(value, tuple):
        return tuple(_normalized(v) for v in value)
    if isinstance(value, list):
        return [_normalized(v) for v in value]
    return value


def test_read_parquet_rows_gives_what_the_driver_gives_and_binds(
    exports: Exports, all_types: str, session: Any, ks: str
) -> None:
    from decimal import Decimal

    from cassandra.util import Date, Duration, OrderedMap, SortedSet, Time

    from transforms.formats.parquet import read_parquet_rows

    out = exports(all_types, *ALL, "--format", "parquet", "--writetime-format", "iso")
    rows = [row for path in helpers.part_files(out) for row in read_parquet_rows(path)]
    by_key = {(r["pk"], r["ck"]): r for r in rows}
    source = list(session.execute(f"SELECT * FROM {all_types}"))
    assert sorted(by_key, key=str) == sorted(((r.pk, r.ck) for r in source), key=str)
    for src in source:
        got = by_key[(src.pk, src.ck)]
        assert list(got) == (  # the output columns, by their CQL names
            DATA_COLUMNS + [n + "_writetime" for n in WT_COLUMNS] + [n + "_ttl" for n in WT_COLUMNS]
        )
        assert set(src._fields) == set(DATA_COLUMNS)
        for name in src._fields:
            assert _normalized(got[name]) == _normalized(getattr(src, name)), name
    a = by_key[(1, "a")]
    kinds = {
        "c_decimal": Decimal,
        "c_varint": int,
        "c_uuid": uuid.UUID,
        "c_timeuuid": uuid.UUID,
        "c_date": Date,
        "c_time": Time,
        "c_duration": Duration,
        "c_timestamp": datetime.datetime,
        "c_set": SortedSet,
        "c_map": OrderedMap,
        "c_udt": tuple,
        "c_tuple": tuple,
        "c_blob": bytes,
    }
    assert {name: type(a[name]) for name in kinds} == kinds | {"c_udt": tuple}
    assert a["c_timestamp"] == TS_A and a["c_timestamp"].tzinfo is not None
    # Writetimes are int microseconds (the file holds timestamp(us)), TTLs int seconds.
    assert {n: a[n + "_writetime"] for n in NAMES} == WT_OF
    assert {n: a[n + "_ttl"] for n in NAMES} == {n: Ttl(TTL_OF[n]) for n in NAMES}
    assert by_key[(2, None)]["s_static_ttl"] is None
    # The driver binds every value: a copy of the table written from them reads back equal.
    columns = [name for name, *_ in TYPES]
    ddl = ", ".join(f"{name} {cql_type}" for name, cql_type, *_ in TYPES)
    session.execute(
        f"CREATE TABLE {ks}.all_types_copy (pk int, ck text, s_static text static, {ddl}, "
        "PRIMARY KEY (pk, ck))"
    )
    names = ["pk", "ck", "s_static", *columns]
    insert = session.prepare(
        f"INSERT INTO {ks}.all_types_copy ({', '.join(names)}) "
        f"VALUES ({', '.join('?' * len(names))})"
    )
    for row in rows:
        if row["ck"] is not None:
            session.execute(insert, [row[n] for n in names])
    copied = {(r.pk, r.ck): r for r in session.execute(f"SELECT * FROM {ks}.all_types_copy")}
    assert len(copied) == 4
    for src in source:
        if src.ck is not None:
            assert _normalized(tuple(copied[(src.pk, src.ck)])) == _normalized(tuple(src))


def test_static_columns(exports: Exports, all_types: str) -> None:
    rows = helpers.read_jsonl(exports(all_types, *ALL, "--format", "jsonl"))
    by_partition: dict[int, list[dict[str, Any]]] = {}
    for row in rows:
        by_partition.setdefault(row["pk"], []).append(row)
    # The static writetime repeats on every row of its partition.
    assert sorted(r["ck"] for r in by_partition[1]) == ["a", "b", "c", "d"]
    assert {r["s_static_writetime"] for r in by_partition[1]} == {iso_micros(T_STATIC_1)}
    assert {r["s_static"] for r in by_partition[1]} == {"static one"}
    # A partition with only static data exports exactly one row.
    (only,) = by_partition[2]
    assert only["ck"] is None and only["s_static"] == "only static"
    assert only["s_static_writetime"] == iso_micros(T_STATIC_2)
    assert only["s_static_ttl"] is None
    assert [n for n, v in only.items() if v is not None] == ["pk", "s_static", "s_static_writetime"]


def test_keys_never_get_writetime_or_ttl(exports: Exports, all_types: str) -> None:
    header = helpers.read_header(exports(all_types, *ALL, "--format", "csv"))
    for key in ("pk", "ck"):
        assert key + "_writetime" not in header and key + "_ttl" not in header


# --- counters ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def counters(session: Any, ks: str) -> str:
    session.execute(f"CREATE TABLE {ks}.counts (k text PRIMARY KEY, hits counter, misses counter)")
    session.execute(f"UPDATE {ks}.counts SET hits = hits + 5, misses = misses - 3 WHERE k = 'x'")
    session.execute(f"UPDATE {ks}.counts SET hits = hits + 2 WHERE k = 'x'")
    session.execute(f"UPDATE {ks}.counts SET hits = hits + 9223372036854775800 WHERE k = 'big'")
    return f"{ks}.counts"


def test_counters_export_without_writetimes(exports: Exports, counters: str) -> None:
    out = exports(counters, *ALL, "--format", "jsonl")
    rows = sorted(helpers.read_jsonl(out), key=lambda r: r["k"])
    assert rows == [
        {"k": "big", "hits": 9223372036854775800, "misses": None},
        {"k": "x", "hits": 7, "misses": -3},
    ]
    csv_out = exports(counters, *ALL, "--format", "csv")
    header, csv_rows = helpers.read_csv_parts(csv_out)
    assert header == ["k", "hits", "misses"]
    assert sorted(csv_rows, key=lambda r: r["k"]) == [
        {"k": "big", "hits": "9223372036854775800", "misses": ""},
        {"k": "x", "hits": "7", "misses": "-3"},
    ]


@pytest.mark.parametrize("option", ["--writetime-columns", "--ttl-columns"])
def test_counter_named_for_writetime_is_refused(
    hosts: str, counters: str, tmp_path: Path, option: str
) -> None:
    out = tmp_path / "out"
    result = helpers.export(hosts, counters, out, option, "hits", expect_code=2)
    what = "TTL" if option == "--ttl-columns" else "writetime"
    assert result.stderr == (
        f"cassandra-export: error: {option}: column 'hits' cannot have a {what}: it is a "
        "counter (Cassandra rejects WRITETIME/TTL of counters)\n"
    )
    assert helpers.tree(out) == []


# --- null, unset, empty; CSV quoting -------------------------------------------------------------

W_NULL, W_EMPTY, W_TEXT = 1_650_000_000_000_001, 1_650_000_000_000_002, 1_650_000_000_000_003
AWKWARD_TEXTS = [
    "a,b",
    'say "hi"',
    "line1\nline2",
    "cr\r\nlf",
    "ünïcödé ✓ 日本語 🎉",
    "  padded  ",
    "NULL",
    "\\N",
    "tab\there",
    "'single'",
    '"',
    ",",
    "semi;colon",
]


@pytest.fixture(scope="module")
def edge(session: Any, ks: str) -> str:
    table = f"{ks}.edge"
    session.execute(
        f"CREATE TABLE {table} (k int PRIMARY KEY, t text, b blob, l list<int>, "
        "fl frozen<list<int>>, m map<text, text>, i int)"
    )
    # k=1: explicit null (a tombstone), k=2: never written, k=3: empty values.
    session.execute(f"INSERT INTO {table} (k, t, i) VALUES (1, null, 5) USING TIMESTAMP {W_NULL}")
    session.execute(f"INSERT INTO {table} (k, i) VALUES (2, 6) USING TIMESTAMP {W_NULL}")
    session.execute(
        f"INSERT INTO {table} (k, t, b, l, fl, m) VALUES (3, '', 0x, [], [], {{}}) "
        f"USING TIMESTAMP {W_EMPTY}"
    )
    prepared = session.prepare(f"INSERT INTO {table} (k, t) VALUES (?, ?) USING TIMESTAMP {W_TEXT}")
    for i, text in enumerate(AWKWARD_TEXTS):
        session.execute(prepared, (100 + i, text))
    return table


EDGE_COLUMNS = ["k", "b", "fl", "i", "l", "m", "t"]


def test_null_unset_empty_json(exports: Exports, edge: str) -> None:
    rows = {r["k"]: r for r in helpers.read_jsonl(exports(edge, "--format", "jsonl"))}
    assert list(rows[1]) == EDGE_COLUMNS + [c + "_writetime" for c in EDGE_COLUMNS[1:]]
    nulls = {c: None for c in EDGE_COLUMNS[1:]} | {c + "_writetime": None for c in EDGE_COLUMNS[1:]}
    assert rows[1] == nulls | {"k": 1, "i": 5, "i_writetime": iso_micros(W_NULL)}
    assert rows[2] == nulls | {"k": 2, "i": 6, "i_writetime": iso_micros(W_NULL)}
    empty = iso_micros(W_EMPTY)
    # An empty string and an empty blob or frozen list are values; an empty non-frozen
    # collection is no cell at all in Cassandra: null, with a null writetime (docs/export.md).
    assert rows[3] == nulls | {
        "k": 3,
        "t": "",
        "t_writetime": empty,
        "b": "",
        "b_writetime": empty,
        "fl": [],
        "fl_writetime": empty,
    }
    for i, text in enumerate(AWKWARD_TEXTS):
        assert rows[100 + i]["t"] == text


def test_null_unset_empty_avro(exports: Exports, edge: str) -> None:
    _, records = helpers.read_avro(exports(edge, "--format", "avro"))
    rows = {r["k"]: r for r in records}
    assert rows[1]["t"] is None and rows[1]["t_writetime"] is None
    assert rows[2]["t"] is None and rows[2]["t_writetime"] is None
    assert rows[3]["t"] == "" and rows[3]["t_writetime"] == utc_micros(W_EMPTY)
    assert rows[3]["b"] == b"" and rows[3]["fl"] == [] and rows[3]["l"] is None
    assert rows[3]["m"] is None and rows[3]["m_writetime"] is None
    for i, text in enumerate(AWKWARD_TEXTS):
        assert rows[100 + i]["t"] == text


def test_csv_round_trips_through_python_csv(exports: Exports, edge: str) -> None:
    out = exports(edge, "--format", "csv")
    header, rows = helpers.read_csv_parts(out)
    assert header == EDGE_COLUMNS + [c + "_writetime" for c in EDGE_COLUMNS[1:]]
    by_key = {r["k"]: r for r in rows}
    for i, text in enumerate(AWKWARD_TEXTS):
        assert by_key[str(100 + i)]["t"] == text
        assert by_key[str(100 + i)]["t_writetime"] == iso_micros(W_TEXT)
    assert by_key["3"]["b"] == "0x" and by_key["3"]["fl"] == "[]"
    # Python's csv module reads null and "" alike; the raw text tells them apart:
    # null is an empty unquoted field, the empty string is quoted.
    _, raw = helpers.read_csv_raw(out)
    raw_by_key = {r["k"][0]: r for r in raw}
    assert raw_by_key["1"]["t"] == ("", False)
    assert raw_by_key["2"]["t"] == ("", False)
    assert raw_by_key["3"]["t"] == ("", True)
    assert raw_by_key["3"]["l"] == ("", False) and raw_by_key["3"]["m"] == ("", False)
    # RFC 4180: CRLF line ends; the header is the first line of every part.
    for path in helpers.part_files(out):
        text = helpers.part_text(path)
        assert text.startswith(",".join(header) + "\r\n")


def test_csv_null_value_and_delimiter(exports: Exports, edge: str) -> None:
    out = exports(edge, "--format", "csv", "--null-value", "NULL", "--delimiter", ";")
    _, raw = helpers.read_csv_raw(out, delimiter=";")
    by_key = {r["k"][0]: r for r in raw}
    assert by_key["1"]["t"] == ("NULL", False)
    assert by_key["1"]["t_writetime"] == ("NULL", False)
    assert by_key["3"]["t"] == ("", True)
    # A text that equals --null-value is quoted, so it cannot read back as null.
    null_text = 100 + AWKWARD_TEXTS.index("NULL")
    assert by_key[str(null_text)]["t"] == ("NULL", True)
    semi = 100 + AWKWARD_TEXTS.index("semi;colon")
    assert by_key[str(semi)]["t"] == ("semi;colon", True)
    _, rows = helpers.read_csv_parts(out, delimiter=";")
    texts = {r["k"]: r["t"] for r in rows}
    for i, text in enumerate(AWKWARD_TEXTS):
        assert texts[str(100 + i)] == text


def test_parse_csv_raw_matches_python_csv() -> None:
    """The raw reader used above agrees with Python's csv module on what both can see."""
    text = 'a,"b ""q""",,""\r\n"x\r\ny",z,,\r\n'
    raw = helpers.parse_csv_raw(text)
    assert raw == [
        [("a", False), ('b "q"', True), ("", False), ("", True)],
        [("x\r\ny", True), ("z", False), ("", False), ("", False)],
    ]
    assert [[v for v, _ in r] for r in raw] == list(csv.reader(io.StringIO(text, newline="")))


# --- non-frozen collection writetimes (docs/export.md) ------------------------------------

TC = 1_700_000_000_000_000
TTL_L0, TTL_L2 = 5_000, 7_000
# list elements in append order (writetime, ttl); set and map in Cassandra's order.
L_WT = [TC + 3, TC + 1, TC + 2]
S_WT = [TC + 10, TC + 20, TC + 30]  # elements 'a', 'b', 'c'
M_WT = [TC + 300, TC + 100]  # keys 'a', 'z'
U_WT = [TC + 1000, TC + 2000, None]  # fields street, zip, tags (never written)
FL_WT = TC + 5


@pytest.fixture(scope="module")
def collections_table(session: Any, ks: str) -> str:
    table = f"{ks}.coll"
    session.execute(f"CREATE TYPE {ks}.addr2 (street text, zip int, tags frozen<set<text>>)")
    session.execute(
        f"CREATE TABLE {table} (k int PRIMARY KEY, l list<int>, s set<text>, "
        "m map<text, int>, u addr2, fl frozen<list<int>>)"
    )
    statements = [
        f"USING TIMESTAMP {TC + 3} AND TTL {TTL_L0} SET l = l + [10]",
        f"USING TIMESTAMP {TC + 1} SET l = l + [20]",
        f"USING TIMESTAMP {TC + 2} AND TTL {TTL_L2} SET l = l + [30]",
        f"USING TIMESTAMP {TC + 20} SET s = s + {{'b'}}",
        f"USING TIMESTAMP {TC + 10} SET s = s + {{'a'}}",
        f"USING TIMESTAMP {TC + 30} SET s = s + {{'c'}}",
        f"USING TIMESTAMP {TC + 100} SET m['z'] = 1",
        f"USING TIMESTAMP {TC + 300} SET m['a'] = 2",
        f"USING TIMESTAMP {TC + 1000} SET u.street = 'S'",
        f"USING TIMESTAMP {TC + 2000} SET u.zip = 5",
        f"USING TIMESTAMP {FL_WT} SET fl = [7, 8]",
    ]
    ttl_written()
    for statement in statements:
        session.execute(f"UPDATE {table} {statement} WHERE k = 1")
    session.execute(
        f"INSERT INTO {table} (k, l, s, fl) VALUES (2, [], {{}}, [9]) USING TIMESTAMP {TC + 9}"
    )
    return table


def _pick(policy: str, values: list[int | None]) -> Any:
    present = [v for v in values if v is not None]
    if policy == "max":
        return max(present)
    if policy == "min":
        return min(present)
    return values


@pytest.mark.parametrize("policy", ["max", "min", "list"])
def test_collection_writetime_policies_jsonl(
    exports: Exports, collections_table: str, policy: str
) -> None:
    out = exports(
        collections_table,
        "--format",
        "jsonl",
        "--ttl-columns",
        "*",
        "--collection-writetime",
        policy,
    )
    rows = {r["k"]: r for r in helpers.read_jsonl(out)}

    def iso(value: Any) -> Any:
        if isinstance(value, list):
            return [None if v is None else iso_micros(v) for v in value]
        return iso_micros(value)

    one = rows[1]
    assert one["l"] == [10, 20, 30] and one["s"] == ["a", "b", "c"]
    assert one["m"] == {"a": 2, "z": 1} and one["u"] == {"street": "S", "zip": 5, "tags": None}
    assert one["l_writetime"] == iso(_pick(policy, L_WT))
    assert one["s_writetime"] == iso(_pick(policy, S_WT))
    assert one["m_writetime"] == iso(_pick(policy, M_WT))
    assert one["u_writetime"] == iso(_pick(policy, U_WT))
    assert one["fl_writetime"] == iso_micros(FL_WT)  # frozen: one cell, whatever the policy
    ttl = {"max": Ttl(TTL_L2), "min": Ttl(TTL_L0), "list": [Ttl(TTL_L0), None, Ttl(TTL_L2)]}
    assert one["l_ttl"] == ttl[policy]
    assert one["fl_ttl"] is None
    if policy == "list":  # every element's TTL, null where an element has none
        assert one["s_ttl"] == [None, None, None] and one["m_ttl"] == [None, None]
        assert one["u_ttl"] == [None, None, None]
    else:
        assert one["s_ttl"] is None and one["m_ttl"] is None and one["u_ttl"] is None
    # An empty collection: null value, null writetime and TTL, whatever the policy.
    two = rows[2]
    assert two["l"] is None and two["l_writetime"] is None and two["l_ttl"] is None
    assert two["s"] is None and two["s_writetime"] is None
    assert two["fl"] == [9] and two["fl_writetime"] == iso_micros(TC + 9)


def test_collection_writetime_list_csv(exports: Exports, collections_table: str) -> None:
    out = exports(
        collections_table,
        "--format",
        "csv",
        "--collection-writetime",
        "list",
        "--writetime-format",
        "micros",
    )
    rows = {r["k"]: r for r in helpers.read_csv_parts(out)[1]}
    assert json.loads(rows["1"]["l_writetime"]) == L_WT
    assert json.loads(rows["1"]["s_writetime"]) == S_WT
    assert json.loads(rows["1"]["m_writetime"]) == M_WT
    assert json.loads(rows["1"]["u_writetime"]) == U_WT
    assert rows["1"]["fl_writetime"] == str(FL_WT)
    assert rows["2"]["l_writetime"] == ""


@pytest.mark.parametrize("policy", ["list", "max"])
def test_collection_writetime_avro(exports: Exports, collections_table: str, policy: str) -> None:
    out = exports(
        collections_table,
        "--format",
        "avro",
        "--ttl-columns",
        "*",
        "--collection-writetime",
        policy,
    )
    schema, records = helpers.read_avro(out)
    rows = {r["k"]: r for r in records}
    branch = {f["name"]: f["type"][1] for f in schema["fields"]}
    micros_type = {"type": "long", "logicalType": "timestamp-micros"}
    if policy == "list":
        assert branch["l_writetime"]["type"] == "array"
        assert rows[1]["l_writetime"] == [utc_micros(v) for v in L_WT]
        assert rows[1]["s_writetime"] == [utc_micros(v) for v in S_WT]
        assert rows[1]["m_writetime"] == [utc_micros(v) for v in M_WT]
        assert rows[1]["u_writetime"] == [None if v is None else utc_micros(v) for v in U_WT]
        assert rows[1]["l_ttl"] == [Ttl(TTL_L0), None, Ttl(TTL_L2)]
    else:
        assert branch["l_writetime"] == micros_type
        assert rows[1]["l_writetime"] == utc_micros(max(L_WT))
        assert rows[1]["u_writetime"] == utc_micros(TC + 2000)
        assert rows[1]["l_ttl"] == Ttl(TTL_L2)
    assert branch["fl_writetime"] == micros_type
    assert rows[1]["fl_writetime"] == utc_micros(FL_WT)
    assert rows[2]["l_writetime"] is None and rows[2]["l"] is None


@pytest.mark.parametrize(
    ("policy", "writetime_format"), [("list", "iso"), ("list", "micros"), ("max", "iso")]
)
def test_collection_writetime_parquet(
    exports: Exports, collections_table: str, policy: str, writetime_format: str
) -> None:
    out = exports(
        collections_table,
        "--format",
        "parquet",
        "--ttl-columns",
        "*",
        "--collection-writetime",
        policy,
        "--writetime-format",
        writetime_format,
    )
    schema, records = helpers.read_parquet(out)
    rows = {r["k"]: r for r in records}
    types = {f.name: str(f.type) for f in schema}
    single = PARQUET_META_TYPES[writetime_format]

    def wt(micros: int | None) -> Any:
        if micros is None or writetime_format == "micros":
            return micros
        return utc_micros(micros)

    one = rows[1]
    assert one["l"] == [10, 20, 30] and one["s"] == ["a", "b", "c"]
    assert one["m"] == [("a", 2), ("z", 1)]
    assert one["u"] == {"street": "S", "zip": 5, "tags": None}
    if policy == "list":
        for name in ("l", "s", "m", "u"):
            assert types[name + "_writetime"] == f"list<element: {single}>"
            assert types[name + "_ttl"] == "list<element: int32>"
        assert one["l_writetime"] == [wt(v) for v in L_WT]
        assert one["s_writetime"] == [wt(v) for v in S_WT]
        assert one["m_writetime"] == [wt(v) for v in M_WT]
        assert one["u_writetime"] == [wt(v) for v in U_WT]
        assert one["l_ttl"] == [Ttl(TTL_L0), None, Ttl(TTL_L2)]
        assert one["s_ttl"] == [None, None, None] and one["u_ttl"] == [None, None, None]
    else:
        assert types["l_writetime"] == single and types["l_ttl"] == "int32"
        assert one["l_writetime"] == wt(max(L_WT))
        assert one["u_writetime"] == wt(TC + 2000)
        assert one["l_ttl"] == Ttl(TTL_L2) and one["s_ttl"] is None
    assert types["fl_writetime"] == single and types["fl_ttl"] == "int32"
    assert one["fl_writetime"] == wt(FL_WT) and one["fl_ttl"] is None
    two = rows[2]
    assert two["l"] is None and two["l_writetime"] is None and two["l_ttl"] is None
    assert two["fl"] == [9] and two["fl_writetime"] == wt(TC + 9)


def test_null_unset_empty_parquet(exports: Exports, edge: str) -> None:
    _, records = helpers.read_parquet(exports(edge, "--format", "parquet"))
    rows = {r["k"]: r for r in records}
    assert rows[1]["t"] is None and rows[1]["t_writetime"] is None and rows[1]["i"] == 5
    assert rows[2]["t"] is None and rows[2]["t_writetime"] is None and rows[2]["i"] == 6
    assert rows[3]["t"] == "" and rows[3]["t_writetime"] == utc_micros(W_EMPTY)
    assert rows[3]["b"] == b"" and rows[3]["fl"] == [] and rows[3]["l"] is None
    assert rows[3]["m"] is None and rows[3]["m_writetime"] is None
    for i, text in enumerate(AWKWARD_TEXTS):
        assert rows[100 + i]["t"] == text


def _chunk_compressions(path: str | Path) -> set[str]:
    import pyarrow.parquet as pq

    metadata = pq.ParquetFile(path).metadata
    return {
        metadata.row_group(g).column(c).compression
        for g in range(metadata.num_row_groups)
        for c in range(metadata.num_columns)
    }


@pytest.mark.parametrize(("codec", "stored"), [("snappy", "SNAPPY"), ("gzip", "GZIP")])
def test_parquet_single_file_codec_and_row_groups(
    exports: Exports, edge: str, codec: str, stored: str
) -> None:
    import pyarrow.parquet as pq

    out = exports(
        edge,
        "--format",
        "parquet",
        "--single-file",
        "--parquet-codec",
        codec,
        "--parquet-row-group-rows",
        "3",
    )
    parts_schema, part_rows = helpers.read_parquet(out)
    merged = pq.ParquetFile(out / "export.parquet")
    assert merged.metadata.num_rows == len(part_rows) == 3 + len(AWKWARD_TEXTS)
    assert merged.schema_arrow.equals(parts_schema, check_metadata=True)
    sizes = [merged.metadata.row_group(g).num_rows for g in range(merged.metadata.num_row_groups)]
    assert sum(sizes) == len(part_rows) and max(sizes) == 3
    key = lambda row: row["k"]  # noqa: E731
    assert sorted(merged.read().to_pylist(), key=key) == sorted(part_rows, key=key)
    assert _chunk_compressions(out / "export.parquet") == {stored}
    import duckdb

    (counted,) = duckdb.sql(f"SELECT count(*), count(t) FROM '{out / 'export.parquet'}'").fetchall()
    assert counted == (len(part_rows), 1 + len(AWKWARD_TEXTS))  # t: '' (k=3) and the texts
    for path in helpers.part_files(out):
        assert _chunk_compressions(path) <= {stored}
        part = pq.ParquetFile(path).metadata
        assert all(part.row_group(g).num_rows <= 3 for g in range(part.num_row_groups))


def test_parquet_uncompressed_and_compression_refused(
    exports: Exports, edge: str, hosts: str, tmp_path: Path
) -> None:
    out = exports(edge, "--format", "parquet", "--parquet-codec", "none")
    assert {c for p in helpers.part_files(out) for c in _chunk_compressions(p)} == {"UNCOMPRESSED"}
    refused = tmp_path / "refused"
    result = helpers.export(
        hosts, edge, refused, "--format", "parquet", "--compression", "gzip", expect_code=2
    )
    assert result.stderr == (
        "cassandra-export: error: --compression applies to text formats; parquet compresses "
        "with --parquet-codec\n"
    )
    assert helpers.tree(refused) == []


def test_parquet_read_by_duckdb(exports: Exports, all_types: str) -> None:
    import duckdb

    out = exports(all_types, *ALL, "--format", "parquet", "--writetime-format", "iso")
    files = helpers.part_files(out)
    query = (
        "SELECT pk, ck, c_int, c_bigint, c_varint, c_decimal, c_text, c_blob, c_uuid, "
        "epoch_ms(c_timestamp), c_date, c_list, c_map, c_udt, c_vector, c_float, c_double, "
        "epoch_us(c_int_writetime), c_int_ttl, s_static "
        f"FROM read_parquet({files!r}) ORDER BY pk, ck"
    )
    rows = duckdb.sql(query).fetchall()
    assert len(rows) == 5
    a = rows[0]
    assert a[:9] == (
        1,
        "a",
        -(2**31),
        2**63 - 1,
        VARINT,
        DECIMAL,
        TEXT,
        b"\x00\x01\xfe\xff",
        UUID,
    )
    assert a[9] == 1_700_000_000_123 and a[10] == datetime.date(2024, 2, 29)
    assert a[11:15] == (
        [3, 1, 2],
        {"a": 2, "z": 1},
        {"street": "Main St", "zip": 12345, "tags": ["b", "home"]},
        [1.0, -2.5, 0.25],
    )
    assert a[15] == FLOAT32_0_1 and a[16] == 0.30000000000000004
    assert a[17] == WT_OF["c_int"] and a[18] == Ttl(TTL_OF["c_int"])
    assert math.isnan(rows[1][16]) and rows[2][16] == -INF and rows[3][16] == INF
    only_static = rows[4]
    assert only_static[:3] == (2, None, None) and only_static[19] == "only static"
