"""Exactly-once resume (docs/export.md, resume), against a real Cassandra node.

A 200,000-row table (``dev.load_table``: every value and writetime known in advance) is
exported, killed with SIGKILL at random points and resumed, damaged between a data
file's rename and its marker, resumed with changed options, and written to an object
store (``memory://``, tests/memfs.py). Every check is exact: the rows read back from
``OUT/data`` are exactly the rows inserted, each key once; every data file has exactly
one marker and every row of a file lies in its marker's token range; the committed
ranges cover ``(-2**63, 2**63-1]`` exactly once.

Run: ``CASSANDRA_CONTACT_POINTS=127.0.0.9:9042 .venv/bin/pytest tests/test_resume.py -x -q``
(``--quick`` or ``-m "not slow"`` leaves out the two kill/resume loops).
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import io
import json
import os
import random
import re
import shutil
import signal
import struct
import subprocess
import sys
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import fastavro
import pytest
from cassandra.murmur3 import murmur3

from dev.cassandra_local import make_keyspace
from dev.load_table import expected_row, load_big_table, loaded_rows
from tests import memfs

MIN_TOKEN = -(2**63)
MAX_TOKEN = 2**63 - 1
PARTITIONS = 20_000
ROWS_PER_PARTITION = 10
TOTAL_ROWS = PARTITIONS * ROWS_PER_PARTITION
SMALL = "small"  # the same schema, 3 x 2 rows: a cheap export to --overwrite with
SMALL_PARTITIONS, SMALL_ROWS_PER_PARTITION = 3, 2
SPLITS = "64"
CHECKPOINT_ROWS = "2000"  # units hold ~3,000 rows: many units commit in two or more pieces
KILL_RUN_ROWS_PER_SECOND = "40000"  # the killed runs' rate: 200,000 rows in 5 s or more
HEADER = ["pk", "ck", "n", "v", "n_writetime", "v_writetime"]
EXTENSIONS = {"csv": ".csv", "avro": ".avro", "parquet": ".parquet"}
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MICRO = dt.timedelta(microseconds=1)
REPO = Path(__file__).resolve().parent.parent
_SCRIPT = Path(sys.executable).with_name("cassandra-export")
CLI = [str(_SCRIPT)] if _SCRIPT.exists() else [sys.executable, "-m", "pipeline.cli"]

Row = tuple[int, int, str, int, int, int]  # pk, ck, v, n, n_writetime, v_writetime


# --- the table ---------------------------------------------------------------------------


@dataclass
class BigTable:
    contact_points: list[str]
    keyspace: str
    table: str
    load_seconds: float
    expected: list[Row] = field(repr=False, default_factory=list)
    small_expected: list[Row] = field(
        repr=False,
        default_factory=lambda: _expected_rows(SMALL_PARTITIONS, SMALL_ROWS_PER_PARTITION),
    )

    @property
    def hosts(self) -> str:
        return ",".join(self.contact_points)

    def export_args(self, fmt: str = "csv", table: str | None = None) -> list[str]:
        return [
            "--hosts",
            self.hosts,
            "--keyspace",
            self.keyspace,
            "--table",
            table or self.table,
            "--format",
            fmt,
            "--splits",
            SPLITS,
            "--progress-interval",
            "0",
        ]

    def resume_args(self, out: str | Path) -> list[str]:
        return ["--resume", str(out), "--hosts", self.hosts, "--progress-interval", "0"]


def _expected_rows(
    partitions: int = PARTITIONS, per_partition: int = ROWS_PER_PARTITION
) -> list[Row]:
    return loaded_rows(partitions, per_partition)


@pytest.fixture(scope="module")
def big(cassandra: Any) -> Iterator[BigTable]:
    """The 200,000-row table (and the small one), loaded once per module.

    The keyspace name is unique per process rather than conftest's ``keyspace`` (named after
    the module): two pytest sessions running this module at once against one node would
    otherwise drop each other's table in the middle of an export.
    """
    name = f"test_resume_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    session = cassandra.session()
    make_keyspace(session, name, 1)
    try:
        info = load_big_table(
            session, name, "big", partitions=PARTITIONS, rows_per_partition=ROWS_PER_PARTITION
        )
        load_big_table(
            session,
            name,
            SMALL,
            partitions=SMALL_PARTITIONS,
            rows_per_partition=SMALL_ROWS_PER_PARTITION,
        )
        yield BigTable(list(cassandra.contact_points), name, "big", info.seconds, _expected_rows())
    finally:
        with contextlib.suppress(Exception):
            session.execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=120)


# --- running the exporter ----------------------------------------------------------------


def cli(*args: str | Path, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=REPO,
    )


def ok(result: subprocess.CompletedProcess[str]) -> subprocess.CompletedProcess[str]:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stderr[-4000:]}"
    return result


def start_cli(args: list[str], log: Path) -> subprocess.Popen[bytes]:
    """The exporter in its own process group, so that SIGKILL reaches all of it."""
    with open(log, "ab") as handle:
        return subprocess.Popen(
            [*CLI, *args],
            stdout=handle,
            stderr=subprocess.STDOUT,
            cwd=REPO,
            start_new_session=True,
        )


def kill_group(proc: subprocess.Popen[bytes]) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait(timeout=60)


# --- reading an export back --------------------------------------------------------------


def snapshot_local(root: Path) -> dict[str, bytes]:
    """Every file under ``root`` by its relative path (directories themselves omitted)."""
    files = {}
    for path in sorted(root.rglob("*")):
        if path.is_file():
            files[path.relative_to(root).as_posix()] = path.read_bytes()
    return files


def snapshot_memory(root: str) -> dict[str, bytes]:
    prefix = root.rstrip("/") + "/"
    return {p[len(prefix) :]: memfs.read(p) for p in memfs.paths(prefix)}


def mtimes(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_mtime_ns for p in root.rglob("*")}


def iso_micros(text: str) -> int:
    moment = dt.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=dt.UTC)
    return (moment - EPOCH) // MICRO


def parse_csv(data: bytes) -> list[Row]:
    reader = csv.reader(io.StringIO(data.decode("utf-8"), newline=""))
    assert next(reader) == HEADER
    return [
        (int(pk), int(ck), v, int(n), iso_micros(nw), iso_micros(vw))
        for pk, ck, n, v, nw, vw in reader
    ]


def parse_avro(data: bytes) -> list[Row]:
    rows = []
    for record in fastavro.reader(io.BytesIO(data)):
        assert list(record) == HEADER
        rows.append(
            (
                record["pk"],
                record["ck"],
                record["v"],
                record["n"],
                (record["n_writetime"] - EPOCH) // MICRO,
                (record["v_writetime"] - EPOCH) // MICRO,
            )
        )
    return rows


def parse_parquet(data: bytes) -> list[Row]:
    import pyarrow.parquet as pq

    table = pq.read_table(io.BytesIO(data))
    assert table.column_names == HEADER
    return [
        (
            record["pk"],
            record["ck"],
            record["v"],
            record["n"],
            (record["n_writetime"] - EPOCH) // MICRO,
            (record["v_writetime"] - EPOCH) // MICRO,
        )
        for record in table.to_pylist()
    ]


_PARSERS = {"csv": parse_csv, "avro": parse_avro, "parquet": parse_parquet}


def token(pk: int) -> int:
    return murmur3(struct.pack(">i", pk))


def assert_exact_cover(ranges: list[tuple[int, int]]) -> None:
    """The ranges tile ``(-2**63, 2**63-1]``: no gap, no overlap."""
    ranges = sorted(ranges)
    assert ranges, "no committed ranges"
    assert ranges[0][0] == MIN_TOKEN
    for (_, end), (start, _) in zip(ranges, ranges[1:], strict=False):
        assert start == end, f"gap or overlap at {end} / {start}"
    assert ranges[-1][1] == MAX_TOKEN
    assert all(start < end for start, end in ranges)


@dataclass
class Export:
    files: dict[str, bytes]
    rows: list[Row]
    markers: dict[str, dict[str, Any]]  # marker name -> marker
    rows_by_file: dict[str, list[Row]]
    root: str = ""

    def pieces(self) -> set[tuple[str, int, int, int]]:
        return {(m["file"], m["start"], m["end"], m["rows"]) for m in self.markers.values()}


_DATA_NAME = re.compile(r"^part-(\d{5}(?:\.s\d+)?)\.(csv|avro|parquet)$")


def check_export(files: dict[str, bytes], fmt: str, big: BigTable, table: str = "big") -> Export:
    """Everything section 7 promises about a finished export, and the exact rows."""
    expected = big.expected if table == big.table else big.small_expected
    parse = _PARSERS[fmt]
    assert "_SUCCESS" in files
    assert "_manifest/export.json" in files
    record = json.loads(files["_manifest/export.json"])
    assert record["version"] == "1.0"
    assert {"export_config", "cluster", "started_at"} <= record.keys()
    leftovers = [p for p in files if p.startswith("_temporary/") or p.endswith(".tmp")]
    assert leftovers == [], "uncommitted temporary files remain"
    strays = [
        p for p in files if not p.startswith(("data/", "_manifest/")) and p not in ("_SUCCESS",)
    ]
    assert strays == []

    markers = {
        p.rsplit("/", 1)[1]: json.loads(files[p])
        for p in files
        if p.startswith("_manifest/ranges/")
    }
    data_files = {p.split("/", 1)[1]: files[p] for p in files if p.startswith("data/")}
    for name in data_files:
        match = _DATA_NAME.match(name)
        assert match and match.group(2) == fmt, f"unexpected data file {name}"
    # Exactly one marker per data file, named after it, and no marker without its file.
    assert sorted(m["file"] for m in markers.values()) == sorted(data_files)
    rows_by_file: dict[str, list[Row]] = {}
    all_rows: list[Row] = []
    for marker_name, marker in markers.items():
        stem = _DATA_NAME.match(marker["file"]).group(1)
        assert marker_name == f"{stem}.json"
        data = data_files[marker["file"]]
        assert marker["bytes"] == len(data)
        rows = parse(data)
        assert len(rows) == marker["rows"] == marker["rows_read"]
        start, end = int(marker["start"]), int(marker["end"])
        outside = [r[:2] for r in rows if not start < token(r[0]) <= end]
        assert outside == [], f"{marker['file']}: rows outside ({start}, {end}]"
        rows_by_file[marker["file"]] = rows
        all_rows += rows

    assert_exact_cover([(int(m["start"]), int(m["end"])) for m in markers.values()])
    checkpoint = json.loads(files["_manifest/checkpoint.json"])
    completed = [tuple(r) for r in checkpoint["completed_ranges"]]
    assert_exact_cover(completed)
    assert sorted(completed) == sorted((m["start"], m["end"]) for m in markers.values())
    assert checkpoint["total_rows"] == len(expected)
    assert checkpoint["pieces_committed"] == len(markers)
    assert checkpoint["export_config"]["table"] == f"{big.keyspace}.{table}"
    stats = json.loads(files["_manifest/stats.json"])
    assert stats["rows"] == len(expected)

    # The rows: exactly the inserted ones, each (pk, ck) once.
    assert len(all_rows) == len(expected)
    keys = Counter(r[:2] for r in all_rows)
    assert len(keys) == len(expected) and max(keys.values()) == 1
    assert sorted(all_rows) == expected
    return Export(files, all_rows, markers, rows_by_file)


def markers_in(out: Path) -> dict[str, bytes]:
    ranges = out / "_manifest" / "ranges"
    found = {}
    try:
        names = os.listdir(ranges)
    except FileNotFoundError:
        return {}
    for name in names:
        if name.endswith(".json") and not name.startswith("."):
            try:
                found[name] = (ranges / name).read_bytes()
            except FileNotFoundError:
                pass
    return found


# --- module-wide exports -------------------------------------------------------------------


@pytest.fixture(scope="module")
def clean_csv(big: BigTable, tmp_path_factory: pytest.TempPathFactory) -> Export:
    """One clean CSV export in pieces (--checkpoint-rows), checked; tests work on copies."""
    out = tmp_path_factory.mktemp("clean") / "out"
    ok(cli(*big.export_args("csv"), "--checkpoint-rows", CHECKPOINT_ROWS, "--output", out))
    export = check_export(snapshot_local(out), "csv", big)
    assert any(".s" in name for name in export.markers), "expected units of several pieces"
    export.root = str(out)
    return export


def copy_of(export: Export, tmp_path: Path) -> Path:
    out = tmp_path / "out"
    shutil.copytree(export.root, out)
    return out


def forget_markers(out: Path, names: list[str]) -> None:
    """What a crash between a data file's rename and its marker leaves: the file, no marker,
    no _SUCCESS, and a checkpoint.json that is behind."""
    for name in names:
        (out / "_manifest" / "ranges" / name).unlink()
    (out / "_SUCCESS").unlink()


def pick_markers(export: Export, rng: random.Random, count: int) -> list[str]:
    """Markers of ``count`` pieces with rows: a unit's first piece and a later piece included."""
    firsts = sorted(n for n, m in export.markers.items() if ".s" not in n and m["rows"])
    laters = sorted(n for n, m in export.markers.items() if ".s" in n and m["rows"])
    chosen = {rng.choice(firsts), rng.choice(laters)}
    rest = sorted(set(firsts + laters) - chosen)
    chosen.update(rng.sample(rest, count - len(chosen)))
    return sorted(chosen)


# --- 1. kill -9 and resume, again and again ----------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("fmt", ["csv", "avro", "parquet"])
def test_kill_and_resume_repeatedly_exports_every_row_once(
    big: BigTable, tmp_path: Path, fmt: str
) -> None:
    clean = tmp_path / "clean"
    ok(cli(*big.export_args(fmt), "--output", clean))
    clean_export = check_export(snapshot_local(clean), fmt, big)

    seed = random.randrange(2**32)
    rng = random.Random(seed)
    out = tmp_path / "killed"
    log = tmp_path / "runs.log"
    # Throttled (the resumes keep the recorded rate), so that every kill lands mid-export
    # however fast the node: a run of the whole table takes at least 5 s.
    first = [*big.export_args(fmt), "--checkpoint-rows", CHECKPOINT_ROWS, "--output", str(out)]
    first += ["--max-rows-per-second", KILL_RUN_ROWS_PER_SECOND]
    resume = big.resume_args(out)
    kills: list[dict[str, Any]] = []
    kept: dict[str, bytes] = {}  # markers seen after a kill: committed, never redone
    proc = start_cli(first, log)
    started = time.monotonic()
    for cycle in range(5):
        before = markers_in(out)
        early = cycle == 2  # once, kill a resume before it commits anything of its own
        wanted = 0 if early else rng.randint(1, 4)
        deadline = time.monotonic() + (rng.uniform(0.5, 1.5) if early else 240)
        while proc.poll() is None and time.monotonic() < deadline:
            if not early and len(markers_in(out)) >= len(before) + wanted:
                time.sleep(rng.uniform(0.0, 0.4))
                break
            time.sleep(0.02)
        # The run is alive when it is killed: every one of the 5 kills lands mid-export.
        assert proc.poll() is None, (seed, cycle, kills, log.read_text()[-4000:])
        kill_group(proc)
        now = time.monotonic()
        after = markers_in(out)
        committed_rows = sum(json.loads(m)["rows"] for m in after.values())
        assert committed_rows < TOTAL_ROWS, (seed, cycle)  # work was left at this kill
        assert not (out / "_SUCCESS").exists()
        kills.append(
            {
                "cycle": cycle,
                "seconds": round(now - started, 2),
                "new_markers": len(after) - len(before),
                "rows_left": TOTAL_ROWS - committed_rows,
            }
        )
        for name, content in before.items():
            assert after.get(name) == content, f"committed marker {name} changed by a resume"
        kept.update(after)
        proc = start_cli(resume, log)
        started = time.monotonic()
    assert proc.wait(timeout=300) == 0, log.read_text()[-4000:]
    final_seconds = time.monotonic() - started

    assert len(kills) == 5, (seed, kills)
    assert sum(1 for k in kills if k["new_markers"] > 0) >= 3, (seed, kills)
    export = check_export(snapshot_local(out), fmt, big)
    assert sorted(export.rows) == sorted(clean_export.rows)
    for name, content in kept.items():
        assert export.files[f"_manifest/ranges/{name}"] == content
    print(f"\n[{fmt}] seed={seed} kills={kills} final_resume={final_seconds:.1f}s")


# --- 2. a crash between a data file's rename and its marker ----------------------------------


def test_resume_repairs_orphans_without_duplicates(
    big: BigTable, clean_csv: Export, tmp_path: Path
) -> None:
    rng = random.Random(7)
    out = copy_of(clean_csv, tmp_path)
    lost = pick_markers(clean_csv, rng, 4)
    forget_markers(out, lost)
    data = out / "data"
    # One orphan cut short (the crash hit while its bytes were still going out).
    half = clean_csv.markers[lost[0]]["file"]
    (data / half).write_bytes(
        (data / half).read_bytes()[: clean_csv.markers[lost[0]]["bytes"] // 2]
    )
    # A committed file copied under a piece name no marker knows: rows that must not count twice.
    donor = clean_csv.markers[sorted(clean_csv.markers)[5]]
    stem = donor["file"].removeprefix("part-").removesuffix(".csv").split(".s")[0]
    shutil.copy(data / donor["file"], data / f"part-{stem}.s12345.csv")
    # A temporary file of an attempt that never got to its rename, and a half-written marker.
    (out / "_temporary").mkdir(exist_ok=True)
    (out / "_temporary" / "part-00003-0123456789ab.csv").write_bytes(b"pk,ck\r\n1,2\r\n")
    (out / "_manifest" / "ranges" / ".00003.json.0123456789ab.tmp").write_bytes(b'{"unit')

    result = ok(cli(*big.resume_args(out)))
    assert "already complete" not in result.stdout
    export = check_export(snapshot_local(out), "csv", big)
    # The pieces whose markers were lost were redone under their own names, with their rows.
    for name in lost:
        marker = clean_csv.markers[name]
        assert export.markers[name]["file"] == marker["file"]
        assert export.rows_by_file[marker["file"]] == clean_csv.rows_by_file[marker["file"]]
    # Every other piece was kept as it was.
    for name, marker in clean_csv.markers.items():
        if name not in lost:
            assert export.markers[name] == marker
    assert export.pieces() == clean_csv.pieces()


def test_resume_after_finalize_crash_only_finalizes(
    big: BigTable, clean_csv: Export, tmp_path: Path
) -> None:
    """Every piece committed, but the run died before _SUCCESS: the resume redoes nothing."""
    out = copy_of(clean_csv, tmp_path)
    for name in ("_SUCCESS", "_manifest/checkpoint.json", "_manifest/stats.json"):
        (out / name).unlink()
    data_before = {k: v for k, v in snapshot_local(out).items() if k.startswith("data/")}
    ok(cli(*big.resume_args(out)))
    export = check_export(snapshot_local(out), "csv", big)
    assert {k: v for k, v in export.files.items() if k.startswith("data/")} == data_before
    assert export.markers == clean_csv.markers


# --- 3. what a resume may and may not change ---------------------------------------------------


def test_resume_refuses_a_changed_output_option(
    big: BigTable, clean_csv: Export, tmp_path: Path
) -> None:
    out = copy_of(clean_csv, tmp_path)
    forget_markers(out, pick_markers(clean_csv, random.Random(3), 3))
    before = snapshot_local(out)
    for option, value in (("--writetime-columns", "v"), ("--format", "avro")):
        result = cli(*big.resume_args(out), option, value)
        assert result.returncode == 2, result.stderr
        assert option in result.stderr
        assert "Traceback" not in result.stderr
        assert snapshot_local(out) == before  # refused before touching anything


@pytest.mark.parametrize(
    "beam_args",
    [
        ["--runner=FnApiRunner"],
        ["--direct_num_workers=2", "--direct_running_mode=multi_processing"],
    ],
    ids=["runner", "multi_processing"],
)
def test_resume_accepts_different_runner_options(
    big: BigTable, clean_csv: Export, tmp_path: Path, beam_args: list[str]
) -> None:
    out = copy_of(clean_csv, tmp_path)
    lost = pick_markers(clean_csv, random.Random(11), 6)
    forget_markers(out, lost)
    result = ok(cli(*big.resume_args(out), *beam_args))
    if "--direct_num_workers=2" in beam_args:
        # Beam's FnApiRunner drops self-checkpointed residuals with several workers.
        assert "--checkpoint-rows" in result.stderr
    export = check_export(snapshot_local(out), "csv", big)
    for name, marker in clean_csv.markers.items():
        if name not in lost:
            assert export.markers[name] == marker
    redone = {export.markers[n]["file"] for n in export.markers} - {
        clean_csv.markers[n]["file"] for n in clean_csv.markers if n not in lost
    }
    redone_rows = sorted(r for f in redone for r in export.rows_by_file[f])
    lost_rows = sorted(
        r for n in lost for r in clean_csv.rows_by_file[clean_csv.markers[n]["file"]]
    )
    assert redone_rows == lost_rows


def test_resume_of_a_complete_export_is_a_no_op(
    big: BigTable, clean_csv: Export, tmp_path: Path
) -> None:
    out = copy_of(clean_csv, tmp_path)
    before, stamps = snapshot_local(out), mtimes(out)
    result = ok(cli(*big.resume_args(out)))
    assert "already complete" in result.stdout
    assert f"{TOTAL_ROWS:,} rows" in result.stdout
    assert snapshot_local(out) == before
    assert mtimes(out) == stamps


@pytest.mark.parametrize("state", ["finished", "crashed", "foreign"])
def test_new_export_into_a_non_empty_output_is_refused(
    big: BigTable, clean_csv: Export, tmp_path: Path, state: str
) -> None:
    if state == "foreign":
        out = tmp_path / "out"
        (out / "sub").mkdir(parents=True)
        (out / "sub" / "notes.txt").write_text("not an export")
    else:
        out = copy_of(clean_csv, tmp_path)
        if state == "crashed":  # a run that died: no _SUCCESS, nothing at the top level
            forget_markers(out, pick_markers(clean_csv, random.Random(5), 2))
            for name in ("checkpoint.json", "stats.json"):
                (out / "_manifest" / name).unlink()
    before = snapshot_local(out)
    result = cli(*big.export_args("csv"), "--output", out)
    assert result.returncode == 2, result.stderr
    assert "not empty" in result.stderr and "--overwrite" in result.stderr
    if state != "foreign":
        assert "--resume" in result.stderr
    assert "Traceback" not in result.stderr
    assert snapshot_local(out) == before


def test_overwrite_replaces_a_previous_export(
    big: BigTable, clean_csv: Export, tmp_path: Path
) -> None:
    out = copy_of(clean_csv, tmp_path)
    (out / "data" / "part-77777.csv").write_bytes(b"pk,ck\r\n1,1\r\n")
    (out / "notes.txt").write_text("left from before")
    ok(cli(*big.export_args("csv", SMALL), "--output", out, "--overwrite"))
    # Nothing of the big export is left: the checks count exactly the small table's rows.
    check_export(snapshot_local(out), "csv", big, SMALL)


# --- 4. the manifest on an object store (memory://) --------------------------------------------


def run_in_process(argv: list[str]) -> tuple[int, str]:
    from pipeline.launcher import run

    buffer = io.StringIO()
    code = run([*argv], out=buffer)
    return code, buffer.getvalue()


def test_export_and_resume_on_an_object_store(big: BigTable, clean_csv: Export) -> None:
    from pipeline.options import UsageError

    root = f"memory://exports/run-{uuid.uuid4().hex[:8]}"
    try:
        argv = [*big.export_args("csv"), "--checkpoint-rows", CHECKPOINT_ROWS, "--output", root]
        code, _ = run_in_process(argv)
        assert code == 0
        export = check_export(snapshot_memory(root), "csv", big)
        assert any(".s" in name for name in export.markers)
        manifest = json.loads(export.files["_manifest/export.json"])
        clean_manifest = json.loads(clean_csv.files["_manifest/export.json"])
        assert manifest["export_config"] == clean_manifest["export_config"]
        assert manifest["plan"] == clean_manifest["plan"]

        # A crash between renames and markers, plus debris of an attempt that never committed.
        rng = random.Random(13)
        lost = pick_markers(export, rng, 5)
        for name in lost:
            memfs.FILES.pop(f"{root}/_manifest/ranges/{name}")
        memfs.FILES.pop(f"{root}/_SUCCESS")
        memfs.put(f"{root}/_temporary/part-00002-0123456789ab.csv", b"pk,ck\r\n")
        memfs.put(f"{root}/data/part-00002.s999.csv", export.files["data/part-00002.csv"])
        code, out = run_in_process(big.resume_args(root))
        assert code == 0
        resumed = check_export(snapshot_memory(root), "csv", big)
        for name, marker in export.markers.items():
            if name not in lost:
                assert resumed.markers[name] == marker
        assert resumed.pieces() == export.pieces()

        code, out = run_in_process(big.resume_args(root))
        assert code == 0 and "already complete" in out

        # A new export into it is refused, also when the run died before _SUCCESS ...
        with pytest.raises(UsageError, match="not empty.*--resume"):
            run_in_process([*big.export_args("csv"), "--output", root])
        memfs.FILES.pop(f"{root}/_SUCCESS")
        with pytest.raises(UsageError, match="not empty.*--resume"):
            run_in_process([*big.export_args("csv"), "--output", root])
        # ... and --overwrite replaces everything under the prefix.
        memfs.put(f"{root}/notes.txt", b"left from before")
        code, _ = run_in_process([*big.export_args("csv", SMALL), "--output", root, "--overwrite"])
        assert code == 0
        check_export(snapshot_memory(root), "csv", big, SMALL)
    finally:
        memfs.reset(root + "/")


# --- 5. a retried bundle writes the same piece again ---------------------------------------------


def _plan() -> Any:
    from transforms.table_plan import CLUSTERING, PARTITION_KEY, REGULAR, build_table_plan

    return build_table_plan(
        keyspace="ks",
        table="big",
        column_types=[
            ("pk", "int", PARTITION_KEY),
            ("ck", "int", CLUSTERING),
            ("n", "bigint", REGULAR),
            ("v", "text", REGULAR),
        ],
        user_types={},
        release_version="5.0.8",
    )


def _rows(pks: range) -> list[tuple[Any, ...]]:
    rows = []
    for pk in pks:
        for ck in range(ROWS_PER_PARTITION):
            _, _, v, n, wt = expected_row(pk, ck)
            rows.append((pk, ck, n, v, wt, wt))
    return rows


@pytest.mark.parametrize("where", ["local", "memory"])
def test_a_retried_bundle_commits_one_file_per_piece(tmp_path: Path, where: str) -> None:
    from transforms.elements import PieceEnd, PieceKey, RowBatch
    from transforms.manifest import Layout, orphan_files, read_markers
    from transforms.sinks import SinkConfig, WritePiecesFn

    root = str(tmp_path / "out") if where == "local" else f"memory://retry/{uuid.uuid4().hex}"
    snapshot = (
        (lambda: snapshot_local(Path(root)))
        if where == "local"
        else (lambda: snapshot_memory(root))
    )
    plan, sink = _plan(), SinkConfig(format="csv")
    unit_start = -(2**62)
    key = PieceKey(unit_id=7, unit_start=unit_start, piece_start=unit_start + 1000)

    dead: list[WritePiecesFn] = []  # a dead worker never closes what it had open

    def attempt(rows: list[tuple[Any, ...]], end: int | None) -> list[dict[str, Any]]:
        fn = WritePiecesFn(plan, root, sink)  # a fresh DoFn, as a retry on another worker
        fn.setup()
        fn.start_bundle()
        out: list[dict[str, Any]] = []
        for i in range(0, len(rows), 7):
            out += list(fn.process(RowBatch(key, rows[i : i + 7])))
        if end is None:
            dead.append(fn)
            return out
        out += list(fn.process(PieceEnd(key, end, len(rows))))
        fn.finish_bundle()
        fn.teardown()
        return out

    try:
        attempt(_rows(range(0, 3)), None)  # died mid-piece: only a temporary file, if any
        first = attempt(_rows(range(0, 4)), unit_start + 5000)  # committed, then bundle failed
        assert first == [
            {"unit_id": 7, "start": key.piece_start, "end": unit_start + 5000, "rows": 40}
        ]
        second_rows = _rows(range(100, 105))
        second = attempt(second_rows, unit_start + 9000)  # the retry, split elsewhere
        assert second == [
            {"unit_id": 7, "start": key.piece_start, "end": unit_start + 9000, "rows": 50}
        ]
        files = snapshot()
        data = sorted(p for p in files if p.startswith("data/"))
        ranges = sorted(p for p in files if p.startswith("_manifest/ranges/"))
        assert data == ["data/part-00007.s1000.csv"]
        assert ranges == ["_manifest/ranges/00007.s1000.json"]
        marker = json.loads(files[ranges[0]])
        assert (marker["start"], marker["end"], marker["rows"]) == (
            key.piece_start,
            unit_start + 9000,
            50,
        )
        assert marker["file"] == "part-00007.s1000.csv"
        assert marker["bytes"] == len(files[data[0]])
        assert parse_csv(files[data[0]]) == [
            (pk, ck, v, n, nw, vw) for pk, ck, n, v, nw, vw in second_rows
        ]
        # What the dead attempt left is an orphan that finalize / --resume deletes.
        layout = Layout(root)
        orphans = orphan_files(layout, read_markers(layout))
        temps = [p for p in files if p.startswith("_temporary/")]
        assert sorted(o.rsplit("/", 1)[1] for o in orphans) == sorted(
            t.rsplit("/", 1)[1] for t in temps
        )
        assert len(temps) == (1 if where == "local" else 0)  # objects appear only when closed
    finally:
        if where == "memory":
            memfs.reset(root + "/")


def test_a_bundle_that_loses_its_piece_end_fails_and_cleans_up(tmp_path: Path) -> None:
    from transforms.elements import PieceKey, RowBatch
    from transforms.sinks import SinkConfig, WritePiecesFn

    root = tmp_path / "out"
    fn = WritePiecesFn(_plan(), str(root), SinkConfig(format="csv"))
    fn.setup()
    fn.start_bundle()
    list(fn.process(RowBatch(PieceKey(1, 0, 0), _rows(range(2)))))
    with pytest.raises(RuntimeError, match="fuse"):
        fn.finish_bundle()
    assert snapshot_local(root) == {}  # the temporary file is gone, nothing committed


def test_an_empty_piece_commits_nothing(tmp_path: Path) -> None:
    """A runner may checkpoint a restriction before its first claim: the primary is empty."""
    from transforms.elements import PieceEnd, PieceKey
    from transforms.manifest import Layout, read_markers
    from transforms.sinks import SinkConfig, WritePiecesFn

    root = tmp_path / "out"
    fn = WritePiecesFn(_plan(), str(root), SinkConfig(format="csv"))
    fn.setup()
    fn.start_bundle()
    key = PieceKey(3, 100, 500)
    assert list(fn.process(PieceEnd(key, 500, 0))) == []
    fn.finish_bundle()
    assert read_markers(Layout(str(root))) == []
    assert snapshot_local(root) == {}
