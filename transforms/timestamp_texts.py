"""RFC 3339 UTC texts of one fixed width (the exporter's timestamps and ISO writetimes)
read a whole column at a time by NumPy integer arithmetic over their bytes, giving the
values the value-by-value parsers of :mod:`transforms.value_decoders` give."""

from __future__ import annotations

import datetime
import functools
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["rfc3339_arrays", "rfc3339_column"]

_SECONDS_PER_DAY = 86_400
_DAYS_0001_TO_1970 = datetime.date(1970, 1, 1).toordinal() - 1

# Days before each month (index 1-12) in a common year, and each month's length.
_DAYS_BEFORE_MONTH = (0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)
_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)
# Where the numbers of 'YYYY-MM-DDTHH:MM:SS.' are; the fraction runs from 20 to the 'Z'.
_NUMBERS = ((0, 4), (5, 7), (8, 10), (11, 13), (14, 16), (17, 19))


@functools.lru_cache(maxsize=2)
def _tables(width: int) -> tuple[Any, ...]:
    """For texts of ``width`` characters: each byte's lowest allowed value and range (a
    digit, or its one separator), the weights that add a row's digits up to its year,
    month, day, hours, minutes, seconds and fraction (float32: every sum is an integer
    below 2**24, so exact), what the ASCII zeros add to them, and per year 0-9999 whether
    it is a leap year and its days from 1970-01-01 to its first day."""
    import numpy

    separators = {4: "-", 7: "-", 10: "T", 13: ":", 16: ":", 19: ".", width - 1: "Z"}
    low = numpy.array([ord(separators.get(i, "0")) for i in range(width)], numpy.uint8)
    span = numpy.array([0 if i in separators else 9 for i in range(width)], numpy.uint8)
    weights = numpy.zeros((7, width), numpy.float32)
    for k, (start, end) in enumerate((*_NUMBERS, (20, width - 1))):
        weights[k, start:end] = 10.0 ** numpy.arange(end - start - 1, -1, -1)
    zeros = (48 * weights.astype(numpy.int64).sum(axis=1))[:, None]
    years = numpy.arange(10_000, dtype=numpy.int64)
    leap = (years % 4 == 0) & ((years % 100 != 0) | (years % 400 == 0))
    before = years - 1  # whole years before this one, from 0001-01-01
    days = before * 365 + before // 4 - before // 100 + before // 400 - _DAYS_0001_TO_1970
    month_tables = (numpy.array(_DAYS_BEFORE_MONTH), numpy.array(_MONTH_DAYS))
    return low, span, weights, zeros, leap, days, *month_tables


def rfc3339_arrays(data: bytes, rows: int, per_second: int) -> tuple[Any, Any]:
    """``rows`` RFC 3339 texts of one fixed width joined ('YYYY-MM-DDTHH:MM:SS.fffZ', 3 or
    6 fraction digits) -> (int64 units since the epoch, which rows are such texts of a real
    date), by NumPy arithmetic over the bytes. Hours, minutes and seconds are added as
    numbers, as the value parser of :mod:`transforms.value_decoders` does."""
    import numpy

    width = 21 + len(str(per_second)) - 1
    low, span, weights, zeros, leap_years, year_days, month_days_before, month_days = _tables(width)
    text = numpy.frombuffer(data, numpy.uint8).reshape(rows, width)
    ok = numpy.ones(rows, bool)
    ok[numpy.flatnonzero((text - low) > span) // width] = False  # uint8: below low wraps
    numbers = (
        numpy.ascontiguousarray((text.astype(numpy.float32) @ weights.T).T).astype(numpy.int64)
        - zeros
    )
    year, month, day, hour, minute, second, fraction = numbers
    ok &= (year >= 1) & (month >= 1) & (month <= 12)
    year = numpy.where(ok, year, 1)  # a bad row's year and month only index the tables
    month = numpy.where(ok, month, 1)
    leap = leap_years[year]
    ok &= (day >= 1) & (day <= month_days[month] + (leap & (month == 2)))
    days = year_days[year] + month_days_before[month] + (leap & (month > 2)) + day - 1
    seconds = days * _SECONDS_PER_DAY + hour * 3600 + minute * 60 + second
    return seconds * per_second + fraction, ok


def rfc3339_column(
    parse: Callable[[str], int], per_second: int
) -> Callable[[Sequence[str]], list[int]]:
    """A column form of ``parse`` (one of the ``_rfc3339`` decoders): texts of the fixed
    width it reads go through :func:`rfc3339_arrays`, giving the values ``parse`` gives;
    a text of another length, or one that is not such a text of a real date, goes through
    ``parse`` (the exporter's out-of-range integers, and bad values with its message)."""
    width = 21 + len(str(per_second)) - 1

    def column(texts: Sequence[str]) -> list[int]:
        rows = len(texts)
        joined = "".join(texts)
        if rows == 0 or len(joined) != rows * width or not joined.isascii():
            return list(map(parse, texts))
        if min(map(len, texts)) != width:  # lengths that only sum to the right total
            return list(map(parse, texts))
        values, ok = rfc3339_arrays(joined.encode("ascii"), rows, per_second)
        out = values.tolist()
        if not ok.all():
            for index in (~ok).nonzero()[0].tolist():
                out[index] = parse(texts[index])
        return out

    return column
