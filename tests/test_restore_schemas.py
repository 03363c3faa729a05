"""Export and restore of unusual schemas and values on a real Cassandra 5 node, every format:
export with every writetime and TTL (per element), ``cassandra-restore --create-table`` into
a fresh table, then every cell on the target equals the source exactly, and a second restore
changes nothing. Each case is a bug an acceptance-style hunt found on schemas the round-trip
tables of tests/test_restore_formats.py do not have."""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from cassandra.util import SortedSet

from tests.helpers import export, read_avro
from tests.test_restore import restore, tgt

__all__ = ["tgt"]  # the target keyspace fixture, used by name below

FORMATS = ["csv", "jsonl", "json", "avro", "parquet"]
T = 1_600_000_000_000_000


FLOAT_MAP = "frozen<map<frozen<tuple<double, int>>, int>>"

# 64 spellings of ten: equal as Python decimals, but each another serialized key (unscaled
# value and scale), so another partition with another token.
EQUAL_DECIMALS = ["1E+1"] + [f"10.{'0' * n}" if n else "10" for n in range(63)]


@pytest.fixture(scope="module")
def tables(session: Any, ks: str) -> str:
    """The source tables, in the module's keyspace."""
    run = session.execute
    run(
        f"CREATE TABLE {ks}.decimals (k decimal, c decimal, v decimal, s set<decimal>, "
        "PRIMARY KEY (k, c))"
    )
    run(
        f"INSERT INTO {ks}.decimals (k, c, v, s) VALUES (1.5E+3, -1E+10, 7E+1, {{1E+2, 0.50}}) "
        f"USING TIMESTAMP {T + 1}"
    )
    run(f"INSERT INTO {ks}.decimals (k, c, v) VALUES (0.00, 2.50, 1E-7) USING TIMESTAMP {T + 2}")
    run(
        f"CREATE TABLE {ks}.equal_keys (pk decimal, ck int, s list<int> static, v int, "
        "PRIMARY KEY (pk, ck))"
    )
    for i, key in enumerate(EQUAL_DECIMALS):
        run(
            f"INSERT INTO {ks}.equal_keys (pk, ck, s, v) VALUES ({key}, 1, [{i}], {i}) "
            f"USING TIMESTAMP {T + 7}"
        )
    run(
        f"CREATE TABLE {ks}.float_keys (pk double, ck int, s list<int> static, v int, "
        "PRIMARY KEY (pk, ck))"
    )
    for pk, ck, v in (("NaN", 1, 1), ("NaN", 2, 2), ("-0.0", 1, 3), ("0.0", 1, 4)):
        run(
            f"INSERT INTO {ks}.float_keys (pk, ck, s, v) VALUES ({pk}, {ck}, [{v}], {v}) "
            f"USING TIMESTAMP {T + 8}"
        )
    run(f'CREATE TYPE {ks}.cased ("x" int, "X" int)')
    run(
        f'CREATE TABLE {ks}.cases (k int PRIMARY KEY, a int, "A" int, "Ab" text, "aB" text, '
        "u frozen<cased>)"
    )
    run(
        f'INSERT INTO {ks}.cases (k, a, "A", "Ab", "aB", u) VALUES '
        f"(1, 2, 3, 'x', 'y', {{\"x\": 4, \"X\": 5}}) USING TIMESTAMP {T + 5}"
    )
    run(f'CREATE TYPE {ks}."two words" (a int, "b, <c>" text)')
    run(f'CREATE TYPE {ks}."x<y>" (w frozen<"two words">)')
    run(
        f'CREATE TABLE {ks}.quoted_types (k int, c frozen<"two words">, u "two words", '
        'n "x<y>", l list<frozen<"x<y>">>, PRIMARY KEY (k, c))'
    )
    run(
        f"INSERT INTO {ks}.quoted_types (k, c, u, n, l) VALUES (1, {{a: 1, \"b, <c>\": 'x'}}, "
        '{a: 2, "b, <c>": \'y\'}, {w: {a: 3, "b, <c>": null}}, [{w: null}]) '
        f"USING TIMESTAMP {T + 6}"
    )
    run(f'CREATE TYPE {ks}."Odd" ("with space" frozen<list<int>>, "from" int, "a-b" text)')
    run(
        f'CREATE TABLE {ks}.odd_udts (k int PRIMARY KEY, u "Odd", fu frozen<"Odd">, '
        'lu list<frozen<"Odd">>)'
    )
    run(
        f"INSERT INTO {ks}.odd_udts (k, u, fu, lu) VALUES (1, "
        '{"with space": [1, 2], "from": 3, "a-b": \'x\'}, '
        '{"with space": [], "from": null, "a-b": \'\'}, '
        '[{"with space": [4], "from": 5, "a-b": \'y\'}]) '
        f"USING TIMESTAMP {T + 3} AND TTL 80000"
    )
    run(f'UPDATE {ks}.odd_udts USING TIMESTAMP {T + 4} SET u."with space" = [9] WHERE k = 1')
    run(
        f"CREATE TABLE {ks}.set_orders (k int PRIMARY KEY, d set<double>, i set<inet>, "
        "t set<frozen<tuple<int, text>>>, f frozen<set<double>>)"
    )
    for n, (d, i, t) in enumerate(
        (
            ("-0.0", "'10.0.0.1'", "(1, 'a')"),
            ("0.0", "'9.0.0.1'", "(1, null)"),
            ("NaN", "'::1'", "(null, 'b')"),
        )
    ):
        run(
            f"UPDATE {ks}.set_orders USING TIMESTAMP {T + 10 + n} AND TTL {80000 + n} "
            f"SET d = d + {{{d}}}, i = i + {{{i}}}, t = t + {{{t}}} WHERE k = 1"
        )
    run(
        f"UPDATE {ks}.set_orders USING TIMESTAMP {T + 13} "
        "SET d = d + {1.5}, f = {0.0, -0.0, NaN, 1} WHERE k = 1"
    )
    run(f"CREATE TABLE {ks}.float_maps (k int PRIMARY KEY, m map<double, int>, f {FLOAT_MAP})")
    run(f"CREATE TABLE {ks}.float_maps_plain (k int PRIMARY KEY, f {FLOAT_MAP})")
    for table in ("float_maps", "float_maps_plain"):
        run(
            f"UPDATE {ks}.{table} USING TIMESTAMP {T + 14} AND TTL 80000 "
            "SET f = {(-0.0, 1): 1, (0.0, 1): 2, (NaN, 2): 3} WHERE k = 1"
        )
    run(f"UPDATE {ks}.float_maps USING TIMESTAMP {T + 15} SET m = {{-0.0: 1, 0.0: 2}} WHERE k = 1")
    run(f"CREATE TYPE {ks}.pt (x double, y int)")  # its name in hex is 7074, all digits
    run(f"CREATE TABLE {ks}.vector_udts (k int PRIMARY KEY, v vector<frozen<pt>, 2>)")
    run(
        f"INSERT INTO {ks}.vector_udts (k, v) VALUES (1, [{{x: 1.5, y: 2}}, {{x: null, y: 3}}]) "
        f"USING TIMESTAMP {T + 16} AND TTL 80000"
    )
    return ks


def round_trip(hosts: str, source: str, target: str, out: Path, fmt: str) -> None:
    """Export ``source`` in ``fmt`` with every writetime and TTL, restore it into ``target``
    (created), then restore again: the second run must change nothing. Neither command
    writes anything on stderr."""
    exported = export(
        hosts,
        source,
        out,
        "--format",
        fmt,
        "--writetime-columns",
        "*",
        "--ttl-columns",
        "*",
        "--collection-writetime",
        "list",
    )
    first = restore("--hosts", hosts, "--input", str(out), "--table", target, "--create-table")
    assert first.code == 0, first.describe()
    again = restore("--hosts", hosts, "--input", str(out), "--table", target, "--create-table")
    assert again.code == 0, again.describe()
    assert (exported.stderr, first.stderr, again.stderr) == ("", "", "")


def exact(value: Any) -> Any:
    """``value`` with decimals as their text, which keeps their scale (``Decimal`` equality
    ignores it), tuples and UDTs (the driver's named tuples) as plain tuples and sets as
    lists."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, tuple):  # tuples and UDTs (the driver's named tuples)
        return tuple(exact(v) for v in value)
    if isinstance(value, list | SortedSet):
        return [exact(v) for v in value]
    return value


DECIMAL_CELLS = "k, c, v, WRITETIME(v), s, WRITETIME(s)"


@pytest.mark.parametrize("fmt", FORMATS)
def test_decimal_scale_round_trips_in_keys_values_and_sets(
    session: Any, hosts: str, tgt: str, tables: str, tmp_path: Path, fmt: str
) -> None:
    """A decimal with a positive exponent (``1.5E+3``: unscaled 15, scale -2) was written in
    plain notation (``1500``, scale 0): as a partition key that is another serialized key, so
    the restored row had another token and ``WHERE k = 1.5E+3`` no longer found it."""
    target = f"{tgt}.decimals_{fmt}"
    round_trip(hosts, f"{tables}.decimals", target, tmp_path / "out", fmt)
    expected = [
        ("0.00", "2.50", "1E-7", T + 2, None, None),
        ("1.5E+3", "-1E+10", "7E+1", T + 1, ["0.50", "1E+2"], [T + 1, T + 1]),
    ]
    for table in (f"{tables}.decimals", target):
        rows = session.execute(f"SELECT {DECIMAL_CELLS} FROM {table}")
        assert sorted(tuple(exact(v) for v in row) for row in rows) == expected, table
    found = session.execute(f"SELECT v FROM {target} WHERE k = 1.5E+3 AND c = -1E+10").all()
    assert [exact(row.v) for row in found] == ["7E+1"]


QUOTED_TYPE_CELLS = "k, c, u, WRITETIME(u), n, WRITETIME(n), l, WRITETIME(l)"


@pytest.mark.parametrize("fmt", FORMATS)
def test_user_types_whose_names_need_quotes(
    session: Any, hosts: str, tgt: str, tables: str, tmp_path: Path, fmt: str
) -> None:
    """User types named ``"two words"`` and ``"x<y>"``: the export recorded none of them
    (it split type strings at spaces and brackets, quotes or not), so the restore failed
    with ``unknown CQL type 'two words'`` (exit 1)."""
    target = f"{tgt}.quoted_types_{fmt}"
    round_trip(hosts, f"{tables}.quoted_types", target, tmp_path / "out", fmt)
    expected = [(1, (1, "x"), (2, "y"), [T + 6, T + 6], ((3, None),), [T + 6], [(None,)], [T + 6])]
    for table in (f"{tables}.quoted_types", target):
        rows = session.execute(f"SELECT {QUOTED_TYPE_CELLS} FROM {table}")
        assert [tuple(exact(v) for v in row) for row in rows] == expected, table


ODD_UDT_CELLS = "k, u, WRITETIME(u), fu, WRITETIME(fu), lu, WRITETIME(lu)"


@pytest.mark.parametrize("fmt", FORMATS)
def test_udt_fields_with_names_avro_and_parquet_rename(
    session: Any, hosts: str, tgt: str, tables: str, tmp_path: Path, fmt: str
) -> None:
    """UDT fields named ``with space`` and ``a-b`` are renamed in Avro and Parquet
    (``with_space``, ``a_b``); the restore from Parquet took those names for the CQL ones,
    and those fields came back null."""
    target = f"{tgt}.odd_udts_{fmt}"
    round_trip(hosts, f"{tables}.odd_udts", target, tmp_path / "out", fmt)
    expected = [
        (
            1,
            ([9], 3, "x"),
            [T + 4, T + 3, T + 3],
            ([], None, ""),
            T + 3,
            [([4], 5, "y")],
            [T + 3],
        )
    ]
    for table in (f"{tables}.odd_udts", target):
        rows = session.execute(f"SELECT {ODD_UDT_CELLS} FROM {table}")
        assert [tuple(exact(v) for v in row) for row in rows] == expected, table


CASES_CELLS = 'k, a, WRITETIME(a), "A", WRITETIME("A"), "Ab", "aB", u'


@pytest.mark.parametrize("fmt", ["avro", "parquet"])
def test_names_that_differ_only_in_case_get_distinct_file_names(
    session: Any, hosts: str, tgt: str, tables: str, tmp_path: Path, fmt: str
) -> None:
    """Columns ``a`` and ``"A"`` (and UDT fields ``x`` and ``"X"``) were written as Avro and
    Parquet fields ``a`` and ``A``: Spark and BigQuery compare names without case and refuse
    such a file (DuckDB renames one ``a_1``). The second of two such names gets ``_2``."""
    target = f"{tgt}.cases_{fmt}"
    out = tmp_path / "out"
    round_trip(hosts, f"{tables}.cases", target, out, fmt)
    names = [
        "k", "A", "Ab", "a_2", "aB_2", "u",
        "A_writetime", "Ab_writetime", "a_writetime_2", "aB_writetime_2", "u_writetime",
        "A_ttl", "Ab_ttl", "a_ttl_2", "aB_ttl_2", "u_ttl",
    ]  # fmt: skip
    if fmt == "parquet":
        files = f"{out}/data/*.parquet"
        relation = duckdb.sql(f"SELECT * FROM read_parquet('{files}') WHERE k = 1")
        assert relation.columns == names
        assert relation.fetchall()[0][:6] == (1, 3, "x", 2, "y", {"x": 4, "X_2": 5})
    else:
        schema, records = read_avro(out)
        assert [f["name"] for f in schema["fields"]] == names
        udt = next(f for f in schema["fields"] if f["name"] == "u")["type"][1]
        assert [f["name"] for f in udt["fields"]] == ["x", "X_2"]
        assert records[0]["u"] == {"x": 4, "X_2": 5}
    expected = [(1, 2, T + 5, 3, T + 5, "x", "y", (4, 5))]
    for table in (f"{tables}.cases", target):
        rows = session.execute(f"SELECT {CASES_CELLS} FROM {table}")
        assert [tuple(exact(v) for v in row) for row in rows] == expected, table


@pytest.mark.parametrize("fmt", ["jsonl", "parquet"])
def test_partition_keys_equal_in_python_but_not_in_cassandra(
    session: Any, hosts: str, tgt: str, tables: str, tmp_path: Path, fmt: str
) -> None:
    """The row-by-row restore told partitions apart by Python equality: ``-0.0 == 0.0`` and
    ``Decimal("10") == Decimal("10.0")`` merged two partitions that a unit holds one after
    the other (the second's statics were never written), and ``nan != nan`` split one
    partition per row (its static list appended once per row)."""
    decimals = f"{tgt}.equal_keys_{fmt}"
    round_trip(hosts, f"{tables}.equal_keys", decimals, tmp_path / "decimals", fmt)
    units = len(list((tmp_path / "decimals" / "_manifest" / "ranges").glob("*.json")))
    assert units < len(EQUAL_DECIMALS)  # so some unit holds two of them, one after the other
    cells = "pk, s, WRITETIME(s), v"
    expected = sorted((key, [i], [T + 7], i) for i, key in enumerate(EQUAL_DECIMALS))
    for table in (f"{tables}.equal_keys", decimals):
        rows = session.execute(f"SELECT {cells} FROM {table}")
        assert sorted(tuple(exact(v) for v in row) for row in rows) == expected, table
    floats = f"{tgt}.float_keys_{fmt}"
    round_trip(hosts, f"{tables}.float_keys", floats, tmp_path / "floats", fmt)
    cells = "pk, ck, s, WRITETIME(s), v"
    expected = sorted(
        [
            ("-0.0", 1, [3], [T + 8], 3),
            ("0.0", 1, [4], [T + 8], 4),
            ("nan", 1, [1, 2], [T + 8, T + 8], 1),
            ("nan", 2, [1, 2], [T + 8, T + 8], 2),
        ]
    )
    for table in (f"{tables}.float_keys", floats):
        rows = session.execute(f"SELECT {cells} FROM {table}")
        assert sorted((repr(r[0]), *r[1:]) for r in rows) == expected, table


SET_ORDER_CELLS = (
    "toJson(d), WRITETIME(d), TTL(d), toJson(i), WRITETIME(i), toJson(t), WRITETIME(t), toJson(f)"
)


@pytest.mark.parametrize("fmt", FORMATS)
def test_sets_keep_cassandras_order_and_every_element(
    session: Any, hosts: str, tgt: str, tables: str, tmp_path: Path, fmt: str
) -> None:
    """The driver re-sorted a set by Python's order and dropped an element equal to the one
    before: ``{-0.0, 0.0}`` lost 0.0 and NaN moved first, ``set<inet>`` and sets of tuples
    with nulls came in another order than their per-element writetimes (Cassandra's), so the
    restore failed (``zip() argument 2 is longer than argument 1``, exit 1) or put each
    writetime on another element. (``toJson`` writes NaN as null.)"""
    target = f"{tgt}.set_orders_{fmt}"
    round_trip(hosts, f"{tables}.set_orders", target, tmp_path / "out", fmt)
    expected = (
        "[-0.0, 0.0, 1.5, null]",
        [T + 10, T + 11, T + 13, T + 12],
        ['["0:0:0:0:0:0:0:1", "9.0.0.1", "10.0.0.1"]', [T + 12, T + 11, T + 10]],
        ['[[null, "b"], [1, null], [1, "a"]]', [T + 12, T + 11, T + 10]],
        "[-0.0, 0.0, 1.0, null]",
    )
    for table in (f"{tables}.set_orders", target):
        row = session.execute(f"SELECT {SET_ORDER_CELLS} FROM {table}").one()
        assert (row[0], row[1], [row[3], row[4]], [row[5], row[6]], row[7]) == expected, table
        ttls = row[2]  # 1.5 has none; the others 80000, 80001, 80002 when written
        assert ttls[2] is None and 80000 - 600 < ttls[0] <= ttls[1] <= ttls[3] <= 80002, table


@pytest.mark.parametrize("fmt", FORMATS)
def test_maps_with_keys_minus_zero_and_zero(
    session: Any, hosts: str, tgt: str, tables: str, tmp_path: Path, fmt: str
) -> None:
    """The restore decoded a map whose keys hold a double into a dict, which takes -0.0 and
    0.0 for one key: ``{-0.0: 1, 0.0: 2}`` came back as ``{-0.0: 2}``, in a frozen map
    (both restore paths) and among a non-frozen map's entries written at one writetime."""
    for name in ("float_maps", "float_maps_plain"):
        target = f"{tgt}.{name}_{fmt}"
        round_trip(hosts, f"{tables}.{name}", target, tmp_path / name, fmt)
        cells = "toJson(f), WRITETIME(f), TTL(f)" + (
            ", toJson(m), WRITETIME(m)" if name == "float_maps" else ""
        )
        for table in (f"{tables}.{name}", target):
            row = session.execute(f"SELECT {cells} FROM {table}").one()
            frozen = '{"[-0.0, 1]": 1, "[0.0, 1]": 2, "[null, 2]": 3}'  # toJson: NaN as null
            assert row[:2] == (frozen, T + 14) and 80000 - 600 < row[2] <= 80000, table
            if name == "float_maps":
                assert row[3:] == ('{"-0.0": 1, "0.0": 2}', [T + 15, T + 15]), table


@pytest.mark.parametrize("fmt", FORMATS)
def test_vector_of_a_user_type_named_in_hex_digits(
    session: Any, hosts: str, tgt: str, tables: str, tmp_path: Path, fmt: str
) -> None:
    """The driver reads a vector's element type from its class name, where a user type's name
    is hex: ``pt`` (``7074``) was taken for a number, and the export failed at its first
    query (``'int' object has no attribute 'cassname'``, exit 1)."""
    target = f"{tgt}.vector_udts_{fmt}"
    round_trip(hosts, f"{tables}.vector_udts", target, tmp_path / "out", fmt)
    for table in (f"{tables}.vector_udts", target):
        row = session.execute(f"SELECT toJson(v), WRITETIME(v), TTL(v) FROM {table}").one()
        assert row[:2] == ('[{"x": 1.5, "y": 2}, {"x": null, "y": 3}]', T + 16), table
        assert 80000 - 600 < row[2] <= 80000, table
