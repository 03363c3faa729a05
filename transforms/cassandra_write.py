"""Restore writer: one export unit file -> timestamped, batched writes, then a done marker.

Usage::

    units | "Restore" >> RestoreExportUnits(connection, plan, manifest, settings)

Exactly once, per unit::

    done marker exists?  -> skip
    attempt marker       -> written before the first write (it makes a later try a "redo")
    rows -> statements   -> one unlogged batch per partition (size-capped, rows never split)
    every write acked    -> done marker (counts)

The units of a bundle share one sender (``transforms.write_sender``): a unit's last writes
are still in flight while the next unit's file is read and decoded, and its done marker is
written (and emitted) once they are acknowledged; the bundle's last ones in
``finish_bundle``. So neither the node nor the writer waits for the other between units.

Scalars, sets, maps, frozen values and UDT fields written with the same timestamp are
idempotent; list appends are not (each append gets fresh element ids). A redone unit
therefore reads each row's lists with their element writetimes first and appends only the
elements the target does not hold yet; a row's list appends share one single-partition batch,
which Cassandra applies atomically, so a crash leaves a row's lists all written or not at all.
"""

from __future__ import annotations

import functools
import gzip
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
from apache_beam.metrics import Metrics
from apache_beam.transforms.window import GlobalWindows
from apache_beam.utils.windowed_value import WindowedValue

from transforms.cassandra_session import (
    ConnectionConfig,
    acquire_session,
    consistency_level,
    release_session,
    replica_range_of,
)
from transforms.elements import NAMESPACE, relax_gc
from transforms.export_decode import (
    ExportFileError,
    ExportLayout,
    read_unit_columns,
    read_unit_rows,
    rows_of,
)
from transforms.manifest import exists, write_json
from transforms.rate_limit import leave_limiter, limiter_for
from transforms.restore_batches import pack_batches
from transforms.restore_columnar import ColumnarWriter, columnar_fields
from transforms.restore_encode import EncodedBatch, batch_statement, execute_encoded
from transforms.restore_groups import MAX_PARTITIONS
from transforms.restore_manifest import RestoreLayout
from transforms.restore_plan import (
    PARTITION,
    ROW,
    RestoreColumn,
    RestorePlan,
    list_check_columns,
    list_check_cql,
    list_check_key_scope,
)
from transforms.restore_requests import RowRequests
from transforms.restore_rows import (
    PARTITION_CHUNK_ROWS,
    RowStatementBuilder,
    RowWrites,
    TtlClock,
    partition_chunks,
)
from transforms.write_sender import (
    UnitCounts,
    WriteSender,
    list_check_consistency,
)

__all__ = [
    "PARTITION_CHUNK_ROWS",
    "partition_chunks",
    "RestoreExportUnits",
    "RestoreInputError",
    "RestoreUnit",
    "RestoreUnitsFn",
    "WriteSettings",
]


class RestoreInputError(ValueError):
    """An export file that cannot be decoded (corrupt, truncated): bad input, exit 2."""


@dataclass(frozen=True)
class WriteSettings:
    """How the writer writes."""

    export_root: str
    restore_root: str
    max_batch_statements: int = 128
    max_batch_partitions: int = MAX_PARTITIONS
    max_in_flight: int = 32
    retries: int = 6


@dataclass(frozen=True)
class RestoreUnit:
    """One committed export unit file to restore."""

    stem: str
    path: str
    read_started_micros: int
    redo: bool = False
    # Rows its export marker records: a file cut at a row boundary still parses, so the
    # count is what tells it is truncated. None for markers that record none.
    expected_rows: int | None = None


class RestoreUnitsFn(beam.DoFn):
    """RestoreUnit -> its rows written to the target, then its done marker; emits the counts."""

    def __init__(
        self,
        connection: ConnectionConfig,
        plan: RestorePlan,
        manifest: dict[str, Any],
        settings: WriteSettings,
    ) -> None:
        self.connection = connection
        self.plan = plan
        self.manifest = manifest
        self.settings = settings
        self.rows_written = Metrics.counter(NAMESPACE, "restore_rows")
        self.units_done = Metrics.counter(NAMESPACE, "restore_units_done")

    def display_data(self) -> dict[str, Any]:
        return _restore_display_data(self.connection, self.plan, self.settings)

    def setup(self) -> None:
        relax_gc()
        self._session = acquire_session(self.connection)
        self._layout = RestoreLayout(self.settings.restore_root)
        self._decode_layout = ExportLayout.from_manifest(self.manifest)
        # A plain table is written from decoded columns (transforms.restore_columnar).
        self._columnar_fields = columnar_fields(self.plan, self._decode_layout)
        self._columnar: ColumnarWriter | None = None
        self._builder = RowStatementBuilder(self.plan)
        self._requests = RowRequests(self._session, self.plan)
        self._limiter = limiter_for(self.connection.rate_limit)
        self._check_consistency = consistency_level(
            list_check_consistency(self.connection.consistency)
        )
        # scope -> (prepared read of the lists a redo checks, their columns, its key's scope),
        # prepared at a redo's first row: before 5.0 Cassandra refuses to prepare it
        # (WRITETIME of a non-frozen list), and a first restore into 4.x never reads lists.
        self._list_checks: dict[str, tuple[Any, tuple[RestoreColumn, ...], str] | None] = {}
        self._list_types: dict[str, Any] = {}

    def teardown(self) -> None:
        if getattr(self, "_limiter", None) is not None:
            leave_limiter(self._limiter)
            self._limiter = None
        release_session(self.connection)

    def start_bundle(self) -> None:
        # One sender for the bundle's units: see transforms.write_sender.
        self._sender: WriteSender | None = None
        self._finished: list[dict[str, Any]] = []  # markers written, not yet emitted
        self._open: set[str] = set()  # units whose done marker waits for their writes

    def process(self, unit: RestoreUnit) -> Iterator[dict[str, Any]]:
        try:
            self._restore(unit)
        except BaseException:  # a failed write, a bad file, a marker not written
            sender, self._sender = self._sender, None
            if sender is not None:  # earlier units' writes too: none is left in flight
                sender.abandon()
            raise
        yield from self._take_finished()

    def _restore(self, unit: RestoreUnit) -> None:
        """Send every write of ``unit`` (unless it is done) and close it: its done marker
        is written once they are acknowledged (see ``_finish``)."""
        layout = self._layout
        if unit.stem in self._open:  # never two tries of one unit in flight at once
            self._drain()
        if exists(layout.done(unit.stem)):
            return
        redo = unit.redo or layout.has_attempt(unit.stem)
        write_json(
            layout.attempt(unit.stem),
            {"stem": unit.stem, "started_at_micros": time.time_ns() // 1000, "redo": redo},
        )
        counts = UnitCounts()
        started = time.monotonic()
        sender = self._sender_for(counts)
        if self._columnar_fields is not None:
            self._write_columns(unit, redo, counts, sender)
        else:
            for opens, rows in partition_chunks(
                self._checked(unit, read_unit_rows), [c.name for c in self.plan.partition_key]
            ):
                self._write_partition(rows, opens, unit, redo, counts, sender)
        self._open.add(unit.stem)
        sender.close_unit(functools.partial(self._finish, unit, redo, counts, started))

    def finish_bundle(self) -> Iterator[WindowedValue]:
        """The done markers of the bundle's last units, once their writes are acknowledged."""
        self._drain()
        for marker in self._take_finished():
            yield GlobalWindows.windowed_value(marker)

    def _sender_for(self, counts: UnitCounts) -> WriteSender:
        if self._sender is None:
            self._sender = WriteSender(
                self._session,
                self.settings.max_in_flight,
                self.settings.retries,
                counts,
                execute=self._execute,
            )
        self._sender.counts = counts
        return self._sender

    def _drain(self) -> None:
        sender, self._sender = self._sender, None
        if sender is None:
            return
        try:
            sender.drain()
        except BaseException:
            sender.abandon()
            raise

    def _finish(self, unit: RestoreUnit, redo: bool, counts: UnitCounts, started: float) -> None:
        """Every write of ``unit`` is acknowledged: its done marker."""
        marker = {
            "stem": unit.stem,
            "file": unit.path,
            "redo": redo,
            "finished_at_micros": time.time_ns() // 1000,
            "seconds": round(time.monotonic() - started, 3),
            **counts.to_json(),
        }
        write_json(self._layout.done(unit.stem), marker)
        self._open.discard(unit.stem)
        self.rows_written.inc(counts.rows)
        self.units_done.inc()
        self._finished.append(marker)

    def _take_finished(self) -> list[dict[str, Any]]:
        finished, self._finished = self._finished, []
        return finished

    def _execute(self, request: Any) -> Any:
        if isinstance(request, EncodedBatch):
            return execute_encoded(self._session, request)
        return self._session.execute_async(request)

    def _write_columns(
        self, unit: RestoreUnit, redo: bool, counts: UnitCounts, sender: WriteSender
    ) -> None:
        """A plain table's unit, a chunk of decoded columns at a time (no lists: a redo is
        the same writes again)."""
        if self._columnar is None:
            assert self._columnar_fields is not None
            self._columnar = ColumnarWriter(
                self.plan,
                self._columnar_fields,
                self._requests.prepare,
                self._requests.protocol_version,
                self.settings.max_batch_statements,
                PARTITION_CHUNK_ROWS,
                functools.partial(batch_statement, self.plan.keyspace),
                replica_range=replica_range_of(self._session),
                max_batch_partitions=self.settings.max_batch_partitions,
            )

        def before_partition(rows: int) -> None:
            self._limiter.acquire(rows)
            sender.make_room()

        def rows_fallback(columns: list[list[Any]]) -> None:
            rows = iter(rows_of(self._decode_layout, columns))
            for opens, chunk in partition_chunks(rows, [c.name for c in self.plan.partition_key]):
                self._write_partition(chunk, opens, unit, redo, counts, sender)

        self._columnar.write_unit(
            self._checked(unit, functools.partial(read_unit_columns, typed=True)),
            unit.read_started_micros,
            counts,
            before_partition,
            lambda batch: sender.send(batch, False),
            rows_fallback,
        )

    def _checked(self, unit: RestoreUnit, read: Callable[..., Iterator[Any]]) -> Iterator[Any]:
        """What ``read`` (``read_unit_rows`` or ``read_unit_columns``) gives of the unit's
        file; the decoder checks the whole file's structure (and its row count against the
        unit's marker) before the first row is written, and decodes the values a chunk at a
        time. A file it rejects is bad input (RestoreInputError)."""
        try:
            items = read(unit.path, self._decode_layout, unit.expected_rows)
        except Exception as exc:
            raise _input_error(unit.path, exc) from None
        while True:
            try:
                item = next(items)
            except StopIteration:
                return
            except Exception as exc:
                raise _input_error(unit.path, exc) from None
            yield item

    def _write_partition(
        self,
        rows: list[Any],
        opens: bool,
        unit: RestoreUnit,
        redo: bool,
        counts: UnitCounts,
        sender: WriteSender,
    ) -> None:
        """Rows of one partition (all, or a chunk): statics with its first row only."""
        self._limiter.acquire(len(rows))
        sender.make_room()
        clock = TtlClock(unit.read_started_micros // 1_000_000, int(time.time()))
        row_writes: list[RowWrites] = []
        for index, row in enumerate(rows):
            present = self._present_lists(row) if redo and self.plan.list_columns else None
            for fresh in (present is not None, True):
                if fresh:  # TTLs count from now: after the target's read or the prepares
                    clock = TtlClock(unit.read_started_micros // 1_000_000, int(time.time()))
                writes = self._builder.row_writes(
                    row,
                    clock,
                    with_statics=opens and index == 0,
                    marker_timestamp=unit.read_started_micros,
                    present=present,
                    element_key=self._element_key,
                )
                if not self._requests.prepare_new(writes):
                    break
            row_writes.append(writes)
            counts.cells += writes.cells
            counts.expired_cells += writes.expired
            counts.list_elements_present += writes.list_elements_present
        counts.rows += len(rows)
        counts.partitions += opens
        for batch in pack_batches(row_writes, self.settings.max_batch_statements):
            sender.send(self._requests.request(batch), any(st.appends_list for st in batch))
            counts.statements += len(batch)
            counts.batches += 1

    def _present_lists(self, row: Any) -> dict[str, Counter] | None:
        """Per list column, the (element key, writetime) pairs the target row (or, for a
        static-only partition, its statics) holds now."""
        scope = PARTITION if self._builder.is_static_only(row.values) else ROW
        check = self._list_check(scope)
        if check is None:
            return None
        prepared, columns, key_scope = check
        read = prepared.bind(self._builder.key_values(row.values, key_scope))
        read.consistency_level = self._check_consistency
        found = self._session.execute(read).one()
        if found is None:
            return None
        present: dict[str, Counter] = {}
        for i, column in enumerate(columns):
            items, stamps = found[2 * i], found[2 * i + 1]
            if not items:
                continue
            present[column.name] = Counter(
                (self._element_key(column.name, item), stamp)
                for item, stamp in zip(items, stamps, strict=True)
            )
        return present

    def _list_check(self, scope: str) -> tuple[Any, tuple[RestoreColumn, ...], str] | None:
        """The prepared list read of ``scope`` (None if it has no list), prepared once."""
        if scope not in self._list_checks:
            columns = list_check_columns(self.plan, scope)
            check = None
            if columns:
                prepared = self._session.prepare(list_check_cql(self.plan, scope))
                check = (prepared, columns, list_check_key_scope(self.plan, scope))
                for i, column in enumerate(columns):
                    self._list_types[column.name] = prepared.result_metadata[2 * i][3]
            self._list_checks[scope] = check
        return self._list_checks[scope]

    def _element_key(self, column: str, element: Any) -> bytes:
        """An element as the bytes Cassandra stores, so values decoded from a file compare
        equal to values read from the target whatever their Python types."""
        list_type = self._list_types[column]
        element_type = list_type.subtypes[0]
        return element_type.to_binary(element, 5)


def _input_error(path: str, exc: Exception) -> Exception:
    """What a decoder error means: a file that is corrupt or truncated (bad input), or, for
    storage trouble (a lost connection...), the error itself (a failed run)."""
    if isinstance(exc, ExportFileError):
        return RestoreInputError(str(exc))
    if isinstance(exc, OSError):
        if not isinstance(exc, gzip.BadGzipFile):
            return exc
        return RestoreInputError(f"{path} is corrupt ({exc})")
    # the decoder touches no database: the file is bad
    return RestoreInputError(f"{path} is corrupt or truncated ({type(exc).__name__}: {exc})")


class RestoreExportUnits(beam.PTransform):
    """Write export unit files back to a table, each cell with its writetime and TTL.

    Usage (the units and the plan come from the export's manifest and the target)::

        done = (
            pipeline
            | beam.Create(units)  # RestoreUnit per committed export unit file
            | RestoreExportUnits(connection, plan, manifest, settings)
        )

    Exactly once, per unit::

        RestoreUnit --Reshuffle--> RestoreUnitsFn
          write attempts/<unit>.json             (before the unit's first write)
          UPDATE ... USING TIMESTAMP t AND TTL n (unlogged batches of one partition)
          write <unit>.json                      (after every write was acknowledged)

    The ``Reshuffle`` spreads the units over the workers on every runner. Writes with the
    source's timestamps are idempotent, so a retried bundle rewrites the same cells; list
    appends are not, so a unit with an attempt marker is redone by first reading the
    target's lists and appending only the elements it lacks.
    """

    def __init__(
        self,
        connection: ConnectionConfig,
        plan: RestorePlan,
        manifest: dict[str, Any],
        settings: WriteSettings,
    ) -> None:
        """Keep the resolved restore; nothing is read or written before the pipeline runs.

        Args:
            connection: the target cluster, credentials and write consistency.
            plan: the target table and how each exported column is written back.
            manifest: the export's ``export.json`` (columns, format, schema).
            settings: the export and restore manifest roots, batch size, requests in
                flight, retries and write rate.
        """
        super().__init__()
        self.connection = connection
        self.plan = plan
        self.manifest = manifest
        self.settings = settings

    def expand(self, units: beam.PCollection) -> beam.PCollection:
        return (
            units
            | "Reshuffle" >> beam.Reshuffle()
            | "RestoreUnits"
            >> beam.ParDo(RestoreUnitsFn(self.connection, self.plan, self.manifest, self.settings))
        )

    def display_data(self) -> dict[str, Any]:
        return _restore_display_data(self.connection, self.plan, self.settings)


def _restore_display_data(
    connection: ConnectionConfig, plan: RestorePlan, settings: WriteSettings
) -> dict[str, Any]:
    return {
        **connection.display_data(),
        "target": f"{plan.keyspace}.{plan.table}",
        "input": settings.export_root,
        "restore_manifest": settings.restore_root,
        "batch_statements": settings.max_batch_statements,
        "batch_partitions": settings.max_batch_partitions,
        "max_in_flight": settings.max_in_flight,
    }
