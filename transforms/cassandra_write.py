"""Restore writer: one export unit file -> timestamped, batched writes, then a done marker.

Usage::

    units | "Restore" >> RestoreExportUnits(connection, plan, manifest, settings)

Exactly once, per unit::

    done marker exists?  -> skip
    attempt marker       -> written before the first write (it makes a later try a "redo")
    rows -> statements   -> one unlogged batch per partition (size-capped, rows never split)
    every write acked    -> done marker (counts)

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
    Shape,
    Statement,
    list_check_columns,
    list_check_cql,
    list_check_key_scope,
    statement_cql,
)
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
        self._prepared: dict[Shape, Any] = {}
        self._serialized: dict[Shape, tuple[bytes, tuple[Any, ...]]] = {}
        self._protocol_version = self._session.cluster.protocol_version
        self._limiter = limiter_for(self.connection.rate_limit)
        self._check_consistency = consistency_level(
            list_check_consistency(self.connection.consistency)
        )
        # scope -> (prepared read of the lists a redo checks, their columns, its key's scope)
        self._list_checks: dict[str, tuple[Any, tuple[RestoreColumn, ...], str]] = {}
        self._list_types: dict[str, Any] = {}
        for scope in (ROW, PARTITION):
            columns = list_check_columns(self.plan, scope)
            if not columns:
                continue
            prepared = self._session.prepare(list_check_cql(self.plan, scope))
            self._list_checks[scope] = (prepared, columns, list_check_key_scope(self.plan, scope))
            for i, column in enumerate(columns):
                self._list_types[column.name] = prepared.result_metadata[2 * i][3]

    def teardown(self) -> None:
        if getattr(self, "_limiter", None) is not None:
            leave_limiter(self._limiter)
            self._limiter = None
        release_session(self.connection)

    def _prepare(self, shape: Shape) -> Any:
        prepared = self._prepared.get(shape)
        if prepared is None:
            prepared = self._prepared[shape] = self._session.prepare(
                statement_cql(self.plan, shape)
            )
        return prepared

    def _prepare_new(self, writes: RowWrites) -> bool:
        """Prepare the statement shapes of ``writes`` met for the first time; whether there
        were any. Each prepare is a round trip, which on a busy node can take seconds: the
        row's TTLs are then computed again, so that no restored cell outlives its source."""
        new = [s.shape for s in writes.statements if s.shape not in self._prepared]
        for shape in new:
            self._prepare(shape)
        return bool(new)

    def process(self, unit: RestoreUnit) -> Iterator[dict[str, Any]]:
        layout = self._layout
        if exists(layout.done(unit.stem)):
            return
        redo = unit.redo or layout.has_attempt(unit.stem)
        write_json(
            layout.attempt(unit.stem),
            {"stem": unit.stem, "started_at_micros": time.time_ns() // 1000, "redo": redo},
        )
        counts = UnitCounts()
        started = time.monotonic()
        sender = WriteSender(
            self._session,
            self.settings.max_in_flight,
            self.settings.retries,
            counts,
            execute=self._execute,
        )
        try:
            if self._columnar_fields is not None:
                self._write_columns(unit, redo, counts, sender)
            else:
                for opens, rows in partition_chunks(
                    self._checked(unit, read_unit_rows), [c.name for c in self.plan.partition_key]
                ):
                    self._write_partition(rows, opens, unit, redo, counts, sender)
            sender.drain()
        except BaseException:
            sender.abandon()
            raise
        marker = {
            "stem": unit.stem,
            "file": unit.path,
            "redo": redo,
            "finished_at_micros": time.time_ns() // 1000,
            "seconds": round(time.monotonic() - started, 3),
            **counts.to_json(),
        }
        write_json(layout.done(unit.stem), marker)
        self.rows_written.inc(counts.rows)
        self.units_done.inc()
        yield marker

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
                self._prepare,
                self._protocol_version,
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
            self._checked(unit, read_unit_columns),
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
            present = self._present_lists(row) if redo and self._list_checks else None
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
                if not self._prepare_new(writes):
                    break
            row_writes.append(writes)
            counts.cells += writes.cells
            counts.expired_cells += writes.expired
            counts.list_elements_present += writes.list_elements_present
        counts.rows += len(rows)
        counts.partitions += opens
        for batch in pack_batches(row_writes, self.settings.max_batch_statements):
            self._send(batch, sender)
            counts.statements += len(batch)
            counts.batches += 1

    def _bind(self, statement: Statement) -> Any:
        prepared = self._prepared.get(statement.shape) or self._prepare(statement.shape)
        return prepared.bind(statement.values)

    def _serializers(self, shape: Shape) -> tuple[bytes, tuple[Any, ...]]:
        """A shape's prepared-statement id and the serializer of each bound value."""
        found = self._serialized.get(shape)
        if found is None:
            prepared = self._prepared.get(shape) or self._prepare(shape)
            found = self._serialized[shape] = (
                prepared.query_id,
                tuple(c.type.serialize for c in prepared.column_metadata),
            )
        return found

    def _member(self, statement: Statement) -> tuple[bool, bytes, list[Any]]:
        """A batch member as the driver's ``BatchStatement.add`` stores a bound statement
        (prepared, its id, the serialized values), serialized directly: binding builds a
        ``BoundStatement`` per statement, twice the CPU, for routing facts only the batch's
        first statement needs."""
        query_id, serializers = self._serializers(statement.shape)
        version = self._protocol_version
        return (
            True,
            query_id,
            [
                None if value is None else serialize(value, version)
                for serialize, value in zip(serializers, statement.values, strict=True)
            ],
        )

    def _send(self, batch: list[Statement], sender: WriteSender) -> None:
        from cassandra.metadata import Murmur3Token
        from cassandra.query import BatchStatement, BatchType

        appends = any(s.appends_list for s in batch)
        first = self._bind(batch[0])
        if len(batch) == 1:
            request = first
        else:
            request = BatchStatement(batch_type=BatchType.UNLOGGED)
            request.add(first)  # routing, keyspace and consistency come from the first
            # The driver's own list of members, which its BatchMessage encodes.
            request._statements_and_parameters.extend(map(self._member, batch[1:]))
            request.keyspace = first.keyspace
        if first.routing_key is not None:
            # The session's policy routes by ``routing_token`` (see RangeAwarePolicy).
            request.routing_token = Murmur3Token.hash_fn(first.routing_key)
        sender.send(request, appends)

    def _present_lists(self, row: Any) -> dict[str, Counter] | None:
        """Per list column, the (element key, writetime) pairs the target row (or, for a
        static-only partition, its statics) holds now."""
        scope = PARTITION if self._builder.is_static_only(row.values) else ROW
        check = self._list_checks.get(scope)
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
