"""Tests for transforms.cql_text: floats, timestamps and writetimes as text, a column at a
time and value by value (the per-value CSV/JSON converters are the reference)."""

from __future__ import annotations

import contextlib
import datetime
import math
import random
import struct
from collections.abc import Callable
from decimal import Decimal

import numpy
import pytest

from tests.cql_values import f32
from transforms.cql_convert import csv_formatter, json_converter
from transforms.cql_text import (
    decimal_text,
    float32_json_values,
    float32_texts,
    format_writetime_iso,
    rfc3339_array_bytes,
    rfc3339_array_texts,
    timestamp_texts,
    writetime_formatter,
    writetime_texts,
)
from transforms.cql_types import CqlType


@pytest.mark.parametrize(
    ("literal", "text"),
    [
        ("1.50", "1.50"),
        ("1000", "1000"),
        ("0.000000000123", "0.000000000123"),
        ("-0", "-0"),
        ("1.5E+3", "1.5E+3"),  # unscaled 15, scale -2: in plain notation 1500, scale 0
        ("-1E+10", "-1E+10"),
        ("0E+3", "0E+3"),
        ("1E-1000", "0." + "0" * 999 + "1"),
        ("1E-1001", "1E-1001"),
    ],
)
def test_decimal_text_keeps_the_scale(literal: str, text: str) -> None:
    assert decimal_text(Decimal(literal)) == text
    assert Decimal(text).as_tuple() == Decimal(literal).as_tuple()


def test_float32_shortest_round_trip_for_random_bit_patterns() -> None:
    rng = random.Random(32)
    to_csv = csv_formatter(CqlType("float"))
    for _ in range(5000):
        value = struct.unpack(">f", struct.pack(">I", rng.getrandbits(32)))[0]
        if not math.isfinite(value):
            continue
        text = to_csv(value)
        assert f32(float(text)) == value
        digits = text.lower().split("e")[0].replace("-", "").replace(".", "").strip("0")
        for shorter in range(1, len(digits)):
            # No shorter decimal rounds back to the same float32.
            assert f32(float(f"{value:.{shorter - 1}e}")) != value


def _float32_text_linear(value: float) -> str:
    """The reference: the first of 1..9 significant digits that reads back, in repr layout."""
    for digits in range(1, 10):
        candidate = float(f"{value:.{digits - 1}e}")
        with contextlib.suppress(OverflowError):
            if f32(candidate) == value:
                return repr(candidate)
    return repr(value)


def test_float32_text_is_the_linear_search_result() -> None:
    """The binary search gives exactly the text of the digit-by-digit search."""
    rng = random.Random(7)
    to_csv = csv_formatter(CqlType("float"))
    values = [struct.unpack(">f", struct.pack(">I", rng.getrandbits(32)))[0] for _ in range(20000)]
    values += [f32(rng.uniform(-1e6, 1e6)) for _ in range(5000)]
    values += [f32(round(rng.uniform(-1000, 1000), rng.randint(0, 4))) for _ in range(5000)]
    values += [0.0, -0.0, 1.0, 0.1, f32(0.1), 3.4028234663852886e38, 1.401298464324817e-45, 1e15]
    for value in values:
        if math.isfinite(value):
            assert to_csv(value) == _float32_text_linear(f32(value)), value


def test_float32_texts_equal_the_value_by_value_texts() -> None:
    """The column-wise (numpy) rendering equals the per-value one, also for columns that
    hold NaN, infinities or a double no float32 can hold (those go value by value)."""
    rng = random.Random(11)
    to_csv = csv_formatter(CqlType("float"))
    bits = [struct.unpack(">f", struct.pack(">I", rng.getrandbits(32)))[0] for _ in range(30000)]
    finite = [v for v in bits if math.isfinite(v)]
    finite += [f32(round(rng.uniform(-1e7, 1e7), rng.randint(0, 5))) for _ in range(5000)]
    finite += [0.0, -0.0, 1e15, f32(1e15), 1e-7, f32(123456789.0), 3.4028234663852886e38]
    assert float32_texts(finite) == [to_csv(v) for v in finite]
    mixed = finite[:100] + [math.nan, math.inf, -math.inf, 1e300]
    assert float32_texts(mixed) == [to_csv(v) for v in mixed]
    assert float32_texts(mixed)[-4:] == ["NaN", "Infinity", "-Infinity", "1e+300"]
    to_json = json_converter(CqlType("float"))
    assert float32_json_values(finite) == [to_json(v) for v in finite]
    assert float32_json_values(mixed) == [to_json(v) for v in mixed]
    assert float32_json_values(mixed)[-4:] == ["NaN", "Infinity", "-Infinity", 1e300]
    assert float32_texts([]) == []


# ---------------------------------------------------------------------------
# Writetimes
# ---------------------------------------------------------------------------

MAX_MICROS = 253402300799999999  # 9999-12-31T23:59:59.999999Z
MIN_MICROS = -62135596800000000  # 0001-01-01T00:00:00.000000Z


@pytest.mark.parametrize(
    "micros, expected",
    [
        (0, "1970-01-01T00:00:00.000000Z"),
        (1700000000000000, "2023-11-14T22:13:20.000000Z"),
        (1700000000123456, "2023-11-14T22:13:20.123456Z"),
        (1, "1970-01-01T00:00:00.000001Z"),
        (-1, "1969-12-31T23:59:59.999999Z"),
        (-1_000_000, "1969-12-31T23:59:59.000000Z"),
        (-1_000_001, "1969-12-31T23:59:58.999999Z"),
        (951782400000000, "2000-02-29T00:00:00.000000Z"),
        (MAX_MICROS, "9999-12-31T23:59:59.999999Z"),
        (MAX_MICROS + 1, "253402300800000000"),
        (MIN_MICROS, "0001-01-01T00:00:00.000000Z"),
        (MIN_MICROS - 1, "-62135596800000001"),
        (2**63 - 1, "9223372036854775807"),
        (-(2**63), "-9223372036854775808"),
    ],
)
def test_format_writetime_iso(micros: int, expected: str) -> None:
    assert format_writetime_iso(micros) == expected


def test_format_writetime_iso_matches_datetime_arithmetic() -> None:
    rng = random.Random(2023)
    epoch = datetime.datetime(1970, 1, 1)
    values = [rng.randint(MIN_MICROS, MAX_MICROS) for _ in range(3000)]
    # Many values within the same seconds, to exercise the per-second cache.
    base = 1700000000 * 1_000_000
    values += [base + rng.randint(-3_000_000, 3_000_000) for _ in range(2000)]
    for micros in values:
        expected = (epoch + datetime.timedelta(microseconds=micros)).isoformat(
            timespec="microseconds"
        )
        assert format_writetime_iso(micros) == expected + "Z"


MIN_MILLIS = -62135596800000  # 0001-01-01T00:00:00.000Z
MAX_MILLIS = 253402300799999  # 9999-12-31T23:59:59.999Z


def test_timestamp_texts_match_datetime_arithmetic() -> None:
    """The column-wise timestamp rendering against datetime, over the whole range, many
    values sharing a day (the per-call day cache), the range edges and a datetime input."""
    rng = random.Random(5)
    epoch = datetime.datetime(1970, 1, 1)
    values = [rng.randint(MIN_MILLIS, MAX_MILLIS) for _ in range(3000)]
    values += [1_700_000_000_000 + rng.randint(-86_400_000, 86_400_000) for _ in range(2000)]
    values += [MIN_MILLIS, MAX_MILLIS, 0, -1, 1, 999, -999, 951782400000]
    expected = [
        (epoch + datetime.timedelta(milliseconds=m)).isoformat(timespec="milliseconds") + "Z"
        for m in values
    ]
    assert timestamp_texts(values) == expected
    outside = [MIN_MILLIS - 1, MAX_MILLIS + 1, -(2**63), 2**63 - 1]
    assert timestamp_texts(outside) == [str(m) for m in outside]
    assert timestamp_texts([datetime.datetime(2023, 11, 14, 22, 13, 20, 123000)]) == [
        "2023-11-14T22:13:20.123Z"
    ]
    assert timestamp_texts([]) == []


def test_writetime_formatter() -> None:
    iso = writetime_formatter("iso")
    micros = writetime_formatter("micros")
    assert iso(1700000000000000) == "2023-11-14T22:13:20.000000Z"
    assert iso(None) is None
    assert micros(1700000000000000) == 1700000000000000
    assert micros(None) is None
    with pytest.raises(ValueError, match="'seconds'"):
        writetime_formatter("seconds")


def test_rfc3339_array_bytes_fixed_width_texts() -> None:
    values = numpy.array([0, -1, MIN_MILLIS, MAX_MILLIS, MAX_MILLIS + 1, 951782400123])
    fixed, inside = rfc3339_array_bytes(values, 1000)
    assert fixed.dtype == numpy.dtype("S24")
    assert fixed[[0, 1, 2, 3, 5]].tolist() == [
        b"1970-01-01T00:00:00.000Z",
        b"1969-12-31T23:59:59.999Z",
        b"0001-01-01T00:00:00.000Z",
        b"9999-12-31T23:59:59.999Z",
        b"2000-02-29T00:00:00.123Z",
    ]
    assert inside.tolist() == [True, True, True, True, False, True]
    fixed, inside = rfc3339_array_bytes(numpy.array([-1, MAX_MICROS, MAX_MICROS + 1]), 1_000_000)
    assert fixed.dtype == numpy.dtype("S27")
    assert fixed[:2].tolist() == [b"1969-12-31T23:59:59.999999Z", b"9999-12-31T23:59:59.999999Z"]
    assert inside.tolist() == [True, True, False]
    fixed, inside = rfc3339_array_bytes(numpy.array([], dtype=numpy.int64), 1000)
    assert (fixed.dtype, len(fixed), len(inside)) == (numpy.dtype("S24"), 0, 0)


def test_rfc3339_array_bytes_few_seconds_render_each_second_once() -> None:
    """Values spanning at most half as many seconds as there are values (writetimes of a
    batch) take the path that renders each second once: across a day's end, before the
    epoch, with a value outside years 1-9999 among them (rendered as the epoch, masked)."""
    midnight = 951868800  # 2000-03-01T00:00:00Z
    values = [(midnight - 1) * 10**6 + 999_999, midnight * 10**6, midnight * 10**6 + 7]
    values += [(midnight - 1) * 10**6, (midnight - 1) * 10**6 + 5]
    fixed, inside = rfc3339_array_bytes(numpy.array(values), 1_000_000)
    assert fixed.tolist() == [
        b"2000-02-29T23:59:59.999999Z",
        b"2000-03-01T00:00:00.000000Z",
        b"2000-03-01T00:00:00.000007Z",
        b"2000-02-29T23:59:59.000000Z",
        b"2000-02-29T23:59:59.000005Z",
    ]
    assert inside.all()
    fixed, inside = rfc3339_array_bytes(numpy.array([-1, -1000, 0, 999, 1000, 1001]), 1000)
    assert fixed.tolist() == [
        b"1969-12-31T23:59:59.999Z",
        b"1969-12-31T23:59:59.000Z",
        b"1970-01-01T00:00:00.000Z",
        b"1970-01-01T00:00:00.999Z",
        b"1970-01-01T00:00:01.000Z",
        b"1970-01-01T00:00:01.001Z",
    ]
    values = [MAX_MICROS + 1, 5, 6, 1_000_007]
    fixed, inside = rfc3339_array_bytes(numpy.array(values), 1_000_000)
    assert inside.tolist() == [False, True, True, True]
    assert fixed[1:].tolist() == [
        b"1970-01-01T00:00:00.000005Z",
        b"1970-01-01T00:00:00.000006Z",
        b"1970-01-01T00:00:01.000007Z",
    ]
    assert rfc3339_array_texts(numpy.array(values * 40), 1_000_000)[:4] == [
        str(MAX_MICROS + 1),
        "1970-01-01T00:00:00.000005Z",
        "1970-01-01T00:00:00.000006Z",
        "1970-01-01T00:00:01.000007Z",
    ]


def _edges(per_second: int) -> list[int]:
    """Each unit around the epoch, day starts (leap days, century and 400-year
    boundaries) and the ends of years 1-9999, and the integer extremes."""
    day = 86_400 * per_second
    first, last = MIN_MILLIS * (per_second // 1000), (MAX_MILLIS + 1) * (per_second // 1000)
    epoch = datetime.date(1970, 1, 1)
    days = [
        (datetime.date(year, month, 1) - epoch).days
        for year in (1, 4, 100, 400, 1600, 1900, 1969, 1970, 2000, 2100, 2400, 9999)
        for month in (1, 2, 3, 12)
    ]
    days += [(datetime.date(year, 2, 28) - epoch).days for year in (4, 1600, 1900, 2000, 2100)]
    starts = [d * day for d in days] + [first, last, 0, day, -day]
    edges = [start + delta for start in starts for delta in (-per_second, -1, 0, 1, per_second)]
    return edges + [-(2**63), 2**63 - 1, -(2**63) + 1, 2**63 - 2]


@pytest.mark.parametrize(
    ("per_second", "reference"), [(1000, timestamp_texts), (1_000_000, writetime_texts)]
)
def test_rfc3339_array_texts_equal_the_value_loops(
    per_second: int, reference: Callable[[list[int]], list[str]]
) -> None:
    """The vectorized rendering against the per-value one (itself checked against datetime
    above): the edges, every day of years 1-4, 1601-2000 (a whole Gregorian 400-year
    cycle) and 9996-9999, and random values over the whole range and beyond in batches of
    many sizes (batches spanning few days look their day prefixes up in a table, the
    others compute each)."""
    edges = _edges(per_second)
    assert rfc3339_array_texts(numpy.array(edges), per_second) == reference(edges)
    day = 86_400 * per_second
    epoch = datetime.date(1970, 1, 1)
    for first_year, last_year in ((1, 4), (1601, 2000), (9996, 9999)):
        start = (datetime.date(first_year, 1, 1) - epoch).days
        end = (datetime.date(last_year, 12, 31) - epoch).days
        values = numpy.arange(start, end + 1, dtype=numpy.int64) * day + (day - 1)
        assert rfc3339_array_texts(values, per_second) == reference(values.tolist())
    rng = numpy.random.default_rng(per_second)
    low, high = MIN_MILLIS * (per_second // 1000), (MAX_MILLIS + 1) * (per_second // 1000)
    spread = rng.integers(low - day, high + day, 50_000)
    recent = 1_700_000_000 * per_second + rng.integers(-3 * day, 3 * day, 50_000)
    for values in (spread, recent, numpy.concatenate([spread[:500], recent[:500]])):
        sizes = rng.integers(1, 3000, 200).cumsum()
        for batch in numpy.split(values, sizes[sizes < len(values)]):
            assert rfc3339_array_texts(batch, per_second) == reference(batch.tolist())
