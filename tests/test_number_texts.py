"""Tests for transforms.number_texts: Arrow's parse of whole columns of number texts gives
exactly what the value-by-value decoders give (``_integer``, ``float()``), or declines.

Exhaustive over short texts of the characters the fast path lets through, so a text Arrow
reads differently from Python (or reads where Python refuses) cannot go unseen.
"""

from __future__ import annotations

import itertools
import math
import struct
from typing import Any

import pytest

from transforms import number_texts, value_decoders
from transforms.number_texts import double_column, float32_column, integers_of


def _bits(value: float) -> bytes:
    return struct.pack("<d", value)


def _one(decode: Any, text: Any) -> tuple[str, Any]:
    try:
        return "ok", decode(text)
    except (ValueError, TypeError):
        return "error", None


def _texts(characters: str, longest: int) -> list[str]:
    return [
        "".join(chars)
        for n in range(longest + 1)
        for chars in itertools.product(characters, repeat=n)
    ]


def test_integers_match_the_value_decoder_on_every_short_text() -> None:
    accepted = 0
    for text in _texts("019-", 5):
        fast = integers_of([text])
        expected = _one(value_decoders._integer, text)
        if fast is None:  # declined: the caller decodes value by value
            assert expected[0] == "error", text
            continue
        accepted += 1
        assert expected == ("ok", fast[0]), text
    assert accepted == 3 + 9 + 27 + 81 + 243 + 3 + 9 + 27 + 81  # every -?[019]+


def test_doubles_match_float_on_every_short_text() -> None:
    declined = 0
    for text in _texts("10.eE+-", 5):
        fast = number_texts._doubles_of([text])
        expected = _one(float, text)
        if fast is None:  # declined: float() decides, value by value
            declined += 1
            continue
        assert expected[0] == "ok", text
        assert _bits(fast[0]) == _bits(expected[1]), text
    assert 0 < declined < 19_608  # both paths were taken


@pytest.mark.parametrize(
    "text",
    [
        "22630.571428571428",
        "-0.0",
        "-0",
        "0.0",
        "1e400",
        "-1e400",
        "1e-400",
        "4.9e-324",
        "2.4703282292062327e-324",
        "2.4703282292062328e-324",
        "1.7976931348623157e308",
        "1.7976931348623159e308",
        "0.1000000000000000055511151231257827",
        "9007199254740993",
        "123456789012345678901234567890.5",
        ".5",
        "5.",
        "+1.5",
    ],
)
def test_doubles_are_float_bit_for_bit(text: str) -> None:
    column = [text, "1.5", text]
    assert [_bits(v) for v in double_column(column)] == [_bits(float(t)) for t in column]


def test_integers_at_and_beyond_int64() -> None:
    edge = ["9223372036854775807", "-9223372036854775808", "-0", "007", "0"]
    assert integers_of(edge) == [9223372036854775807, -9223372036854775808, 0, 7, 0]
    assert integers_of(["1", "9223372036854775808"]) is None
    assert integers_of(["1", "-9223372036854775809"]) is None
    assert value_decoders._integer_column(["1", "9223372036854775808"]) == [
        1,
        9223372036854775808,
    ]


@pytest.mark.parametrize(
    "column",
    [
        ["1", "+2"],
        ["1", " 2"],
        ["1", "2_0"],
        ["1", "\u0662"],
        ["1", ""],
        ["1", "-"],
        ["1", "5-3"],
        ["1", 2],
        [None, "1"],
        [],
    ],
)
def test_integers_decline_what_is_not_a_plain_integer_text(column: list[Any]) -> None:
    assert integers_of(column) is None


@pytest.mark.parametrize(
    ("column", "expected"),
    [
        (["NaN", "1.5"], None),
        (["Infinity", "-Infinity"], [math.inf, -math.inf]),
        (["1_0.5"], [10.5]),
        ([" 1.5 "], [1.5]),
        ([2, 1.5], [2.0, 1.5]),
    ],
)
def test_doubles_outside_the_fast_characters_go_through_float(
    column: list[Any], expected: list[float] | None
) -> None:
    got = double_column(column)
    if expected is None:
        assert math.isnan(got[0]) and got[1] == 1.5
    else:
        assert got == expected


def test_bad_double_text_raises_as_float_does() -> None:
    with pytest.raises(ValueError, match="could not convert string to float: '1e'"):
        double_column(["1.5", "1e"])


def test_float32_column_rounds_to_float32() -> None:
    assert float32_column(["0.1", "-0.0", "16777217"]) == [
        struct.unpack("<f", struct.pack("<f", 0.1))[0],
        -0.0,
        16777216.0,
    ]
    assert _bits(float32_column(["-0.0"])[0]) == _bits(-0.0)
    with pytest.raises(FloatingPointError):
        float32_column(["1e39"])
