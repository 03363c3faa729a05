"""Read a Cassandra table with WRITETIME()/TTL() of every cell, as Beam elements.

Usage in any pipeline::

    rows = p | ReadCassandraWithWritetime(
        connection=ConnectionConfig(hosts=("127.0.0.1:9042",)),
        keyspace="shop", table="orders", writetime_columns="*")

``rows`` holds one dict per Cassandra row: the exported columns, then
``<col>_writetime`` (microseconds; collections normalized by policy) and
``<col>_ttl``. The export pipeline uses the lower-level :class:`ReadRangesFn`,
which emits batches of plain tuples per work unit piece so that a whole piece can be
committed to one file::

    work units --Reshuffle--> ReadRangesFn (splittable: one restriction per unit,
    claims each partition token once) --> RowBatch..., PieceEnd  (per piece)

A piece is the part of a work unit that one ``process()`` call read; it is a whole
unit unless the runner split the restriction or ``checkpoint_rows`` ran out.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from typing import Any

import apache_beam as beam

from transforms.cassandra_schema import (
    describe_table,
    partitions_per_range,
    plan_described_table,
    ring_tokens,
)
from transforms.cassandra_session import (
    ConnectionConfig,
    connect,
)
from transforms.elements import RowBatch
from transforms.normalize import NormalizeWritetimes
from transforms.range_reader import ReadRangesFn
from transforms.table_plan import COLLECTION_POLICIES, DEFAULT_COLLECTION_POLICY
from transforms.token_ranges import make_work_units, plan_ranges

__all__ = ["ReadCassandraWithWritetime"]


# --- a reusable transform: rows as dicts ------------------------------------------------


class _BatchesToDictsFn(beam.DoFn):
    def __init__(self, names: Sequence[str]) -> None:
        self.names = list(names)

    def process(self, element: Any) -> Iterator[dict[str, Any]]:
        if isinstance(element, RowBatch):
            names = self.names
            for row in element.rows:
                yield dict(zip(names, row, strict=True))


def _selection_text(selection: str | Sequence[str] | None, if_none: str) -> str:
    """A column selection as the CLI spells it: ``*``, ``none`` or ``a,b``."""
    if selection is None:
        return if_none
    return selection if isinstance(selection, str) else ",".join(selection)


class ReadCassandraWithWritetime(beam.PTransform):
    """Read a table as dicts with ``<col>_writetime`` (micros) and ``<col>_ttl`` keys.

    Usage::

        rows = pipeline | ReadCassandraWithWritetime(
            connection=ConnectionConfig(hosts=("10.0.0.5",)),
            keyspace="shop",
            table="orders",
            ttl_columns=["status"],
        )

    The table is described and the ring planned when the transform is applied (so the
    launching machine must reach the cluster); collections' per-element writetimes are
    normalized by ``collection_writetime``. Work units are reshuffled before the read, so
    every runner spreads them over its workers.
    """

    def __init__(
        self,
        *,
        connection: ConnectionConfig,
        keyspace: str,
        table: str,
        columns: str | Sequence[str] | None = None,
        writetime_columns: str | Sequence[str] | None = "*",
        ttl_columns: str | Sequence[str] | None = None,
        collection_writetime: str = DEFAULT_COLLECTION_POLICY,
        splits: int = 64,
        batch_size: int = 1000,
    ) -> None:
        """Check the arguments; nothing is read before the transform is applied.

        Args:
            connection: the cluster and credentials (``ConnectionConfig``).
            keyspace: the table's keyspace, matched exactly (or ``"Quoted"``).
            table: the table's name.
            columns: the columns read (``None`` or ``"*"``: all); key columns are always read.
            writetime_columns: ``"*"`` (every eligible column), a list of names, or
                ``None``/``"none"``.
            ttl_columns: as ``writetime_columns``; ``None`` reads no TTL.
            collection_writetime: ``"max"``, ``"min"`` or ``"list"``: what a non-frozen
                collection's per-element writetimes become.
            splits: the number of work units (token sub-ranges), at least 1.
            batch_size: rows per element between the reader and the dict conversion.

        Raises:
            ValueError: naming the argument that is missing or out of range.
        """
        super().__init__()
        if not keyspace or not table:
            raise ValueError("keyspace and table are required")
        if splits < 1:
            raise ValueError("splits must be at least 1")
        if collection_writetime not in COLLECTION_POLICIES:
            raise ValueError(f"collection_writetime must be one of {COLLECTION_POLICIES}")
        self.connection = connection
        self.keyspace = keyspace
        self.table = table
        self.columns = columns
        self.writetime_columns = writetime_columns
        self.ttl_columns = ttl_columns
        self.collection_writetime = collection_writetime
        self.splits = splits
        self.batch_size = batch_size

    def expand(self, pbegin: beam.pvalue.PBegin) -> beam.PCollection:
        cluster, session = connect(self.connection)
        try:
            described = describe_table(cluster, session, self.keyspace, self.table)
            tokens = ring_tokens(cluster)
            estimates = partitions_per_range(session, described.keyspace, described.table)
        finally:
            cluster.shutdown()
        plan = plan_described_table(
            described,
            columns=self.columns,
            writetime_columns=self.writetime_columns,
            ttl_columns=self.ttl_columns,
        )
        units = make_work_units(plan_ranges(tokens, self.splits, estimates))
        items = [(u.unit_id, u.start, u.start, u.end) for u in units]
        return (
            pbegin
            | "WorkUnits" >> beam.Create(items)
            | "Reshuffle" >> beam.Reshuffle()
            | "ReadTokenRanges" >> beam.ParDo(ReadRangesFn(self.connection, plan, self.batch_size))
            | "NormalizeWritetimes" >> NormalizeWritetimes(plan, self.collection_writetime)
            | "ToDicts" >> beam.ParDo(_BatchesToDictsFn(plan.field_names))
        )

    def display_data(self) -> dict[str, Any]:
        return {
            **self.connection.display_data(),
            "keyspace": self.keyspace,
            "table": self.table,
            "columns": _selection_text(self.columns, "*"),
            "writetime_columns": _selection_text(self.writetime_columns, "none"),
            "ttl_columns": _selection_text(self.ttl_columns, "none"),
            "collection_writetime": self.collection_writetime,
            "splits": self.splits,
            "batch_size": self.batch_size,
        }
