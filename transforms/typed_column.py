"""A decoded column of numbers, booleans or timestamps held as one NumPy array and a null mask.

Why: the restore of a plain table decodes a chunk of rows a column at a time, then encodes
each column and works out which rows' cells share a writetime with NumPy. A column of Python
values costs a Python object per value to make and another Python call per value to encode;
a :class:`TypedColumn` from the CSV reader (:mod:`transforms.csv_arrow`) goes from the file's
bytes to the encoded values (:mod:`transforms.restore_encode`) and the writetime arithmetic
(:mod:`transforms.restore_chunk`) without one.

It holds exactly the values the list form holds: :meth:`TypedColumn.tolist` gives that list
(Python ``int``, ``float`` or ``bool``, None for null), and indexing gives one of its items.
A :class:`TextColumn` is the same for texts, held as the reader's Arrow array.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = ["TextColumn", "TypedColumn", "as_list", "has_null", "null_mask"]


class TypedColumn:
    """``values``: a NumPy array (int64, float64 or bool) with any value where the row is
    null; ``nulls``: a bool array of the null rows, or None when no row is null."""

    __slots__ = ("values", "nulls")

    def __init__(self, values: Any, nulls: Any = None) -> None:
        self.values = values
        self.nulls = nulls if nulls is not None and nulls.any() else None

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index: int) -> Any:
        if self.nulls is not None and self.nulls[index]:
            return None
        return self.values[index].item()

    def tolist(self) -> list[Any]:
        """The column as Python values, None for null."""
        import numpy

        out = self.values.tolist()
        if self.nulls is not None:
            for index in numpy.flatnonzero(self.nulls).tolist():
                out[index] = None
        return out


class TextColumn:
    """A decoded column of texts as the Arrow string array the CSV reader made (``values``;
    null where the field is null), so that its encoded values are made from its UTF-8
    bytes without a ``str`` per value (:mod:`transforms.restore_encode`)."""

    __slots__ = ("values",)

    def __init__(self, values: Any) -> None:
        self.values = values

    def __len__(self) -> int:
        return len(self.values)

    def __getitem__(self, index: int) -> Any:
        return self.values[index].as_py()

    def tolist(self) -> list[Any]:
        """The column as ``str`` values, None for null."""
        return self.values.to_pylist()


def has_null(column: Sequence[Any] | TypedColumn | TextColumn) -> bool:
    """Whether a decoded column (a list, a :class:`TypedColumn` or a :class:`TextColumn`)
    holds a null."""
    if isinstance(column, TypedColumn):
        return column.nulls is not None
    if isinstance(column, TextColumn):
        return column.values.null_count > 0
    return None in column


def as_list(column: Sequence[Any] | TypedColumn | TextColumn) -> list[Any]:
    """A decoded column as a list of Python values (a list is returned as it is)."""
    if isinstance(column, TypedColumn | TextColumn):
        return column.tolist()
    return column  # type: ignore[return-value]


def null_mask(column: Sequence[Any] | TypedColumn | TextColumn) -> Any:
    """A decoded column's null rows as a bool array where it knows them without looking
    at each value (a :class:`TypedColumn` or :class:`TextColumn`), else None."""
    import numpy

    if isinstance(column, TypedColumn):
        return numpy.zeros(len(column), bool) if column.nulls is None else column.nulls
    if isinstance(column, TextColumn):
        return column.values.is_null().to_numpy(zero_copy_only=False)
    return None
