"""Shared test helpers: run the CLI, read an export back, talk to Cassandra, forge tokens.

Nothing here mocks the exporter: ``run_cli`` calls ``pipeline.cli.main`` in this process,
``run_cli_subprocess`` runs ``.venv/bin/cassandra-export`` (or ``python -m pipeline.cli``)
as a user would, and the readers parse ``OUT/data/part-*`` with the standard csv / json
modules and fastavro.
"""

from __future__ import annotations

import contextlib
import csv
import datetime
import glob
import gzip
import io
import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

import pytest

from dev import strays

REPO = Path(__file__).resolve().parent.parent
CLI = REPO / ".venv" / "bin" / "cassandra-export"
EPOCH = datetime.datetime(1970, 1, 1)
EPOCH_UTC = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)
MIN_TOKEN = -(2**63)
MAX_TOKEN = 2**63 - 1


# --- running the CLI -------------------------------------------------------------------------


@dataclass
class CliResult:
    code: int
    stdout: str
    stderr: str
    argv: list[str] = field(default_factory=list)

    def describe(self) -> str:
        return (
            f"argv={self.argv}\nexit={self.code}\n--- stdout\n{self.stdout}\n"
            f"--- stderr\n{self.stderr}"
        )


def run_cli(argv: Sequence[str]) -> CliResult:
    """``pipeline.cli.main(argv)`` in this process, its stdout and stderr captured."""
    from pipeline.cli import main

    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(argv))
    return CliResult(code, out.getvalue(), err.getvalue(), list(argv))


def export_argv(hosts: str, table: str, out: Path, fmt: str, splits: int) -> list[str]:
    """The CLI options of a plain export of ``table`` into ``out``, without progress lines."""
    return [
        *("--hosts", hosts, "--table", table, "--output", str(out), "--format", fmt),
        *("--splits", str(splits), "--progress-interval", "0"),
    ]


def run_cli_leaving_nothing(argv: Sequence[str], timeout: float) -> CliResult:
    """The CLI as a child process, run-marked; nothing it started (a Prism job server, Dask
    clients, workers) may outlive it."""
    marker = f"cli-{os.getpid()}-{time.time_ns()}"
    result = run_cli_subprocess(argv, timeout=timeout, env={strays.RUN_MARKER: marker})
    assert [p.cmdline() for p in strays.marked_processes(marker)] == []
    return result


def cli_command() -> list[str]:
    """The installed console script, else ``python -m pipeline.cli``."""
    if CLI.exists():
        return [str(CLI)]
    return [sys.executable, "-m", "pipeline.cli"]


@contextlib.contextmanager
def reaped(proc: subprocess.Popen) -> Iterator[subprocess.Popen]:
    """``proc`` for the block; killed and waited for on leaving it if it still runs (a
    failed assertion must not leave a child process behind)."""
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=30)


def run_cli_subprocess(
    argv: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    cwd: str | Path | None = None,
    timeout: float = 180,
) -> CliResult:
    """The CLI as a child process, exactly as a user runs it."""
    full_env = dict(os.environ)
    full_env.pop("CASSANDRA_EXPORT_DEBUG", None)
    full_env.update(env or {})
    proc = subprocess.run(
        cli_command() + list(argv),
        capture_output=True,
        text=True,
        env=full_env,
        cwd=str(cwd or REPO),
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    return CliResult(proc.returncode, proc.stdout, proc.stderr, list(argv))


def export(hosts: str, table: str, out: str | Path, *extra: str, expect_code: int = 0) -> CliResult:
    """Run one export in-process with the FnApiRunner; assert its exit code."""
    argv = [
        "--hosts",
        hosts,
        "--table",
        table,
        "--output",
        str(out),
        "--runner=FnApiRunner",
        "--progress-interval",
        "0",
        *extra,
    ]
    result = run_cli(argv)
    assert result.code == expect_code, result.describe()
    return result


# --- reading an export back ----------------------------------------------------------------


def part_files(out: str | Path) -> list[str]:
    return sorted(glob.glob(os.path.join(str(out), "data", "part-*")))


def _open_text_bytes(path: str) -> bytes:
    with open(path, "rb") as handle:
        data = handle.read()
    if path.endswith(".gz"):
        return gzip.decompress(data)
    if path.endswith(".zst"):
        import zstandard

        with zstandard.ZstdDecompressor().stream_reader(io.BytesIO(data)) as reader:
            return reader.read()
    return data


def part_text(path: str) -> str:
    """A text part (csv / jsonl / json), decompressed by its extension, as UTF-8."""
    return _open_text_bytes(path).decode("utf-8")


def _kind(path: str) -> str:
    name = os.path.basename(path)
    for suffix in (".gz", ".zst"):
        if name.endswith(suffix):
            name = name[: -len(suffix)]
    return name.rsplit(".", 1)[-1]


def read_csv_parts(out: str | Path, delimiter: str = ",") -> tuple[list[str], list[dict[str, str]]]:
    """Header and rows (dicts of strings) through Python's csv module; every part's header
    must be the same."""
    header: list[str] | None = None
    rows: list[dict[str, str]] = []
    for path in part_files(out):
        reader = csv.reader(io.StringIO(part_text(path), newline=""), delimiter=delimiter)
        records = list(reader)
        assert records, f"{path} has no header"
        if header is None:
            header = records[0]
        assert records[0] == header, f"{path}: header differs"
        for record in records[1:]:
            assert len(record) == len(header), f"{path}: {record!r}"
            rows.append(dict(zip(header, record, strict=True)))
    return header or [], rows


def parse_csv_raw(text: str, delimiter: str = ",") -> list[list[tuple[str, bool]]]:
    """RFC 4180 records as (text, was_quoted) per field, so that an unquoted empty field
    (null) differs from a quoted one (empty string)."""
    records: list[list[tuple[str, bool]]] = []
    record: list[tuple[str, bool]] = []
    value: list[str] = []
    quoted = False
    i, n = 0, len(text)
    at_field_start = True
    while i < n:
        ch = text[i]
        if at_field_start and ch == '"':
            quoted = True
            at_field_start = False
            i += 1
            while True:
                if i >= n:
                    raise ValueError("unterminated quoted field")
                if text[i] == '"':
                    if i + 1 < n and text[i + 1] == '"':
                        value.append('"')
                        i += 2
                        continue
                    i += 1
                    break
                value.append(text[i])
                i += 1
            continue
        at_field_start = False
        if ch == delimiter:
            record.append(("".join(value), quoted))
            value, quoted, at_field_start = [], False, True
            i += 1
        elif ch == "\r" and i + 1 < n and text[i + 1] == "\n":
            record.append(("".join(value), quoted))
            records.append(record)
            record, value, quoted, at_field_start = [], [], False, True
            i += 2
        else:
            if quoted:
                raise ValueError(f"text after a closing quote at {i}")
            value.append(ch)
            i += 1
    if record or value:
        record.append(("".join(value), quoted))
        records.append(record)
    return records


def read_csv_raw(
    out: str | Path, delimiter: str = ","
) -> tuple[list[str], list[dict[str, tuple[str, bool]]]]:
    header: list[str] | None = None
    rows: list[dict[str, tuple[str, bool]]] = []
    for path in part_files(out):
        records = parse_csv_raw(part_text(path), delimiter)
        names = [v for v, _ in records[0]]
        header = header or names
        assert names == header
        rows += [dict(zip(header, r, strict=True)) for r in records[1:]]
    return header or [], rows


def _strict_json(text: str) -> Any:
    """json.loads that refuses the non-standard NaN / Infinity literals."""

    def refuse(name: str) -> Any:
        raise ValueError(f"non-standard JSON literal {name}")

    return json.loads(text, parse_constant=refuse)


def read_jsonl(out: str | Path) -> list[dict[str, Any]]:
    rows = []
    for path in part_files(out):
        text = part_text(path)
        assert text == "" or text.endswith("\n"), path
        rows += [_strict_json(line) for line in text.splitlines()]
    return rows


def read_json_arrays(out: str | Path) -> list[dict[str, Any]]:
    rows = []
    for path in part_files(out):
        value = _strict_json(part_text(path))
        assert isinstance(value, list), path
        rows += value
    return rows


def read_avro(out: str | Path) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """Writer schema (the same in every part) and records, decoded by fastavro."""
    import fastavro

    schema: dict[str, Any] | None = None
    rows: list[dict[str, Any]] = []
    for path in part_files(out):
        with open(path, "rb") as handle:
            reader = fastavro.reader(handle)
            if schema is None:
                schema = reader.writer_schema
            assert reader.writer_schema == schema, f"{path}: schema differs"
            rows += list(reader)
    return schema or {}, rows


def avro_without_sync(data: bytes) -> bytes:
    """An Avro container file with its sync marker (16 random bytes chosen per file, after
    the header and after every block) zeroed: two files of the same records compare equal
    byte for byte."""
    import fastavro

    sync = fastavro.reader(io.BytesIO(data))._header["sync"]
    assert data.count(sync) >= 1
    return data.replace(sync, bytes(16))


def read_parquet(out: str | Path) -> tuple[Any, list[dict[str, Any]]]:
    """Arrow schema (the same in every part) and rows as pyarrow gives them, except that
    time64 columns come as their integer nanoseconds (Python's time has microseconds)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    schema = None
    rows: list[dict[str, Any]] = []
    for path in part_files(out):
        table = pq.read_table(path)
        if schema is None:
            schema = table.schema
        assert table.schema.equals(schema, check_metadata=True), f"{path}: schema differs"
        for i, column in enumerate(table.schema):
            if pa.types.is_time64(column.type):
                table = table.set_column(i, column.name, table.column(i).cast(pa.int64()))
        rows += table.to_pylist()
    return schema, rows


def read_rows(out: str | Path, delimiter: str = ",") -> list[dict[str, Any]]:
    """Rows of any format (CSV as strings), by the parts' extension."""
    files = part_files(out)
    if not files:
        return []
    kind = _kind(files[0])
    if kind == "csv":
        return read_csv_parts(out, delimiter)[1]
    if kind == "jsonl":
        return read_jsonl(out)
    if kind == "json":
        return read_json_arrays(out)
    if kind == "avro":
        return read_avro(out)[1]
    if kind == "parquet":
        return read_parquet(out)[1]
    raise ValueError(f"unknown part kind {kind!r}")


def read_header(out: str | Path, delimiter: str = ",") -> list[str]:
    """Output column names in file order (CSV header, JSON key order, Avro field order)."""
    files = part_files(out)
    kind = _kind(files[0])
    if kind == "csv":
        return read_csv_parts(out, delimiter)[0]
    if kind == "avro":
        return [f["name"] for f in read_avro(out)[0]["fields"]]
    rows = read_jsonl(out) if kind == "jsonl" else read_json_arrays(out)
    return list(rows[0])


def manifest_units(out: str | Path) -> list[tuple[int, int, int]]:
    with open(os.path.join(str(out), "_manifest", "export.json"), encoding="utf-8") as handle:
        return [tuple(u) for u in json.load(handle)["units"]]


def markers(out: str | Path) -> list[dict[str, Any]]:
    found = []
    for path in sorted(glob.glob(os.path.join(str(out), "_manifest", "ranges", "*.json"))):
        with open(path, encoding="utf-8") as handle:
            found.append(json.load(handle))
    return found


def tree(path: str | Path) -> list[str]:
    """Every file and directory under ``path``, relative, sorted (empty if it does not exist)."""
    root = Path(path)
    if not root.exists():
        return []
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


# --- time renderings computed independently of the exporter --------------------------------


def iso_micros(micros: int) -> str:
    """RFC 3339 text with six fraction digits, by exact integer timedelta math."""
    return (EPOCH + datetime.timedelta(microseconds=micros)).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def utc_micros(micros: int) -> datetime.datetime:
    """What fastavro gives back for a timestamp-micros value."""
    return EPOCH_UTC + datetime.timedelta(microseconds=micros)


# --- Cassandra -----------------------------------------------------------------------------


class ExternalCassandra:
    """Stand-in for conftest's ``cassandra`` fixture when it is not there: the node(s) named
    by CASSANDRA_CONTACT_POINTS (host:port,...)."""

    def __init__(self, contact_points: list[str]) -> None:
        self.contact_points = contact_points
        self.hosts = [p.rsplit(":", 1)[0] for p in contact_points]
        self.port = int(contact_points[0].rsplit(":", 1)[1]) if ":" in contact_points[0] else 9042
        self._clusters: list[Any] = []

    def session(self) -> Any:
        from cassandra.cluster import Cluster

        cluster = Cluster(self.hosts, port=self.port, protocol_version=5)
        self._clusters.append(cluster)
        return cluster.connect()

    def close(self) -> None:
        for cluster in self._clusters:
            cluster.shutdown()


def decoded_or_error(decode: Any, data: bytes, protocol_version: int) -> object:
    """What a value decoder gives for ``data``: its value, or its error's type and text
    (to compare a decoder of ours with the driver's, errors included)."""
    try:
        return decode(data, protocol_version)
    except Exception as exc:
        return (type(exc), str(exc))


def cannot_run(reason: str) -> NoReturn:
    """Skip a test that cannot run here; under CI (``CI=true``) fail it instead.

    A reliability or multi-node test that silently skips would let CI pass without the
    evidence it exists for."""
    if os.environ.get("CI", "").lower() == "true":
        pytest.fail(f"{reason} (CI=true: this test must run)", pytrace=False)
    pytest.skip(reason)


def cassandra_or_external(request: pytest.FixtureRequest) -> Any:
    """conftest's ``cassandra`` fixture if it exists, else CASSANDRA_CONTACT_POINTS."""
    try:
        return request.getfixturevalue("cassandra")
    except pytest.FixtureLookupError:
        pass
    points = os.environ.get("CASSANDRA_CONTACT_POINTS")
    if not points:
        cannot_run("no cassandra fixture and no CASSANDRA_CONTACT_POINTS")
    external = ExternalCassandra([p.strip() for p in points.split(",") if p.strip()])
    request.addfinalizer(external.close)
    return external


def fresh_keyspace(request: pytest.FixtureRequest, session: Any, prefix: str) -> str:
    """conftest's ``keyspace`` fixture if it exists, else a new RF 1 keyspace, dropped after."""
    try:
        name = request.getfixturevalue("keyspace")
    except pytest.FixtureLookupError:
        name = f"{prefix}_{uuid.uuid4().hex[:10]}"

        def drop() -> None:
            session.execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=120)

        request.addfinalizer(drop)
    session.execute(
        f"CREATE KEYSPACE IF NOT EXISTS {name} WITH replication = "
        "{'class': 'SimpleStrategy', 'replication_factor': 1}",
        timeout=60,
    )
    return name


def module_keyspace(session: Any, name: str) -> Iterator[str]:
    """Keyspace ``name`` (re)created with replication factor 1 for a module's tests and
    dropped after them: the body of a module-scoped keyspace fixture (``yield from``)."""
    from dev.cassandra_local import make_keyspace

    make_keyspace(session, name, 1)
    try:
        yield name
    finally:
        with contextlib.suppress(Exception):
            session.execute(f"DROP KEYSPACE IF EXISTS {name}", timeout=120)


def hosts_arg(cassandra: Any) -> str:
    return ",".join(cassandra.contact_points)


# --- Murmur3 preimages: partition keys with a chosen token ----------------------------------
#
# Cassandra's token of a partition key is the first 64 bits (h1) of MurmurHash3_x64_128
# of the serialized key, seed 0, with Long.MIN_VALUE mapped to Long.MAX_VALUE. Every step
# of that hash is invertible for the last 16-byte block: pick the finalizer input A
# freely, then fmix(B) = token - fmix(A) gives B, and the block follows by undoing the
# block mix. So a key ending in a full block can be built for any token, at once.

_M = (1 << 64) - 1
_C1 = 0x87C37B91114253D5
_C2 = 0x4CF5AD432745937F


def _rotl(x: int, r: int) -> int:
    return ((x << r) | (x >> (64 - r))) & _M


def _rotr(x: int, r: int) -> int:
    return ((x >> r) | (x << (64 - r))) & _M


def _inv(a: int) -> int:
    return pow(a, -1, 1 << 64)


def _fmix(k: int) -> int:
    k ^= k >> 33
    k = (k * 0xFF51AFD7ED558CCD) & _M
    k ^= k >> 33
    k = (k * 0xC4CEB9FE1A85EC53) & _M
    return k ^ (k >> 33)


def _fmix_inverse(k: int) -> int:
    k ^= k >> 33  # x ^= x >> 33 is its own inverse for shifts >= 32
    k = (k * _inv(0xC4CEB9FE1A85EC53)) & _M
    k ^= k >> 33
    k = (k * _inv(0xFF51AFD7ED558CCD)) & _M
    return k ^ (k >> 33)


def _block_state(prefix: bytes) -> tuple[int, int]:
    h1 = h2 = 0
    for i in range(0, len(prefix), 16):
        k1 = int.from_bytes(prefix[i : i + 8], "little")
        k2 = int.from_bytes(prefix[i + 8 : i + 16], "little")
        h1 ^= (_rotl((k1 * _C1) & _M, 31) * _C2) & _M
        h1 = (_rotl(h1, 27) + h2) & _M
        h1 = (h1 * 5 + 0x52DCE729) & _M
        h2 ^= (_rotl((k2 * _C2) & _M, 33) * _C1) & _M
        h2 = (_rotl(h2, 31) + h1) & _M
        h2 = (h2 * 5 + 0x38495AB5) & _M
    return h1, h2


def murmur3_preimage(
    raw_hash: int,
    prefix: bytes = b"",
    accept: Callable[[bytes], bool] = lambda block: True,
    start: int = 1,
) -> bytes:
    """``prefix`` + one 16-byte block whose Murmur3 h1 is ``raw_hash`` (signed 64-bit);
    ``accept`` may refuse blocks (e.g. a byte that the key's layout fixes)."""
    if len(prefix) % 16:
        raise ValueError("prefix must be whole 16-byte blocks")
    h1_prev, h2_prev = _block_state(prefix)
    length = len(prefix) + 16
    inv5 = _inv(5)
    target = raw_hash & _M
    a = start
    while True:
        b = _fmix_inverse((target - _fmix(a)) & _M)
        h2_final = (b - a) & _M  # after the length xor: a = h1 + h2, b = h2 + a
        h1_final = (a - h2_final) & _M
        h1_after = h1_final ^ length
        h2_after = h2_final ^ length
        k1m = _rotr(((h1_after - 0x52DCE729) * inv5 - h2_prev) & _M, 27) ^ h1_prev
        k2m = _rotr(((h2_after - 0x38495AB5) * inv5 - h1_after) & _M, 31) ^ h2_prev
        k1 = (_rotr((k1m * _inv(_C2)) & _M, 31) * _inv(_C1)) & _M
        k2 = (_rotr((k2m * _inv(_C1)) & _M, 33) * _inv(_C2)) & _M
        block = k1.to_bytes(8, "little") + k2.to_bytes(8, "little")
        if accept(block):
            return prefix + block
        a += 1


def cassandra_token(serialized_key: bytes) -> int:
    """Token of a serialized partition key, as Murmur3Partitioner computes it."""
    from cassandra.murmur3 import murmur3

    raw = murmur3(serialized_key)
    return MAX_TOKEN if raw == MIN_TOKEN else raw


def composite_key(*components: bytes) -> bytes:
    """Serialized composite partition key: per component a 2-byte length, bytes, 0x00."""
    return b"".join(len(c).to_bytes(2, "big") + c + b"\x00" for c in components)
