"""Whole columns of exported number texts parsed in C (Arrow's string casts), giving
exactly the values Python's ``int()`` and ``float()`` give, or None when that is not certain.

Parsing a value with ``int()``/``float()`` is a Python call per value, and ``float()`` of
the 17 significant digits an exported double has is slow (hundreds of ns): the largest
part of decoding a CSV unit of a narrow table. Arrow parses a whole column in C++.

Exactness: a column goes to Arrow only when every text is ASCII of a few characters
(digits and ``-`` for integers; digits, ``.``, ``e``, ``E``, ``+`` and ``-`` for
doubles), so text that Python alone reads (``NaN``, ``Infinity``, spaces, ``_``, non-ASCII
digits) never does. Over those characters Arrow refuses every text Python refuses (an
empty text, ``5-3``, ``1e``), and both round a decimal double correctly, so a text both
accept is the same number, bit for bit (``-0.0``, subnormals, overflow to infinity);
``tests/test_number_texts.py`` checks this exhaustively over short texts. A column Arrow
refuses (a bad text, an integer outside int64) returns None: the caller decodes it value
by value, as before, and words the error.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

__all__ = [
    "DOUBLE_CHARACTERS",
    "INTEGER_CHARACTERS",
    "arrow_numbers",
    "double_column",
    "float32_column",
    "integers_of",
]

# The characters of the texts given to Arrow (also by transforms.csv_arrow).
INTEGER_CHARACTERS = b"0123456789-"
DOUBLE_CHARACTERS = b"0123456789.eE+-"


def _string_array(texts: Sequence[Any], characters: bytes) -> Any:
    """The texts as one Arrow string array built from their joined bytes (no Python call
    per value but ``len``); None when a value is not a ``str`` or a text has a character
    outside ``characters``."""
    import numpy
    import pyarrow

    try:
        joined = "".join(texts)
    except TypeError:  # a JSON number, or None: the value-by-value path decides
        return None
    if not joined.isascii():
        return None
    data = joined.encode("ascii")
    if data.translate(None, characters):
        return None
    offsets = numpy.zeros(len(texts) + 1, numpy.int64)
    numpy.cumsum(numpy.fromiter(map(len, texts), numpy.int64, len(texts)), out=offsets[1:])
    return pyarrow.LargeStringArray.from_buffers(
        len(texts), pyarrow.py_buffer(offsets), pyarrow.py_buffer(data)
    )


def _cast(texts: Sequence[Any], characters: bytes, to: str) -> list[Any] | None:
    if not texts:
        return None
    strings = _string_array(texts, characters)
    if strings is None:
        return None
    numbers = arrow_numbers(strings, to)
    return None if numbers is None else numbers.tolist()


def arrow_numbers(strings: Any, to: str) -> Any:
    """An Arrow string array cast to the type named ``to`` (``int64``, ``double``), as a
    NumPy array; None when Arrow does not read one of the texts (or an int64 overflows),
    so that the caller decodes them one by one."""
    import pyarrow
    import pyarrow.compute

    try:
        numbers = pyarrow.compute.cast(strings, pyarrow.type_for_alias(to))
    except pyarrow.ArrowInvalid:  # a text it does not read, an int64 overflow
        return None
    return numbers.to_numpy()


def integers_of(texts: Sequence[Any]) -> list[int] | None:
    """Texts ``-?[0-9]+`` -> the ints ``int()`` gives; None when a value is not such a
    text or does not fit int64 (a varint, or a bad value: decode those one by one)."""
    return _cast(texts, INTEGER_CHARACTERS, "int64")


def _doubles_of(texts: Sequence[Any]) -> list[float] | None:
    """Decimal number texts -> the floats ``float()`` gives; None when a value is not a
    ``str`` of digits, ``.``, ``e``/``E`` and signs, or Arrow does not read it."""
    return _cast(texts, DOUBLE_CHARACTERS, "float64")


def double_column(values: Sequence[Any]) -> list[float]:
    """Exported double texts (or JSON numbers, 'NaN'...) -> ``float()`` of each."""
    return _doubles_of(values) or list(map(float, values))


def float32_column(values: Sequence[Any]) -> list[float]:
    """Exported float texts (or JSON numbers, 'NaN'...) -> the float32 value of each (as
    the driver returns it), rounded by NumPy; a value beyond float32 is an error."""
    import numpy

    with numpy.errstate(over="raise"):
        floats = numpy.asarray(double_column(values), dtype=numpy.float64)
        return floats.astype(numpy.float32).astype(numpy.float64).tolist()
