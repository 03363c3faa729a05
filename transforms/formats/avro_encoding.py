"""Avro binary encoding of a batch of rows, a column at a time (numpy), for the Avro writer.

fastavro encodes record by record: a Python dict per row and a union resolution per
field, about 4 µs per narrow row. Here each column of a batch becomes two runs of
bytes, built with numpy over the whole column: the union index of every value (0 null,
2 the value's type) and the encoded values (zig-zag varints, little-endian floats,
length-prefixed strings from pyarrow's buffers). One gather then lays the runs out row
after row, which is exactly the bytes fastavro would write. Columns of records, arrays
and maps go value by value through fastavro's own encoder.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

__all__ = ["ColumnEncoder", "interleave", "nullable_column_encoder", "Run", "varints"]

# One column's encoded values: all bytes in row order, and how many belong to each row.
Run = tuple[np.ndarray, np.ndarray]
ColumnEncoder = Callable[[Sequence[Any]], list[Run]]

# The smallest zig-zag value needing 2, 3, ... 10 varint bytes.
_VARINT_THRESHOLDS = np.array([1 << (7 * n) for n in range(1, 10)], np.uint64)


def varints(values: np.ndarray) -> Run:
    """int64 values -> Avro zig-zag varints (the run of their bytes, bytes per value)."""
    zigzag = ((values << 1) ^ (values >> 63)).view(np.uint64)
    count = np.searchsorted(_VARINT_THRESHOLDS, zigzag, side="right").astype(np.int64) + 1
    width = int(count.max(initial=1))
    groups = np.empty((len(zigzag), width), np.uint8)
    for group in range(width):
        seven = ((zigzag >> np.uint64(7 * group)) & np.uint64(0x7F)).astype(np.uint8)
        groups[:, group] = seven | ((count > group + 1).astype(np.uint8) << 7)
    if (count == width).all():  # one length (writetimes, small ints): every byte counts
        return groups.ravel(), count
    return groups[np.arange(width) < count[:, None]], count


def _fixed(values: np.ndarray) -> Run:
    raw = np.ascontiguousarray(values).view(np.uint8)
    return raw, np.full(len(values), values.itemsize, np.int64)


def _length_prefixed(values: Sequence[Any], binary: bool) -> list[Run]:
    """Strings (or bytes) -> their lengths' varints and their bytes, laid out by pyarrow.
    pyarrow is imported here, at the first string column: an export without one (and
    every process of a CSV export) never loads it (about 45 MB of resident memory)."""
    import pyarrow as pa

    array = pa.array(values, type=pa.binary() if binary else pa.string())
    offsets = np.frombuffer(array.buffers()[1], np.int32)[: len(array) + 1].astype(np.int64)
    data_buffer = array.buffers()[2]
    data = (
        np.frombuffer(data_buffer, np.uint8)[offsets[0] : offsets[-1]]
        if data_buffer is not None
        else np.empty(0, np.uint8)
    )
    lengths = np.diff(offsets)
    return [varints(lengths), (data, lengths)]


def _fallback(schema: Any) -> Callable[[Sequence[Any]], list[Run]]:
    """Records, arrays, maps: each value through fastavro's encoder."""
    import fastavro

    parsed = fastavro.parse_schema(schema)
    write = fastavro.schemaless_writer

    def encode(values: Sequence[Any]) -> list[Run]:
        buffer = io.BytesIO()
        lengths = np.empty(len(values), np.int64)
        position = 0
        for i, value in enumerate(values):
            write(buffer, parsed, value)
            end = buffer.tell()
            lengths[i] = end - position
            position = end
        return [(np.frombuffer(buffer.getvalue(), np.uint8), lengths)]

    return encode


def _value_encoder(schema: Any) -> Callable[[Sequence[Any]], list[Run]]:
    """Non-null values of the (non-union) Avro ``schema`` -> their runs."""
    primitive = schema.get("type") if isinstance(schema, dict) else schema
    if primitive in ("int", "long"):
        return lambda values: [varints(np.array(values, dtype=np.int64))]
    if primitive == "boolean":
        return lambda values: [_fixed(np.array(values, dtype=np.bool_).view(np.uint8))]
    if primitive == "double":
        return lambda values: [_fixed(np.array(values, dtype="<f8"))]
    if primitive == "float":
        return lambda values: [_fixed(np.array(values, dtype="<f4"))]
    if primitive == "string":
        return lambda values: _length_prefixed(values, binary=False)
    if primitive == "bytes":
        return lambda values: _length_prefixed(values, binary=True)
    return _fallback(schema)


def _scattered(run: Run, present: np.ndarray) -> Run:
    """A run of the non-null values, as a run over every row (no bytes where null)."""
    lengths = np.zeros(len(present), np.int64)
    lengths[present] = run[1]
    return run[0], lengths


def nullable_column_encoder(schema: Any, convert: Callable[[Any], Any] | None) -> ColumnEncoder:
    """A column of the union ``["null", schema]`` (None for null) -> its runs; ``convert``
    turns a non-null driver value into the datum first."""
    encode = _value_encoder(schema)
    union_byte = np.uint8(2)  # zig-zag of branch index 1

    def column_runs(column: Sequence[Any]) -> list[Run]:
        rows = len(column)
        values: Any
        if isinstance(column, np.ma.MaskedArray):
            present, values = _masked_values(column)
        else:
            if isinstance(column, np.ndarray):
                column = column.tolist()
            if None in column:
                present = np.fromiter((v is not None for v in column), np.bool_, rows)
                values = [v for v in column if v is not None]
            else:
                present = None
                values = list(column)
        if convert is not None:
            values = list(
                map(convert, values.tolist() if isinstance(values, np.ndarray) else values)
            )
        runs = encode(values) if len(values) else [(np.empty(0, np.uint8), np.empty(0, np.int64))]
        ones = np.ones(rows, np.int64)
        if present is None:
            return [(np.full(rows, union_byte, np.uint8), ones), *runs]
        unions = np.where(present, union_byte, np.uint8(0)).astype(np.uint8)
        return [(unions, ones), *(_scattered(run, present) for run in runs)]

    return column_runs


def _masked_values(column: np.ma.MaskedArray) -> tuple[np.ndarray | None, np.ndarray]:
    """A masked column of numbers (masked: null) -> which rows are present (None: all)
    and the present values, still an array: no Python object per value."""
    mask = np.ma.getmaskarray(column)
    data = np.ma.getdata(column)
    if not mask.any():
        return None, data
    present = ~mask
    return present, data[present]


def interleave(runs: Sequence[Run], rows: int) -> bytes:
    """The runs laid out row after row: row 0's bytes of every run, then row 1's, ..."""
    if not rows:
        return b""
    lengths = np.stack([run[1] for run in runs], axis=1)
    flat = lengths.ravel()
    starts = np.empty(flat.size, np.int64)
    starts[0] = 0
    np.cumsum(flat[:-1], out=starts[1:])
    starts = starts.reshape(lengths.shape)
    out = np.empty(int(flat.sum()), np.uint8)
    for index, (data, run_lengths) in enumerate(runs):
        if not data.size:
            continue
        source_starts = np.cumsum(run_lengths) - run_lengths
        positions = np.repeat(starts[:, index] - source_starts, run_lengths)
        positions += np.arange(data.size)
        out[positions] = data
    return out.tobytes()
