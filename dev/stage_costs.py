"""Client CPU per exported row, stage by stage, on real pages of a table: where the export's
hot path spends its time (driver request and decode, claims with client tokens, collection
normalizing, statistics, CSV text, the file write), with pages read as rows and as columns.

    .venv/bin/python -m dev.stage_costs --hosts 127.0.32.1:9042 --table bench.narrow_1000000 \\
        [--rows 200000] [--writetimes] [--repeat 3]

The pages are read once per path from the start of the ring (the exporter's query,
``--fetch-size`` rows a page); reading is timed with ``time.process_time`` (every thread, so
the driver's I/O thread that decodes the pages counts). Every other stage then runs over the
same pages ``--repeat`` times in this process and its best time is kept. Not in it: Beam's
own per-element and per-bundle work and process start-up, the rest of the end-to-end CPU
that ``dev/bench.py`` measures.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import tempfile
import time
from collections.abc import Callable, Iterator
from typing import Any

from apache_beam.io.restriction_trackers import OffsetRange, OffsetRestrictionTracker

from transforms.cassandra_schema import describe_table, plan_described_table
from transforms.cassandra_session import ConnectionConfig, connect
from transforms.columnar import ColumnPage, columnar_handler, send_columnar, sized_rows_handler
from transforms.elements import ColumnBatch, PieceKey
from transforms.formats.base import SinkConfig
from transforms.formats.csv import CsvWriter
from transforms.normalize import normalize_row_fn
from transforms.page_claims import PageClaims
from transforms.partition_token import partition_tokens_for
from transforms.stats import StatsBuilder
from transforms.table_plan import TablePlan
from transforms.token_ranges import MAX_TOKEN, MIN_TOKEN


class _Claims(PageClaims):
    """The reader's per-page loops over one restriction covering the whole ring."""

    def __init__(self, plan: TablePlan, batch_size: int) -> None:
        self.fn = type("Fn", (), {"batch_size": batch_size, "checkpoint_rows": 0})()
        self.tracker = OffsetRestrictionTracker(OffsetRange(MIN_TOKEN + 1, MAX_TOKEN + 1))
        self.piece = PieceKey(0, MIN_TOKEN, MIN_TOKEN)
        self.rows = self.partial = self.since_checkpoint = self.token_fallbacks = 0
        self.complete, self.last_token, self.last_key = MIN_TOKEN, None, object()
        self.batch = []
        self.tokens = partition_tokens_for(plan)


class _KeptBytes(io.BytesIO):
    def close(self) -> None:  # the bytes stay readable after the writer's close
        pass


def _read_pages(session: Any, statement: Any, rows: int, handler: Any) -> tuple[list[Any], float]:
    """Pages of the exporter's query from the start of the ring until ``rows`` rows, and
    the process CPU seconds spent reading them."""
    pages: list[Any] = []
    count = 0
    paging_state = None
    start = time.process_time()
    while count < rows:
        bound = statement.bind((MIN_TOKEN, MAX_TOKEN))
        if handler is None:
            result = session.execute(bound, paging_state=paging_state)
        else:
            result = send_columnar(session, bound, paging_state, handler).result()
        page = result.current_rows
        pages.append(page)
        count += page[0].length if page and type(page[0]) is ColumnPage else len(page)
        paging_state = result.paging_state
        if paging_state is None:
            break
    return pages, time.process_time() - start


def _best(repeat: int, run: Callable[[], Any]) -> tuple[float, Any]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.process_time()
        result = run()
        best = min(best, time.process_time() - start)
    return best, result


def _batches(plan: TablePlan, pages: list[Any], batch_size: int) -> list[Any]:
    claims = _Claims(plan, batch_size)
    out: list[Any] = []
    for page in pages:
        out.extend(_drain(claims._take_page(page, 0, MIN_TOKEN, MAX_TOKEN)))
    out.extend(claims._flush())
    return out


def _drain(generator: Iterator[Any]) -> list[Any]:
    return list(generator)


def _stages(plan: TablePlan, pages: list[Any], args: argparse.Namespace) -> dict[str, float]:
    """CPU seconds of each stage after the read, best of ``args.repeat``."""
    costs: dict[str, float] = {}
    costs["claims"], batches = _best(args.repeat, lambda: _batches(plan, pages, args.batch_size))
    normalize = normalize_row_fn(plan)
    costs["normalize"], _ = _best(
        args.repeat,
        lambda: None if normalize is None else [[normalize(r) for r in b.rows] for b in batches],
    )

    def statistics() -> None:
        builder = StatsBuilder(plan)
        for b in batches:
            if isinstance(b, ColumnBatch):
                builder.add_columns(b.columns)
            else:
                builder.add_rows(b.rows)

    costs["stats"], _ = _best(args.repeat, statistics)

    def csv_text() -> bytes:
        handle = _KeptBytes()
        writer = CsvWriter(handle, plan, SinkConfig(), "max")
        for b in batches:
            if isinstance(b, ColumnBatch) and normalize is None:
                writer.write_columns(b.columns)
            else:  # as the export writes them: collection writetimes normalized (policy max)
                writer.write_rows(b.rows if normalize is None else [normalize(r) for r in b.rows])
        writer.close()  # writes the column batches still held
        return handle.getvalue()

    costs["csv text"], data = _best(args.repeat, csv_text)

    def file_write() -> None:
        with tempfile.NamedTemporaryFile(dir=args.tmp) as handle:
            for offset in range(0, len(data), 1 << 18):
                handle.write(data[offset : offset + (1 << 18)])
            handle.flush()
            os.fsync(handle.fileno())

    costs["file write"], _ = _best(args.repeat, file_write)
    costs["bytes"] = len(data)
    return costs


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", required=True)
    parser.add_argument("--table", required=True, help="keyspace.table")
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--fetch-size", type=int, default=5000)
    parser.add_argument("--batch-size", type=int, default=1000)
    parser.add_argument("--writetimes", action="store_true", help="--writetime-columns '*'")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--tmp", default=tempfile.gettempdir())
    args = parser.parse_args(argv)
    keyspace, table = args.table.split(".")
    cluster, session = connect(ConnectionConfig(hosts=tuple(args.hosts.split(","))))
    try:
        described = describe_table(cluster, session, keyspace, table)
        plan = plan_described_table(described, writetime_columns="*" if args.writetimes else None)
        statement = session.prepare(plan.select_cql(with_token=partition_tokens_for(plan) is None))
        statement.fetch_size = args.fetch_size
        report: dict[str, Any] = {"table": args.table, "writetimes": args.writetimes}
        for path, handler in (("rows", sized_rows_handler()), ("columns", columnar_handler())):
            pages, read_s = _read_pages(session, statement, args.rows, handler)
            costs = {"driver read": read_s, **_stages(plan, pages, args)}
            rows = sum(p[0].length if p and type(p[0]) is ColumnPage else len(p) for p in pages)
            report[path] = {
                "rows": rows,
                "bytes": costs.pop("bytes"),
                "us_per_row": {k: round(v * 1e6 / rows, 3) for k, v in costs.items()},
            }
        print(json.dumps(report, indent=2))
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()
