"""RFC 3339 UTC texts of one fixed width (the exporter's timestamps and ISO writetimes)
read a whole column at a time by NumPy integer arithmetic over their bytes, giving the
values the value-by-value parsers of :mod:`transforms.value_decoders` give."""

from __future__ import annotations

import datetime
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["rfc3339_arrays", "rfc3339_column"]

_SECONDS_PER_DAY = 86_400
_DAYS_0001_TO_1970 = datetime.date(1970, 1, 1).toordinal() - 1

# Days before each month (index 1-12) in a common year, and each month's length.
_DAYS_BEFORE_MONTH = (0, 0, 31, 59, 90, 120, 151, 181, 212, 243, 273, 304, 334)
_MONTH_DAYS = (0, 31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31)


def rfc3339_arrays(data: bytes, rows: int, per_second: int) -> tuple[Any, Any]:
    """``rows`` RFC 3339 texts of one fixed width joined ('YYYY-MM-DDTHH:MM:SS.fffZ', 3 or
    6 fraction digits) -> (int64 units since the epoch, which rows are such texts of a real
    date), by NumPy integer arithmetic over the bytes. Hours, minutes and seconds are
    added as numbers, as the value parser of :mod:`transforms.value_decoders` does."""
    import numpy

    fraction_digits = len(str(per_second)) - 1
    width = 21 + fraction_digits
    separators = {4: "-", 7: "-", 10: "T", 13: ":", 16: ":", 19: ".", width - 1: "Z"}
    at = sorted(separators)
    data = numpy.frombuffer(data, numpy.uint8).reshape(rows, width)
    ok = (data[:, at] == numpy.array([ord(separators[i]) for i in at], numpy.uint8)).all(axis=1)
    d = data[:, [i for i in range(width) if i not in separators]].astype(numpy.int64) - 48
    ok &= ((d >= 0) & (d <= 9)).all(axis=1)
    year = d[:, 0] * 1000 + d[:, 1] * 100 + d[:, 2] * 10 + d[:, 3]
    month = d[:, 4] * 10 + d[:, 5]
    day = d[:, 6] * 10 + d[:, 7]
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    ok &= (year >= 1) & (month >= 1) & (month <= 12)
    month = numpy.where(ok, month, 1)
    ok &= (day >= 1) & (day <= numpy.array(_MONTH_DAYS)[month] + (leap & (month == 2)))
    before = year - 1  # whole years before this one, from 0001-01-01
    days = (
        before * 365
        + before // 4
        - before // 100
        + before // 400
        + numpy.array(_DAYS_BEFORE_MONTH)[month]
        + (leap & (month > 2))
        + day
        - 1
        - _DAYS_0001_TO_1970
    )
    clock = (d[:, 8] * 10 + d[:, 9]) * 3600 + (d[:, 10] * 10 + d[:, 11]) * 60
    seconds = days * _SECONDS_PER_DAY + clock + d[:, 12] * 10 + d[:, 13]
    fraction = d[:, 14:] @ (10 ** numpy.arange(fraction_digits - 1, -1, -1, dtype=numpy.int64))
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
