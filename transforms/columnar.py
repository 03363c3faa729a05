"""Result pages read straight into columns: the driver's NumPy row parser, made exact.

The Cython build of cassandra-driver ships ``NumpyProtocolHandler``: a page of a result
becomes one NumPy array per column instead of a list of row tuples. ``bigint``,
``counter``, ``int``, ``smallint``, ``float`` and ``double`` columns (so writetimes, TTLs,
``token()`` and the exporter's top-level timestamps, read as ``bigint``: see
:mod:`transforms.wire_timestamps`) become
masked arrays of machine numbers whose mask marks nulls; every other type an object array
of exactly the values the row parser gives (same deserializers). As shipped with
cassandra-driver 3.30.1 it cannot be used as it is:

- with NumPy 2 every page holding a numeric column fails: its byte swap calls
  ``ndarray.newbyteorder``, which NumPy 2 removed; the driver then re-parses the page
  only to report errors and leaves the message without rows;
- an empty value (0 bytes: Cassandra accepts them for numeric types, the row parser
  gives None) leaves its array slot unwritten, so it would read as whatever was there;
- the columns come as a dict by name, so two selectors with the same result name (a
  column literally named ``writetime(c)`` next to ``WRITETIME(c)``) keep only one.

:func:`columnar_handler` returns a protocol handler that fixes the first (a byte swap
NumPy 2 accepts), detects the second (numeric arrays are filled with a marker pattern
before a page is parsed; a page where a non-null slot still holds the marker, which a
real value may also hold, is parsed again into row tuples) and the third (parsed again
into rows). A page is therefore a :class:`ColumnPage` whenever its columns are exact, and
the usual list of row tuples otherwise: a reader must take both.

Every page also tells the size of the message it came in (``ColumnPage.nbytes``, and
:class:`RowPage` for pages of row tuples, also those :func:`sized_rows_handler` reads for
an export that takes rows), from which the reader sizes the pages that follow.

The handler is chosen per request (:func:`send_columnar`), never set on the shared
session, so other users of a pooled session keep getting rows.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy

from transforms.cassandra_session import send_adjusted
from transforms.wire_timestamps import bigint_timestamps

__all__ = [
    "ColumnPage",
    "RowPage",
    "columnar_handler",
    "send_columnar",
    "sized_rows_handler",
    "supports_columnar",
]

# Big-endian byte patterns written into every slot of a numeric array before a page is
# parsed, by item size: an improbable integer, and a NaN with a payload for floats.
_MARKS = {8: b"\x7f\xf4\xde\xad\xbe\xef\x5a\xa5", 4: b"\x7f\xa5\xde\xad", 2: b"\x7f\xa5"}
# The same patterns as the integers a native-order view of a parsed array shows.
_MARK_VALUES = {size: int.from_bytes(mark, "big", signed=True) for size, mark in _MARKS.items()}


class ColumnPage:
    """One page of a result as columns, in the query's selector order.

    ``columns[i]`` is a ``numpy.ma.MaskedArray`` of machine numbers (native byte order;
    masked: null) or an object ``numpy.ndarray`` of driver values (None: null).
    ``nbytes`` is the size of the result message the page came in (0: unknown), which
    sizes the pages that follow (``range_reader.auto_page_rows``).
    Deliberately not iterable: the driver's ``ResultSet`` keeps it as one item.
    """

    __slots__ = ("columns", "length", "nbytes")

    def __init__(self, columns: list[Any], length: int, nbytes: int = 0) -> None:
        self.columns = columns
        self.length = length
        self.nbytes = nbytes

    def __len__(self) -> int:
        return self.length


class RowPage(list):  # type: ignore[type-arg]
    """A page of row tuples (the driver's list, copied) with ``nbytes``, the size of the
    result message it came in."""

    __slots__ = ("nbytes",)

    def __init__(self, rows: list[Any], nbytes: int) -> None:
        super().__init__(rows)
        self.nbytes = nbytes


def _body_size(f: Any) -> int:
    """The size of a result message's body (``io.BytesIO``), without copying it."""
    with f.getbuffer() as body:
        return body.nbytes


class _ParsedColumn:
    """A numeric column as the driver's parser fills it: the attributes its
    ``make_arrays`` reads (``ctypes``, ``strides``, ``dtype``, ``mask``) over a plain data
    array and mask, made a masked array once parsed (``_native_byteorder``) instead of
    twice."""

    __slots__ = ("ctypes", "data", "dtype", "mask", "strides")

    def __init__(self, data: Any, mask: Any) -> None:
        self.data, self.mask = data, mask
        self.ctypes, self.strides, self.dtype = data.ctypes, data.strides, data.dtype


def _marked_array(coltype: Any, size: int) -> Any:
    """``numpy_parser.make_array`` with every numeric slot holding the marker pattern."""
    from cassandra import numpy_parser

    dtype = numpy_parser._cqltype_to_numpy.get(coltype)
    if dtype is None:
        return numpy.empty((size,), dtype=object)
    data = numpy.empty((size,), dtype=dtype)
    # The pattern's bytes, as one big-endian integer per slot (a fifth of the CPU of
    # broadcasting them byte by byte).
    data.view(f">i{dtype.itemsize}").fill(_MARK_VALUES[dtype.itemsize])
    return _ParsedColumn(data, numpy.zeros((size,), dtype=bool))


def _native_byteorder(array: Any) -> Any:
    """``numpy_parser.make_native_byteorder`` for NumPy 2: a parsed numeric column's
    big-endian numbers swapped into native order in place (NaN payloads and the marker
    survive), as a masked array (masked: null); an object array as it is."""
    if type(array) is not _ParsedColumn:
        return array
    data = array.data
    if not data.dtype.isnative:
        data = data.byteswap(inplace=True).view(data.dtype.newbyteorder())
    return numpy.ma.MaskedArray(data, mask=array.mask)


def _holds_marker(column: Any) -> bool:
    """True when a non-null slot of a numeric column still holds the marker: an empty
    value the parser did not write, or a real value equal to the marker. Every null slot
    holds it (the parser writes only the mask there), so that is when the marker is in
    more slots than are null."""
    if column.dtype.kind == "O":
        return False
    data = numpy.ma.getdata(column)
    size = data.dtype.itemsize
    hits = numpy.count_nonzero(data.view(f"i{size}") == _MARK_VALUES[size])
    return hits != numpy.count_nonzero(numpy.ma.getmaskarray(column))


def _page_of(parsed: Any, names: Sequence[str]) -> ColumnPage | None:
    """The NumPy parser's dict as a page in selector order; None when it is not exact."""
    if not isinstance(parsed, dict) or len(parsed) != len(names) or not names:
        return None
    columns = [parsed[name] for name in names]
    if any(map(_holds_marker, columns)):
        return None
    return ColumnPage(columns, len(columns[0]))


_HANDLERS: dict[str, Any] = {}  # the handler classes, built once per process


def _build_sized_rows_handler() -> Any:
    from cassandra import protocol

    opcode = protocol.ResultMessage.opcode
    row_handler = protocol.ProtocolHandler
    row_message = row_handler.message_types_by_opcode[opcode]

    class SizedRowsResultMessage(row_message):  # type: ignore[misc, valid-type]
        """A rows result as a RowPage."""

        def recv_results_rows(
            self, f: Any, protocol_version: int, user_type_map: Any, metadata: Any, cep: Any
        ) -> None:
            row_message.recv_results_rows(self, f, protocol_version, user_type_map, metadata, cep)
            self.parsed_rows = RowPage(self.parsed_rows, _body_size(f))

    return _reading_rows_with(row_handler, SizedRowsResultMessage)


def _reading_rows_with(handler: Any, message: Any) -> Any:
    """A subclass of the driver's protocol ``handler`` whose rows results (opcode RESULT)
    are read by ``message``, with each top-level timestamp column typed ``bigint`` before
    the rows are parsed (``wire_timestamps``); every other message as ``handler`` reads
    it."""

    class TypedMessage(message):  # type: ignore[misc, valid-type]
        def recv_results_metadata(self, f: Any, user_type_map: Any) -> None:
            super().recv_results_metadata(f, user_type_map)
            self.column_metadata = bigint_timestamps(self.column_metadata)

    TypedMessage.__name__ = message.__name__
    opcodes = {**handler.message_types_by_opcode, message.opcode: TypedMessage}
    return type(f"{message.__name__}Handler", (handler,), {"message_types_by_opcode": opcodes})


def _build_handler() -> Any:
    from cassandra import numpy_parser, protocol

    numpy_handler = protocol.NumpyProtocolHandler
    if numpy_handler is None:  # a driver built without Cython or NumPy
        return None
    # Process-wide fixes of the driver's NumPy parser (module globals it looks up per
    # call); nothing else in this process uses it as shipped, which fails on NumPy 2.
    numpy_parser.make_array = _marked_array
    numpy_parser.make_native_byteorder = _native_byteorder
    opcode = protocol.ResultMessage.opcode
    numpy_message = numpy_handler.message_types_by_opcode[opcode]
    row_message = protocol.ProtocolHandler.message_types_by_opcode[opcode]

    class ColumnarResultMessage(numpy_message):  # type: ignore[misc, valid-type]
        """A rows result as a ColumnPage when exact, else as row tuples."""

        def recv_results_rows(
            self, f: Any, protocol_version: int, user_type_map: Any, metadata: Any, cep: Any
        ) -> None:
            start = f.tell()
            if cep is None:  # encrypted columns: rows only
                self.parsed_rows = None
                numpy_message.recv_results_rows(
                    self, f, protocol_version, user_type_map, metadata, cep
                )
                page = _page_of(self.parsed_rows, self.column_names)
                if page is not None:
                    page.nbytes = _body_size(f)
                    self.parsed_rows = page
                    return
            f.seek(start)
            row_message.recv_results_rows(self, f, protocol_version, user_type_map, metadata, cep)
            self.parsed_rows = RowPage(self.parsed_rows, _body_size(f))

    return _reading_rows_with(numpy_handler, ColumnarResultMessage)


def columnar_handler() -> Any:
    """The protocol handler whose rows results are ``[ColumnPage]`` where exact (else a
    ``RowPage``), or None when the driver has no NumPy parser."""
    if "columns" not in _HANDLERS:
        _HANDLERS["columns"] = _build_handler()
    return _HANDLERS["columns"]


def sized_rows_handler() -> Any:
    """The driver's protocol handler with rows results read as a ``RowPage`` (row tuples
    and the size of their message)."""
    if "rows" not in _HANDLERS:
        _HANDLERS["rows"] = _build_sized_rows_handler()
    return _HANDLERS["rows"]


def send_columnar(session: Any, statement: Any, paging_state: bytes | None, handler: Any) -> Any:
    """``session.execute_async(statement, paging_state=...)`` with ``handler`` decoding
    its answer: what ``Session.execute_async`` does, with the request's own handler
    instead of the session's (driver 3.30.1's ``Session`` has no per-request option)."""

    def with_handler(future: Any) -> None:
        future._protocol_handler = handler

    return send_adjusted(session, statement, with_handler, paging_state)


def supports_columnar(session: Any) -> bool:
    """True when ``session`` is the driver's own ``Session``, whose private request path
    ``send_columnar`` uses. Any other object (a proxy that wraps ``execute_async``, as the
    fault-injection tests do) is driven through its public ``execute_async`` and gives
    rows, so a wrapper always sees every request."""
    from cassandra.cluster import Session

    return (
        isinstance(session, Session)
        and hasattr(session, "_create_response_future")
        and hasattr(session, "_on_request")
    )
