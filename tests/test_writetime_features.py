"""Writetime features on a real Cassandra 5 node: per-element collection writetimes and TTLs
(--collection-writetime max|min|list in every format), planning for Cassandra < 5.0,
writetime / TTL filters, and incremental chains (--incremental-from).

Every expected value is computed here from what the test wrote, never read back from
Cassandra. Remaining TTLs count down while the test runs, so a TTL is checked to lie
between (written TTL - seconds elapsed since the write) and the written TTL; everything
else is compared exactly.
"""

from __future__ import annotations

import datetime
import json
import math
import time
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    export,
    iso_micros,
    part_files,
    part_text,
    read_avro,
    read_csv_parts,
    read_rows,
)
from transforms.normalize import parse_time_micros
from transforms.table_plan import PlanError, build_table_plan

S = 1_000_000  # one second in micros
EPOCH_UTC = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
FAST = ("--splits", "4")


# --- fixtures ----------------------------------------------------------------------------


# --- helpers -----------------------------------------------------------------------------


def micros_of(value: Any) -> Any:
    """fastavro's timestamp-micros datetimes (also inside lists) back to integer micros."""
    if isinstance(value, list):
        return [micros_of(v) for v in value]
    if isinstance(value, datetime.datetime):
        return (value - EPOCH_UTC) // datetime.timedelta(microseconds=1)
    return value


def keys_of(out: Path, *names: str) -> set[tuple[int, ...]]:
    """Primary keys (as int tuples) of the rows of a CSV export."""
    return {tuple(int(row[n]) for n in names) for row in read_rows(out)}


def manifest(out: Path) -> dict[str, Any]:
    return json.loads((out / "_manifest" / "export.json").read_text())


def ttl_matches(got: Any, written: Any, slack: int) -> bool:
    """A remaining TTL (or list of them) fits the written one counted down by <= slack s."""
    if written is None or got is None:
        return got is None and written is None
    if isinstance(written, list):
        return (
            isinstance(got, list)
            and len(got) == len(written)
            and all(ttl_matches(g, w, slack) for g, w in zip(got, written, strict=True))
        )
    return isinstance(got, int) and written - slack <= got <= written


def elapsed_slack(since: float) -> int:
    return math.ceil(time.time() - since) + 1


# --- 1. collections: per-element writetimes and TTLs --------------------------------------

T = 1_700_000_000_000_000  # 2023-11-14T22:13:20Z
COLL_COLUMNS = ("l", "m", "note", "s", "u")  # table order: key, then regular columns by name

COLL_VALUES = {
    1: {
        "l": [5, 11, 30, 20],
        "m": {"a": 2, "z": 1},
        "note": None,
        "s": ["a", "b", "c"],
        "u": {"street": None, "city": "X", "zip": 5},
    },
    2: {"l": None, "m": None, "note": "x", "s": None, "u": None},
    3: {
        "l": None,
        "m": None,
        "note": None,
        "s": None,
        "u": {"street": "s", "city": None, "zip": 1},
    },
    4: {"l": None, "m": None, "note": "y", "s": None, "u": None},
}
# What Cassandra 5 returns per element, in the element order of the exported value.
# A UDT gets one entry per field of its type, in declaration order, null where the
# field has no live cell (never set, or set to null).
COLL_WRITETIMES = {
    1: {
        "l": [T + 4 * S, T + 5 * S, T + 3 * S, T + 2 * S],
        "m": [T + 4 * S, T + 5 * S],
        "note": None,
        "s": [T + 3 * S, T + 2 * S, T + 1 * S],
        "u": [None, T + 7 * S, T + 6 * S],
    },
    2: {"l": None, "m": None, "note": T, "s": None, "u": None},
    3: {"l": None, "m": None, "note": None, "s": None, "u": [T + 8 * S, None, T + 8 * S]},
    4: {"l": None, "m": None, "note": T, "s": None, "u": None},
}
COLL_TTLS = {
    1: {
        "l": [None, None, 50_000, 60_000],
        "m": [90_000, 95_000],
        "note": None,
        "s": [None, None, 70_000],
        "u": [None, None, 80_000],
    },
    2: dict.fromkeys(COLL_COLUMNS),
    3: {"l": None, "m": None, "note": None, "s": None, "u": [None, None, None]},
    4: dict.fromkeys(COLL_COLUMNS),
}


def collapse(policy: str, value: Any) -> Any:
    """The spec's --collection-writetime policy applied to one per-element list."""
    if policy == "list" or not isinstance(value, list):
        return value
    present = [v for v in value if v is not None]
    if not present:
        return None
    return max(present) if policy == "max" else min(present)


@pytest.fixture(scope="module")
def coll_table(session: Any, ks: str) -> tuple[str, float]:
    """Collections written element by element at explicit timestamps, some with TTLs."""
    session.execute(f"CREATE TYPE {ks}.addr (street text, city text, zip int)")
    session.execute(
        f"CREATE TABLE {ks}.coll (k int PRIMARY KEY, l list<int>, s set<text>, "
        "m map<text, int>, u addr, note text)"
    )
    t0 = time.time()
    q = f"UPDATE {ks}.coll USING TIMESTAMP"
    for statement in (
        f"{q} {T + 1 * S} SET l = l + [10] WHERE k = 1",
        f"{q} {T + 3 * S} AND TTL 50000 SET l = l + [30] WHERE k = 1",
        f"{q} {T + 2 * S} AND TTL 60000 SET l = l + [20] WHERE k = 1",
        f"{q} {T + 4 * S} SET l = [5] + l WHERE k = 1",  # prepend: first element
        f"{q} {T + 5 * S} SET l[1] = 11 WHERE k = 1",  # replaces 10, with a new writetime
        f"{q} {T + 2 * S} SET s = s + {{'b'}} WHERE k = 1",
        f"{q} {T + 1 * S} AND TTL 70000 SET s = s + {{'c'}} WHERE k = 1",
        f"{q} {T + 3 * S} SET s = s + {{'a'}} WHERE k = 1",
        f"{q} {T + 5 * S} AND TTL 95000 SET m['z'] = 1 WHERE k = 1",
        f"{q} {T + 4 * S} AND TTL 90000 SET m['a'] = 2 WHERE k = 1",
        f"{q} {T + 7 * S} SET u.city = 'X' WHERE k = 1",
        f"{q} {T + 6 * S} AND TTL 80000 SET u.zip = 5 WHERE k = 1",
        # Empty collections are null in Cassandra: null value, writetime and TTL.
        f"INSERT INTO {ks}.coll (k, l, s, m, note) VALUES (2, [], {{}}, {{}}, 'x') "
        f"USING TIMESTAMP {T}",
        f"INSERT INTO {ks}.coll (k, u) VALUES (3, {{street: 's', zip: 1}}) "
        f"USING TIMESTAMP {T + 8 * S}",
        # A set whose only element was removed again: null.
        f"INSERT INTO {ks}.coll (k, note) VALUES (4, 'y') USING TIMESTAMP {T}",
        f"{q} {T + 1 * S} SET s = s + {{'q'}} WHERE k = 4",
        f"{q} {T + 2 * S} SET s = s - {{'q'}} WHERE k = 4",
    ):
        session.execute(statement)
    return f"{ks}.coll", t0


def _csv_meta(text: str) -> Any:
    if text == "":
        return None
    return json.loads(text) if text.startswith("[") else int(text)


def read_coll_export(out: Path, fmt: str) -> dict[int, dict[str, Any]]:
    """Rows by key as {name: python value}, whatever the format (writetimes in micros)."""
    if fmt == "avro":
        rows = [{k: micros_of(v) for k, v in r.items()} for r in read_avro(out)[1]]
    elif fmt == "csv":
        rows = []
        for raw in read_csv_parts(out)[1]:
            row: dict[str, Any] = {"k": int(raw["k"])}
            for name in COLL_COLUMNS:
                text = raw[name]
                row[name] = None if text == "" else text if name == "note" else json.loads(text)
                row[name + "_writetime"] = _csv_meta(raw[name + "_writetime"])
                row[name + "_ttl"] = _csv_meta(raw[name + "_ttl"])
            rows.append(row)
    else:
        rows = read_rows(out)
    return {row["k"]: row for row in rows}


@pytest.mark.parametrize("policy", ["max", "min", "list"])
@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "avro"])
def test_collection_writetime_policies(
    coll_table: tuple[str, float], hosts: str, tmp_path: Path, policy: str, fmt: str
) -> None:
    table, t0 = coll_table
    out = tmp_path / "out"
    export(
        hosts,
        table,
        out,
        *FAST,
        "--format",
        fmt,
        "--collection-writetime",
        policy,
        "--writetime-format",
        "micros",
        "--ttl-columns",
        "*",
    )
    slack = elapsed_slack(t0)
    got = read_coll_export(out, fmt)
    assert sorted(got) == [1, 2, 3, 4]
    for k in COLL_VALUES:
        row = got[k]
        for name in COLL_COLUMNS:
            assert row[name] == COLL_VALUES[k][name], (k, name)
            assert row[name + "_writetime"] == collapse(policy, COLL_WRITETIMES[k][name]), (
                k,
                name,
            )
            written_ttl = collapse(policy, COLL_TTLS[k][name])
            assert ttl_matches(row[name + "_ttl"], written_ttl, slack), (k, name, row)
    if fmt == "avro" and policy == "list":
        schema = read_avro(out)[0]
        types = {f["name"]: f["type"] for f in schema["fields"]}
        # --writetime-format micros: a plain long, without the timestamp-micros type
        assert types["l_writetime"] == ["null", {"type": "array", "items": ["null", "long"]}]
        assert types["l_ttl"] == ["null", {"type": "array", "items": ["null", "int"]}]
        assert types["note_writetime"] == ["null", "long"]


def test_collection_list_as_iso_json_array_text_in_csv(
    coll_table: tuple[str, float], hosts: str, tmp_path: Path
) -> None:
    table, _ = coll_table
    out = tmp_path / "out"
    export(hosts, table, out, *FAST, "--collection-writetime", "list")
    rows = {int(r["k"]): r for r in read_csv_parts(out)[1]}
    first = rows[1]
    assert first["l"] == "[5,11,30,20]"
    assert first["l_writetime"] == (
        '["2023-11-14T22:13:24.000000Z","2023-11-14T22:13:25.000000Z",'
        '"2023-11-14T22:13:23.000000Z","2023-11-14T22:13:22.000000Z"]'
    )
    assert first["u_writetime"] == json.dumps(
        [None, iso_micros(T + 7 * S), iso_micros(T + 6 * S)], separators=(",", ":")
    )
    assert first["s_writetime"] == json.dumps(
        [iso_micros(T + 3 * S), iso_micros(T + 2 * S), iso_micros(T + 1 * S)],
        separators=(",", ":"),
    )
    assert first["note_writetime"] == ""  # null
    assert rows[2]["note_writetime"] == "2023-11-14T22:13:20.000000Z"
    assert rows[2]["l"] == rows[2]["l_writetime"] == ""


def test_collection_filter_uses_the_max_whatever_the_policy(
    coll_table: tuple[str, float], hosts: str, tmp_path: Path
) -> None:
    """Spec 4: filters always use the max of a collection, also under --collection-writetime min."""
    table, _ = coll_table
    for policy in ("min", "max", "list"):
        out = tmp_path / policy
        export(
            hosts,
            table,
            out,
            *FAST,
            "--format",
            "jsonl",
            "--writetime-format",
            "micros",
            "--collection-writetime",
            policy,
            "--writetime-columns",
            "l",
            "--writetime-after",
            str(T + 5 * S),  # only the replaced element l[1] is that late
        )
        rows = read_rows(out)
        assert [r["k"] for r in rows] == [1], policy
        assert rows[0]["l_writetime"] == collapse(policy, COLL_WRITETIMES[1]["l"])


# --- 2. Cassandra before 5.0: planning ----------------------------------------------------

PLAN_COLUMNS = (
    ("k", "int", "partition_key"),
    ("c", "int", "clustering"),
    ("fl", "frozen<list<int>>", "regular"),
    ("fu", "frozen<addr>", "regular"),
    ("l", "list<int>", "regular"),
    ("m", "map<text, int>", "regular"),
    ("n", "int", "regular"),
    ("s", "set<text>", "regular"),
    ("u", "addr", "regular"),
)
PLAN_TYPES = {"addr": (("street", "zip"), ("text", "int"))}


def plan_for(release: str, **options: Any) -> Any:
    return build_table_plan(
        keyspace="ks",
        table="t",
        column_types=PLAN_COLUMNS,
        user_types=PLAN_TYPES,
        release_version=release,
        **options,
    )


def test_plan_before_5_leaves_multicell_columns_out_of_star_with_one_warning_each() -> None:
    plan = plan_for("4.1.5", writetime_columns="*", ttl_columns="*")
    assert plan.writetime_columns == ("fl", "fu", "n")
    assert plan.ttl_columns == ("fl", "fu", "n")
    assert [c.name for c in plan.columns] == [c[0] for c in PLAN_COLUMNS]  # values still exported
    assert len(plan.warnings) == 4
    for name, warning in zip(("l", "m", "s", "u"), plan.warnings, strict=True):
        assert warning.startswith(f"column {name!r} is left out of ")
        assert "--writetime-columns and --ttl-columns" in warning
        assert "non-frozen collection or UDT" in warning and "5.0" in warning
        assert "4.1.5" in warning
    cql = plan.select_cql()
    assert "WRITETIME(fl)" in cql and "WRITETIME(n)" in cql and "TTL(fu)" in cql
    for name in ("l", "m", "s", "u"):
        assert f"WRITETIME({name})" not in cql and f"TTL({name})" not in cql

    only_wt = plan_for("3.11.17", writetime_columns="*")
    assert only_wt.ttl_columns == ()
    assert [w.split(":")[0] for w in only_wt.warnings] == [
        f"column {n!r} is left out of --writetime-columns" for n in ("l", "m", "s", "u")
    ]


@pytest.mark.parametrize(
    ("option", "column", "what"),
    [
        ("writetime_columns", "l", "writetime"),
        ("writetime_columns", "n,m", "writetime"),
        ("ttl_columns", "u", "TTL"),
        ("ttl_columns", "S", "TTL"),  # case-insensitive match of s
    ],
)
def test_plan_before_5_naming_a_multicell_column_is_an_error(
    option: str, column: str, what: str
) -> None:
    with pytest.raises(PlanError) as error:
        plan_for("4.1.5", **{option: column})
    message = str(error.value)
    bad = column.split(",")[-1].lower()
    assert f"--{option.replace('_', '-')}: column {bad!r} cannot have a {what}" in message
    assert "non-frozen collection or UDT, which needs Cassandra 5.0 or later" in message


def test_plan_on_5_keeps_every_non_key_column() -> None:
    for release in ("5.0.8", "5.1-SNAPSHOT", ""):
        plan = plan_for(release, writetime_columns="*", ttl_columns="l,u")
        assert plan.writetime_columns == ("fl", "fu", "l", "m", "n", "s", "u")
        assert plan.ttl_columns == ("l", "u")
        assert plan.warnings == ()


def test_plan_column_lists_split_at_commas_outside_quotes() -> None:
    """CQL names may hold commas and quotes: ``"x,y"`` names one column (before, the list
    was split inside the quotes and ``"x`` was unknown)."""
    plan = build_table_plan(
        keyspace="ks",
        table="t",
        column_types=(("k", "int", "partition_key"), ("x,y", "int", "regular"))
        + (('q"', "int", "regular"), ("z", "int", "regular")),
        user_types={},
        release_version="5.0.8",
        columns=' "x,y" , "q""",z',
        writetime_columns='"x,y"',
        ttl_columns='"q""", "x,y"',
    )
    assert [c.name for c in plan.columns] == ["k", "x,y", 'q"', "z"]
    assert (plan.writetime_columns, plan.ttl_columns) == (("x,y",), ("x,y", 'q"'))


def test_cli_on_a_4_1_cluster_warns_and_errors(
    coll_table: tuple[str, float], hosts: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The launcher path with the node's release_version stubbed to 4.1.5."""
    import dataclasses

    from pipeline import job

    real = job.describe_table
    monkeypatch.setattr(
        job,
        "describe_table",
        lambda *a, **k: dataclasses.replace(real(*a, **k), release_version="4.1.5"),
    )
    table, _ = coll_table
    out = tmp_path / "star"
    result = export(hosts, table, out, *FAST, "--format", "jsonl", "--ttl-columns", "*")
    warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
    assert warnings == [
        f"warning: column {n!r} is left out of --writetime-columns and --ttl-columns: it is a "
        "non-frozen collection or UDT, which needs Cassandra 5.0 or later "
        "(this cluster runs 4.1.5)"
        for n in ("l", "m", "s", "u")
    ]
    rows = {r["k"]: r for r in read_rows(out)}
    assert list(rows[1]) == ["k", *COLL_COLUMNS, "note_writetime", "note_ttl"]
    assert rows[1]["l"] == [5, 11, 30, 20]
    assert rows[2]["note_writetime"] == "2023-11-14T22:13:20.000000Z"

    named = export(
        hosts, table, tmp_path / "named", *FAST, "--writetime-columns", "note,m", expect_code=2
    )
    assert "--writetime-columns: column 'm' cannot have a writetime" in named.stderr
    assert "needs Cassandra 5.0 or later" in named.stderr
    assert "Traceback" not in named.stderr
    assert not (tmp_path / "named" / "_SUCCESS").exists()


# --- 3. writetime filters -----------------------------------------------------------------

DAY0 = 1_709_251_200  # 2024-03-01T00:00:00Z in seconds
MIDNIGHT = [(DAY0 + i * 86_400) * S for i in range(5)]
P = [m + 500_000 for m in MIDNIGHT]  # the five periods: half a second past midnight
# (pk, ck) -> (writetime of a, writetime of b); None: never written.
EVENTS = {
    (1, 1): (P[0], P[0]),
    (1, 2): (P[1], P[1]),
    (1, 3): (P[3], P[0]),  # a written at P0, overwritten at P3
    (2, 1): (P[2], P[2]),
    (2, 2): (P[3], P[3]),
    (3, 1): (P[4], P[4]),
    (3, 2): (P[0], P[4]),  # b updated later
    (4, 1): (P[1], P[3]),  # b updated later
    (4, 2): (P[2], None),
    (5, 1): (None, None),  # only the row marker: no writetime at all
    (5, 2): (P[2], P[4]),  # b updated later
}


@pytest.fixture(scope="module")
def events_table(session: Any, ks: str) -> str:
    session.execute(
        f"CREATE TABLE {ks}.events (pk int, ck int, a text, b int, PRIMARY KEY (pk, ck))"
    )
    insert_a = session.prepare(
        f"INSERT INTO {ks}.events (pk, ck, a) VALUES (?, ?, ?) USING TIMESTAMP ?"
    )
    update_b = session.prepare(
        f"UPDATE {ks}.events USING TIMESTAMP ? SET b = ? WHERE pk = ? AND ck = ?"
    )
    for (pk, ck), (a_wt, b_wt) in EVENTS.items():
        if (pk, ck) == (1, 3):
            session.execute(insert_a, (pk, ck, "first", P[0]))
        if a_wt is not None:
            session.execute(insert_a, (pk, ck, f"a{pk}{ck}", a_wt))
        if b_wt is not None:
            session.execute(update_b, (b_wt, pk * 10 + ck, pk, ck))
    session.execute(f"INSERT INTO {ks}.events (pk, ck) VALUES (5, 1) USING TIMESTAMP {P[0]}")
    return f"{ks}.events"


def _model(after: int | None, before: int | None, mode: str) -> set[tuple[int, int]]:
    """Spec 6 applied to EVENTS; used to double-check the literal sets below."""
    low = after if after is not None else -(2**63)
    high = before if before is not None else 2**63
    kept = set()
    for key, wts in EVENTS.items():
        present = [w for w in wts if w is not None]
        inside = [low <= w <= high for w in present]
        if present and (all(inside) if mode == "all" else any(inside)):
            kept.add(key)
    return kept


ALL_EVENT_KEYS = set(EVENTS)
AFTER_P1_ANY = {(1, 2), (1, 3), (2, 1), (2, 2), (3, 1), (3, 2), (4, 1), (4, 2), (5, 2)}
AFTER_P1_ALL = {(1, 2), (2, 1), (2, 2), (3, 1), (4, 1), (4, 2), (5, 2)}
BEFORE_P3_ANY = {(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (3, 2), (4, 1), (4, 2), (5, 2)}
BEFORE_P3_ALL = {(1, 1), (1, 2), (1, 3), (2, 1), (2, 2), (4, 1), (4, 2)}
BETWEEN_ANY = {(1, 2), (1, 3), (2, 1), (2, 2), (4, 1), (4, 2), (5, 2)}
BETWEEN_ALL = {(1, 2), (2, 1), (2, 2), (4, 1), (4, 2)}
AFTER_P1_PLUS_1_ALL = {(2, 1), (2, 2), (3, 1), (4, 2), (5, 2)}
BEFORE_MIDNIGHT_3_ANY = {(1, 1), (1, 2), (1, 3), (2, 1), (3, 2), (4, 1), (4, 2), (5, 2)}

FILTER_CASES = [
    # (id, options, expected keys); T formats: RFC 3339 Z / offset, epoch s / ms / us
    ("after-rfc3339-z", ["--writetime-after", "2024-03-02T00:00:00.500000Z"], AFTER_P1_ANY),
    (
        "after-offset-all",
        ["--writetime-after", "2024-03-02T01:30:00.5+01:30", "--writetime-filter", "all"],
        AFTER_P1_ALL,
    ),
    ("before-millis", ["--writetime-before", "1709510400500"], BEFORE_P3_ANY),
    (
        "before-micros-all",
        ["--writetime-before", "1709510400500000", "--writetime-filter", "all"],
        BEFORE_P3_ALL,
    ),
    (
        "both-seconds-and-rfc3339",
        ["--writetime-after", "1709337600", "--writetime-before", "2024-03-04T00:00:00.5Z"],
        BETWEEN_ANY,
    ),
    (
        "both-micros-all",
        [
            "--writetime-after",
            "1709337600500000",
            "--writetime-before",
            "1709510400500000",
            "--writetime-filter",
            "all",
        ],
        BETWEEN_ALL,
    ),
    (
        "after-one-micro-past-p1-all",
        ["--writetime-after", "1709337600500001", "--writetime-filter", "all"],
        AFTER_P1_PLUS_1_ALL,
    ),
    ("before-midnight-seconds", ["--writetime-before", "1709510400"], BEFORE_MIDNIGHT_3_ANY),
    ("filter-on-b-only", ["--writetime-columns", "b", "--writetime-after", "2024-03-05"], None),
]


def test_filter_expectations_agree_with_the_spec_model() -> None:
    assert _model(P[1], None, "any") == AFTER_P1_ANY
    assert _model(P[1], None, "all") == AFTER_P1_ALL
    assert _model(None, P[3], "any") == BEFORE_P3_ANY
    assert _model(None, P[3], "all") == BEFORE_P3_ALL
    assert _model(P[1], P[3], "any") == BETWEEN_ANY
    assert _model(P[1], P[3], "all") == BETWEEN_ALL
    assert _model(P[1] + 1, None, "all") == AFTER_P1_PLUS_1_ALL
    assert _model(None, MIDNIGHT[3], "any") == BEFORE_MIDNIGHT_3_ANY
    # The cases discriminate: any differs from all, a bound one micro off changes the set.
    assert AFTER_P1_ANY != AFTER_P1_ALL and _model(P[1] + 1, None, "any") == AFTER_P1_ANY - {(1, 2)}


def test_time_formats_parse_to_the_same_micros() -> None:
    for text in (
        "2024-03-02T00:00:00.500000Z",
        "2024-03-02t00:00:00.5z",
        "2024-03-02T01:30:00.5+01:30",
        "2024-03-01T19:00:00.500-05:00",
        "1709337600500",
        "1709337600500000",
    ):
        assert parse_time_micros(text) == P[1], text
    assert parse_time_micros("1709337600") == MIDNIGHT[1]
    assert parse_time_micros("2024-03-02") == MIDNIGHT[1]
    assert parse_time_micros(1709337600) == MIDNIGHT[1]
    for bad in ("yesterday", "2024-02-30T00:00:00Z", "2024-03-02T25:00:00Z", ""):
        with pytest.raises(ValueError):
            parse_time_micros(bad)


@pytest.mark.parametrize(
    ("case", "options", "expected"), FILTER_CASES, ids=[c[0] for c in FILTER_CASES]
)
def test_writetime_filter_row_sets(
    events_table: str,
    hosts: str,
    tmp_path: Path,
    case: str,
    options: list[str],
    expected: set[tuple[int, int]] | None,
) -> None:
    out = tmp_path / "out"
    export(hosts, events_table, out, *FAST, *options)
    if expected is None:  # filter on b only, from 2024-03-05 (midnight): b at P4
        expected = {(3, 1), (3, 2), (5, 2)}
    got = keys_of(out, "pk", "ck")
    assert got == expected
    header = read_csv_parts(out)[0]
    columns = ["pk", "ck", "a", "b"]
    assert header == columns + (
        ["b_writetime"] if case == "filter-on-b-only" else ["a_writetime", "b_writetime"]
    )  # filters never change the columns
    # Each row's writetimes are the ones written.
    for row in read_rows(out):
        a_wt, b_wt = EVENTS[(int(row["pk"]), int(row["ck"]))]
        assert row["b_writetime"] == (iso_micros(b_wt) if b_wt else "")
        if "a_writetime" in row:
            assert row["a_writetime"] == (iso_micros(a_wt) if a_wt else "")


def test_filter_values_are_recorded_in_the_manifest(
    events_table: str, hosts: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    export(
        hosts,
        events_table,
        out,
        *FAST,
        "--writetime-after",
        "1709337600",
        "--writetime-before",
        "2024-03-04T01:00:00.5+01:00",
        "--writetime-filter",
        "all",
    )
    assert keys_of(out, "pk", "ck") == BETWEEN_ALL  # 01:00:00.5+01:00 is P3 itself
    body = manifest(out)
    assert body["row_filter"] == {
        "writetime_after_micros": MIDNIGHT[1],
        "writetime_before_micros": P[3],
        "mode": "all",
        "ttl_expiring_before_micros": None,
    }
    config = body["export_config"]
    assert config["options"]["writetime_after"] == "1709337600"
    assert config["options"]["writetime_before"] == "2024-03-04T01:00:00.5+01:00"
    assert config["options"]["writetime_filter"] == "all"
    assert config["writetime_after"] == "1709337600"
    assert config["writetime_filter"] == "all"
    checkpoint = json.loads((out / "_manifest" / "checkpoint.json").read_text())
    assert checkpoint["export_config"]["writetime_before"] == "2024-03-04T01:00:00.5+01:00"


def test_filter_beyond_all_data_gives_a_header_only(
    events_table: str, hosts: str, tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = export(
        hosts,
        events_table,
        out,
        *FAST,
        "--writetime-after",
        "2030-01-01T00:00:00Z",
        "--single-file",
    )
    header = "pk,ck,a,b,a_writetime,b_writetime\r\n"
    assert (out / "export.csv").read_bytes().decode() == header
    parts = part_files(out)
    assert parts and all(part_text(p) == header for p in parts)
    assert json.loads((out / "_manifest" / "stats.json").read_text())["rows"] == 0
    assert (out / "_SUCCESS").exists()
    assert "export complete: 0 rows" in result.stdout


def test_filter_bad_bounds_are_refused(events_table: str, hosts: str, tmp_path: Path) -> None:
    out = tmp_path / "out"
    reversed_bounds = export(
        hosts,
        events_table,
        out,
        "--writetime-after",
        "2024-03-03",
        "--writetime-before",
        "2024-03-02",
        expect_code=2,
    )
    assert "--writetime-after is later than --writetime-before" in reversed_bounds.stderr
    not_a_time = export(hosts, events_table, out, "--writetime-before", "noon", expect_code=2)
    assert "--writetime-before: 'noon' is not a time" in not_a_time.stderr
    assert not out.exists() or not any(out.iterdir())


@pytest.fixture(scope="module")
def ttl_table(session: Any, ks: str) -> tuple[str, float]:
    session.execute(f"CREATE TABLE {ks}.ttl_t (k int PRIMARY KEY, a text, b text)")
    now = time.time()
    for statement in (
        "INSERT INTO {t} (k, a) VALUES (1, 'x') USING TTL 1000",
        "INSERT INTO {t} (k, a) VALUES (2, 'x') USING TTL 100000",
        "INSERT INTO {t} (k, a) VALUES (3, 'x')",
        "INSERT INTO {t} (k, a) VALUES (4, 'x')",
        "UPDATE {t} USING TTL 5000 SET b = 'y' WHERE k = 4",
        "INSERT INTO {t} (k, a) VALUES (5, 'x') USING TTL 2000",
        "UPDATE {t} USING TTL 200000 SET b = 'y' WHERE k = 5",
    ):
        session.execute(statement.format(t=f"{ks}.ttl_t"))
    return f"{ks}.ttl_t", now


def test_ttl_expiring_before(ttl_table: tuple[str, float], hosts: str, tmp_path: Path) -> None:
    table, now = ttl_table
    soon = datetime.datetime.fromtimestamp(int(now) + 3000, datetime.UTC)
    out = tmp_path / "soon"
    export(
        hosts,
        table,
        out,
        *FAST,
        "--ttl-columns",
        "*",
        "--ttl-expiring-before",
        soon.strftime("%Y-%m-%dT%H:%M:%SZ"),
    )
    assert keys_of(out, "k") == {(1,), (5,)}
    assert manifest(out)["row_filter"]["ttl_expiring_before_micros"] == (int(now) + 3000) * S

    later = tmp_path / "later"
    export(
        hosts,
        table,
        later,
        *FAST,
        "--ttl-columns",
        "a,b",
        "--ttl-expiring-before",
        str(int(now) + 10000),
    )
    assert keys_of(later, "k") == {(1,), (4,), (5,)}
    # Only TTLs of b: k=4 (5000 s) expires before, k=5's b (200000 s) does not.
    only_b = tmp_path / "only_b"
    export(
        hosts,
        table,
        only_b,
        *FAST,
        "--ttl-columns",
        "b",
        "--ttl-expiring-before",
        str(int(now) + 10000),
    )
    assert keys_of(only_b, "k") == {(4,)}

    refused = export(
        hosts, table, tmp_path / "no_ttl", "--ttl-expiring-before", "2030-01-01", expect_code=2
    )
    assert "--ttl-expiring-before needs TTL columns" in refused.stderr


# --- 4. incremental chains ----------------------------------------------------------------


def _rows_by_key(out: Path) -> dict[int, dict[str, Any]]:
    return {row["k"]: row for row in read_rows(out)}


def _newest_row(row: dict[str, Any]) -> int:
    return max(row[c] for c in ("a_writetime", "b_writetime") if row[c] is not None)


def merge_chain(*outs: Path) -> dict[int, dict[str, Any]]:
    """Full export + incrementals, de-duplicated by key, the newest writetime winning."""
    merged: dict[int, dict[str, Any]] = {}
    for out in outs:
        for key, row in _rows_by_key(out).items():
            if key not in merged or _newest_row(row) >= _newest_row(merged[key]):
                merged[key] = row
    return merged


def test_incremental_chain(session: Any, ks: str, hosts: str, tmp_path: Path) -> None:
    table = f"{ks}.inc"
    session.execute(f"CREATE TABLE {table} (k int PRIMARY KEY, a text, b int)")
    now = time.time_ns() // 1000
    insert = session.prepare(f"INSERT INTO {table} (k, a, b) VALUES (?, ?, ?) USING TIMESTAMP ?")
    for k in range(1, 7):
        session.execute(insert, (k, f"old{k}", k, now - 3600 * S + k))  # an hour ago
    session.execute(insert, (7, "recent", 7, now - 30 * S))  # within the default 60 s overlap
    options = (*FAST, "--format", "jsonl", "--writetime-format", "micros")

    full_a = tmp_path / "A"
    export(hosts, table, full_a, *options)
    started_a = manifest(full_a)["started_at_micros"]
    assert sorted(_rows_by_key(full_a)) == [1, 2, 3, 4, 5, 6, 7]

    # After A started: real current-time writes (no USING TIMESTAMP).
    session.execute(f"INSERT INTO {table} (k, a, b) VALUES (8, 'new8', 8)")
    session.execute(f"INSERT INTO {table} (k, a) VALUES (9, 'new9')")
    session.execute(f"UPDATE {table} SET b = 200 WHERE k = 2")
    session.execute(f"UPDATE {table} SET a = 'changed3' WHERE k = 3")

    inc_b = tmp_path / "B"
    export(
        hosts,
        table,
        inc_b,
        *options,
        "--incremental-from",
        str(full_a),
        "--incremental-overlap",
        "0",
    )
    b_rows = _rows_by_key(inc_b)
    assert sorted(b_rows) == [2, 3, 8, 9]
    assert b_rows[2]["b"] == 200 and b_rows[2]["a"] == "old2"  # the whole row, unchanged a too
    assert b_rows[3]["a"] == "changed3"
    assert all(_newest_row(r) >= started_a for r in b_rows.values())
    origin = manifest(inc_b)["incremental_from"]
    assert origin["path"] == str(full_a)
    assert origin["started_at"] == manifest(full_a)["started_at"]
    assert origin["started_at_micros"] == started_a
    assert origin["writetime_after_micros"] == started_a
    assert origin["incremental_from"] is None
    assert manifest(inc_b)["row_filter"]["writetime_after_micros"] == started_a

    overlap_b = tmp_path / "B60"
    export(hosts, table, overlap_b, *options, "--incremental-from", str(full_a))
    assert sorted(_rows_by_key(overlap_b)) == [2, 3, 7, 8, 9]  # 7: written 30 s before A
    assert manifest(overlap_b)["incremental_from"]["writetime_after_micros"] == started_a - 60 * S

    full_c = tmp_path / "C"
    export(hosts, table, full_c, *options)
    assert merge_chain(full_a, inc_b) == _rows_by_key(full_c)
    assert merge_chain(full_a, overlap_b) == _rows_by_key(full_c)

    # A second link: from B.
    session.execute(f"INSERT INTO {table} (k, a, b) VALUES (10, 'new10', 10)")
    session.execute(f"UPDATE {table} SET b = 800 WHERE k = 8")
    inc_d = tmp_path / "D"
    export(
        hosts,
        table,
        inc_d,
        *options,
        "--incremental-from",
        str(inc_b),
        "--incremental-overlap",
        "0",
    )
    assert sorted(_rows_by_key(inc_d)) == [8, 10]
    origin_d = manifest(inc_d)["incremental_from"]
    assert origin_d["path"] == str(inc_b)
    assert origin_d["started_at_micros"] == manifest(inc_b)["started_at_micros"]
    assert origin_d["incremental_from"]["path"] == str(full_a)  # the chain can be followed
    assert origin_d["incremental_from"]["started_at_micros"] == started_a

    full_e = tmp_path / "E"
    export(hosts, table, full_e, *options)
    assert merge_chain(full_a, inc_b, inc_d) == _rows_by_key(full_e)
    assert sorted(_rows_by_key(full_e)) == list(range(1, 11))

    missing = export(
        hosts, table, tmp_path / "X", "--incremental-from", str(tmp_path / "nowhere"), expect_code=2
    )
    assert "--incremental-from:" in missing.stderr
