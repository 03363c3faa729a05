"""finalize_export on the in-memory object store (no Cassandra): the statistics of every
marker are merged into stats.json while the markers are read, and no marker's statistics
are kept once read (they are most of a marker's size: kept for 100,000 markers they took
about 850 MB)."""

from __future__ import annotations

import json
import uuid

from dev import sizing
from tests import memfs
from transforms import cql_text
from transforms import manifest as mf
from transforms.sinks import finalize_export
from transforms.stats import merge_stats, summarize


def test_finalize_merges_each_markers_statistics_and_markers_are_read_without_them() -> None:
    root = memfs.memory_path(f"finalize-{uuid.uuid4().hex}")
    plan = sizing._plan()
    try:
        sizing.write_export(root, plan, 3, sizing.unit_stats(plan, 0))
        layout = mf.Layout(root)
        paths = mf.list_files(layout.ranges_dir, "*.json")
        assert len(paths) == 3
        per_unit = [sizing.unit_stats(plan, seed) for seed in (1, 2, 3)]
        for path, stats in zip(paths, per_unit, strict=True):
            marker = mf.read_json(path)
            marker["stats"] = stats
            memfs.put(path, json.dumps(marker).encode())
        assert len({json.dumps(s, sort_keys=True) for s in per_unit}) == 3

        summary = finalize_export(root, finished_at_micros=2_000_001)

        expected = summarize(merge_stats(per_unit), plan.to_json(), cql_text.format_writetime_iso)
        assert summary["rows"] == expected["rows"] == 600
        assert summary["columns"] == expected["columns"]
        assert summary["pieces"] == 3
        assert json.loads(memfs.read(layout.stats_json)) == summary
        markers = mf.read_markers(layout)
        assert [sorted(m) for m in markers] == [
            ["bytes", "end", "file", "retries", "rows", "rows_read", "start", "unit_id",
             "windows_split"]
        ] * 3  # fmt: skip
        assert [m["stats"] for m in mf.iter_markers(layout)] == per_unit
    finally:
        memfs.reset(root)
