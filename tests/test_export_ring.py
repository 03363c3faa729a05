"""Every partition exactly once (docs/export.md, how it reads): ring edges, sub-range
boundaries, composite keys,
several --splits values and formats, multi-process workers; and the token ring math.

Keys at chosen tokens. Searching keys for a token by hashing candidates cannot reach the
ring's very ends (2**-64 odds per try), so the keys are built instead: MurmurHash3's
final block and finalizer are invertible (``helpers.murmur3_preimage``), so a 16-byte
blob key, or a composite (blob, blob) key whose last 16 bytes are free but one, can be
made for any token at once. The test checks each such key's token with Cassandra's own
``token()`` before relying on it, and keys sit at -2**63+1, 2**63-1 (including a key whose
raw hash is -2**63, which Cassandra maps to 2**63-1), every node token and the token after
it, and every planned sub-range boundary and the token after it.
"""

from __future__ import annotations

import base64
import csv
import io
import json
import os
import random
from collections import Counter
from pathlib import Path
from typing import Any

import fastavro
import pytest

from tests import helpers
from tests.helpers import MAX_TOKEN, MIN_TOKEN, cassandra_token, composite_key
from transforms.cassandra_schema import partitions_per_range
from transforms.token_ranges import (
    RING_SIZE,
    TokenRange,
    WorkUnit,
    check_exact_cover,
    make_work_units,
    merge_adjacent,
    plan_ranges,
    ring_ranges,
    subtract,
)

SPLITS = (1, 7, 100)

# --- exact cover, checked independently of token_ranges.check_exact_cover -------------------


def assert_exact_cover(ranges: list[tuple[int, int]]) -> None:
    """``(start, end]`` ranges that tile (-2**63, 2**63-1] with no gap and no overlap."""
    ordered = sorted(ranges)
    assert ordered, "no ranges"
    assert ordered[0][0] == MIN_TOKEN
    assert ordered[-1][1] == MAX_TOKEN
    for (_, end), (start, _) in zip(ordered, ordered[1:], strict=False):
        assert start == end, f"gap or overlap between {end} and {start}"
    assert all(start < end for start, end in ordered)


def owner(units: list[tuple[int, int, int]], token: int) -> int:
    """Id of the one unit whose (start, end] holds ``token``."""
    found = [uid for uid, start, end in units if start < token <= end]
    assert len(found) == 1, (token, found)
    return found[0]


# --- fixtures ---------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def node_tokens(session: Any) -> list[int]:
    token_map = session.cluster.metadata.token_map
    return sorted(t.value for t in token_map.ring)


def _expected_units(
    session: Any, ks: str, table: str, tokens: list[int], splits: int
) -> list[tuple[int, int, int]]:
    """The units the launcher plans for ``--splits`` (ring + size estimates, as it reads them)."""
    estimates = partitions_per_range(session, ks, table)
    return [tuple(u.to_json()) for u in make_work_units(plan_ranges(tokens, splits, estimates))]


def _interesting_tokens(session: Any, ks: str, table: str, tokens: list[int]) -> set[int]:
    wanted = {MIN_TOKEN + 1, MIN_TOKEN + 2, MIN_TOKEN + 3, MAX_TOKEN, MAX_TOKEN - 1, -1, 0, 1}
    for t in tokens:
        wanted |= {t - 1, t, t + 1}
    for splits in SPLITS:
        for _, start, end in _expected_units(session, ks, table, tokens, splits):
            wanted |= {start + 1, end, min(end + 1, MAX_TOKEN)}
    return {t for t in wanted if MIN_TOKEN < t <= MAX_TOKEN}


class Exports:
    def __init__(self, hosts: str, base: Path) -> None:
        self.hosts = hosts
        self.base = base
        self.count = 0

    def __call__(self, table: str, *options: str) -> Path:
        self.count += 1
        out = self.base / f"out{self.count}"
        helpers.export(self.hosts, table, out, *options)
        assert (out / "_SUCCESS").exists()
        return out


@pytest.fixture(scope="module")
def exports(hosts: str, tmp_path_factory: pytest.TempPathFactory) -> Exports:
    return Exports(hosts, tmp_path_factory.mktemp("ring"))


# --- blob keys at the ring's edges and at every boundary -----------------------------------------


@pytest.fixture(scope="module")
def edge_keys(session: Any, ks: str, node_tokens: list[int]) -> dict[bytes, int]:
    """Table ``edges``: blob keys -> their token, at every interesting token, plus random."""
    session.execute(f"CREATE TABLE {ks}.edges (k blob PRIMARY KEY, v int)")
    keys: dict[bytes, int] = {}
    for target in sorted(_interesting_tokens(session, ks, "edges", node_tokens)):
        keys[helpers.murmur3_preimage(target)] = target
    raw_min = helpers.murmur3_preimage(MIN_TOKEN)  # Cassandra maps this hash to MAX_TOKEN
    keys[raw_min] = MAX_TOKEN
    rng = random.Random(7)
    for _ in range(300):
        key = rng.randbytes(rng.randrange(1, 40))
        keys[key] = cassandra_token(key)
    insert = session.prepare(f"INSERT INTO {ks}.edges (k, v) VALUES (?, ?)")
    for i, key in enumerate(keys):
        session.execute(insert, (key, i))
    # The test's premise, checked with Cassandra itself: each key has the token we built it for.
    actual = {bytes(r[0]): r[1] for r in session.execute(f"SELECT k, token(k) FROM {ks}.edges")}
    assert actual == keys
    assert actual[raw_min] == MAX_TOKEN
    return keys


def _decode_blob(value: Any, kind: str) -> bytes:
    if kind == "csv":
        assert value.startswith("0x")
        return bytes.fromhex(value[2:])
    if kind == "avro":
        return value
    return base64.b64decode(value)


def _kind(fmt: str) -> str:
    return {"csv": "csv", "jsonl": "json", "json": "json", "avro": "avro"}[fmt]


def _check_files_hold_their_ranges(out: Path, token_of: Any) -> None:
    """Every row of part-<unit> has a token inside that unit's (start, end]."""
    markers = helpers.markers(out)
    assert_exact_cover([(m["start"], m["end"]) for m in markers])
    for marker in markers:
        files = [p for p in helpers.part_files(out) if os.path.basename(p) == marker["file"]]
        assert len(files) == 1, marker
        rows = _rows_of_file(files[0])
        assert len(rows) == marker["rows"]
        for row in rows:
            token = token_of(row)
            assert marker["start"] < token <= marker["end"], (marker["file"], token)


def _rows_of_file(path: str) -> list[dict[str, Any]]:
    if path.endswith(".avro"):
        with open(path, "rb") as handle:
            return list(fastavro.reader(handle))
    text = helpers.part_text(path)
    if ".csv" in os.path.basename(path):
        return list(csv.DictReader(io.StringIO(text, newline="")))
    if ".jsonl" in os.path.basename(path):
        return [json.loads(line) for line in text.splitlines()]
    return json.loads(text)


@pytest.mark.parametrize(("splits", "fmt"), [(1, "csv"), (7, "jsonl"), (100, "avro")])
def test_blob_keys_at_ring_edges_exactly_once(
    exports: Exports,
    session: Any,
    ks: str,
    node_tokens: list[int],
    edge_keys: dict[bytes, int],
    splits: int,
    fmt: str,
) -> None:
    out = exports(f"{ks}.edges", "--splits", str(splits), "--format", fmt)
    units = helpers.manifest_units(out)
    assert units == _expected_units(session, ks, "edges", node_tokens, splits)
    assert_exact_cover([(s, e) for _, s, e in units])
    assert len(units) >= len(node_tokens) + 1  # no unit spans a node token
    kind = _kind(fmt)
    exported = Counter(_decode_blob(r["k"], kind) for r in helpers.read_rows(out))
    assert exported == Counter(edge_keys.keys())  # every key, each exactly once
    # The keys on both sides of every unit boundary landed in the right unit's file.
    _check_files_hold_their_ranges(out, lambda row: edge_keys[_decode_blob(row["k"], kind)])
    for _, start, end in units:
        assert end in edge_keys.values()
        if start + 1 <= MAX_TOKEN:
            assert start + 1 in edge_keys.values()


# --- composite partition keys ---------------------------------------------------------------------


def _composite_at(target_raw: int, rng: random.Random) -> tuple[bytes, bytes]:
    """(a, b) with len(a) == 10, len(b) == 16 whose composite key hashes to ``target_raw``.

    Serialized: [0,10] a [0] [0,16] b [0] = 32 bytes; the first block is
    [0,10] a [0] [0,16] b[0] and the last is b[1:] + [0], so the search takes the
    inverted blocks whose last byte is 0 (1 in 256)."""
    a = rng.randbytes(10)
    b0 = rng.randbytes(1)
    prefix = b"\x00\x0a" + a + b"\x00" + b"\x00\x10" + b0
    key = helpers.murmur3_preimage(target_raw, prefix, accept=lambda block: block[15] == 0)
    b = b0 + key[16:31]
    assert composite_key(a, b) == key
    return a, b


@pytest.fixture(scope="module")
def composite_keys(session: Any, ks: str, node_tokens: list[int]) -> dict[tuple[bytes, bytes], int]:
    session.execute(f"CREATE TABLE {ks}.comp (a blob, b blob, v int, PRIMARY KEY ((a, b)))")
    rng = random.Random(11)
    keys: dict[tuple[bytes, bytes], int] = {}
    targets = {MIN_TOKEN + 1, MIN_TOKEN + 2, MAX_TOKEN, MAX_TOKEN - 1}
    for splits in (7, 100):
        for _, start, end in _expected_units(session, ks, "comp", node_tokens, splits):
            targets |= {start + 1, end}
    for target in sorted(t for t in targets if MIN_TOKEN < t <= MAX_TOKEN):
        keys[_composite_at(target, rng)] = target
    keys[_composite_at(MIN_TOKEN, rng)] = MAX_TOKEN
    for _ in range(300):
        a, b = rng.randbytes(rng.randrange(0, 20)), rng.randbytes(rng.randrange(1, 20))
        keys[(a, b)] = cassandra_token(composite_key(a, b))
    insert = session.prepare(f"INSERT INTO {ks}.comp (a, b, v) VALUES (?, ?, ?)")
    for i, (a, b) in enumerate(keys):
        session.execute(insert, (a, b, i))
    actual = {
        (bytes(r[0]), bytes(r[1])): r[2]
        for r in session.execute(f"SELECT a, b, token(a, b) FROM {ks}.comp")
    }
    assert actual == keys
    return keys


@pytest.mark.parametrize(("splits", "fmt"), [(7, "jsonl"), (100, "csv")])
def test_composite_keys_exactly_once(
    exports: Exports,
    session: Any,
    ks: str,
    node_tokens: list[int],
    composite_keys: dict[tuple[bytes, bytes], int],
    splits: int,
    fmt: str,
) -> None:
    out = exports(f"{ks}.comp", "--splits", str(splits), "--format", fmt)
    units = helpers.manifest_units(out)
    assert units == _expected_units(session, ks, "comp", node_tokens, splits)
    kind = _kind(fmt)

    def key_of(row: dict[str, Any]) -> tuple[bytes, bytes]:
        return _decode_blob(row["a"], kind), _decode_blob(row["b"], kind)

    rows = helpers.read_rows(out)
    assert Counter(key_of(r) for r in rows) == Counter(composite_keys.keys())
    assert {r["v"] if kind == "json" else int(r["v"]) for r in rows} == set(
        range(len(composite_keys))
    )
    _check_files_hold_their_ranges(out, lambda row: composite_keys[key_of(row)])


# --- 5,000 partitions, 6,000 rows, many ways ---------------------------------------------------


@pytest.fixture(scope="module")
def big_table(session: Any, ks: str) -> dict[tuple[int, int], str]:
    """5,000 int partitions; every tenth holds 3 clustering rows (6,000 rows)."""
    from cassandra.concurrent import execute_concurrent_with_args

    session.execute(f"CREATE TABLE {ks}.big (k int, c int, v text, PRIMARY KEY (k, c))")
    rows = {}
    for k in range(-2500, 2500):
        for c in range(3 if k % 10 == 0 else 1):
            rows[(k, c)] = f"v{k}.{c}"
    insert = session.prepare(f"INSERT INTO {ks}.big (k, c, v) VALUES (?, ?, ?)")
    results = execute_concurrent_with_args(
        session, insert, [(k, c, v) for (k, c), v in rows.items()], concurrency=64
    )
    assert all(ok for ok, _ in results)
    return rows


BIG_RUNS = [
    ("splits1-jsonl", ("--splits", "1", "--format", "jsonl")),
    ("splits7-csv-paged", ("--splits", "7", "--format", "csv", "--fetch-size", "97")),
    ("splits100-json", ("--splits", "100", "--format", "json", "--batch-size", "33")),
    ("auto-avro", ("--format", "avro")),
    (
        "splits7-multiprocess",
        (
            "--splits",
            "7",
            "--format",
            "jsonl",
            "--direct_running_mode=multi_processing",
            "--direct_num_workers=2",
        ),
    ),
]


@pytest.mark.parametrize("options", [o for _, o in BIG_RUNS], ids=[i for i, _ in BIG_RUNS])
def test_big_table_every_row_once(
    exports: Exports, ks: str, big_table: dict[tuple[int, int], str], options: tuple[str, ...]
) -> None:
    out = exports(f"{ks}.big", *options)
    rows = helpers.read_rows(out)
    got = Counter((int(r["k"]), int(r["c"]), r["v"]) for r in rows)
    assert got == Counter((k, c, v) for (k, c), v in big_table.items())
    assert len(rows) == 6000
    assert sum(m["rows"] for m in helpers.markers(out)) == 6000
    assert_exact_cover([(s, e) for _, s, e in helpers.manifest_units(out)])

    def token_of(row: dict[str, Any]) -> int:
        return cassandra_token(int(row["k"]).to_bytes(4, "big", signed=True))

    _check_files_hold_their_ranges(out, token_of)


# --- token_ranges: pure ring math ----------------------------------------------------------------


def _pairs(ranges: list[TokenRange]) -> list[tuple[int, int]]:
    return [(r.start, r.end) for r in ranges]


@pytest.mark.parametrize(
    ("tokens", "expected"),
    [
        ([], [(MIN_TOKEN, MAX_TOKEN)]),
        ([MIN_TOKEN], [(MIN_TOKEN, MAX_TOKEN)]),
        ([MAX_TOKEN], [(MIN_TOKEN, MAX_TOKEN)]),
        ([MIN_TOKEN, MAX_TOKEN], [(MIN_TOKEN, MAX_TOKEN)]),
        ([MIN_TOKEN + 1], [(MIN_TOKEN, MIN_TOKEN + 1), (MIN_TOKEN + 1, MAX_TOKEN)]),
        ([MAX_TOKEN - 1], [(MIN_TOKEN, MAX_TOKEN - 1), (MAX_TOKEN - 1, MAX_TOKEN)]),
        ([0], [(MIN_TOKEN, 0), (0, MAX_TOKEN)]),
        ([5, -5, 5], [(MIN_TOKEN, -5), (-5, 5), (5, MAX_TOKEN)]),
        ([MIN_TOKEN, 0], [(MIN_TOKEN, 0), (0, MAX_TOKEN)]),
        ([0, MAX_TOKEN], [(MIN_TOKEN, 0), (0, MAX_TOKEN)]),
    ],
)
def test_ring_ranges(tokens: list[int], expected: list[tuple[int, int]]) -> None:
    ranges = ring_ranges(tokens)
    assert _pairs(ranges) == expected
    assert check_exact_cover(ranges) == []


@pytest.mark.parametrize("seed", range(8))
def test_vnode_rings_plan_an_exact_cover(seed: int) -> None:
    rng = random.Random(seed)
    nodes = rng.choice([1, 3, 5])
    tokens = [rng.randrange(MIN_TOKEN, MAX_TOKEN + 1) for _ in range(nodes * rng.choice([1, 16]))]
    if seed == 0:
        tokens += [MIN_TOKEN, MAX_TOKEN]  # node tokens right at the ring's ends
    base = ring_ranges(tokens)
    assert_exact_cover(_pairs(base))
    assert len(base) == len(set(tokens) - {MIN_TOKEN}) + (MAX_TOKEN not in tokens)
    for splits in (1, 2, 7, 100, 1000):
        planned = plan_ranges(tokens, splits)
        assert_exact_cover(_pairs(planned))
        assert check_exact_cover(planned) == []
        # A planned range never crosses a node token: each lies inside one ring range.
        for r in planned:
            assert sum(b.start <= r.start and r.end <= b.end for b in base) == 1
        assert len(planned) >= max(len(base), splits * 0.5)
        units = make_work_units(planned)
        assert [u.unit_id for u in units] == list(range(len(units)))
        assert [WorkUnit.from_json(u.to_json()) for u in units] == units


def test_plan_ranges_one_token_rings_exact_values() -> None:
    quarter = [
        (MIN_TOKEN, -4611686018427387905),
        (-4611686018427387905, -1),
        (-1, 4611686018427387903),
        (4611686018427387903, MAX_TOKEN),
    ]
    assert _pairs(plan_ranges([], 4)) == quarter
    thirds = [
        (MIN_TOKEN, -3074457345618258603),
        (-3074457345618258603, 3074457345618258602),
        (3074457345618258602, MAX_TOKEN),
    ]
    assert _pairs(plan_ranges([MIN_TOKEN], 3)) == thirds
    assert _pairs(plan_ranges([MAX_TOKEN], 3)) == thirds
    widths = [e - s for s, e in quarter]
    assert sum(widths) == RING_SIZE and max(widths) - min(widths) == 1
    with pytest.raises(ValueError):
        plan_ranges([], 0)


def test_plan_ranges_weights_by_size_estimates() -> None:
    estimates = {(MIN_TOKEN, 0): 900, (0, MAX_TOKEN): 100}
    planned = _pairs(plan_ranges([0], 10, estimates))
    assert len(planned) == 10
    assert planned[-1] == (0, MAX_TOKEN)  # 10% of the partitions: one unit
    assert planned[0][0] == MIN_TOKEN and planned[8][1] == 0  # 90%: nine units
    assert_exact_cover(planned)
    # Estimates for only part of the ring: the rest keeps a small width-based weight;
    # negative estimates are ignored.
    partial = plan_ranges([0], 4, {(-100, 0): 50, (1, 2): -1})
    assert _pairs(partial)[-1] == (0, MAX_TOKEN)
    assert len(partial) == 5
    assert_exact_cover(_pairs(partial))


def test_plan_ranges_weighs_the_wrapping_range_by_its_estimate() -> None:
    # Cassandra 5.0 reports the range that wraps as (t_n, MIN]: it ends at the ring's end.
    # Here it holds half the partitions, so half the units, as the other ring ranges do.
    tokens = [-(2**62), 0, 2**62]
    estimates = {(MIN_TOKEN, -(2**62)): 100, (-(2**62), 0): 100, (0, 2**62): 100}
    estimates[(2**62, MIN_TOKEN)] = 300
    planned = _pairs(plan_ranges(tokens, 12, estimates))
    assert planned[-6:] == _pairs(TokenRange(2**62, MAX_TOKEN).split(6))
    assert len(planned) == 12
    assert_exact_cover(planned)
    # Reported as (t_n, t_0] instead, it is shared between its two halves by width.
    wrapped = {(2**62, -(2**62)): 600, (-(2**62), 0): 100, (0, 2**62): 100}
    planned = _pairs(plan_ranges(tokens, 16, wrapped))
    assert planned[:6] == _pairs(TokenRange(MIN_TOKEN, -(2**62)).split(6))
    assert planned[-6:] == _pairs(TokenRange(2**62, MAX_TOKEN).split(6))
    assert len(planned) == 16
    assert_exact_cover(planned)
    # Estimates that sum to nothing fall back to token width.
    assert _pairs(plan_ranges([0], 4, {(MIN_TOKEN, 0): 0})) == _pairs(plan_ranges([0], 4))


def test_token_range_split_and_validation() -> None:
    assert _pairs(TokenRange(5, 8).split(10)) == [(5, 6), (6, 7), (7, 8)]
    assert _pairs(TokenRange(MIN_TOKEN, MAX_TOKEN).split(1)) == [(MIN_TOKEN, MAX_TOKEN)]
    assert TokenRange(MIN_TOKEN, MAX_TOKEN).size == RING_SIZE == 2**64 - 1
    assert not TokenRange(0, 10).contains(0) and TokenRange(0, 10).contains(10)
    for start, end in [(0, 0), (1, 0), (MIN_TOKEN - 1, 0), (0, MAX_TOKEN + 1)]:
        with pytest.raises(ValueError):
            TokenRange(start, end)


def test_subtract_exact_values() -> None:
    ring = TokenRange(MIN_TOKEN, MAX_TOKEN)
    assert _pairs(subtract(ring, [])) == [(MIN_TOKEN, MAX_TOKEN)]
    assert _pairs(subtract(ring, [ring])) == []
    assert _pairs(subtract(ring, [TokenRange(MIN_TOKEN, 0)])) == [(0, MAX_TOKEN)]
    assert _pairs(subtract(ring, [TokenRange(0, MAX_TOKEN)])) == [(MIN_TOKEN, 0)]
    assert _pairs(subtract(ring, [TokenRange(-10, 10), TokenRange(-30, -20)])) == [
        (MIN_TOKEN, -30),
        (-20, -10),
        (10, MAX_TOKEN),
    ]
    assert _pairs(subtract(TokenRange(0, 100), [TokenRange(-50, 10), TokenRange(90, 200)])) == [
        (10, 90)
    ]
    assert _pairs(subtract(TokenRange(0, 100), [TokenRange(100, 200)])) == [(0, 100)]
    assert _pairs(subtract(TokenRange(0, 100), [TokenRange(-5, 0)])) == [(0, 100)]


@pytest.mark.parametrize("seed", range(5))
def test_subtract_leaves_an_exact_cover(seed: int) -> None:
    """Committed pieces plus what subtract leaves of each unit cover the ring exactly once."""
    rng = random.Random(seed)
    tokens = [rng.randrange(MIN_TOKEN, MAX_TOKEN) for _ in range(16)]
    units = make_work_units(plan_ranges(tokens, 50))
    done: list[TokenRange] = []
    left: list[TokenRange] = []
    for unit in units:
        r = unit.token_range
        pieces = []
        for _ in range(rng.randrange(0, 4)):  # committed pieces inside the unit
            a, b = sorted(
                rng.sample(range(r.start, r.end + 1), 2) if r.size > 2 else (r.start, r.end)
            )
            if a < b:
                pieces.append(TokenRange(a, b))
        pieces = _disjoint(pieces)
        done += pieces
        left += subtract(r, pieces)
    assert check_exact_cover(done + left) == []
    assert_exact_cover(_pairs(done + left))


def _disjoint(pieces: list[TokenRange]) -> list[TokenRange]:
    kept: list[TokenRange] = []
    for p in sorted(pieces):
        if not kept or p.start >= kept[-1].end:
            kept.append(p)
    return kept


def test_check_exact_cover_messages() -> None:
    ring = TokenRange(MIN_TOKEN, MAX_TOKEN)
    assert check_exact_cover([ring]) == []
    assert check_exact_cover([]) == [f"gap ({MIN_TOKEN}, {MAX_TOKEN}]"]
    assert check_exact_cover([TokenRange(MIN_TOKEN, 0), TokenRange(5, MAX_TOKEN)]) == ["gap (0, 5]"]
    assert check_exact_cover([TokenRange(MIN_TOKEN, 10), TokenRange(5, MAX_TOKEN)]) == [
        "overlap (5, 10]"
    ]
    assert check_exact_cover([ring, ring]) == [f"overlap ({MIN_TOKEN}, {MAX_TOKEN}]"]
    assert check_exact_cover([TokenRange(MIN_TOKEN + 1, MAX_TOKEN)]) == [
        f"gap ({MIN_TOKEN}, {MIN_TOKEN + 1}]"
    ]
    assert check_exact_cover([TokenRange(MIN_TOKEN, MAX_TOKEN - 1)]) == [
        f"gap ({MAX_TOKEN - 1}, {MAX_TOKEN}]"
    ]


def test_merge_adjacent() -> None:
    ranges = [TokenRange(10, 20), TokenRange(MIN_TOKEN, 0), TokenRange(0, 5), TokenRange(20, 30)]
    assert merge_adjacent(ranges) == [[MIN_TOKEN, 5], [10, 30]]
    assert merge_adjacent([]) == []


def _weights_every_pair(base: list[Any], estimates: dict[tuple[int, int], int]) -> list[float]:
    """The estimate weights computed the direct way: every range against every estimate
    (in sorted order, so the float sums add the same terms in the same order). A wrapping
    estimate counts as its two halves, ``(s, MAX]`` and ``(MIN, e]``, sharing its count by
    width; one ending at MIN ends at MAX."""
    pieces = []
    for (s, e), count in estimates.items():
        if count < 0:
            continue
        e = MAX_TOKEN if e == MIN_TOKEN else e
        if s < e:
            pieces.append((s, e, float(count)))
        elif s > e:
            width = (MAX_TOKEN - s) + (e - MIN_TOKEN)
            pieces.append((s, MAX_TOKEN, count * (MAX_TOKEN - s) / width))
            pieces.append((MIN_TOKEN, e, count * (e - MIN_TOKEN) / width))
    weights = []
    for r in base:
        weight = 0.0
        for s, e, count in sorted(pieces):
            overlap = min(e, r.end) - max(s, r.start)
            if overlap > 0:
                weight += count * overlap / (e - s)
        weights.append(weight)
    return weights


@pytest.mark.parametrize("seed", range(6))
def test_estimate_weights_equal_every_pair_sums(seed: int) -> None:
    """The sweep over sorted estimates gives the same weight per range as summing every
    (range, estimate) overlap, for disjoint estimates (one node's) and overlapping ones."""
    from transforms.token_ranges import _weights, ring_ranges

    rng = random.Random(seed)
    base = ring_ranges(rng.randrange(MIN_TOKEN + 1, MAX_TOKEN) for _ in range(rng.randint(1, 60)))
    cuts = sorted({rng.randrange(MIN_TOKEN + 1, MAX_TOKEN) for _ in range(rng.randint(2, 80))})
    if seed % 2:  # overlapping estimates
        estimates = {(a, b): rng.randint(-1, 500) for a, b in zip(cuts, cuts[3:], strict=False)}
    else:  # disjoint, with gaps and a wrapping one
        estimates = {
            (a, b): rng.randint(0, 500) for a, b in zip(cuts[::2], cuts[1::2], strict=False)
        }
        estimates[(cuts[-1], cuts[0])] = 7
    direct = _weights_every_pair(base, estimates)
    if sum(direct) > 0:
        density = sum(direct) / sum(r.size for r in base)
        direct = [w if w > 0 else r.size * density * 0.1 for w, r in zip(direct, base, strict=True)]
    else:
        direct = [float(r.size) for r in base]
    assert _weights(base, estimates) == direct
