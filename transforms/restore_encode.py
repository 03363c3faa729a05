"""Protocol bytes of restore writes, made a column at a time: values as the driver serializes
them, and BATCH requests whose statements were encoded before the driver sees them.

Why: binding through the driver costs a Python call per value (its generic serializers, a
``BoundStatement`` per statement, a ``write_value`` per value when the batch is encoded).
A restore writes the same few statement shapes millions of times, so each value is encoded
once, a whole decoded column at a time (``struct`` packers run by ``map`` for the fixed-size
types), and each batch member is joined from those bytes::

    member = 0x01 | [short] len(query id) | query id | [short] n | n x ([int] len | bytes)

which is exactly what the driver's ``BatchMessage`` writes for a bound statement. The
driver still sends the request (routing, retries, timeouts, its event loop): only the
batch's body is given as bytes (:class:`EncodedBatch`, :func:`execute_encoded`).

Every fast encoder gives the bytes of the driver's own ``serialize`` of that type (tested
value by value against it); a type without one, or a value a fast encoder refuses, goes
through the driver's ``serialize``.
"""

from __future__ import annotations

import functools
import io
import struct
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from transforms.cassandra_session import send_adjusted
from transforms.typed_column import TextColumn, TypedColumn

__all__ = [
    "batch_statement",
    "column_encoder",
    "EncodedBatch",
    "encode_bigint",
    "encode_int",
    "execute_encoded",
    "member_prefix",
    "routing_key",
]

_INT = struct.Struct(">i")
_SHORT = struct.Struct(">H")
_LEN_INT = struct.Struct(">ii")
_LEN_LONG = struct.Struct(">iq")
_LEN_DOUBLE = struct.Struct(">id")
_LEN_FLOAT = struct.Struct(">if")
_LEN_SHORT = struct.Struct(">ih")
_LEN_BYTE = struct.Struct(">ib")
_UUID_LENGTH = _INT.pack(16)

# One value with its [int] length: what write_value writes.
encode_int: Callable[[int], bytes] = functools.partial(_LEN_INT.pack, 4)
encode_bigint: Callable[[int], bytes] = functools.partial(_LEN_LONG.pack, 8)

ColumnEncoder = Callable[[Sequence[Any] | TypedColumn | TextColumn], list[bytes | None]]


def _packed(struct_pack: Callable[..., bytes], size: int) -> Callable[[Sequence[Any]], list[bytes]]:
    one = functools.partial(struct_pack, size)
    return lambda values: list(map(one, values))


def _texts(encoding: str) -> Callable[[Sequence[Any]], list[bytes]]:
    def column(values: Sequence[Any]) -> list[bytes]:
        pack = _INT.pack
        out = []
        for value in values:
            if not isinstance(value, str):
                raise TypeError("not a str")
            data = value.encode(encoding)
            out.append(pack(len(data)) + data)
        return out

    return column


def _blobs(values: Sequence[Any]) -> list[bytes]:
    pack = _INT.pack
    return [pack(len(v)) + bytes(v) for v in values]


def _uuids(values: Sequence[Any]) -> list[bytes]:
    prefix = _UUID_LENGTH
    return [prefix + v.bytes for v in values]


def _timestamps(values: Sequence[Any]) -> list[bytes]:
    # The restore decodes a timestamp as integer milliseconds; the driver packs an int as
    # it is. Anything else (a datetime) is left to the driver.
    if not all(type(v) is int for v in values):
        raise TypeError("not integer milliseconds")
    return list(map(encode_bigint, values))


def _fast_encoders() -> dict[Any, Callable[[Sequence[Any]], list[bytes]]]:
    from cassandra import cqltypes as t

    return {
        t.Int32Type: _packed(_LEN_INT.pack, 4),
        t.LongType: _packed(_LEN_LONG.pack, 8),
        t.DoubleType: _packed(_LEN_DOUBLE.pack, 8),
        t.FloatType: _packed(_LEN_FLOAT.pack, 4),
        t.ShortType: _packed(_LEN_SHORT.pack, 2),
        t.ByteType: _packed(_LEN_BYTE.pack, 1),
        t.BooleanType: _packed(_LEN_BYTE.pack, 1),
        t.DateType: _timestamps,
        t.TimestampType: _timestamps,
        t.UTF8Type: _texts("utf-8"),
        t.VarcharType: _texts("utf-8"),
        t.AsciiType: _texts("ascii"),
        t.BytesType: _blobs,
        t.UUIDType: _uuids,
        t.TimeUUIDType: _uuids,
    }


# Driver type -> (the NumPy kind of the values it takes: "i" int, "f" float, "b" bool;
# its wire form; the least and greatest value it holds, None: any of the kind).
WireForm = tuple[str, str, Any, Any]


def _wire_forms() -> dict[Any, WireForm]:
    from cassandra import cqltypes as t

    def ints(wire: str, bits: int) -> WireForm:
        return ("i", wire, -(2 ** (bits - 1)), 2 ** (bits - 1) - 1)

    return {
        t.Int32Type: ints(">i4", 32),
        t.LongType: ints(">i8", 64),
        t.ShortType: ints(">i2", 16),
        t.ByteType: ints(">i1", 8),
        t.DateType: ints(">i8", 64),
        t.TimestampType: ints(">i8", 64),
        t.BooleanType: ("b", ">i1", None, None),
        t.DoubleType: ("f", ">f8", None, None),
        t.FloatType: ("f", ">f4", None, None),
    }


def _wire_values(
    column: TypedColumn, kind: str, wire: str, least: Any, greatest: Any
) -> list[bytes | None] | None:
    """A typed column's values as ``write_value`` writes them ([int] length, then the
    value big-endian, as ``struct`` packs a Python value in the fast encoders above), made
    by NumPy; None when a value is not one the wire form holds exactly (another kind, out
    of range, a float that is not a float32), which the caller encodes value by value."""
    import numpy

    values = column.values
    if values.dtype.kind != kind or not len(values):
        return None
    if least is not None and (values.min() < least or values.max() > greatest):
        return None
    if wire == ">f4":
        with numpy.errstate(over="ignore", invalid="ignore"):
            if not (values.astype(numpy.float32).astype(numpy.float64) == values).all():
                return None  # NaN, or not a float32 value: struct rounds and raises its own way
    form = numpy.dtype([("length", ">i4"), ("value", wire)])
    out = numpy.empty(len(values), form)
    out["length"] = form["value"].itemsize
    out["value"] = values
    encoded: list[bytes | None] = out.view(f"V{form.itemsize}").tolist()
    if column.nulls is not None:
        for index in numpy.flatnonzero(column.nulls).tolist():
            encoded[index] = None
    return encoded


# The driver's text types (by ``typename``) whose values are their UTF-8 (or ASCII) bytes.
_TEXT_ENCODINGS = {"text": "utf-8", "varchar": "utf-8", "ascii": "ascii"}


def _text_values(column: TextColumn, ascii: bool) -> list[bytes | None] | None:
    """A text column's values as ``write_value`` writes them ([int] length, UTF-8 bytes):
    each its length's 4 bytes joined to its bytes by Arrow, then one ``bytes`` per value
    (None for null); None for an ASCII column with another character (the caller's
    encoder refuses it as the driver does)."""
    import numpy
    import pyarrow
    import pyarrow.compute

    compute = pyarrow.compute
    texts = column.values
    if ascii and compute.any(compute.invert(compute.string_is_ascii(texts))).as_py():
        return None
    rows = len(texts)
    lengths = compute.binary_length(texts).fill_null(0).to_numpy(zero_copy_only=False)
    prefixes = pyarrow.Array.from_buffers(
        pyarrow.binary(),
        rows,
        [
            None,
            pyarrow.py_buffer(numpy.arange(0, 4 * rows + 1, 4, dtype=numpy.int32)),
            pyarrow.py_buffer(lengths.astype(">i4").tobytes()),
        ],
    )
    joined = compute.binary_join_element_wise(prefixes, texts.cast(pyarrow.binary()), b"")
    return joined.to_pylist()


def column_encoder(
    cql_type: Any, protocol_version: int, prepare: Callable[[Any], Any] | None = None
) -> ColumnEncoder:
    """A function from a column of values (None for null; a list, a
    :class:`~transforms.typed_column.TypedColumn`, encoded by NumPy where its type has a
    fixed-width wire form, or a :class:`~transforms.typed_column.TextColumn`, encoded by
    Arrow for the text types) to each value as the driver's
    ``write_value`` writes it after binding: [int] length, then the serialized bytes (None
    stays None). ``cql_type`` is the driver's type of the bound variable (a prepared
    statement's ``column_metadata[i].type``); ``prepare`` turns a value into what the
    driver binds (a UDT mapping into a tuple) and is applied first."""
    serialize = cql_type.serialize
    pack = _INT.pack

    def generic(values: Sequence[Any]) -> list[bytes]:
        out = []
        for value in values:
            data = serialize(value, protocol_version)
            out.append(pack(len(data)) + data)
        return out

    fast = None if prepare is not None else _fast_encoders().get(cql_type)
    wire = None if prepare is not None else _wire_forms().get(cql_type)
    text = None if prepare is not None else _TEXT_ENCODINGS.get(cql_type.typename)

    def whole(values: Sequence[Any]) -> list[bytes]:
        if prepare is not None:
            values = list(map(prepare, values))
        if fast is not None:
            try:
                return fast(values)
            except (struct.error, TypeError, AttributeError, UnicodeError, OverflowError):
                pass  # the driver's serializer decides (and words the error)
        return generic(values)

    def column(values: Sequence[Any] | TypedColumn | TextColumn) -> list[bytes | None]:
        if isinstance(values, TypedColumn | TextColumn):
            encoded = None
            if isinstance(values, TextColumn):
                encoded = None if text is None else _text_values(values, text == "ascii")
            elif wire is not None:
                encoded = _wire_values(values, *wire)
            if encoded is not None:
                return encoded
            values = values.tolist()
        if None not in values:
            return list(whole(values))
        found = iter(whole([v for v in values if v is not None]))
        return [None if v is None else next(found) for v in values]

    return column


def member_prefix(prepared: Any) -> bytes:
    """The start of a batch member for ``prepared``: kind 1 (prepared), its id, the number
    of values that follow."""
    query_id = prepared.query_id
    return (
        b"\x01" + _SHORT.pack(len(query_id)) + query_id + _SHORT.pack(len(prepared.column_metadata))
    )


def routing_key(encoded_parts: Sequence[bytes]) -> bytes:
    """The routing key of a partition from its key values as encoded here ([int] length,
    bytes): the value itself for one column, else the driver's composite form."""
    if len(encoded_parts) == 1:
        return encoded_parts[0][4:]
    return b"".join(_SHORT.pack(len(part) - 4) + part[4:] + b"\x00" for part in encoded_parts)


class EncodedBatch(NamedTuple):
    """An unlogged batch of one partition: the driver's (empty) ``BatchStatement`` that
    carries routing, keyspace and consistency, and its members' bytes."""

    statement: Any
    members: bytes
    count: int


@functools.cache
def _message_class() -> type:
    from cassandra.protocol import BatchMessage

    # Its name starts with "_": the driver's message metaclass registers the others.
    class _EncodedBatchMessage(BatchMessage):
        """A BATCH whose statements are given as bytes; the rest (consistency, flags,
        client timestamp, keyspace) is written by the driver's own ``BatchMessage``."""

        def __init__(self, members: bytes, count: int, like: Any) -> None:
            super().__init__(
                like.batch_type,
                (),
                like.consistency_level,
                like.serial_consistency_level,
                like.timestamp,
                like.keyspace,
            )
            self.tracing = like.tracing
            self.custom_payload = like.custom_payload
            self.allow_beta_protocol_version = getattr(like, "allow_beta_protocol_version", False)
            self.members = members
            self.count = count

        def send_body(self, f: Any, protocol_version: int) -> None:
            empty = io.BytesIO()
            super().send_body(empty, protocol_version)  # type, 0 statements, options
            body = empty.getvalue()
            f.write(body[:1])
            f.write(_SHORT.pack(self.count))
            f.write(self.members)
            f.write(body[3:])

    return _EncodedBatchMessage


def batch_statement(keyspace: str, routing_key: bytes) -> Any:
    """The driver statement an encoded batch of one partition is sent with: unlogged, its
    keyspace and the partition's token (the session's policy routes by ``routing_token``)."""
    from cassandra.metadata import Murmur3Token
    from cassandra.query import BatchStatement, BatchType

    statement = BatchStatement(batch_type=BatchType.UNLOGGED)
    statement.keyspace = keyspace
    statement.routing_token = Murmur3Token.hash_fn(routing_key)
    return statement


def execute_encoded(session: Any, batch: EncodedBatch) -> Any:
    """Send ``batch`` as ``session.execute_async`` sends a ``BatchStatement`` (same
    profile, routing, timeout and retry policy), with the members' bytes as its body."""

    def with_members(future: Any) -> None:
        future.message = _message_class()(batch.members, batch.count, future.message)
        future._protocol_handler = session.client_protocol_handler

    return send_adjusted(session, batch.statement, with_members)
