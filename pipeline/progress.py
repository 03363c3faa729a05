"""Console progress (from the manifest's unit markers, so it works on every runner) and the
end-of-run summary."""

from __future__ import annotations

import threading
import time
from typing import Any

from transforms import manifest as mf
from transforms.cql_text import format_writetime_iso
from transforms.token_ranges import RING_SIZE

__all__ = ["ProgressReporter", "column_summary", "print_summary"]


class ProgressReporter:
    """Every ``interval`` seconds: ranges done / total, rows, rows/s; rewrites checkpoint.json."""

    def __init__(self, job: Any, interval: float, stream: Any) -> None:
        self.job = job
        self.interval = interval
        self.stream = stream
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="export-progress", daemon=True)
        self._started = time.monotonic()
        self._seen: dict[str, dict[str, Any]] = {}

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _markers(self) -> list[dict[str, Any]]:
        layout = self.job.layout
        for path in mf.list_files(layout.ranges_dir, "*.json"):
            if path not in self._seen:
                try:
                    marker = mf.read_json(path)
                except Exception:
                    continue
                marker.pop("stats", None)  # most of a marker, not needed here (read_markers)
                self._seen[path] = marker
        return list(self._seen.values())

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.report()
            except Exception:  # progress must never break the export
                pass

    def report(self) -> None:
        markers = self._markers()
        rows = sum(int(m.get("rows", 0)) for m in markers)
        covered = sum(int(m["end"]) - int(m["start"]) for m in markers)
        done_units = {int(m["unit_id"]) for m in markers}
        elapsed = max(1e-9, time.monotonic() - self._started)
        new_rows = rows - self.job.rows_already_done
        print(
            f"progress: {len(done_units)}/{len(self.job.units)} work units, {rows:,} rows, "
            f"{new_rows / elapsed:,.0f} rows/s, {100 * covered / RING_SIZE:.1f}% of the ring",
            file=self.stream,
            flush=True,
        )
        mf.write_json(
            self.job.layout.checkpoint_json,
            mf.checkpoint_body(markers, self.job.export_config, len(self.job.units)),
        )


def print_summary(job: Any, elapsed: float, out: Any) -> None:
    stats = mf.read_json(job.layout.stats_json)
    plan = job.plan
    rows = stats["rows"]
    new_rows = rows - job.rows_already_done
    print(
        f"export complete: {rows:,} rows of {plan.keyspace}.{plan.table} in {elapsed:.1f} s "
        f"({new_rows / max(elapsed, 1e-9):,.0f} rows/s this run)",
        file=out,
    )
    if job.pieces_already_done:
        print(
            f"  resumed: {job.pieces_already_done} parts ({job.rows_already_done:,} rows) were "
            "already committed and were skipped",
            file=out,
        )
    print(
        f"  data:     {job.layout.data_dir}  ({stats['pieces']} files, {job.sink.format})", file=out
    )
    print(f"  manifest: {job.layout.manifest_dir}", file=out)
    if stats.get("retries") or stats.get("ranges_split"):
        print(
            f"  retries: {stats['retries']}, token ranges split after timeouts: "
            f"{stats['ranges_split']}",
            file=out,
        )
    for name, column in stats["columns"].items():
        line = column_summary(column)
        if line:
            print(f"  {name}: {line}", file=out)


def column_summary(column: dict[str, Any]) -> str:
    """One column's statistics in the summary: writetime min .. max and mean, TTL min..max,
    each with its cell count, and the nulls; empty for a column with no null and neither."""
    wt = column.get("writetime")
    ttl = column.get("ttl")
    parts = []
    if wt and wt["count"]:
        parts.append(
            f"writetime {format_writetime_iso(wt['min'])} .. {format_writetime_iso(wt['max'])}"
            f", mean {format_writetime_iso(wt['mean'])} ({wt['count']:,} cells)"
        )
    if ttl and ttl["cells_with_ttl"]:
        parts.append(f"ttl {ttl['min']}..{ttl['max']} s ({ttl['cells_with_ttl']:,} cells)")
    nulls = column.get("nulls", 0)
    if nulls or parts:
        parts.append(f"{nulls:,} nulls")
    return ", ".join(parts)
