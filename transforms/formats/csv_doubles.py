"""Doubles as Python's ``repr`` writes them, a column at a time in NumPy: the field matrix
(see :mod:`transforms.formats.csv_bytes`) of a batch's doubles with no Python call per
value for most of them.

``repr(float)`` is the shortest decimal that reads back as the same double, the nearest
to it when several are as short. For a double of magnitude in [2**-7, 2**49) that
decimal is positional (``123.25``, ``0.1``, ``1234.0``) and can be found exactly in
64-bit integers: the double is ``m * 2**-s`` (``m`` 53 bits, ``4 <= s <= 59``), so its
decimal fraction digits come one at a time by multiplying the binary fraction by 10, and
after ``k`` digits the two candidates with ``k`` fraction digits (the digits so far,
rounded down or up) read back as the double exactly when their distance to it is below
half its unit in the last place. (Never equal to it: a point half a unit away has
``s + 1`` fraction digits, and with the double's whole digits that is more than the 17
significant digits that always suffice, so a shorter candidate is found first.) The
first ``k`` with a candidate is the shortest; the nearer one is chosen.
Any other double (outside the range, a power of two, whose lower neighbour is nearer, a
candidate exactly half-way, NaN, infinities, zeros) goes through ``repr``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy

from transforms.formats.csv_bytes import digit_matrix

__all__ = ["double_matrix", "shortest_decimals"]

_POWERS = numpy.array([10**k for k in range(20)], dtype=numpy.uint64)
_U = numpy.uint64
_MANTISSA = _U((1 << 52) - 1)
_LOW, _HIGH = _U(0x3F80000000000000), _U(0x4300000000000000)  # the bits of 2**-7 and 2**49
_STAND_IN = _U(0x3FF0000000000001)  # 1.0000000000000002: any value inside the range


def shortest_decimals(values: Any) -> tuple[Any, Any, Any, Any]:
    """Float64 array -> ``(whole, fraction, places, exact)``: where ``exact``,
    ``repr(abs(value))`` is the integer ``whole``, a point, and the first ``places``
    ASCII digits of the row of the uint8 matrix ``fraction`` (``0`` when ``places`` is 0);
    elsewhere nothing (see the module docstring)."""
    bits = numpy.abs(values).view(numpy.uint64)
    exact = (bits >= _LOW) & (bits < _HIGH) & ((bits & _MANTISSA) != 0)
    bits = numpy.where(exact, bits, _STAND_IN)
    m = (bits & _MANTISSA) | _U(1 << 52)
    shift = _U(1076) - (bits >> _U(52))  # fraction bits of twice the value: s + 1
    unit = _U(1) << shift  # twice the value's unit in the last place, at G's scale
    low_bits, half = unit - _U(1), unit >> _U(1)
    fraction = (m << _U(1)) & low_bits  # G: twice the binary fraction, in units of 2**-(s+1)
    whole = m >> (shift - _U(1))
    count = len(values)
    rows = numpy.zeros((len(_POWERS) + 1, count), dtype=numpy.uint8)  # digit k in row k
    places = numpy.zeros(count, dtype=numpy.intp)
    rounded_up = numpy.zeros(count, dtype=bool)
    done = numpy.zeros(count, dtype=bool)
    rest = numpy.empty(count, dtype=numpy.uint64)
    down, up = numpy.empty(count, dtype=bool), numpy.empty(count, dtype=bool)
    for k in range(len(_POWERS)):
        limit = _POWERS[k]  # below it: within half a unit (never equal: see the docstring)
        numpy.less(fraction, limit, out=down)
        numpy.subtract(unit, fraction, out=rest)
        numpy.less(rest, limit, out=up)
        new = (down | up) & ~done
        if new.any():
            exact &= ~(new & down & up & (fraction == half))  # half-way: left to repr
            rounded_up[new] = (up & (~down | (fraction > half)))[new]
            places[new] = k
            done |= new
            if done.all():
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
    """Float64 array (no nulls) -> its field matrix, each value as ``repr`` writes it;
    the values :func:`shortest_decimals` cannot render go through ``texts_of`` (a
    column's texts function: ``repr``, and the CSV texts of NaN and infinities)."""
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
