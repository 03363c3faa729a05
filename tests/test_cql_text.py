"""Tests for transforms.cql_text: floats, timestamps and writetimes as text, a column at a
time and value by value (the per-value CSV/JSON converters are the reference)."""

from __future__ import annotations

import contextlib
import datetime
import math
import random
import struct

import pytest

from tests.cql_values import f32
from transforms.cql_convert import csv_formatter, json_converter
from transforms.cql_text import (
    float32_json_values,
    float32_texts,
    format_writetime_iso,
    timestamp_texts,
    writetime_formatter,
)
from transforms.cql_types import CqlType


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
