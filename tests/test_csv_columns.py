"""The column-at-a-time CSV paths (UUIDs by table lookup, collections through the C JSON
encoder, quoting decided by one regular expression, ISO writetimes by NumPy) against the
value-by-value reference: ``csv_formatter`` and ``csv_quote`` of each field."""

from __future__ import annotations

import io
import itertools
import json
import math
import random
import uuid
from typing import Any

import pytest

from tests.cql_values import USER_TYPES, as_driver_returns, f32
from transforms.cql_convert import csv_formatter, csv_texts
from transforms.cql_text import format_writetime_iso
from transforms.cql_text_columns import uuid_texts
from transforms.cql_types import parse_cql_type
from transforms.formats.base import SinkConfig, iso_texts
from transforms.formats.csv import CsvWriter, csv_quote
from transforms.json_text import json_text, json_texts
from transforms.table_plan import PARTITION_KEY, ColumnPlan, TablePlan

TEXTS = ["plain", "a,b", 'say "hi"', '"', 'x""y', "line1\nline2", "cr\r", "", "NULL", "0", "-"]
TEXTS += ["1970", "ünï ✓", "a;b", "tab\there", "::", ":", "true", "NaN", "\\N"]
UUIDS = [uuid.UUID(int=0), uuid.UUID(int=5), uuid.UUID(int=2**128 - 1), uuid.UUID(int=2**127)]
UUIDS += [uuid.UUID("123e4567-e89b-12d3-a456-426614174000"), uuid.uuid1(node=1, clock_seq=2)]

# (name, CQL type, values given to the driver; each is read back as the driver returns it)
COLUMNS: list[tuple[str, str, list[Any]]] = [
    ("t", "text", TEXTS),
    ("u", "uuid", UUIDS),
    ("tu", "timeuuid", [uuid.uuid1(node=n, clock_seq=n) for n in range(4)]),
    ("l", "list<text>", [TEXTS[i : i + 3] for i in range(0, len(TEXTS), 3)] + [[""]]),
    ("s", "set<int>", [{1}, {-(2**31), 0, 2**31 - 1}, {5, 3, 4}]),
    ("m", "map<text, bigint>", [{"k": 1}, {'a,"b"': -(2**63), "\n": 2**63 - 1}, {"": 0}]),
    ("md", "map<int, double>", [{1: 0.1, -2: -0.0, 3: 1e300, 4: 5e-324}]),
    ("lf", "list<float>", [[f32(0.1), f32(-0.0), f32(3.4028235e38)], [f32(1e-45)]]),
    ("st", "set<timestamp>", [{0}, {-62_135_596_800_000, 253_402_300_799_999}]),
    ("lu", "list<uuid>", [UUIDS[:3], UUIDS[3:]]),
    ("tp", "frozen<tuple<int, text>>", [(1, "a,b"), (None, ""), (2, None)]),
    ("ad", "frozen<address>", [("Elm", 1, ["x", "y"]), ("", None, [])]),
]


def _plan() -> TablePlan:
    columns = (ColumnPlan("pk", parse_cql_type("int"), PARTITION_KEY),) + tuple(
        ColumnPlan(name, parse_cql_type(cql_type, USER_TYPES), "regular")
        for name, cql_type, _ in COLUMNS
    )
    return TablePlan("ks", "t", columns, (), ())


def _rows(count: int, seed: int) -> list[tuple[Any, ...]]:
    """Rows of the driver's values, about a fifth of each field null."""
    rng = random.Random(seed)
    values = [[as_driver_returns(t, v) for v in vals] for _, t, vals in COLUMNS]
    return [
        (index,) + tuple(rng.choice(vals) if rng.random() > 0.2 else None for vals in values)
        for index in range(count)
    ]


def _reference(rows: list[tuple[Any, ...]], sink: SinkConfig) -> bytes:
    """Each field by the per-value formatter, quoted by ``csv_quote``."""
    formatters = [csv_formatter(c.cql_type) for c in _plan().columns]
    delimiter, null = sink.delimiter, sink.null_value

    def field(convert: Any, value: Any) -> str:
        return null if value is None else csv_quote(delimiter, null, convert(value))

    lines = [delimiter.join(csv_quote(delimiter, null, c.name) for c in _plan().columns)]
    for row in rows:
        lines.append(delimiter.join(map(field, formatters, row)))
    return "".join(line + "\r\n" for line in lines).encode("utf-8")


DELIMITERS = [",", ";", "\t", "|", "0", "-", ":", "::", "a", '"x']
NULLS = ["", "NULL", "0", "-", "\\N", "true", "plain"]


@pytest.mark.parametrize(
    ("delimiter", "null_value"),
    [(d, n) for d, n in itertools.product(DELIMITERS, NULLS) if d not in n and '"' not in n],
)
def test_csv_rows_equal_the_per_value_reference(delimiter: str, null_value: str) -> None:
    rows = _rows(400, seed=len(delimiter) * 7 + len(null_value))
    sink = SinkConfig(delimiter=delimiter, null_value=null_value)
    handle = io.BytesIO()
    writer = CsvWriter(handle, _plan(), sink, "max")
    for chunk in (rows[:1], rows[1:150], rows[150:]):
        writer.write_rows(chunk)
    assert handle.getvalue() == _reference(rows, sink)


def test_csv_columns_of_one_type_all_quoted_none_quoted_and_all_null() -> None:
    sink = SinkConfig()
    for rows in (
        [(i, "a,b", *([None] * (len(COLUMNS) - 1))) for i in range(300)],  # every text quoted
        [(i, "ab", *([None] * (len(COLUMNS) - 1))) for i in range(300)],  # none quoted
        [(i, *([None] * len(COLUMNS))) for i in range(300)],
    ):
        handle = io.BytesIO()
        CsvWriter(handle, _plan(), sink, "max").write_rows(rows)
        assert handle.getvalue() == _reference(rows, sink)


def test_uuid_texts_equal_str() -> None:
    rng = random.Random(3)
    values = UUIDS + [uuid.UUID(int=rng.getrandbits(128)) for _ in range(500)]
    assert uuid_texts(values) == list(map(str, values))
    assert uuid_texts(values[:3]) == list(map(str, values[:3]))  # value by value
    assert uuid_texts([]) == []
    assert uuid_texts(values[:200])[0] == "00000000-0000-0000-0000-000000000000"
    assert uuid_texts(values[:200])[2] == "ffffffff-ffff-ffff-ffff-ffffffffffff"


def test_json_text_is_the_encoders_text() -> None:
    encoder = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    values: list[Any] = [
        [1, 'a\u00e9\n"x\\', None, True, False, 1.5, -0.0, 1e300, 5e-324, -(2**63), 10**40],
        {"k": [1, {"n": None}], "": "", "ü": 0.1},
        "only text",
        3,
        [],
        {},
        [[[]]],
    ]
    assert [json_text(v) for v in values] == [encoder.encode(v) for v in values]
    assert json_texts(values) == [encoder.encode(v) for v in values]
    assert json_text([0.1, -0.0]) == "[0.1,-0.0]"
    for bad in (math.nan, math.inf, -math.inf):
        with pytest.raises(ValueError, match="Out of range float values"):
            json_text([bad])
    with pytest.raises(TypeError, match="Object of type object is not JSON serializable"):
        json_text([object()])


@pytest.mark.parametrize("name, cql_type, values", COLUMNS, ids=[c[0] for c in COLUMNS])
def test_csv_texts_equal_csv_formatter(name: str, cql_type: str, values: list[Any]) -> None:
    t = parse_cql_type(cql_type, USER_TYPES)
    driver_values = [as_driver_returns(cql_type, v) for v in values] * 50
    assert csv_texts(t)(driver_values) == list(map(csv_formatter(t), driver_values))


def test_driver_maps_give_the_text_of_their_own_items() -> None:
    """The driver's maps are read from their entry list: the same pairs, in the same
    order, as their public ``items()`` (and a plain dict's)."""
    pairs = {"b": 2, "a": 1, 'q"': -(2**63), "": 0}
    text_keys = parse_cql_type("map<text, bigint>")
    driver = as_driver_returns("map<text, bigint>", pairs)
    expected = json_text(dict(driver.items()))
    assert expected == '{"b":2,"a":1,"q\\"":-9223372036854775808,"":0}'
    assert csv_texts(text_keys)([driver, pairs]) == [expected, expected]
    int_keys = parse_cql_type("map<int, frozen<list<int>>>")
    driver = as_driver_returns("map<int, frozen<list<int>>>", {2: [1], -1: [], 7: [3, 4]})
    expected = json_text({str(k): list(v) for k, v in driver.items()})
    assert expected == '{"2":[1],"-1":[],"7":[3,4]}'
    assert csv_texts(int_keys)([driver]) == [expected]


def test_sequences_of_any_kind_give_the_text_of_their_elements() -> None:
    """Driver lists and sets take the no-copy paths; a mixed column is copied into lists."""
    driver_set = as_driver_returns("set<int>", {3, 1, 2})
    ints = parse_cql_type("set<int>")
    assert csv_texts(ints)([driver_set] * 200) == ["[1,2,3]"] * 200
    assert csv_texts(ints)([driver_set, [5, 4], (7,), range(2)]) == [
        "[1,2,3]",
        "[5,4]",
        "[7]",
        "[0,1]",
    ]
    texts = parse_cql_type("list<text>")
    assert csv_texts(texts)([["a", '"'], ("b",)]) == ['["a","\\""]', '["b"]']


def test_iso_texts_equal_the_per_value_writetime() -> None:
    """Many distinct writetimes (formatted by NumPy) and few (value by value), shared cache."""
    year_1 = -62_135_596_800_000_000
    year_10000 = 253_402_300_800_000_000
    edges = [0, -1, 1, 999_999, -1_000_000, year_1, year_1 - 1, year_10000 - 1, year_10000]
    edges += [-(2**63), 2**63 - 1, 1_700_000_000_123_456]
    rng = random.Random(5)
    many = edges + [rng.randint(year_1 - 10**12, year_10000 + 10**12) for _ in range(1000)]
    cache: dict[int, str] = {}
    texts = iso_texts(cache)
    assert texts(many) == [format_writetime_iso(v) for v in many]
    assert texts(edges[:3] + [7]) == [format_writetime_iso(v) for v in edges[:3] + [7]]
    assert texts([0])[0] == "1970-01-01T00:00:00.000000Z"
    assert texts([year_10000])[0] == str(year_10000)
