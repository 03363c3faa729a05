"""Writing an export: one file per work unit piece, committed atomically, then finalized.

How a piece commits, so that no retry or crash can duplicate or lose rows::

    RowBatch...  -> append to OUT/_temporary/part-<unit>-<random>.<ext>
    PieceEnd     -> close; rename to OUT/data/part-<unit>.<ext>; write its marker
                    OUT/_manifest/ranges/<unit>.json (rows, token range, stats)

The file name depends only on the piece's start token, so a retried bundle writes
the same name again and the rename replaces the earlier attempt; a file whose
marker never got written is an orphan that finalization (and ``--resume``) deletes.
The writer is fused with the reader on every runner (no shuffle between them), so
a piece's batches and its end reach the same writer in the same bundle.

``Finalize`` runs once after every piece: it checks that the committed ranges
cover the ring exactly once, removes orphans, and writes checkpoint.json,
stats.json and, last, ``_SUCCESS``.
"""

from __future__ import annotations

import logging
import posixpath
import time
from collections.abc import Iterator
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from transforms import cql_text
from transforms.elements import (
    NAMESPACE,
    ColumnBatch,
    PieceEnd,
    PieceKey,
    RowBatch,
    relax_gc,
    trim_heap,
)
from transforms.formats import SinkConfig, UnitWriter, check_sink, get_format
from transforms.manifest import (
    Layout,
    checkpoint_body,
    completed_ranges,
    delete_files,
    ensure_dir,
    iter_markers,
    join,
    orphan_files,
    read_json,
    remove_empty_dir,
    write_bytes_atomically,
    write_json,
)
from transforms.normalize import normalize_columns_fn, normalize_row_fn
from transforms.stats import StatsBuilder, merge_stats, summarize
from transforms.table_plan import COLLECTION_LIST, DEFAULT_COLLECTION_POLICY, TablePlan
from transforms.token_ranges import check_exact_cover

_LOG = logging.getLogger(__name__)

__all__ = [
    "FinalizeError",
    "FinalizeFn",
    "SinkConfig",
    "WriteExport",
    "WritePiecesFn",
    "finalize_export",
    "merge_single_file",
    "read_stats",
    "takes_columns",
]


# --- the commit DoFn ---------------------------------------------------------------------


class _OpenPiece:
    def __init__(self, temp_path: str, writer: UnitWriter, stats: StatsBuilder) -> None:
        self.temp_path = temp_path
        self.writer = writer
        self.stats = stats
        self.rows = 0


class WritePiecesFn(beam.DoFn):
    """RowBatch... PieceEnd -> one committed data file and marker per piece."""

    def __init__(
        self,
        plan: TablePlan,
        output: str,
        sink: SinkConfig,
        policy: str = DEFAULT_COLLECTION_POLICY,
    ) -> None:
        """Write the pieces of ``plan``'s table under ``output`` as ``sink`` says.

        Args:
            plan: the columns, in output order, with their CQL types.
            output: the export directory (local path, ``gs://``, ``s3://``).
            sink: format and its options (compression, delimiter, codecs...).
            policy: ``"max"``, ``"min"`` or ``"list"``: what a collection's per-element
                writetimes become in the file.
        """
        self.plan = plan
        self.output = output
        self.sink = sink
        self.policy = policy
        self.format = check_sink(sink)
        self.rows_written = Metrics.counter(NAMESPACE, "rows_written")
        self.bytes_written = Metrics.counter(NAMESPACE, "bytes_written")
        self.ranges_done = Metrics.counter(NAMESPACE, "ranges_done")

    def setup(self) -> None:
        relax_gc()
        self._layout = Layout(self.output)
        self._normalize = normalize_row_fn(self.plan, self.policy)
        self._normalize_columns = normalize_columns_fn(self.plan, self.policy)
        self._open: dict[PieceKey, _OpenPiece] = {}
        ensure_dir(self._layout.data_dir)

    def display_data(self) -> dict[str, Any]:
        return _sink_display_data(self.plan, self.output, self.sink, self.policy)

    def start_bundle(self) -> None:
        self._open = {}

    def _piece(self, key: PieceKey) -> _OpenPiece:
        piece = self._open.get(key)
        if piece is None:
            stem = self._layout.piece_stem(key.unit_id, key.offset)
            temp = self._layout.temp_file(stem, self.format.file_extension(self.sink))
            writer = self.format.open_writer(temp, self.plan, self.sink, self.policy)
            piece = self._open[key] = _OpenPiece(temp, writer, StatsBuilder(self.plan))
        return piece

    def process(self, element: RowBatch | PieceEnd) -> Iterator[dict[str, Any]]:
        columns_fn = self._normalize_columns
        if isinstance(element, ColumnBatch) and (self._normalize is None or columns_fn):
            piece = self._piece(element.piece)
            write_columns = getattr(piece.writer, "write_columns", None)
            if write_columns is not None:
                # Collection writetimes and TTLs made one integer per cell: the latest for
                # the statistics, the policy's for the file.
                stats_columns = file_columns = element.columns
                if columns_fn is not None:
                    stats_columns, file_columns = columns_fn(element.columns)
                piece.stats.add_columns(stats_columns)
                write_columns(file_columns)
                piece.rows += element.length
                return
        if isinstance(element, RowBatch):
            piece = self._piece(element.piece)
            # Statistics take a collection's max whatever the policy (docs/export.md), so they see
            # the per-element lists; the file gets them normalized by the policy.
            piece.stats.add_rows(element.rows)
            normalize = self._normalize
            rows = element.rows
            piece.writer.write_rows(rows if normalize is None else [normalize(r) for r in rows])
            piece.rows += len(element.rows)
            return
        if element.piece_end <= element.piece.piece_start:
            # An empty restriction (a runner checkpointed it before its first claim): no
            # token, no rows. A marker (start, start] would be an invalid range that breaks
            # every later read of the manifest, so nothing is committed.
            self._discard(element.piece)
            return
        yield self._commit(element)

    def _discard(self, key: PieceKey) -> None:
        piece = self._open.pop(key, None)
        if piece is not None:
            piece.writer.close()
            delete_files([piece.temp_path])

    def _commit(self, end: PieceEnd) -> dict[str, Any]:
        key = end.piece
        piece = self._piece(key)
        del self._open[key]
        piece.writer.close()
        trim_heap()
        layout = self._layout
        stem = layout.piece_stem(key.unit_id, key.offset)
        final = layout.data_file(stem, self.format.file_extension(self.sink))
        FileSystems.rename([piece.temp_path], [final])
        size = _size(final)
        stats = piece.stats.to_json()
        max_wt = max(
            (w["max"] for w in stats["writetime"].values() if w["max"] is not None), default=None
        )
        marker = {
            "unit_id": key.unit_id,
            "start": key.piece_start,
            "end": end.piece_end,
            "rows": piece.rows,
            "rows_read": end.rows_read,
            "file": posixpath.basename(final.replace("\\", "/")),
            "bytes": size,
            "committed_at": _now_iso(),
            "max_writetime": max_wt,
            "windows_split": end.windows_split,
            "retries": end.retries,
            "stats": stats,
        }
        write_json(layout.marker(stem), marker)
        self.rows_written.inc(piece.rows)
        self.bytes_written.inc(size or 0)
        self.ranges_done.inc()
        return {k: marker[k] for k in ("unit_id", "start", "end", "rows")}

    def finish_bundle(self) -> None:
        if self._open:
            stranded = list(self._open.values())
            self._open = {}
            for piece in stranded:
                try:
                    piece.writer.close()
                    delete_files([piece.temp_path])
                except Exception:  # best effort; the bundle fails below anyway
                    pass
            raise RuntimeError(
                "a work unit's rows were split across bundles before its end arrived; the "
                "runner did not fuse the reader with the writer, which this export requires"
            )


def takes_columns(sink: SinkConfig, plan: TablePlan, policy: str) -> bool:
    """True when the writer of ``sink`` takes ``ColumnBatch`` columns (its format writes
    columns, and no file needs lists of element writetimes: under ``max`` and ``min`` the
    sink makes those columns one integer per cell): then reading pages as columns pays;
    elsewhere a ColumnBatch would only be turned back into rows."""
    needs_lists = normalize_row_fn(plan, policy) is not None and policy == COLLECTION_LIST
    return get_format(sink.format).takes_columns and not needs_lists


def _size(path: str) -> int | None:
    try:
        return FileSystems.match([path])[0].metadata_list[0].size_in_bytes
    except Exception:
        return None


def _now_iso() -> str:
    return cql_text.format_writetime_iso(time.time_ns() // 1000)


def _sink_display_data(
    plan: TablePlan, output: str, sink: SinkConfig, policy: str
) -> dict[str, Any]:
    return {
        "table": f"{plan.keyspace}.{plan.table}",
        "output": output,
        "format": sink.format,
        "compression": sink.compression,
        "writetime_format": sink.writetime_format,
        "collection_writetime": policy,
    }


class WriteExport(beam.PTransform):
    """Row batches of pieces -> committed files and markers; emits ``{unit_id, start, end, rows}`` per committed piece.

    Usage (after ``ReadRangesFn``, which emits ``RowBatch``... ``PieceEnd`` per piece)::

        markers = batches | WriteExport(plan, "gs://bucket/orders", SinkConfig(format="avro"))

    Exactly once: every piece commits by a rename, then its marker::

        ReadRangesFn --(fused, no shuffle)--> WritePiecesFn
          RowBatch  -> append to OUT/_temporary/part-<unit>-<random>.<ext>
          RowBatch  -> ...
          PieceEnd  -> close -> rename to OUT/data/part-<unit>[.s<offset>].<ext>
                             -> write OUT/_manifest/ranges/<unit>[...].json  (the marker)

    The final name depends only on where the piece starts, so a bundle the runner
    retries renames onto the same name and replaces the earlier attempt; the reader is
    fused with the writer (no ``Reshuffle`` between them), so a retry re-reads the same
    token range into the same piece. The marker is written after the rename: a data file
    without a marker belongs to an attempt that never committed, and the ``FinalizeFn``
    step (and ``--resume``) deletes it. A resume reads only the ranges no marker covers.
    """

    def __init__(
        self,
        plan: TablePlan,
        output: str,
        sink: SinkConfig,
        policy: str = DEFAULT_COLLECTION_POLICY,
    ) -> None:
        """Check that the format can honour every option of ``sink``.

        Args:
            plan: the columns, in output order, with their CQL types (``TablePlan``).
            output: the export directory (local path, ``gs://``, ``s3://``).
            sink: format and its options (``SinkConfig``).
            policy: ``"max"``, ``"min"`` or ``"list"``: what a collection's per-element
                writetimes become in the file.

        Raises:
            ValueError: an option the format cannot honour (say ``--compression`` with
                Avro), here rather than on a worker.
        """
        super().__init__()
        check_sink(sink)  # an option the format cannot honour fails here, not on a worker
        self.plan = plan
        self.output = output
        self.sink = sink
        self.policy = policy

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        return pcoll | "CommitPieces" >> beam.ParDo(
            WritePiecesFn(self.plan, self.output, self.sink, self.policy)
        )

    def display_data(self) -> dict[str, Any]:
        return _sink_display_data(self.plan, self.output, self.sink, self.policy)


# --- finalization ------------------------------------------------------------------------


class FinalizeError(RuntimeError):
    pass


def finalize_export(
    output: str,
    *,
    single_file: bool = False,
    stats_chart: bool = False,
    finished_at_micros: int | None = None,
) -> dict[str, Any]:
    """Verify the committed ranges, clean orphans, write checkpoint, stats and _SUCCESS."""
    from transforms.manifest import load_export
    from transforms.token_ranges import WorkUnit

    layout = Layout(output)
    manifest = load_export(layout)
    units = [WorkUnit.from_json(u) for u in manifest["units"]]
    # Each marker's statistics are merged as it is read and not kept (see read_markers).
    markers: list[dict[str, Any]] = []

    def statistics() -> Iterator[dict[str, Any]]:
        for marker in iter_markers(layout):
            stats = marker.pop("stats", {})
            markers.append(marker)
            yield stats

    merged = merge_stats(statistics())
    problems = check_exact_cover(completed_ranges(markers))
    if problems:
        raise FinalizeError(f"committed ranges do not cover the ring exactly: {problems[:3]}")
    delete_files(orphan_files(layout, markers))
    remove_empty_dir(layout.temp_dir)
    checkpoint = checkpoint_body(markers, manifest["export_config"], len(units))
    write_json(layout.checkpoint_json, checkpoint)
    finished = finished_at_micros or time.time_ns() // 1000
    started = int(manifest.get("started_at_micros") or finished)
    duration = max(0.0, (finished - started) / 1e6)
    stats = summarize(merged, manifest["plan"], cql_text.format_writetime_iso)
    stats["duration_seconds"] = round(duration, 3)
    stats["rows_per_second"] = round(stats["rows"] / duration, 1) if duration > 0 else None
    stats["pieces"] = len(markers)
    stats["ranges_split"] = sum(int(m.get("windows_split", 0)) for m in markers)
    stats["retries"] = sum(int(m.get("retries", 0)) for m in markers)
    write_json(layout.stats_json, stats)
    if stats_chart:
        from transforms.stats_chart import draw_stats_chart

        draw_stats_chart(stats, layout.stats_png)
    if single_file:
        merge_single_file(layout, manifest, markers)
    write_bytes_atomically(layout.success, b"")
    return stats


def merge_single_file(layout: Layout, manifest: dict[str, Any], markers: list[dict]) -> str:
    """Merge the parts, in token order, into OUT/export.<ext> (the format's merger)."""
    config = manifest["export_config"]
    defaults = SinkConfig()
    sink = SinkConfig(
        format=config["format"],
        compression=config.get("compression") or defaults.compression,
        avro_codec=config.get("avro_codec") or defaults.avro_codec,
        parquet_codec=config.get("parquet_codec") or defaults.parquet_codec,
        parquet_row_group_rows=config.get("parquet_row_group_rows")
        or defaults.parquet_row_group_rows,
    )
    fmt = get_format(sink.format)
    ordered = sorted(markers, key=lambda m: int(m["start"]))
    target = join(layout.root, "export" + fmt.file_extension(sink))
    temp = target + ".tmp"
    fmt.merge([join(layout.data_dir, m["file"]) for m in ordered], temp, sink)
    FileSystems.rename([temp], [target])
    return target


class FinalizeFn(beam.DoFn):
    """Runs once, after every piece committed (its input is a global count)."""

    def __init__(self, output: str, single_file: bool, stats_chart: bool) -> None:
        self.output = output
        self.single_file = single_file
        self.stats_chart = stats_chart

    def process(self, _count: int) -> Iterator[dict[str, Any]]:
        yield finalize_export(
            self.output, single_file=self.single_file, stats_chart=self.stats_chart
        )


def read_stats(output: str) -> dict[str, Any]:
    return read_json(Layout(output).stats_json)
