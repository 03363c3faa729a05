"""The row path's requests: each statement shape prepared once, and a partition's batch of
statements as the driver request that writes it.

Kept apart from the writer DoFn (``cassandra_write``): what a request holds (its members'
serialized values, its routing token) can be read on its own, and the columnar path
(``restore_columnar``) prepares its shapes through the same ``prepare``.
"""

from __future__ import annotations

from typing import Any

from transforms.restore_plan import RestorePlan, Shape, Statement, statement_cql
from transforms.restore_rows import RowWrites

__all__ = ["RowRequests"]


class RowRequests:
    """Prepared statements by shape, and batches of ``Statement`` as driver requests."""

    def __init__(self, session: Any, plan: RestorePlan) -> None:
        self.session = session
        self.plan = plan
        self.protocol_version: int = session.cluster.protocol_version
        self._prepared: dict[Shape, Any] = {}
        self._serialized: dict[Shape, tuple[bytes, tuple[Any, ...]]] = {}

    def prepare(self, shape: Shape) -> Any:
        """The driver's prepared statement of ``shape`` (a round trip the first time)."""
        prepared = self._prepared.get(shape)
        if prepared is None:
            prepared = self._prepared[shape] = self.session.prepare(statement_cql(self.plan, shape))
        return prepared

    def prepare_new(self, writes: RowWrites) -> bool:
        """Prepare the statement shapes of ``writes`` met for the first time; whether there
        were any. Each prepare is a round trip, which on a busy node can take seconds: the
        row's TTLs are then computed again, so that no restored cell outlives its source."""
        new = [s.shape for s in writes.statements if s.shape not in self._prepared]
        for shape in new:
            self.prepare(shape)
        return bool(new)

    def request(self, batch: list[Statement]) -> Any:
        """The request that writes ``batch`` (statements of one partition): its one bound
        statement, or an unlogged batch; routed by the partition's token."""
        from cassandra.metadata import Murmur3Token
        from cassandra.query import BatchStatement, BatchType

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
        return request

    def _bind(self, statement: Statement) -> Any:
        return self.prepare(statement.shape).bind(statement.values)

    def _serializers(self, shape: Shape) -> tuple[bytes, tuple[Any, ...]]:
        """A shape's prepared-statement id and the serializer of each bound value."""
        found = self._serialized.get(shape)
        if found is None:
            prepared = self.prepare(shape)
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
        version = self.protocol_version
        return (
            True,
            query_id,
            [
                None if value is None else serialize(value, version)
                for serialize, value in zip(serializers, statement.values, strict=True)
            ],
        )
