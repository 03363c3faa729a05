"""Client CPU per row of a CSV export's hot path, on real result pages replayed in-process:
the node's cost taken out, and two copies of the code compared on the same bytes.

    # once: the exporter's result messages of a table (its query, pages as columns)
    python dev/client_replay.py capture --hosts 127.0.32.1:9042 \\
        --table bench.narrow_1000000 --rows 200000 [--writetimes] [--fetch-size 20000] \\
        --pages /tmp/pages.pkl
    # the stages of one copy of the code (default: this tree), best of --repeat
    python dev/client_replay.py run --pages /tmp/pages.pkl [--code DIR] [--repeat 3] \\
        [--delimiter ';'] [--null-value NULL] [--writetime-format micros] \\
        [--collection-writetime list] [--csv FILE]
    # two copies, runs interleaved (every other round in reverse), best of each
    python dev/client_replay.py ab --pages /tmp/pages.pkl --code OLD --code NEW [--rounds 3]

Stages, each timed with ``time.process_time`` (CPU microseconds per row): ``decode`` (the
columnar protocol handler over the captured message bodies, as the driver's I/O thread
runs it: the socket reads are not in it), ``claims`` (the reader's page loops into
``ColumnBatch`` elements of 1,000 rows), ``stats`` (``StatsBuilder.add_columns``) and
``csv`` (``CsvWriter.write_columns`` and ``close``, into a file that keeps nothing). Pages
with writetimes of non-frozen collections go as the export's sink takes them: under
``--collection-writetime max`` or ``min`` a ``normalize`` stage first (those columns made
one integer per cell), under ``list`` the row path (``to_rows``: the batches as row
tuples; ``stats`` and ``csv`` from the rows). The captured messages are
decoded with the driver fixes an export's ``connect()`` makes, and the collector runs as
in the export's workers (``relax_gc``). ``run``
also prints the SHA-256 of the CSV bytes (of one more, untimed run) and of the statistics,
so two copies can be checked to write the same bytes.
Each ``run`` is its own process with ``--code`` first on ``sys.path``: the imports of
the project happen after it is set.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import pickle
import subprocess
import sys
import time
from collections.abc import Callable
from typing import Any


def capture(args: argparse.Namespace) -> None:
    """Read ``--rows`` rows from the start of the ring with the exporter's query and keep
    each result message's body and what decoding it needs."""
    from transforms.cassandra_schema import describe_table, plan_described_table
    from transforms.cassandra_session import ConnectionConfig, connect
    from transforms.columnar import columnar_handler, send_columnar
    from transforms.partition_token import partition_tokens_for
    from transforms.token_ranges import MAX_TOKEN, MIN_TOKEN

    keyspace, table = args.table.split(".")
    cluster, session = connect(ConnectionConfig(hosts=tuple(args.hosts.split(","))))
    described = describe_table(cluster, session, keyspace, table)
    plan = plan_described_table(described, writetime_columns="*" if args.writetimes else None)
    statement = session.prepare(plan.select_cql(with_token=partition_tokens_for(plan) is None))
    statement.fetch_size = args.fetch_size
    handler, bodies = columnar_handler(), []

    class Recording(handler):  # type: ignore[misc, valid-type]
        @classmethod
        def decode_message(
            cls, version: int, types: Any, stream: int, flags: int, *rest: Any
        ) -> Any:
            opcode, body, _, metadata = rest
            if opcode == 0x08:  # RESULT; the types by name (parameterized ones are not picklable)
                named = [(*m[:3], m[3].cass_parameterized_type(full=True)) for m in metadata or ()]
                bodies.append((version, flags, opcode, bytes(body), named))
            return handler.decode_message(version, types, stream, flags, *rest)

    rows, paging_state = 0, None
    try:
        while rows < args.rows:
            bound = statement.bind((MIN_TOKEN, MAX_TOKEN))
            result = send_columnar(session, bound, paging_state, Recording).result()
            rows += len(result.current_rows[0])
            paging_state = result.paging_state
            if paging_state is None:
                break
    finally:
        cluster.shutdown()
    with open(args.pages, "wb") as handle:
        pickle.dump({"plan": plan.to_json(), "bodies": bodies}, handle)
    print(json.dumps({"pages": len(bodies), "rows": rows}))


def _best(repeat: int, run: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.process_time()
        result = run()
        best = min(best, time.process_time() - start)
    return best, result


def _claims(plan: Any, pages: list[Any]) -> list[Any]:
    """The reader's page loops over one restriction covering the whole ring."""
    from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker

    from transforms.elements import PieceKey
    from transforms.page_claims import PageClaims
    from transforms.partition_token import partition_tokens_for
    from transforms.token_ranges import MAX_TOKEN, MIN_TOKEN

    claims = PageClaims()
    claims.fn = type("Fn", (), {"batch_size": 1000, "checkpoint_rows": 0})()
    claims.tracker = OffsetRestrictionTracker(OffsetRange(MIN_TOKEN + 1, MAX_TOKEN + 1))
    claims.piece = PieceKey(0, MIN_TOKEN, MIN_TOKEN)
    claims.rows = claims.partial = claims.since_checkpoint = claims.token_fallbacks = 0
    claims.complete, claims.last_token, claims.last_key = MIN_TOKEN, None, object()
    claims.batch, claims.tokens = [], partition_tokens_for(plan)
    out: list[Any] = []
    for page in pages:
        out.extend(list(claims._take_page([page], 0, MIN_TOKEN, MAX_TOKEN)))
    out.extend(claims._flush())
    return out


class _Discarded:
    """A file that keeps nothing: the timed CSV runs write here, so the stage is the
    writer's CPU alone (a growing ``BytesIO`` added about 0.5 us/row at 216 bytes/row,
    its reallocations and fresh pages, which an export's file writes do not cost)."""

    def write(self, data: Any) -> int:
        return len(data)

    def close(self) -> None:
        pass


class _Hashed(_Discarded):
    """A file that keeps only the SHA-256 of what was written (one untimed run)."""

    def __init__(self) -> None:
        self.sha256 = hashlib.sha256()

    def write(self, data: Any) -> int:
        self.sha256.update(data)
        return len(data)


def run(args: argparse.Namespace) -> None:
    """Print one JSON line: CPU microseconds per row of each stage, rows, the SHA-256 of
    the CSV bytes and of the statistics."""
    from cassandra.cqltypes import lookup_casstype

    from transforms.cassandra_session import fix_driver_decoding
    from transforms.columnar import columnar_handler
    from transforms.elements import ColumnBatch, relax_gc
    from transforms.formats.base import SinkConfig
    from transforms.formats.csv import CsvWriter
    from transforms.normalize import normalize_columns_fn, normalize_row_fn
    from transforms.stats import StatsBuilder
    from transforms.table_plan import TablePlan

    fix_driver_decoding()  # as an export's connect() does: sets in wire order...
    relax_gc()  # the collector setting of the export's workers
    with open(args.pages, "rb") as handle:
        captured = pickle.load(handle)
    plan = TablePlan.from_json(captured["plan"])
    sink = SinkConfig(
        delimiter=args.delimiter,
        null_value=args.null_value,
        writetime_format=args.writetime_format,
    )
    handler = columnar_handler()
    bodies = [
        (version, flags, opcode, body, [(*m[:3], lookup_casstype(m[3])) for m in named] or None)
        for version, flags, opcode, body, named in captured["bodies"]
    ]

    def decode() -> list[Any]:
        return [
            handler.decode_message(version, {}, 0, flags, opcode, body, None, meta).parsed_rows
            for version, flags, opcode, body, meta in bodies
        ]

    # As the sink: collection writetimes under max / min made one integer per cell
    # (``normalize`` stage; the latest for statistics, the policy's for the file); under
    # list the row path: the batches as row tuples, statistics and file from the rows.
    policy = args.collection_writetime
    columns_fn = normalize_columns_fn(plan, policy)
    row_path = normalize_row_fn(plan, policy) is not None and columns_fn is None
    normalize = normalize_row_fn(plan, policy)

    def as_rows() -> list[list[tuple[Any, ...]]]:
        return [ColumnBatch(b.piece, b.columns, b.length).rows for b in batches]

    def normalized() -> list[tuple[list[Any], list[Any]]]:
        if columns_fn is None:
            return [(b.columns, b.columns) for b in batches]
        return [columns_fn(b.columns) for b in batches]

    def stats() -> Any:
        builder = StatsBuilder(plan)
        if row_path:
            for batch_rows in rows:
                builder.add_rows(batch_rows)
        else:
            for stats_columns, _ in pairs:
                builder.add_columns(stats_columns)
        return builder.to_json()

    def csv(handle: Any) -> Any:
        writer = CsvWriter(handle, plan, sink, policy)
        if row_path:
            for batch_rows in rows:
                writer.write_rows([normalize(r) for r in batch_rows])
        else:
            for _, file_columns in pairs:
                writer.write_columns(file_columns)
        writer.close()
        return handle

    seconds: dict[str, float] = {}
    seconds["decode"], pages = _best(args.repeat, decode)
    seconds["claims"], batches = _best(args.repeat, lambda: _claims(plan, pages))
    if row_path:
        seconds["to_rows"], rows = _best(args.repeat, as_rows)
    elif columns_fn is not None:
        seconds["normalize"], pairs = _best(args.repeat, normalized)
    else:
        pairs = normalized()
    seconds["stats"], figures = _best(args.repeat, stats)
    seconds["csv"], _ = _best(args.repeat, lambda: csv(_Discarded()))
    csv_sha256 = csv(_Hashed()).sha256.hexdigest()
    if args.csv:  # the bytes themselves, to read or compare with an export's files
        with open(args.csv, "wb") as handle:
            csv(handle)
    rows = sum(len(page) for page in pages)
    report: dict[str, Any] = {k: round(v * 1e6 / rows, 3) for k, v in seconds.items()}
    report["total"] = round(sum(seconds.values()) * 1e6 / rows, 3)
    report["rows"] = rows
    report["csv_sha256"] = csv_sha256
    stats_text = json.dumps(figures, sort_keys=True).encode()
    report["stats_sha256"] = hashlib.sha256(stats_text).hexdigest()
    print(json.dumps(report))


def ab(args: argparse.Namespace) -> None:
    """``run`` of each ``--code`` copy, ``--rounds`` times interleaved; the best of each
    stage per copy, and whether their CSV bytes and statistics were the same."""
    options = ["--pages", args.pages, "--repeat", str(args.repeat)]
    options += ["--delimiter", args.delimiter, "--null-value", args.null_value]
    options += ["--writetime-format", args.writetime_format]
    options += ["--collection-writetime", args.collection_writetime]
    best: dict[str, dict[str, Any]] = {code: {} for code in args.code}
    for round_ in range(args.rounds):
        for code in args.code if round_ % 2 == 0 else args.code[::-1]:
            command = [sys.executable, os.path.abspath(__file__), "run", "--code", code, *options]
            env = {**os.environ, "PYTHONPATH": code}
            out = subprocess.run(
                command, env=env, cwd=code, capture_output=True, text=True, check=True
            )
            for key, value in json.loads(out.stdout.strip().splitlines()[-1]).items():
                if isinstance(value, float):
                    value = min(value, best[code].get(key, value))
                best[code][key] = value
    for code in args.code:
        print(json.dumps({"code": code, **best[code]}))
    same = {best[code]["csv_sha256"] + best[code]["stats_sha256"] for code in args.code}
    print(json.dumps({"same_bytes_and_stats": len(same) == 1}))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    grab = commands.add_parser("capture")
    grab.add_argument("--hosts", required=True)
    grab.add_argument("--table", required=True, help="keyspace.table")
    grab.add_argument("--rows", type=int, default=200_000)
    grab.add_argument("--fetch-size", type=int, default=20_000)
    grab.add_argument("--writetimes", action="store_true", help="--writetime-columns '*'")
    grab.add_argument("--pages", required=True)
    for name in ("run", "ab"):
        command = commands.add_parser(name)
        command.add_argument("--pages", required=True)
        command.add_argument("--code", action="append" if name == "ab" else "store")
        command.add_argument("--repeat", type=int, default=3)
        command.add_argument("--rounds", type=int, default=3)
        command.add_argument("--delimiter", default=",")
        command.add_argument("--null-value", default="")
        command.add_argument("--writetime-format", default="iso", choices=("iso", "micros"))
        command.add_argument(
            "--collection-writetime", default="max", choices=("max", "min", "list")
        )
        if name == "run":
            command.add_argument("--csv", help="also write the CSV bytes to this file")
    args = parser.parse_args(argv)
    if getattr(args, "code", None) and args.command == "run":
        sys.path.insert(0, os.path.abspath(args.code))
    {"capture": capture, "run": run, "ab": ab}[args.command](args)


if __name__ == "__main__":
    main()
