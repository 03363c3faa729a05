"""Doubles and floats as the CSV writes them, a column at a time in NumPy: the field matrix
(see :mod:`transforms.formats.csv_bytes`) of a batch's values with no Python call per
value for most of them.

A double's text is ``repr``: the shortest decimal that reads back as the same double,
the nearest to it when several are as short; a float's (``cql_text.float32_texts``) the
same for float32. For a value of magnitude in [2**-7, 2**49) (floats: [2**-7, 2**24))
that decimal is positional (``123.25``, ``0.1``, ``1234.0``) and can be found exactly in
64-bit integers: the value is ``m * 2**-s`` (``m`` of 53 or 24 bits, ``s`` at most 59), so
its decimal fraction digits come one at a time by multiplying the binary fraction by 10,
and after ``k`` digits the two candidates with ``k`` fraction digits (the digits so far,
rounded down or up) read back as the value exactly when their distance to it is below
half its unit in the last place. (Never equal to it: the value itself has ``s`` fraction
digits, so a candidate is found by ``k = s``, while a point half a unit away has
``s + 1``.) The first ``k`` with a candidate is the shortest; the nearer one is chosen.
Any other value (outside the range, a power of two, whose lower neighbour is nearer, two
candidates equally near, NaN, infinities, zeros) goes through the column's texts
function.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy

from transforms.formats.csv_bytes import digit_matrix

__all__ = ["double_matrix", "shortest_decimals"]

_POWERS = numpy.array([10**k for k in range(20)], dtype=numpy.uint64)
_U = numpy.uint64
# By type: (its bits as unsigned, mantissa bits, the exponent field of 1.0 plus them plus
# one, the bits of the lowest and of the first value past the range, the bits of a stand-in
# value inside the range: 1.0000000000000002, 1.0000001).
_LAYOUTS = {
    numpy.dtype(numpy.float64): (
        numpy.uint64,
        52,
        1076,
        0x3F80000000000000,
        0x4300000000000000,
        0x3FF0000000000001,
    ),
    numpy.dtype(numpy.float32): (numpy.uint32, 23, 151, 0x3C000000, 0x4B800000, 0x3F800001),
}


def shortest_decimals(values: Any) -> tuple[Any, Any, Any, Any]:
    """Float64 or float32 array -> ``(whole, fraction, places, exact)``: where ``exact``,
    the text of ``abs(value)`` is the integer ``whole``, a point, and the first ``places``
    ASCII digits of the row of the uint8 matrix ``fraction`` (``0`` when ``places`` is 0);
    elsewhere nothing (see the module docstring)."""
    unsigned, width, top, low, high, stand_in = _LAYOUTS[values.dtype]
    bits = numpy.abs(values).view(unsigned)
    exact = (bits >= low) & (bits < high) & ((bits & ((1 << width) - 1)) != 0)
    bits = numpy.where(exact, bits, unsigned(stand_in)).astype(numpy.uint64)
    m = (bits & _U((1 << width) - 1)) | _U(1 << width)
    shift = _U(top) - (bits >> _U(width))  # fraction bits of twice the value: s + 1
    unit = _U(1) << shift  # twice the value's unit in the last place, at G's scale
    low_bits, half = unit - _U(1), unit >> _U(1)
    fraction = (m << _U(1)) & low_bits  # G: twice the binary fraction, in units of 2**-(s+1)
    whole = m >> (shift - _U(1))
    count = len(values)
    rows = numpy.zeros((len(_POWERS) + 1, count), dtype=numpy.uint8)  # digit k in row k
    places = numpy.zeros(count, dtype=numpy.intp)
    rounded_up = numpy.zeros(count, dtype=bool)
    done = numpy.zeros(count, dtype=bool)
    rest, near = numpy.empty(count, dtype=numpy.uint64), numpy.empty(count, dtype=numpy.uint64)
    found, finished = numpy.empty(count, dtype=bool), 0
    for k in range(len(_POWERS)):
        limit = _POWERS[k]  # below it: within half a unit (never equal: see the docstring)
        numpy.subtract(unit, fraction, out=rest)  # to the candidate rounded up
        numpy.minimum(fraction, rest, out=near)
        numpy.less(near, limit, out=found)
        # A row found stays found (a candidate with a zero appended is one with k + 1
        # digits), so more rows found than done means new ones.
        if numpy.count_nonzero(found) > finished:
            new = found & ~done
            down, up = fraction < limit, rest < limit
            exact &= ~(new & down & up & (fraction == half))  # half-way: left to repr
            rounded_up[new] = (up & (~down | (fraction > half)))[new]
            places[new] = k
            done |= new
            finished = int(numpy.count_nonzero(done))
            if finished == count:
                break
        fraction *= _U(10)
        numpy.right_shift(fraction, shift, out=rest)
        rows[k] = rest
        fraction &= low_bits
    digits = rows[: max(1, int(places.max()) if count else 1)].T.copy()
    digits += ord("0")
    # Rounding up never carries past the last digit (a carry would end the decimal in a
    # zero, so a shorter one would have been found): it only bumps that digit, or the
    # whole part when there is no fraction digit.
    bumped = numpy.flatnonzero(rounded_up & (places > 0))
    digits[bumped, places[bumped] - 1] += 1
    whole += rounded_up & (places == 0)
    digits[:, 0][places == 0] = ord("0")
    digits[numpy.arange(digits.shape[1]) >= numpy.maximum(places, 1)[:, None]] = 0
    return whole, digits, places, exact & done


def double_matrix(values: Any, texts_of: Callable[[Any], list[str]]) -> Any:
    """Float64 or float32 array (no nulls) -> its field matrix, each value as ``repr`` or
    ``float32_texts`` writes it; the values :func:`shortest_decimals` cannot render go
    through ``texts_of`` (the column's texts function, which also gives the CSV texts of
    NaN and infinities)."""
    whole, fraction, places, exact = shortest_decimals(values)
    top = int(whole.max()) if len(values) else 0
    if top < 2**32:
        whole = whole.astype(numpy.uint32)
    whole_part = digit_matrix(whole, max(1, (len(str(top)) + 1) // 2), padded=False)
    sign = numpy.where(values < 0, ord("-"), 0).astype(numpy.uint8)[:, None]
    point = numpy.full((len(values), 1), ord("."), dtype=numpy.uint8)
    out = numpy.concatenate([sign, whole_part, point, fraction], axis=1)
    if exact.all():
        return out
    rows = numpy.flatnonzero(~exact)
    others = numpy.array(texts_of(values[rows]), dtype=bytes)  # ASCII
    others = others.view(numpy.uint8).reshape(len(rows), others.dtype.itemsize)
    if others.shape[1] > out.shape[1]:
        padding = numpy.zeros((len(values), others.shape[1] - out.shape[1]), dtype=numpy.uint8)
        out = numpy.concatenate([out, padding], axis=1)
    out[rows] = 0
    out[rows, : others.shape[1]] = others
    return out
