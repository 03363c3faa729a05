"""export_decode against a real Cassandra node: export a table with every CQL type through
the CLI, decode every unit file, compare with what the driver returns for the source.

Each decoded row must equal ``SELECT c, WRITETIME(c)`` of the source exactly (values
through ``canon``: types, order, float bits, decimal scale), all rows, each once. A TTL
counts down while the test runs, so a decoded TTL is compared exactly with the value in
the file (read with the csv / json modules and fastavro), and with the source's null-ness.
"""

from __future__ import annotations

import datetime
import json
from pathlib import Path
from typing import Any

import pytest
from cassandra.util import OrderedMap

from tests import helpers
from tests.test_export_decode import canon
from tests.test_export_types import OTHER_ROWS, TYPES, WT_OF
from transforms.cql_types import CqlType, parse_cql_type
from transforms.export_decode import ExportLayout, UdtValue, read_unit_rows

EPOCH = datetime.datetime(1970, 1, 1)
NAMES = [t[0] for t in TYPES]
VALUE_COLUMNS = ["pk", "ck", "s_static"] + NAMES
CELL_COLUMNS = ["s_static"] + NAMES  # every non-key column has a writetime and a TTL
USER_TYPES = {"addr": (("street", "zip", "tags"), ("text", "int", "frozen<set<text>>"))}
T_APPEND = 1_700_000_100_000_000
T_FAR = 253_402_300_800_000_001  # a writetime in year 10000
T_EARLY = -62_135_596_800_000_001  # a writetime before year 1


@pytest.fixture(scope="module")
def source(session: Any, ks: str) -> str:
    """The all-types table of test_export_types, plus element appends at later times,
    a UDT field updated alone, out-of-range dates, timestamps and writetimes, empty
    texts, a row with only its key and a static-only partition."""
    session.execute(f"CREATE TYPE {ks}.addr (street text, zip int, tags frozen<set<text>>)")
    columns = ", ".join(f"{name} {cql_type}" for name, cql_type, *_ in TYPES)
    table = f"{ks}.decode_types"
    session.execute(
        f"CREATE TABLE {table} (pk int, ck text, s_static text static, {columns}, "
        "PRIMARY KEY (pk, ck))"
    )
    for j, (name, _, literal, *_) in enumerate(TYPES):
        session.execute(
            f"UPDATE {table} USING TIMESTAMP {WT_OF[name]} AND TTL {100_000 + j * 1000} "
            f"SET {name} = {literal} WHERE pk = 1 AND ck = 'a'"
        )
    appends = [
        ("c_list = c_list + [4, 5]", 500_000),
        ("c_set = c_set + {'d'}", None),
        ("c_map['q'] = 9", 7_000),
        ("c_nested['k0'] = [0]", None),
        ("c_set_blob = c_set_blob + {0x7f}", 9_000),
        ("c_udt.zip = 999", 8_000),
    ]
    for k, (assignment, ttl) in enumerate(appends):
        using = f"TIMESTAMP {T_APPEND + k}" + (f" AND TTL {ttl}" if ttl else "")
        session.execute(f"UPDATE {table} USING {using} SET {assignment} WHERE pk = 1 AND ck = 'a'")
    session.execute(
        f"UPDATE {table} USING TIMESTAMP 1690000000000001 AND TTL 50000 "
        "SET s_static = 'static one' WHERE pk = 1"
    )
    for ck, (micros, values) in OTHER_ROWS.items():
        names = ", ".join(values)
        literals = ", ".join(v[0] for v in values.values())
        session.execute(
            f"INSERT INTO {table} (pk, ck, {names}) VALUES (1, '{ck}', {literals}) "
            f"USING TIMESTAMP {micros}"
        )
    session.execute(
        f"INSERT INTO {table} (pk, ck, c_text, c_ascii, c_date, c_timestamp, c_time, c_blob, "
        "c_decimal, c_stamps, c_udt, c_frozen_udt) VALUES (1, 'e', '', '', 0, "
        "253402300800000, '23:59:59.999999999', 0x, 1.50, [0], "
        "{street: '', zip: null}, {street: null}) "
        f"USING TIMESTAMP {T_FAR}"
    )
    session.execute(
        f"INSERT INTO {table} (pk, ck, c_date, c_timestamp, c_list, c_map) VALUES "
        "(1, 'f', 4294967295, -62135596800001, [7], {'k': 0}) "
        f"USING TIMESTAMP {T_EARLY} AND TTL 86400"
    )
    session.execute(f"INSERT INTO {table} (pk, ck) VALUES (3, 'key only')")
    session.execute(
        f"UPDATE {table} USING TIMESTAMP 1600000000000000 SET s_static = 'only static' WHERE pk = 2"
    )
    return table


def hashable(t: CqlType) -> bool:
    if t.name in ("list", "set", "map", "vector", "udt"):
        return False
    return t.name != "tuple" or all(hashable(p) for p in t.params)


def from_driver(value: Any, t: CqlType) -> Any:
    """A driver value in export_decode's shapes (written here, not taken from it)."""
    if value is None:
        return None
    if t.name in ("list", "set", "vector"):
        return [from_driver(v, t.params[0]) for v in value]
    if t.name == "map":
        items = [
            (from_driver(k, t.params[0]), from_driver(v, t.params[1])) for k, v in value.items()
        ]
        return dict(items) if hashable(t.params[0]) else OrderedMap(items)
    if t.name == "tuple":
        return tuple(from_driver(v, p) for v, p in zip(value, t.params, strict=True))
    if t.name == "udt":
        return UdtValue(
            (name, from_driver(v, p))
            for name, v, p in zip(t.field_names, value, t.params, strict=True)
        )
    if t.name == "timestamp" and isinstance(value, datetime.datetime):
        micros = (value - EPOCH) // datetime.timedelta(microseconds=1)
        return (micros + 500) // 1000  # the driver's datetime is float-built: nearest ms
    return value


def source_rows(session: Any, table: str, policy: str) -> dict[tuple[Any, Any], dict[str, Any]]:
    """(pk, ck) -> {"values", "writetimes", "ttls"} as the driver returns them now."""
    types = {
        "pk": parse_cql_type("int"),
        "ck": parse_cql_type("text"),
        "s_static": parse_cql_type("text"),
    }
    types |= {name: parse_cql_type(cql_type, USER_TYPES) for name, cql_type, *_ in TYPES}
    selectors = [
        f"blobAsBigint(timestampAsBlob({c}))" if types[c].name == "timestamp" else c
        for c in VALUE_COLUMNS
    ]
    selectors += [f"WRITETIME({c})" for c in CELL_COLUMNS] + [f"TTL({c})" for c in CELL_COLUMNS]
    result = session.execute(f"SELECT {', '.join(selectors)} FROM {table}")
    n = len(VALUE_COLUMNS)
    rows = {}
    for row in result:
        row = tuple(row)
        values = {c: from_driver(v, types[c]) for c, v in zip(VALUE_COLUMNS, row[:n], strict=True)}
        writetimes = dict(zip(CELL_COLUMNS, row[n : n + len(CELL_COLUMNS)], strict=True))
        ttls = dict(zip(CELL_COLUMNS, row[n + len(CELL_COLUMNS) :], strict=True))
        for c in CELL_COLUMNS:
            if types[c].is_multicell:
                writetimes[c] = by_policy(writetimes[c], policy)
                ttls[c] = by_policy(ttls[c], policy)
        assert (values["pk"], values["ck"]) not in rows
        rows[(values["pk"], values["ck"])] = {
            "values": values,
            "writetimes": writetimes,
            "ttls": ttls,
        }
    return rows


def by_policy(elements: list[int | None] | None, policy: str) -> Any:
    if not elements:
        return None
    if policy == "list":
        return list(elements)
    present = [e for e in elements if e is not None]
    if not present:
        return None
    return max(present) if policy == "max" else min(present)


def raw_ttls(
    out: Path, fmt: str, delimiter: str, null: str, monkeypatch: pytest.MonkeyPatch
) -> dict[tuple[str, str], dict]:
    """TTL fields as the files hold them, read without export_decode (Avro without
    fastavro's logical types, which cannot read dates outside years 1-9999)."""
    if fmt == "avro":
        import fastavro.read

        for logical_type in list(fastavro.read.LOGICAL_READERS):
            monkeypatch.delitem(fastavro.read.LOGICAL_READERS, logical_type)
    if fmt == "csv":
        rows = helpers.read_csv_parts(out, delimiter)[1]
    else:
        rows = helpers.read_rows(out)
    found = {}
    for row in rows:
        ttls = {}
        for c in CELL_COLUMNS:
            value = row[c + "_ttl"]
            if fmt == "csv":
                value = None if value == null else json.loads(value)
            ttls[c] = value
        ck = row["ck"]
        key = (str(row["pk"]), "" if ck in (None, null) else ck)
        assert key not in found
        found[key] = ttls
    return found


EXPORTS = [
    ("csv", ["--compression", "gzip", "--collection-writetime", "list"]),
    (
        "csv",
        ["--collection-writetime", "max", "--writetime-format", "micros"]
        + ["--delimiter", ";", "--null-value", "NULL"],
    ),
    (
        "jsonl",
        ["--compression", "gzip", "--collection-writetime", "list", "--writetime-format", "micros"],
    ),
    ("json", ["--compression", "zstd", "--collection-writetime", "max"]),
    ("json", ["--collection-writetime", "min", "--writetime-format", "micros"]),
    ("avro", ["--collection-writetime", "list"]),
    ("avro", ["--collection-writetime", "max", "--avro-codec", "null"]),
]


@pytest.mark.parametrize(
    ("fmt", "options"), EXPORTS, ids=lambda v: v if isinstance(v, str) else "-".join(v[1::2])
)
def test_decoded_export_equals_source(
    session: Any,
    hosts: str,
    source: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    fmt: str,
    options: list[str],
) -> None:
    out = tmp_path / "out"
    helpers.export(
        hosts,
        source,
        out,
        "--format",
        fmt,
        "--writetime-columns",
        "*",
        "--ttl-columns",
        "*",
        "--splits",
        "4",
        *options,
    )
    manifest = json.loads((out / "_manifest" / "export.json").read_text())
    layout = ExportLayout.from_manifest(manifest)
    policy = options[options.index("--collection-writetime") + 1]
    assert (layout.format, layout.collection_policy) == (fmt, policy)
    decoded = {}
    files = helpers.part_files(out)
    assert len(files) >= 2
    for path in files:
        for row in read_unit_rows(path, layout):
            key = (row.values["pk"], row.values["ck"])
            assert key not in decoded, f"{key} decoded twice"
            decoded[key] = row
    expected = source_rows(session, source, policy)
    assert sorted(decoded, key=repr) == sorted(expected, key=repr)
    assert len(decoded) == 8
    null = layout.null_value
    file_ttls = raw_ttls(out, fmt, layout.delimiter, null, monkeypatch)
    for key, want in expected.items():
        got = decoded[key]
        assert sorted(got.values) == sorted(VALUE_COLUMNS)
        for name in VALUE_COLUMNS:
            assert canon(got.values[name]) == canon(want["values"][name]), (key, name)
        assert got.writetimes == want["writetimes"], key
        raw_key = (str(key[0]), key[1] or "")
        assert got.ttls == file_ttls[raw_key], key
        for name in CELL_COLUMNS:
            source_ttl, decoded_ttl = want["ttls"][name], got.ttls[name]
            assert (source_ttl is None) == (decoded_ttl is None), (key, name)
            if isinstance(decoded_ttl, list):
                assert [t is None for t in decoded_ttl] == [t is None for t in source_ttl]


def test_counter_table(session: Any, hosts: str, ks: str, tmp_path: Path) -> None:
    table = f"{ks}.decode_counters"
    session.execute(f"CREATE TABLE {table} (pk int PRIMARY KEY, hits counter, misses counter)")
    for pk, hits in ((1, 5), (2, -(2**62)), (3, 0)):
        session.execute(f"UPDATE {table} SET hits = hits + {hits} WHERE pk = {pk}")
    session.execute(f"UPDATE {table} SET misses = misses + 2 WHERE pk = 1")
    expected = {tuple(r) for r in session.execute(f"SELECT pk, hits, misses FROM {table}")}
    for fmt in ("csv", "jsonl", "avro"):
        out = tmp_path / fmt
        helpers.export(hosts, table, out, "--format", fmt)
        layout = ExportLayout.from_manifest(
            json.loads((out / "_manifest" / "export.json").read_text())
        )
        rows = [r for p in helpers.part_files(out) for r in read_unit_rows(p, layout)]
        assert sorted(tuple(r.values.values()) for r in rows) == sorted(expected)
        assert all(r.writetimes == {} and r.ttls == {} for r in rows)


def test_quoted_names(session: Any, hosts: str, ks: str, tmp_path: Path) -> None:
    """Column names that Avro and CQL spell differently decode under their CQL names."""
    table = f'{ks}."OddNames"'
    session.execute(f'CREATE TABLE {table} ("Key" int PRIMARY KEY, "a-b" text, "2x" list<int>)')
    session.execute(
        f'INSERT INTO {table} ("Key", "a-b", "2x") VALUES (1, \'v\', [1]) USING TIMESTAMP 5'
    )
    for fmt in ("csv", "avro"):
        out = tmp_path / fmt
        helpers.export(hosts, table, out, "--format", fmt, "--collection-writetime", "list")
        layout = ExportLayout.from_manifest(
            json.loads((out / "_manifest" / "export.json").read_text())
        )
        rows = [r for p in helpers.part_files(out) for r in read_unit_rows(p, layout)]
        assert [(r.values, r.writetimes) for r in rows] == [
            ({"Key": 1, "a-b": "v", "2x": [1]}, {"a-b": 5, "2x": [5]})
        ]
