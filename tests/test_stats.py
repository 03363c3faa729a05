"""_manifest/stats.json and stats.png: figures equal to ones computed here from what was
written (real Cassandra 5), the same after a crash and --resume, the same whatever
--collection-writetime says (statistics use a collection's max), plus the pure logic of
StatsBuilder / merge_stats / summarize and the chart.

Remaining TTLs count down while the test runs: a TTL minimum / maximum is checked to lie
between (written TTL - seconds elapsed since the write) and the written TTL; every other
figure is compared exactly.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import random
import time
from itertools import product
from pathlib import Path
from typing import Any

import pytest

from tests.helpers import (
    export,
    iso_micros,
    markers,
    read_rows,
)
from transforms.stats import StatsBuilder, day_of, merge_stats, summarize
from transforms.stats_chart import day_label, day_number, draw_stats_chart, render_stats_chart
from transforms.table_plan import build_table_plan

S = 1_000_000
DAY = 86_400 * S
D0 = 1_715_299_200 * S  # 2024-05-10T00:00:00Z
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
DURATION_FIELDS = ("duration_seconds", "rows_per_second")
FAST = ("--splits", "8", "--format", "jsonl", "--writetime-format", "micros")


# --- fixtures ----------------------------------------------------------------------------


class Written:
    """What the test wrote, cell by cell: writetimes (micros) and TTLs (seconds)."""

    def __init__(self) -> None:
        self.rows: list[tuple[int, int]] = []
        # column -> key -> list of (writetime, ttl or None) per cell (a set: per element)
        self.cells: dict[str, dict[tuple[int, int], list[tuple[int, int | None]]]] = {
            "a": {},
            "b": {},
            "tags": {},
        }
        self.started = time.time()


@pytest.fixture(scope="module")
def stats_table(session: Any, ks: str) -> tuple[str, Written]:
    """60 rows over 12 partitions: nulls, TTLs, set elements at different times, 5 days."""
    table = f"{ks}.st"
    session.execute(
        f"CREATE TABLE {table} (pk int, ck int, a text, b bigint, tags set<int>, "
        "PRIMARY KEY (pk, ck))"
    )
    insert_a = session.prepare(
        f"INSERT INTO {table} (pk, ck, a) VALUES (?, ?, ?) USING TIMESTAMP ? AND TTL ?"
    )
    marker = session.prepare(f"INSERT INTO {table} (pk, ck) VALUES (?, ?) USING TIMESTAMP ?")
    set_b = session.prepare(
        f"UPDATE {table} USING TIMESTAMP ? AND TTL ? SET b = ? WHERE pk = ? AND ck = ?"
    )
    add_tag = session.prepare(
        f"UPDATE {table} USING TIMESTAMP ? AND TTL ? SET tags = tags + ? WHERE pk = ? AND ck = ?"
    )
    written = Written()
    for i, (pk, ck) in enumerate(product(range(12), range(5))):
        key = (pk, ck)
        written.rows.append(key)
        if i % 7 == 3:
            session.execute(marker, (pk, ck, D0))  # a row with a null a
        else:
            wt = D0 + (i % 4) * DAY + i * 1_000_003 + 17
            if i == 12:
                wt = D0 - 400 * DAY - 5  # a far-away day in the histogram
            ttl = 300_000 + i * 1_000 if i % 5 == 0 else None
            session.execute(insert_a, (pk, ck, f"a{i}", wt, ttl or 0))  # TTL 0: none
            written.cells["a"][key] = [(wt, ttl)]
        if i % 3 != 1:
            wt = D0 + ((i + 1) % 4) * DAY + i * 7_919
            ttl = 500_000 + i * 1_000 if i % 4 == 2 else None
            session.execute(set_b, (wt, ttl or 0, i * 1000, pk, ck))
            written.cells["b"][key] = [(wt, ttl)]
        elements = []
        for j in range(i % 4):
            wt = D0 + ((i + j) % 4) * DAY + j * 13 + i
            ttl = 700_000 + i * 100 if j == 1 else None
            session.execute(add_tag, (wt, ttl or 0, {i * 10 + j}, pk, ck))
            elements.append((wt, ttl))
        if elements:
            written.cells["tags"][key] = elements
    return table, written


def expected_stats(written: Written) -> dict[str, Any]:
    """stats.json figures from the written cells; a set counts once, by its latest element."""
    columns: dict[str, Any] = {"pk": {"nulls": 0}, "ck": {"nulls": 0}}
    for name in ("a", "b", "tags"):
        cells = written.cells[name]
        latest = [max(w for w, _ in elements) for elements in cells.values()]
        ttls = [
            max(t for _, t in elements if t is not None)
            for elements in cells.values()
            if any(t is not None for _, t in elements)
        ]
        histogram: dict[str, int] = {}
        for w in latest:
            day = (datetime.datetime(1970, 1, 1) + datetime.timedelta(microseconds=w)).date()
            histogram[day.isoformat()] = histogram.get(day.isoformat(), 0) + 1
        mean = sum(latest) // len(latest)
        columns[name] = {
            "nulls": len(written.rows) - len(cells),
            "writetime": {
                "count": len(latest),
                "min": min(latest),
                "max": max(latest),
                "mean": mean,
                "min_iso": iso_micros(min(latest)),
                "max_iso": iso_micros(max(latest)),
                "mean_iso": iso_micros(mean),
                "histogram_by_day": dict(sorted(histogram.items())),
            },
            "ttl": {"cells_with_ttl": len(ttls), "min": min(ttls), "max": max(ttls)},
        }
    return {"rows": len(written.rows), "columns": columns}


def read_stats(out: Path) -> dict[str, Any]:
    return json.loads((out / "_manifest" / "stats.json").read_text())


def assert_same_stats(got: dict[str, Any], want: dict[str, Any], ttl_slack: int) -> None:
    """Equal except the duration fields; TTL min / max within ``ttl_slack`` seconds below."""
    got = {k: v for k, v in got.items() if k not in DURATION_FIELDS}
    want = {k: v for k, v in want.items() if k not in DURATION_FIELDS}
    got_ttls, want_ttls = {}, {}
    for body, ttls in ((got, got_ttls), (want, want_ttls)):
        body["columns"] = json.loads(json.dumps(body["columns"]))
        for name, column in body["columns"].items():
            ttl = column.get("ttl")
            if ttl:
                ttls[name] = (ttl.pop("min"), ttl.pop("max"))
    assert got == want
    assert got_ttls.keys() == want_ttls.keys()
    for name, (want_min, want_max) in want_ttls.items():
        got_min, got_max = got_ttls[name]
        assert want_min - ttl_slack <= got_min <= want_min, (name, got_min, want_min)
        assert want_max - ttl_slack <= got_max <= want_max, (name, got_max, want_max)


def rows_without_ttl_values(out: Path) -> list[str]:
    """Rows as sorted JSON texts, each TTL replaced by whether it is null (TTLs count down)."""
    rows = []
    for row in read_rows(out):
        for name in [n for n in row if n.endswith("_ttl")]:
            row[name] = row[name] is not None
        rows.append(json.dumps(row, sort_keys=True))
    return sorted(rows)


def slack_since(start: float) -> int:
    return math.ceil(time.time() - start) + 1


# --- stats on real Cassandra --------------------------------------------------------------


def test_stats_equal_independent_figures_and_survive_resume(
    stats_table: tuple[str, Written], hosts: str, tmp_path: Path
) -> None:
    table, written = stats_table
    out = tmp_path / "out"
    # A unit the resume reads again counts its TTLs down from its first read, which may come
    # early in the first run: the slack runs from that run's start, not its end (its chart
    # can take seconds after the first reads: matplotlib imported, fonts cached).
    first_run_started = time.time()
    export(hosts, table, out, *FAST, "--ttl-columns", "*", "--stats-chart")
    clean = read_stats(out)
    want = expected_stats(written)
    assert_same_stats(
        {"rows": clean["rows"], "columns": clean["columns"]}, want, slack_since(written.started)
    )
    units = json.loads((out / "_manifest" / "export.json").read_text())["units"]
    assert clean["pieces"] == len(markers(out)) == len(units)  # one piece per unit here
    assert clean["retries"] == 0 and clean["ranges_split"] == 0
    assert clean["duration_seconds"] > 0
    png = (out / "_manifest" / "stats.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 1024
    clean_rows = rows_without_ttl_values(out)
    assert len(clean_rows) == 60

    # A crash: half the committed units lost, with their data files.
    committed = sorted((out / "_manifest" / "ranges").glob("*.json"))
    lost = committed[::2]
    assert any(json.loads(p.read_text())["rows"] for p in lost)
    for path in lost:
        (out / "data" / json.loads(path.read_text())["file"]).unlink()
        path.unlink()
    (out / "_SUCCESS").unlink()
    (out / "_manifest" / "stats.json").unlink()
    (out / "_manifest" / "stats.png").unlink()
    result = export(hosts, table, out, "--resume", "--stats-chart")
    assert f"resumed: {len(committed) - len(lost)} parts" in result.stdout
    resumed = read_stats(out)
    assert_same_stats(resumed, clean, slack_since(first_run_started))
    assert rows_without_ttl_values(out) == clean_rows  # no row lost, none twice
    png = (out / "_manifest" / "stats.png").read_bytes()
    assert png.startswith(PNG_MAGIC) and len(png) > 1024


def test_stats_use_a_collections_max_whatever_the_policy(
    stats_table: tuple[str, Written], hosts: str, tmp_path: Path
) -> None:
    table, written = stats_table
    want = expected_stats(written)
    for policy in ("min", "list"):
        out = tmp_path / policy
        export(hosts, table, out, *FAST, "--ttl-columns", "*", "--collection-writetime", policy)
        got = read_stats(out)
        assert_same_stats(
            {"rows": got["rows"], "columns": got["columns"]}, want, slack_since(written.started)
        )
        rows = {(r["pk"], r["ck"]): r for r in read_rows(out)}
        for key, elements in written.cells["tags"].items():
            wts = [w for w, _ in elements]
            # The file follows the policy; elements of a set come in element order.
            expected = min(wts) if policy == "min" else wts
            assert rows[key]["tags_writetime"] == expected, key


def test_stats_with_a_filter_count_only_kept_rows(
    stats_table: tuple[str, Written], hosts: str, tmp_path: Path
) -> None:
    table, written = stats_table
    out = tmp_path / "out"
    bound = D0 + 2 * DAY
    export(hosts, table, out, *FAST, "--writetime-columns", "a", "--writetime-before", str(bound))
    kept = {k for k, cells in written.cells["a"].items() if cells[0][0] <= bound}
    stats = read_stats(out)
    assert stats["rows"] == len(kept) == len(read_rows(out))
    a_wts = [written.cells["a"][k][0][0] for k in kept]
    assert stats["columns"]["a"]["writetime"]["count"] == len(kept)
    assert stats["columns"]["a"]["writetime"]["max"] == max(a_wts)
    assert stats["columns"]["a"]["writetime"]["mean"] == sum(a_wts) // len(a_wts)
    assert stats["columns"]["b"]["nulls"] == len(kept - set(written.cells["b"]))
    assert "writetime" not in stats["columns"]["b"]


# --- pure logic ---------------------------------------------------------------------------


def small_plan() -> Any:
    return build_table_plan(
        keyspace="ks",
        table="t",
        column_types=(
            ("k", "int", "partition_key"),
            ("x", "int", "regular"),
            ("l", "list<int>", "regular"),
        ),
        user_types={},
        release_version="5.0.8",
        writetime_columns="*",
        ttl_columns="*",
    )


def test_day_of_and_chart_day_keys() -> None:
    assert day_of(0) == "1970-01-01"
    assert day_of(DAY - 1) == "1970-01-01"
    assert day_of(-1) == "1969-12-31"  # floor, not truncation toward zero
    assert day_of(-DAY) == "1969-12-31"
    assert day_of(-DAY - 1) == "1969-12-30"
    assert day_of(D0 + 5) == "2024-05-10"
    assert day_of(-(2**63)) == "day-106751992"  # before year 1: a day number
    assert day_of(2**63 - 1) == "day106751991"
    for micros in (0, -1, D0, -(2**63), 2**63 - 1, 253_402_300_800 * S):
        key = day_of(micros)
        assert day_number(key) == micros // DAY
        assert day_label(day_number(key)) == key


def test_builder_merge_and_summary_match_a_direct_computation() -> None:
    plan = small_plan()
    rng = random.Random(7)
    rows = []
    for k in range(500):
        x_wt = rng.choice([None, rng.randrange(-3 * DAY, 3 * DAY)])
        elements = [rng.choice([None, rng.randrange(-3 * DAY, 3 * DAY)]) for _ in range(k % 4)]
        l_wt = elements or None
        ttls = [rng.choice([None, rng.randrange(1, 10**6)]) for _ in elements] or None
        x_ttl = rng.choice([None, rng.randrange(1, 10**6)]) if x_wt is not None else None
        rows.append(
            (k, None if x_wt is None else k, l_wt and [1] * len(l_wt), x_wt, l_wt, x_ttl, ttls)
        )

    whole = StatsBuilder(plan)
    whole.add_rows(rows)
    parts = []
    cut = sorted(rng.sample(range(1, len(rows)), 6))
    for lo, hi in zip([0, *cut], [*cut, len(rows)], strict=True):
        part = StatsBuilder(plan)
        part.add_rows(rows[lo:hi])
        parts.append(json.loads(json.dumps(part.to_json())))  # as stored in a marker
    merged = merge_stats(parts)
    assert merged == json.loads(json.dumps(whole.to_json()))

    summary = summarize(merged, plan.to_json())
    assert summary["rows"] == 500
    for name, wt_pos, ttl_pos in (("x", 3, 5), ("l", 4, 6)):

        def latest(v: Any) -> Any:
            if isinstance(v, list):
                present = [e for e in v if e is not None]
                return max(present) if present else None
            return v

        wts = [latest(r[wt_pos]) for r in rows if latest(r[wt_pos]) is not None]
        ttls = [latest(r[ttl_pos]) for r in rows if latest(r[ttl_pos]) is not None]
        column = summary["columns"][name]
        value_pos = 1 if name == "x" else 2
        assert column["nulls"] == sum(1 for r in rows if r[value_pos] is None)
        histogram: dict[str, int] = {}
        for w in wts:
            histogram[day_of(w)] = histogram.get(day_of(w), 0) + 1
        assert column["writetime"] == {
            "count": len(wts),
            "min": min(wts),
            "max": max(wts),
            "mean": sum(wts) // len(wts),  # floor, also below zero
            "histogram_by_day": dict(sorted(histogram.items())),
        }
        assert column["ttl"] == {"cells_with_ttl": len(ttls), "min": min(ttls), "max": max(ttls)}
    assert summary["columns"]["k"] == {"nulls": 0}


def test_summary_of_no_rows() -> None:
    plan = small_plan()
    summary = summarize(merge_stats([StatsBuilder(plan).to_json()]), plan.to_json())
    assert summary["rows"] == 0
    assert summary["columns"]["x"]["writetime"] == {
        "count": 0,
        "min": None,
        "max": None,
        "mean": None,
        "histogram_by_day": {},
    }
    assert summary["columns"]["x"]["ttl"] == {"cells_with_ttl": 0, "min": None, "max": None}
    png = render_stats_chart(summary)
    assert png.startswith(PNG_MAGIC)


def test_chart_goes_through_beam_filesystems(tmp_path: Path) -> None:
    from tests import memfs

    stats = {
        "rows": 9,
        "columns": {
            "k": {"nulls": 0},
            "a": {
                "nulls": 1,
                "writetime": {"histogram_by_day": {"2024-05-10": 3, "2024-05-13": 5}},
            },
            "b": {
                "nulls": 0,
                "writetime": {"histogram_by_day": {"day-800000": 1, "1970-01-01": 2}},
            },
            "c": {"nulls": 9, "writetime": {"histogram_by_day": {}}},
        },
    }
    target = memfs.PREFIX + "bucket/out/_manifest/stats.png"
    memfs.reset(memfs.PREFIX + "bucket/")
    draw_stats_chart(stats, target)
    data = memfs.read(target)
    assert data.startswith(PNG_MAGIC) and len(data) > 1024
    local = tmp_path / "stats.png"
    draw_stats_chart(stats, str(local))
    assert local.read_bytes()[:8] == PNG_MAGIC
    many = {
        "rows": 1,
        "columns": {
            f"c{i}": {"writetime": {"histogram_by_day": {"2024-01-01": i}}} for i in range(8)
        },
    }
    assert render_stats_chart(many).startswith(PNG_MAGIC)
    assert os.path.getsize(local) > 1024


def test_summary_gives_each_columns_mean_and_nulls(
    session: Any, ks: str, hosts: str, tmp_path: Path
) -> None:
    """The end-of-run summary, per column: writetime min .. max and mean, TTLs, and nulls."""
    session.execute(f"CREATE TABLE {ks}.summary (k int PRIMARY KEY, a int, b int)")
    for k, stamp in enumerate([1699999999999999, 1700000000000000, 1700000001000002]):
        session.execute(
            f"INSERT INTO {ks}.summary (k, a) VALUES ({k}, {k}) USING TIMESTAMP {stamp}"
        )
    session.execute(f"INSERT INTO {ks}.summary (k, b) VALUES (3, 3) USING TIMESTAMP 5 AND TTL 9000")
    result = export(hosts, f"{ks}.summary", tmp_path / "out", "--ttl-columns", "*")
    lines = [
        line for line in result.stdout.splitlines() if line.startswith(("  a:", "  b:", "  k:"))
    ]
    ttl = read_stats(tmp_path / "out")["columns"]["b"]["ttl"]["min"]
    assert 8900 < ttl <= 9000
    assert lines == [
        "  a: writetime 2023-11-14T22:13:19.999999Z .. 2023-11-14T22:13:21.000002Z, mean "
        "2023-11-14T22:13:20.333333Z (3 cells), 1 nulls",
        "  b: writetime 1970-01-01T00:00:00.000005Z .. 1970-01-01T00:00:00.000005Z, mean "
        f"1970-01-01T00:00:00.000005Z (1 cells), ttl {ttl}..{ttl} s (1 cells), 3 nulls",
    ]
