"""Raw driver scan: read every token range of a table and discard the rows.

The ceiling for a Python reader on the same node: the exporter's exact query
(``TablePlan.select_cql``: values, writetimes, and ``token(pk)`` only where the exporter
selects it, i.e. where it cannot hash the key itself), the same session set-up
(``transforms.cassandra_session.connect``: protocol 4, range-aware routing, tuple rows),
the same page sizes (by default sized from each page's message bytes, as the exporter
sizes its own) and the same work units (``plan_ranges``), but no Beam, no formatting
and no files. Each process reads units from a shared queue with the next page requested
before the current one is counted (driver paging, one query in flight per process).

Command line (prints one JSON line: rows, seconds, pages)::

    python -m dev.raw_scan --hosts 127.0.0.9:9042 --table bench.narrow_1000000 \
        --processes 2 [--fetch-size 5000] [--token] [--writetime-columns '*']
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import queue
import sys
import time
from typing import Any


def _plan(
    hosts: tuple[str, ...],
    table: str,
    writetime_columns: str,
    splits: int,
    workers: int,
    with_token: bool | None = None,
) -> Any:
    from transforms.cassandra_schema import (
        describe_table,
        partitions_per_range,
        plan_described_table,
        ring_tokens,
    )
    from transforms.cassandra_session import ConnectionConfig, connect
    from transforms.partition_token import partition_tokens_for
    from transforms.token_ranges import auto_splits, make_work_units, plan_ranges

    keyspace, _, name = table.partition(".")
    cluster, session = connect(ConnectionConfig(hosts=hosts))
    try:
        described = describe_table(cluster, session, keyspace, name)
        tokens = ring_tokens(cluster)
        estimates = partitions_per_range(session, described.keyspace, described.table)
    finally:
        cluster.shutdown()
    plan = plan_described_table(
        described, columns=None, writetime_columns=writetime_columns, ttl_columns="none"
    )
    splits = splits or auto_splits(tokens, estimates, workers)
    units = make_work_units(plan_ranges(tokens, splits, estimates))
    if with_token is None:
        with_token = partition_tokens_for(plan) is None
    return plan.select_cql(with_token=with_token), [(u.start, u.end) for u in units]


def _worker(hosts: tuple[str, ...], cql: str, fetch_size: int, units: Any, results: Any) -> None:
    """Read units until the queue is empty; ``fetch_size`` 0 sizes each next page from the
    last one's message bytes (``range_reader.auto_page_rows``, the exporter's rule)."""
    from transforms.cassandra_session import ConnectionConfig, connect
    from transforms.columnar import send_columnar, sized_rows_handler
    from transforms.elements import relax_gc
    from transforms.range_reader import AUTO_FIRST_PAGE_ROWS, auto_page_rows

    relax_gc()  # the exporter's workers run with the same collector setting
    page_rows = fetch_size or AUTO_FIRST_PAGE_ROWS
    cluster, session = connect(ConnectionConfig(hosts=hosts, fetch_size=page_rows))
    statement = session.prepare(cql)
    statement.fetch_size = page_rows
    # rows read as the exporter reads them (top-level timestamps as bigint, not datetime)
    handler = sized_rows_handler()
    rows = pages = 0
    try:
        while True:
            try:
                start, end = units.get_nowait()
            except queue.Empty:
                break
            bound = statement.bind((start, end))
            bound.routing_token = end
            future = send_columnar(session, bound, None, handler)
            result = future.result()
            while True:
                page = result.current_rows
                more = future.has_more_pages
                if not fetch_size:
                    # an empty page is a plain list: nothing learnt from it
                    size = auto_page_rows(len(page), getattr(page, "nbytes", 0))
                    page_rows = size or page_rows
                    statement.fetch_size = future.message.fetch_size = page_rows
                if more:
                    future.start_fetching_next_page()  # prefetch while this page is counted
                for _row in page:
                    pass
                rows += len(page)
                pages += 1
                if not more:
                    break
                result = future.result()
    finally:
        cluster.shutdown()
    results.put((rows, pages))


def scan(
    hosts: tuple[str, ...],
    table: str,
    processes: int = 2,
    fetch_size: int = 0,
    writetime_columns: str = "none",
    splits: int = 0,
    with_token: bool | None = None,
) -> dict[str, Any]:
    """Scan ``table`` with ``processes`` readers; ``fetch_size`` 0 sizes pages as the
    exporter does, ``with_token`` None selects ``token(pk)`` only where the exporter does."""
    cql, units = _plan(hosts, table, writetime_columns, splits, processes, with_token)
    context = multiprocessing.get_context("spawn")
    work = context.Queue()
    for unit in units:
        work.put(unit)
    results = context.Queue()
    started = time.monotonic()
    procs = [
        context.Process(target=_worker, args=(hosts, cql, fetch_size, work, results))
        for _ in range(processes)
    ]
    for proc in procs:
        proc.start()
    totals: list[tuple[int, int]] = []
    while len(totals) < len(procs):
        try:
            totals.append(results.get(timeout=1.0))
        except queue.Empty:
            failed = [p.exitcode for p in procs if p.exitcode]
            if failed:  # a worker that died never reports: do not wait for it
                for proc in procs:
                    proc.terminate()
                raise SystemExit(f"raw scan: a worker failed with exit code {failed[0]}") from None
    for proc in procs:
        proc.join()
    seconds = time.monotonic() - started
    failed = [p.exitcode for p in procs if p.exitcode]
    if failed:
        raise SystemExit(f"raw scan: a worker failed with exit code {failed[0]}")
    rows = sum(r for r, _ in totals)
    return {
        "rows": rows,
        "pages": sum(p for _, p in totals),
        "seconds": round(seconds, 3),
        "rows_per_second": round(rows / seconds, 1) if seconds > 0 else None,
        "processes": processes,
        "units": len(units),
        "query": cql,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", default="127.0.0.1:9042")
    parser.add_argument("--table", required=True, help="KEYSPACE.TABLE")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument(
        "--fetch-size", type=int, default=0, help="rows per page (0: sized as the exporter's)"
    )
    parser.add_argument("--writetime-columns", default="none")
    parser.add_argument("--splits", type=int, default=0, help="work units (0: as the exporter)")
    parser.add_argument(
        "--token",
        action="store_true",
        help="always select token(pk) (the exporter computes it from the key where it can)",
    )
    args = parser.parse_args(argv)
    hosts = tuple(h.strip() for h in args.hosts.split(",") if h.strip())
    report = scan(
        hosts,
        args.table,
        args.processes,
        args.fetch_size,
        args.writetime_columns,
        args.splits,
        with_token=True if args.token else None,
    )
    print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main())
