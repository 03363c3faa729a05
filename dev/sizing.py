"""Measure the parts of an export that grow with the table, not with its rows: planning
work units, the manifest (export.json and one marker per unit), finalize, resume planning,
Beam's ``Create`` of the units and the merge of per-unit statistics. Prints a Markdown table
(count -> seconds, MB); never fails on time. No Cassandra needed: units and markers are
synthetic, with statistics of the shape a real unit stores.

    python -m dev.sizing                       # 10k and 100k markers, 100k and 1M units
    python -m dev.sizing --markers 1000 10000 --units 100000
    python -m dev.sizing --dask tcp://127.0.0.1:8786   # also Create on that Dask cluster

The README's "Sizing past one machine" section holds the numbers measured on the
development machine and the formula they feed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import tempfile
import time
from collections.abc import Callable
from typing import Any

from transforms import manifest as mf
from transforms.stats import StatsBuilder, merge_stats
from transforms.table_plan import build_table_plan
from transforms.token_ranges import MAX_TOKEN, MIN_TOKEN, WorkUnit, make_work_units, plan_ranges

# A ring of 500 nodes with 16 vnodes each, with size estimates for every range.
RING_TOKENS = 8_000


def _plan() -> Any:
    return build_table_plan(
        keyspace="ks",
        table="t",
        column_types=(
            ("pk", "bigint", "partition_key"),
            ("ck", "int", "clustering"),
            ("name", "text", "regular"),
            ("score", "double", "regular"),
            ("tags", "set<text>", "regular"),
            ("attrs", "map<text, int>", "regular"),
        ),
        user_types={},
        release_version="5.0.8",
    )


def _timed(fn: Callable[[], Any]) -> tuple[float, Any]:
    started = time.perf_counter()
    value = fn()
    return time.perf_counter() - started, value


def _timed_cpu(fn: Callable[[], Any]) -> tuple[float, float, Any]:
    """Wall seconds, CPU seconds of this process, and the value. On a shared machine the
    wall time also counts the waits for a core; the CPU time is the work itself."""
    cpu = time.process_time()
    wall, value = _timed(fn)
    return wall, time.process_time() - cpu, value


def _ring(seed: int = 7) -> tuple[list[int], dict[tuple[int, int], int]]:
    rng = random.Random(seed)
    tokens = sorted({rng.randrange(MIN_TOKEN + 1, MAX_TOKEN) for _ in range(RING_TOKENS)})
    bounds = [MIN_TOKEN, *tokens, MAX_TOKEN]
    estimates = {(a, b): 60_000 for a, b in zip(bounds, bounds[1:], strict=False)}
    return tokens, estimates


def unit_stats(plan: Any, seed: int) -> dict[str, Any]:
    """Statistics of one unit of 200 rows spread over 30 days, as a marker stores them."""
    rng = random.Random(seed)
    builder = StatsBuilder(plan)
    base = 1_700_000_000_000_000
    rows = []
    for i in range(200):
        wt = base + rng.randrange(30) * 86_400_000_000 + i
        # The values, then the writetimes of name, score, tags (per element) and attrs.
        rows.append((i, i % 7, f"n{i}", float(i), {"a"}, {"k": i}, wt, wt, [wt, wt + 1], [wt]))
    builder.add_rows_by_row(rows)
    return builder.to_json()


def _put(path: str, data: bytes) -> None:
    """Store one file directly (not timed: the workers write these, one per unit, in
    parallel): into the in-memory store, or a plain local write without fsync."""
    if path.startswith("memory://"):
        import tests.memfs

        tests.memfs.FILES[path] = (data, time.time())
        return
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "wb") as handle:
        handle.write(data)


def _put_json(path: str, value: Any) -> None:
    _put(path, (json.dumps(value, indent=1) + "\n").encode())


def write_export(root: str, plan: Any, count: int, stats: dict[str, Any]) -> None:
    """An export of ``count`` committed units: export.json, a data file and a marker each."""
    units = make_work_units(plan_ranges([], count))
    layout = mf.Layout(root)
    _put_json(
        layout.export_json,
        {
            "version": mf.MANIFEST_VERSION,
            "started_at_micros": 1,
            "export_config": {"table": "t", "format": "csv", "options": {}},
            "plan": plan.to_json(),
            "units": [u.to_json() for u in units],
        },
    )
    for unit in units:
        name = f"{unit.unit_id:05d}"
        _put(mf.join(layout.data_dir, f"part-{name}.csv"), b"x\n")
        _put_json(
            mf.join(layout.ranges_dir, f"{name}.json"),
            {
                "unit_id": unit.unit_id,
                "start": unit.start,
                "end": unit.end,
                "rows": 200,
                "rows_read": 200,
                "file": f"part-{name}.csv",
                "bytes": 2,
                "windows_split": 0,
                "retries": 0,
                "stats": stats,
            },
        )


def resume_plan(root: str) -> int:
    """What ``--resume`` does with the manifest before it runs anything; returns work left."""
    layout = mf.Layout(root)
    manifest = mf.load_export(layout)
    markers = mf.read_markers(layout)
    units = [WorkUnit.from_json(u) for u in manifest["units"]]
    mf.check_exact_cover(mf.completed_ranges(markers))
    work = mf.remaining_work(units, markers)
    mf.orphan_files(layout, markers)
    return len(work)


def _size(root: str) -> tuple[float, float, int]:
    """MB of export.json, MB of the markers, marker count (local disk only)."""
    layout = mf.Layout(root)
    markers = os.listdir(layout.ranges_dir)
    marker_bytes = sum(os.path.getsize(os.path.join(layout.ranges_dir, m)) for m in markers)
    return os.path.getsize(layout.export_json) / 1e6, marker_bytes / 1e6, len(markers)


def measure_markers(count: int, where: str, plan: Any, stats: dict[str, Any]) -> dict[str, Any]:
    from transforms.sinks import finalize_export

    tmp = None
    if where == "local":
        tmp = tempfile.mkdtemp(prefix="sizing-")
        root = os.path.join(tmp, "out")
    else:
        # The test suite's object-store stand-in (no directories, recursive listing).
        import tests.memfs  # noqa: F401 (registers memory://)

        root = f"memory://sizing-{count}-{time.time_ns()}"
    try:
        write_seconds, _ = _timed(lambda: write_export(root, plan, count, stats))
        resume_seconds, resume_cpu, left = _timed_cpu(lambda: resume_plan(root))
        assert left == 0
        finalize_seconds, finalize_cpu, summary = _timed_cpu(lambda: finalize_export(root))
        assert summary["rows"] == 200 * count
        sizes = _size(root) if where == "local" else (None, None, count)
        return {
            "markers": count,
            "where": where,
            "write_s": write_seconds,
            "resume_plan_s": resume_seconds,
            "resume_plan_cpu_s": resume_cpu,
            "finalize_s": finalize_seconds,
            "finalize_cpu_s": finalize_cpu,
            "export_json_mb": sizes[0],
            "markers_mb": sizes[1],
        }
    finally:
        if tmp:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            mf.delete_files(mf.list_files(root, "**"))


def measure_plan(count: int) -> dict[str, Any]:
    tokens, estimates = _ring()
    seconds, units = _timed(lambda: make_work_units(plan_ranges(tokens, count, estimates)))
    json_seconds, text = _timed(lambda: json.dumps([u.to_json() for u in units]))
    return {
        "units": len(units),
        "plan_s": seconds,
        "units_json_s": json_seconds,
        "units_json_mb": len(text) / 1e6,
    }


def measure_merge(count: int, stats: dict[str, Any]) -> float:
    parts = [stats] * count
    seconds, merged = _timed(lambda: merge_stats(parts))
    assert merged["rows"] == 200 * count
    return seconds


def measure_create(count: int, extra_args: list[str]) -> float:
    """Build and run ``Create(count work items) | ParDo`` (the job around the reads, with
    one task per item on Dask: no GroupByKey, as the export runs there)."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    items = [(i, i, i, i + 1) for i in range(count)]

    def run() -> None:
        options = PipelineOptions(extra_args)
        with beam.Pipeline(options=options) as p:
            _ = p | beam.Create(items) | beam.Map(lambda item: item[0])

    return _timed(run)[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m dev.sizing", description=__doc__)
    parser.add_argument("--markers", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--units", type=int, nargs="*", default=[100_000, 1_000_000])
    parser.add_argument("--create", type=int, nargs="*", default=[10_000, 100_000])
    parser.add_argument("--dask", help="also time Create on this Dask scheduler address")
    args = parser.parse_args(argv)
    plan = _plan()
    stats = unit_stats(plan, 1)
    print(f"one unit's statistics: {len(json.dumps(stats)):,} bytes of JSON\n")

    print("| work units planned | plan s | units JSON s | units JSON MB |")
    print("|---:|---:|---:|---:|")
    for count in args.units:
        r = measure_plan(count)
        print(
            f"| {r['units']:,} | {r['plan_s']:.2f} | {r['units_json_s']:.2f} "
            f"| {r['units_json_mb']:.1f} |"
        )

    print(f"\nload average at the start: {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    print(
        "| markers | where | write s | resume plan s (CPU s) | finalize s (CPU s) "
        "| export.json MB | markers MB |"
    )
    print("|---:|---|---:|---:|---:|---:|---:|")
    for count in args.markers:
        for where in ("memory", "local"):
            r = measure_markers(count, where, plan, stats)
            mb = (
                f"{r['export_json_mb']:.1f} | {r['markers_mb']:.1f}"
                if r["export_json_mb"] is not None
                else "- | -"
            )
            print(
                f"| {count:,} | {where} | {r['write_s']:.1f} "
                f"| {r['resume_plan_s']:.2f} ({r['resume_plan_cpu_s']:.2f}) "
                f"| {r['finalize_s']:.2f} ({r['finalize_cpu_s']:.2f}) | {mb} |"
            )

    print("\n| unit statistics merged | seconds |")
    print("|---:|---:|")
    for count in args.markers:
        print(f"| {count:,} | {measure_merge(count, stats):.2f} |")

    runners = [("FnApiRunner", ["--runner=FnApiRunner"])]
    if args.dask:
        import apache_beam.runners.dask.dask_runner  # noqa: F401 (registers DaskOptions)

        dask_args = [
            "--runner=apache_beam.runners.dask.dask_runner.DaskRunner",
            f"--dask_client_address={args.dask}",
        ]
        runners.append(("DaskRunner", dask_args))
    print("\n| Create of work items | runner | seconds |")
    print("|---:|---|---:|")
    for count in args.create:
        for name, extra in runners:
            extra = extra + ([f"--dask_npartitions={count}"] if name == "DaskRunner" else [])
            print(f"| {count:,} | {name} | {measure_create(count, extra):.1f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
