"""What flows from the reader to the writer: per piece of a work unit, RowBatch... then
PieceEnd; their coder; the Beam metric namespace.

Reader, normalizer and writers all import this module; it imports no other module of
this project.
"""

from __future__ import annotations

import ctypes
import gc
import io
import pickle
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import apache_beam as beam
import numpy
from apache_beam.coders import coders

__all__ = [
    "GC_GEN0_THRESHOLD",
    "NAMESPACE",
    "ColumnBatch",
    "ColumnBuffer",
    "PieceElement",
    "PieceElementCoder",
    "PieceEnd",
    "PieceKey",
    "relax_gc",
    "RowBatch",
    "trim_heap",
]

NAMESPACE = "cassandra_export"

GC_GEN0_THRESHOLD = 20_000


def relax_gc() -> None:
    """Fewer cyclic garbage collections in this process while rows stream through it.

    A scan allocates millions of short-lived row tuples, none of them in reference cycles;
    with Python's default young-generation threshold (700 net allocations) the collector
    ran about 5,700 times during a 2M-row export and took 13% of its CPU (measured). At
    20,000 it runs a handful of times; garbage that is cyclic is still collected."""
    gen0, gen1, gen2 = gc.get_threshold()
    if 0 < gen0 < GC_GEN0_THRESHOLD:
        gc.set_threshold(GC_GEN0_THRESHOLD, gen1, gen2)


def _malloc_trim() -> Any:
    """glibc's ``malloc_trim``, or None where the C library has none (musl, macOS,
    Windows)."""
    try:
        return ctypes.CDLL(None).malloc_trim
    except (OSError, AttributeError, TypeError):  # no such C library or function
        return None


_MALLOC_TRIM = _malloc_trim()


def trim_heap() -> bool:
    """Give the C heap's free pages back to the system, called after a piece's file is
    closed. The buffers a writer freed (Arrow's, with the system allocator; the driver's
    pages) otherwise stay in glibc's arenas, which return only the free space at their
    top, so a worker's resident memory crept with each piece: measured on a Parquet
    export of 1,000,000 narrow rows, about 2 MB less per worker at its peak, 5 MB with one
    arena as well (``pipeline/worker.py``), at well under 1 ms per piece. ``malloc_trim``'s
    answer: True when it released memory (False also where there is no glibc)."""
    return _MALLOC_TRIM is not None and bool(_MALLOC_TRIM(0))


@dataclass(frozen=True)
class PieceKey:
    """Identifies the part of a work unit read by one process() call."""

    unit_id: int
    unit_start: int
    piece_start: int  # exclusive lower token bound of the piece

    @property
    def offset(self) -> int:
        return self.piece_start - self.unit_start


class PieceElement:
    """What flows from the reader to the writer: RowBatch... then PieceEnd, per piece."""

    __slots__ = ()


@dataclass
class RowBatch(PieceElement):
    """Rows (tuples in plan order, token dropped) read for one piece."""

    piece: PieceKey
    rows: list[tuple[Any, ...]]


class ColumnBatch(RowBatch):
    """Rows read for one piece, as columns (``transforms.columnar``): ``columns[i]`` is the
    i-th field of every row, a NumPy masked array of numbers (masked: null) or an object
    array of driver values. ``rows`` builds the same tuples a RowBatch of them holds, on
    first use, so a step that knows only rows takes a ColumnBatch unchanged."""

    def __init__(self, piece: PieceKey, columns: list[Any], length: int) -> None:
        self.piece = piece
        self.columns = columns
        self.length = length
        self._rows: list[tuple[Any, ...]] | None = None

    @property  # type: ignore[override]
    def rows(self) -> list[tuple[Any, ...]]:
        """The rows as tuples (masked numbers and NumPy scalars as None and Python values)."""
        if self._rows is None:
            lists = [column.tolist() for column in self.columns]
            self._rows = list(zip(*lists, strict=True)) if lists else []
        return self._rows

    def __reduce__(self) -> Any:
        return ColumnBatch, (self.piece, self.columns, self.length)


class ColumnBuffer:
    """``ColumnBatch`` columns held until they hold ``rows`` rows, then handed on as one
    batch: a writer that converts a batch with a fixed number of NumPy calls per column
    spends most of its CPU on those calls with the reader's batches (1,000 rows by
    default), far less with a few thousand rows. The batches' order is kept."""

    def __init__(self, write: Callable[[Sequence[Any]], None], rows: int) -> None:
        self._write, self._rows = write, rows
        self._pending: list[Sequence[Any]] = []
        self._pending_rows = 0

    def add(self, columns: Sequence[Any], rows: int) -> None:
        """Hold a batch of ``rows`` rows; hand on what is held once it reaches ``rows``."""
        self._pending.append(columns)
        self._pending_rows += rows
        if self._pending_rows >= self._rows:
            self.flush()

    def flush(self) -> None:
        """Hand on what is held: one batch (the columns concatenated), or batch by batch
        where a column's type or their number of columns differs between them."""
        pending, self._pending, self._pending_rows = self._pending, [], 0
        widths = {len(columns) for columns in pending}
        if len(widths) == 1 and all(_joinable(parts) for parts in zip(*pending, strict=True)):
            pending = [[_joined(parts) for parts in zip(*pending, strict=True)]]
        for columns in pending:
            self._write(columns)


def _joinable(parts: Sequence[Any]) -> bool:
    first = parts[0]
    return all(type(p) is type(first) and p.dtype == first.dtype for p in parts)


def _joined(parts: Sequence[Any]) -> Any:
    """Columns of one type as one (masked arrays: data and masks joined)."""
    if isinstance(parts[0], numpy.ma.MaskedArray):
        data = numpy.concatenate([numpy.ma.getdata(p) for p in parts])
        masks = [numpy.ma.getmaskarray(p) for p in parts]
        return numpy.ma.MaskedArray(data, mask=numpy.concatenate(masks))
    return numpy.concatenate(parts)


@dataclass
class PieceEnd(PieceElement):
    """The last element of a piece: its final end token and what it took."""

    piece: PieceKey
    piece_end: int
    rows_read: int
    windows_split: int = 0
    retries: int = 0


class _ValuePickler(pickle.Pickler):
    """Pickles driver values; UDT values (namedtuples of classes the driver makes on the
    fly, which cannot be pickled by name) travel as plain tuples: they are read by position."""

    def reducer_override(self, obj: Any) -> Any:
        cls = type(obj)
        if cls is not tuple and isinstance(obj, tuple) and cls.__module__.startswith("cassandra"):
            return tuple, (tuple(obj),)
        return NotImplemented


class PieceElementCoder(coders.Coder):
    """Coder of reader output. Elements are encoded only where a runner does not fuse
    reader and writer; Beam's size sampling uses ``estimate_size``, which is cheap."""

    def encode(self, value: PieceElement) -> bytes:
        buffer = io.BytesIO()
        _ValuePickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(value)
        return buffer.getvalue()

    def decode(self, encoded: bytes) -> PieceElement:
        return pickle.loads(encoded)

    def is_deterministic(self) -> bool:
        return False

    def estimate_size(self, value: Any) -> int:
        if isinstance(value, ColumnBatch):
            return 32 + value.length * 16 * len(value.columns)
        rows = getattr(value, "rows", None)
        if rows:
            return 32 + len(rows) * 16 * len(rows[0])
        return 64

    def to_type_hint(self) -> type:
        return PieceElement


beam.coders.registry.register_coder(PieceElement, PieceElementCoder)
