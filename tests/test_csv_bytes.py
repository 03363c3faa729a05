"""The CSV byte path (``transforms.formats.csv_bytes``, ``csv_doubles``): field matrices of
integers, timestamps, doubles, booleans and UUIDs against ``str``/``repr``/the per-value
formatters, the compiled line builder against the NumPy one and a plain Python join, and
``CsvWriter.write_columns`` through both against ``write_rows``."""

from __future__ import annotations

import io
import itertools
import math
import random
import shutil
import uuid
from typing import Any

import numpy
import pytest

from transforms.cql_text import float32_texts, timestamp_texts, writetime_texts
from transforms.cql_types import parse_cql_type
from transforms.formats import csv as csv_module
from transforms.formats import csv_bytes, csv_doubles
from transforms.formats.base import SinkConfig
from transforms.formats.csv import CsvWriter
from transforms.table_plan import PARTITION_KEY, ColumnPlan, TablePlan


def _fields(matrix: Any) -> list[str]:
    """A field matrix's fields: each row without its padding."""
    return [bytes(row).replace(b"\0", b"").decode() for row in matrix]


class _KeptBytes(io.BytesIO):
    def close(self) -> None:  # the bytes stay readable after the writer's close
        pass


def _numpy_lines(patch: pytest.MonkeyPatch) -> None:
    """The writer's lines from the NumPy path, as where the compiled builder is not built."""
    patch.setattr(csv_bytes, "_lines", None)
    patch.setattr(csv_bytes, "COMPILED", False)


# The line builders a test runs under: the compiled one only where it is built.
BUILDERS = ["numpy", "compiled"] if csv_bytes.COMPILED else ["numpy"]


def _reprs(values: Any) -> list[str]:
    return list(map(repr, values.tolist()))


INT64_EDGES = [0, -1, 1, 9, 10, -10, 99, 100, 2**31 - 1, -(2**31), 2**32, 2**63 - 1, -(2**63)]
INT64_EDGES += [10**k for k in range(19)] + [10**k - 1 for k in range(1, 19)]
INT64_EDGES += [-(10**k) for k in range(19)]


@pytest.mark.parametrize("dtype", ["<i8", "<i4", "<i2"])
def test_int_matrix_is_str_of_each_value(dtype: str) -> None:
    info = numpy.iinfo(dtype)
    edges = [v for v in INT64_EDGES if info.min <= v <= info.max]
    rng = numpy.random.default_rng(1)
    spread = rng.integers(info.min, info.max, 3000, dtype=dtype, endpoint=True)
    for values in (edges, spread, spread[spread >= 0], spread % 100, [0] * 5, [info.min], []):
        array = numpy.array(values, dtype=dtype)
        assert _fields(csv_bytes.int_matrix(array)) == list(map(str, array.tolist()))
    assert _fields(csv_bytes.int_matrix(numpy.array([-(2**63), 7]))) == [
        "-9223372036854775808",
        "7",
    ]


def test_timestamp_matrix_is_the_text_of_each_value() -> None:
    year_1, year_10000 = -62_135_596_800_000, 253_402_300_800_000
    edges = [0, -1, 1, 999, -1000, year_1, year_1 - 1, year_10000 - 1, year_10000, -(2**63)]
    edges += [2**63 - 1, 951_782_400_000, 1_700_000_000_123]
    rng = random.Random(2)
    spread = edges + [rng.randint(year_1 - 10**9, year_10000 + 10**9) for _ in range(3000)]
    for values in (edges, spread):
        array = numpy.array(values, dtype=numpy.int64)
        assert _fields(csv_bytes.timestamp_matrix(array, 1000)) == timestamp_texts(values)
        assert _fields(csv_bytes.timestamp_matrix(array, 1_000_000)) == writetime_texts(values)
    assert _fields(csv_bytes.timestamp_matrix(numpy.array([year_10000]), 1000)) == [
        "253402300800000"
    ]


def _block_lines(columns: list[list[int | None]], null: bytes, delimiter: bytes) -> list[str]:
    masked = [_column(values, "<i8") for values in columns]
    return csv_bytes.group_texts(csv_bytes.writetime_block(masked, null), delimiter)


def test_writetime_block_joins_each_rows_writetimes_rendered_once() -> None:
    """Equal and differing writetimes in a row, nulls first, between, last and whole rows,
    negative, ancient, far-future and out-of-range writetimes; only the writetimes that
    differ from the column before's in their row are rendered."""
    year_1, year_10000 = -62_135_596_800_000_000, 253_402_300_800_000_000
    rows = [
        (1_700_000_000_123_456, 1_700_000_000_123_456, 1_700_000_000_123_456),
        (1_700_000_000_123_456, 1_700_000_000_123_457, 1_700_000_000_123_456),
        (None, 5, 5),
        (None, None, -1),
        (7, None, 8),
        (9, 9, None),
        (None, None, None),
        (year_1, year_1 - 1, year_10000 - 1),
        (year_10000, -(2**63), 2**63 - 1),
        (0, 0, 0),
        (1, 2, 2),
    ]
    columns = [list(column) for column in zip(*rows, strict=True)]
    rendered: list[list[int]] = []
    original = csv_bytes.timestamp_matrix

    def recorded(values: Any, per_second: int) -> Any:
        rendered.append(values.tolist())
        return original(values, per_second)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(csv_bytes, "timestamp_matrix", recorded)
        lines = _block_lines(columns, b"", b",")
    expected = [",".join("" if v is None else writetime_texts([v])[0] for v in row) for row in rows]
    assert lines == expected
    assert lines[:4] == [
        "2023-11-14T22:13:20.123456Z,2023-11-14T22:13:20.123456Z,2023-11-14T22:13:20.123456Z",
        "2023-11-14T22:13:20.123456Z,2023-11-14T22:13:20.123457Z,2023-11-14T22:13:20.123456Z",
        ",1970-01-01T00:00:00.000005Z,1970-01-01T00:00:00.000005Z",
        ",,1969-12-31T23:59:59.999999Z",
    ]
    assert lines[7:9] == [
        "0001-01-01T00:00:00.000000Z,-62135596800000001,9999-12-31T23:59:59.999999Z",
        "253402300800000000,-9223372036854775808,9223372036854775807",
    ]
    # One call: the first column (a null: its row's first present writetime; a null row:
    # the last column's slot, 0 here), then each writetime differing from its row's first.
    first = [1_700_000_000_123_456] * 2 + [5, -1, 7, 9, 0, year_1, year_10000, 0, 1]
    second = [1_700_000_000_123_457, year_1 - 1, -(2**63), 2]
    third = [8, year_10000 - 1, 2**63 - 1, 2]
    assert rendered == [first + second + third]


def test_writetime_block_with_wide_nulls_long_delimiters_and_one_column() -> None:
    columns = [[1, None, 3], [1, 2, None]]
    long_null = b"N" * 30
    assert _block_lines(columns, long_null, b"::") == [
        "1970-01-01T00:00:00.000001Z::1970-01-01T00:00:00.000001Z",
        "N" * 30 + "::1970-01-01T00:00:00.000002Z",
        "1970-01-01T00:00:00.000003Z::" + "N" * 30,
    ]
    assert _block_lines([[None, 4]], b"\\N", b";") == ["\\N", "1970-01-01T00:00:00.000004Z"]
    assert _block_lines([[None], [None]], b"", b"\t") == ["\t"]
    assert csv_bytes.writetime_block([_column([1.5], "<f8")], b"") is None
    same = csv_bytes.writetime_block([_column([1, 2], "<i8"), _column([1, 2], "<i8")], b"")
    assert same[0] is same[1]  # no null, no writetime of its own: the first one's matrix


def test_boolean_matrix_and_nulls() -> None:
    values = [True, False, None, True, None]
    assert _fields(csv_bytes.boolean_matrix(values, b"NULL")) == [
        "true",
        "false",
        "NULL",
        "true",
        "NULL",
    ]
    assert _fields(csv_bytes.boolean_matrix([None, False], b"")) == ["", "false"]
    assert csv_bytes.boolean_matrix([True, 2], b"") is None  # not a boolean: the str way
    assert csv_bytes.boolean_matrix([True, "x"], b"") is None
    whole = csv_bytes.int_matrix(numpy.array([123, 4, -5]))
    over = csv_bytes.nulls_over(whole, numpy.array([True, False, True]), b"nothing")
    assert _fields(over) == ["nothing", "4", "nothing"]  # wider than the digits
    assert _fields(csv_bytes.nulls_over(over, numpy.array([False, True, False]), b"")) == [
        "nothing",
        "",
        "nothing",
    ]
    mask = numpy.array([True, False, True, False])
    assert _fields(csv_bytes.with_nulls(csv_bytes.int_matrix([5, -6]), mask, b"\\N")) == [
        "\\N",
        "5",
        "\\N",
        "-6",
    ]


def _double_families(rng: Any, size: int) -> list[Any]:
    """Doubles of many kinds: uniform and log-uniform magnitudes, the bench's n / 7, short
    decimals, integers, powers of two and their neighbours, random bit patterns."""
    families = [
        rng.uniform(2.0**-7, 2.0**49, size),
        numpy.exp(rng.uniform(math.log(1e-12), math.log(1e22), size)),
        rng.integers(0, 10**7, size) / 7.0 + rng.integers(0, 20, size),
        rng.integers(1, 10**6, size) / 100.0,
        rng.integers(1, 10**9, size) / 1000.0,
        rng.integers(0, 2**53, size).astype(numpy.float64),
        2.0 ** rng.integers(-10, 53, size).astype(numpy.float64),
        2.0 ** rng.integers(-8, 50, size).astype(numpy.float64)
        * (1 + rng.integers(-4, 8, size) * 2.0**-52),
        rng.integers(0, 2**64, size, dtype=numpy.uint64, endpoint=False).view(numpy.float64),
    ]
    return [numpy.where(rng.random(size) < 0.3, -f, f) for f in families]


DOUBLE_EDGES = [0.0, -0.0, 5e-324, -5e-324, 2.2250738585072014e-308, 1.7976931348623157e308]
DOUBLE_EDGES += [math.nan, math.inf, -math.inf, 2.0**-7, 2.0**49, 2.0**-8, 1e-5, 1e16, 1e15]
DOUBLE_EDGES += [math.nextafter(2.0**49, 0), math.nextafter(2.0**-7, 1), math.nextafter(2.0**-7, 0)]
DOUBLE_EDGES += [0.1, 0.2, 0.3, 1 / 3, 2 / 3, 0.5, 1.5, 9.5, 0.995, 0.9999999999999999, 1.0]
DOUBLE_EDGES += [9.999999999999999e14, 123456789012345.6, 168035575281654.88, 0.0078125, 1e-4]


@pytest.mark.parametrize("seed", [1, 2])
def test_double_matrix_is_repr_of_each_value(seed: int) -> None:
    """Batches of 1,000 as the writer converts them; NaN and infinities through the texts
    function given (here ``repr``; the writer's gives the CSV texts)."""
    rng = numpy.random.default_rng(seed)
    for values in [numpy.array(DOUBLE_EDGES)] + _double_families(rng, 20_000):
        for start in range(0, len(values), 1000):
            batch = values[start : start + 1000]
            assert _fields(csv_doubles.double_matrix(batch, _reprs)) == _reprs(batch)


def test_float_matrix_is_the_float_text_of_each_value() -> None:
    """CQL floats (float32) as ``float32_texts`` writes them: numpy's shortest float32 text."""
    rng = numpy.random.default_rng(3)
    size = 20_000
    families = [
        rng.uniform(2.0**-7, 2.0**24, size),
        numpy.exp(rng.uniform(math.log(1e-9), math.log(1e30), size)),
        rng.integers(0, 10**7, size) / 7.0,
        rng.integers(1, 10**6, size) / 100.0,
        rng.integers(0x3C000000, 0x4B800000, size).astype(numpy.uint32).view(numpy.float32),
        rng.integers(0, 2**32, size).astype(numpy.uint32).view(numpy.float32),
        2.0 ** rng.integers(-10, 30, size),
        numpy.array([0.0, -0.0, 1e-45, 3.4028235e38, 2.0**-7, 2.0**24, 16777215.0, 0.1, 8388609.0]),
    ]
    for family in families:
        values = numpy.where(rng.random(len(family)) < 0.3, -family, family).astype(numpy.float32)
        for start in range(0, len(values), 1000):
            batch = values[start : start + 1000]
            assert _fields(csv_doubles.double_matrix(batch, float32_texts)) == float32_texts(batch)
    assert _fields(csv_doubles.double_matrix(numpy.array([0.1, 2.5], numpy.float32), repr)) == [
        "0.1",
        "2.5",
    ]


def test_shortest_decimals_leave_what_they_cannot_render_to_repr() -> None:
    """Out of the range, powers of two, zeros, non-finite and exact half-way candidates are
    not rendered (``exact`` False); the rest are, digits and places as ``repr`` has them."""
    left = [0.0, 2.0**-8, 2.0**49, 1.0, 0.5, 2.0**40, math.nan, math.inf, 1e300]
    left += [168035575281654.88]  # the two 2-place candidates are equally near: half-way
    whole, fraction, places, exact = csv_doubles.shortest_decimals(numpy.array(left))
    assert not exact.any()
    values = numpy.array([1234.0, 0.1, 22630.571428571428, 1.5, 0.0078125 * 3, 99.99])
    whole, fraction, places, exact = csv_doubles.shortest_decimals(values)
    assert exact.all()
    assert whole.tolist() == [1234, 0, 22630, 1, 0, 99]
    assert places.tolist() == [0, 1, 12, 1, 7, 2]
    assert _fields(fraction) == ["0", "1", "571428571428", "5", "0234375", "99"]
    # Out of the range and not exact: the texts function gives the field.
    assert _fields(csv_doubles.double_matrix(numpy.array([1.5, 1e300]), lambda v: ["X"])) == [
        "1.5",
        "X",
    ]


# --- the writer -----------------------------------------------------------------------

NUMERIC = [
    ("pk", "bigint", "<i8", [2**63 - 1, -(2**63), 0, -1, 10**18, 5]),
    ("i", "int", "<i4", [2**31 - 1, -(2**31), 0, 7, -7]),
    ("s", "smallint", "<i2", [2**15 - 1, -(2**15), 0, -7]),
    ("d", "double", "<f8", DOUBLE_EDGES + [22630.571428571428, 12.5, -0.001]),
    ("ts", "timestamp", "<i8", [0, -1, -62_135_596_800_001, 253_402_300_800_000, 2**63 - 1]),
    ("bo", "boolean", None, [True, False]),
    ("u", "uuid", None, [uuid.UUID(int=0), uuid.UUID(int=2**128 - 1), uuid.UUID(int=77)]),
    ("t", "text", None, ["plain", "a,b", "", "ünï", 'q"'] + ["x" * 300]),
    ("c", "counter", "<i8", [0, 2**63 - 1, -5]),
    (
        "f",
        "float",
        "<f4",
        [0.1, -0.0, 1.5, 3.4028235e38, 1e-45, 16777217.0, math.nan, -math.inf, 12.25],
    ),
]


def _plan(order: list[int]) -> TablePlan:
    columns = tuple(
        ColumnPlan(
            NUMERIC[i][0], parse_cql_type(NUMERIC[i][1]), PARTITION_KEY if i == 0 else "regular"
        )
        for i in order
    )
    names = [NUMERIC[i][0] for i in order]
    return TablePlan("ks", "t", columns, tuple(names[1:3]), tuple(names[1:2]))


def _column(values: list[Any], dtype: str | None) -> Any:
    if dtype is None:
        array = numpy.empty(len(values), dtype=object)
        array[:] = values
        return array
    data = numpy.array([0 if v is None else v for v in values], dtype=dtype)
    return numpy.ma.MaskedArray(data, mask=[v is None for v in values])


def _batch(order: list[int], count: int, rng: random.Random, nulls: float) -> tuple[list, list]:
    """Rows and the same rows as columns (writetimes int64, the TTL int32)."""
    rows = []
    for _ in range(count):
        values = [rng.choice(NUMERIC[i][3]) if rng.random() >= nulls else None for i in order]
        values[0] = rng.choice(NUMERIC[order[0]][3]) if order[0] == 0 else values[0]
        times = [-(2**63), 0, -1, 2**62, 1_700_000_000_123_456, 1_700_000_000_123_457, None]
        meta = [rng.choice(times) for _ in order[1:3]]
        ttls = [rng.choice([None, 1, 630_720_000]) for _ in order[1:2]]
        rows.append(tuple(values + meta + ttls))
    dtypes = [NUMERIC[i][2] for i in order] + ["<i8"] * len(order[1:3]) + ["<i4"] * len(order[1:2])
    columns = [_column(list(v), d) for v, d in zip(zip(*rows, strict=True), dtypes, strict=True)]
    return rows, columns


ORDERS = [[0, 1, 2, 3, 4, 5, 6, 8, 9], [0, 7, 3, 1, 5], [0, 3], [0, 6, 4, 7, 9, 2]]


@pytest.mark.parametrize(
    ("delimiter", "null_value"),
    [
        (d, n)
        for d, n in itertools.product(
            [",", ";", "\t", "0", "-", "e", ":", "::", "a", "t", "|"],
            ["", "NULL", "0", "-", "true", "NaN", "\\N", "∅"],
        )
        if d not in n
    ],
)
@pytest.mark.parametrize("writetime_format", ["iso", "micros"])
@pytest.mark.parametrize("buffer_rows", [1, csv_module.BUFFER_ROWS])
def test_write_columns_through_bytes_equal_write_rows(
    delimiter: str,
    null_value: str,
    writetime_format: str,
    buffer_rows: int,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every null share (none, some, all), batches of 1 (the str way), 16 and many rows,
    converted one by one or joined (``BUFFER_ROWS``)."""
    monkeypatch.setattr(csv_module, "BUFFER_ROWS", buffer_rows)
    sink = SinkConfig(delimiter=delimiter, null_value=null_value, writetime_format=writetime_format)
    calls: list[int] = []
    lines, group, joined = csv_bytes.lines_bytes, csv_bytes.group_texts, csv_bytes.compiled_lines
    monkeypatch.setattr(csv_bytes, "lines_bytes", lambda *a: calls.append(1) or lines(*a))
    monkeypatch.setattr(csv_bytes, "group_texts", lambda *a: calls.append(2) or group(*a))
    compiled_calls: list[int] = []
    monkeypatch.setattr(
        csv_bytes, "compiled_lines", lambda *a: compiled_calls.append(1) or joined(*a)
    )
    rng = random.Random(len(delimiter) * 13 + len(null_value))
    expected = False
    for order in ORDERS:
        batches = [
            _batch(order, count, rng, nulls)
            for count, nulls in ((1, 0.2), (16, 0.0), (300, 0.2), (40, 1.0), (200, 0.05))
        ]
        outputs = []
        for builder in BUILDERS:
            with monkeypatch.context() as patch:
                if builder == "numpy":
                    _numpy_lines(patch)
                by_rows, by_columns = io.BytesIO(), _KeptBytes()
                rows_writer = CsvWriter(by_rows, _plan(order), sink, "max")
                columns_writer = CsvWriter(by_columns, _plan(order), sink, "max")
                for rows, columns in batches:
                    rows_writer.write_rows(rows)
                    columns_writer.write_columns(columns)
                columns_writer.close()
                outputs += [by_rows.getvalue(), by_columns.getvalue()]
        assert outputs == [outputs[0]] * len(outputs)
        expected |= any(convert is not None for convert in columns_writer._byte_columns)
    assert bool(compiled_calls) == ("compiled" in BUILDERS)
    assert bool(calls) == expected  # the byte path ran where some column has one
    assert expected or delimiter in ("0", "e", "a", "-") or null_value in ("0", "-", "true")


@pytest.mark.parametrize("builder", BUILDERS)
def test_column_batches_are_joined_in_order_around_rows(
    builder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Column batches held until ``BUFFER_ROWS`` rows, written joined; rows written between
    them and ``close`` write what is held first; a column whose type differs between the
    held batches has them written one by one; the bytes are those of the rows."""
    if builder == "numpy":
        _numpy_lines(monkeypatch)
    monkeypatch.setattr(csv_module, "BUFFER_ROWS", 500)
    order = [0, 1, 2, 3, 4, 5, 6, 8, 9]
    rng = random.Random(5)
    batches = [_batch(order, count, rng, 0.2) for count in (300, 7, 150, 20, 1, 60)]
    ttl = batches[5][1][-1]
    wide = numpy.ma.MaskedArray(ttl.data.astype("<i8"), mask=numpy.ma.getmaskarray(ttl))
    batches[5][1][-1] = wide  # the TTL column int64 here, int32 elsewhere
    batches[0][1][0] = numpy.ma.MaskedArray(batches[0][1][0].data)  # pk: no mask (nomask)
    written: list[int] = []
    by_rows, by_columns = io.BytesIO(), _KeptBytes()
    rows_writer = CsvWriter(by_rows, _plan(order), SinkConfig(), "max")
    columns_writer = CsvWriter(by_columns, _plan(order), SinkConfig(), "max")
    write = columns_writer._write_columns
    monkeypatch.setattr(
        columns_writer._buffer, "_write", lambda c: written.append(len(c[0])) or write(c)
    )
    header = by_columns.tell()
    for index, (rows, columns) in enumerate(batches):
        rows_writer.write_rows(rows)
        if index == 3:
            columns_writer.write_rows(rows)
        else:
            columns_writer.write_columns(columns)
        if index == 2:
            assert written == [] and by_columns.tell() == header
    columns_writer.close()
    assert by_columns.getvalue() == by_rows.getvalue()
    assert written == [457, 1, 60]  # joined before the rows; int32 then int64 TTLs at close


def test_a_text_column_alone_keeps_the_str_way_and_numbers_around_it_do_not() -> None:
    # pk, t, d, i, bo, then the writetimes of t and d (ISO: one block), the TTL of t
    writer = CsvWriter(io.BytesIO(), _plan([0, 7, 3, 1, 5]), SinkConfig(), "max")
    assert writer._runs == [(0, 1), (1, 2), (2, 8)]
    assert [(a, b) for a, b, _ in writer._parts[2]] == [(2, 3), (3, 4), (4, 5), (5, 7), (7, 8)]
    micros = CsvWriter(
        io.BytesIO(), _plan([0, 7, 3, 1, 5]), SinkConfig(writetime_format="micros"), "max"
    )
    assert micros._runs == [(0, 1), (1, 2), (2, 8)]  # one run: values, writetimes, TTL
    quoted = CsvWriter(io.BytesIO(), _plan([0, 1]), SinkConfig(delimiter="-"), "max")
    assert all(convert is None for convert in quoted._byte_columns)  # '-' in numbers: quoted


def test_text_matrix_holds_each_field_left_aligned() -> None:
    fields = ["NULL", "plain", '""', '"a,b"', '"two\nlines"', "NULL", "x", "NULL"]
    matrix = csv_bytes.text_matrix(fields)
    assert matrix.shape == (8, 11)
    assert bytes(matrix[0]) == b"NULL" + bytes(7)
    assert bytes(matrix[4]) == b'"two\nlines"'
    assert _fields(matrix) == fields
    assert csv_bytes.text_matrix([""] * 3).shape == (3, 0)  # every field empty (null '')
    assert _fields(csv_bytes.text_matrix(["", "a", ""])) == ["", "a", ""]


def test_text_matrix_leaves_non_ascii_nul_and_one_wide_field_to_the_str_way() -> None:
    assert csv_bytes.text_matrix(["a", "ünï"]) is None
    assert csv_bytes.text_matrix(["a", "b\0c"]) is None
    assert csv_bytes.text_matrix([]) is None
    assert csv_bytes.text_matrix(["x" * 300] + ["y"] * 20) is None  # 21 x 300 for 320 bytes
    assert csv_bytes.text_matrix(["x" * 12] + ["y" * 4] * 20).shape == (21, 12)


@pytest.mark.parametrize("builder", BUILDERS)
@pytest.mark.parametrize(("delimiter", "null_value"), [(",", ""), (";", "NULL"), ("::", "x")])
def test_whole_lines_with_a_text_column_as_a_matrix_equal_write_rows(
    delimiter: str, null_value: str, builder: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """ASCII texts (quoted ones, empty ones, equal to the null text), nulls first, between
    and last, whole null rows: one matrix of the batch (NumPy path; the compiled builder
    takes the ``str`` fields as they are), the bytes of the rows."""
    if builder == "numpy":
        _numpy_lines(monkeypatch)
    texts = ["plain", "a,b", "", 'q"', "x", "NULL", "two\nlines", "a;b", "a::b"]
    order = [0, 7, 3, 1, 5]
    rows = [(5, None, 1.5, 7, True, None, 2**62, None)]
    rows += [
        (-1, text, None, 2**31 - 1, False, 1_700_000_000_123_456, -(2**63), 630_720_000)
        for text in texts
    ]
    rows += [(0, None, None, None, None, None, None, None)] * 4
    rows += [(2**63 - 1, "last", -0.0, -7, None, -1, 0, 1), (1, None, 2.0, 1, True, 0, 1, None)]
    dtypes = ["<i8", None, "<f8", "<i4", None, "<i8", "<i8", "<i4"]
    columns = [_column(list(v), d) for v, d in zip(zip(*rows, strict=True), dtypes, strict=True)]
    calls: list[int] = []
    lines, group = csv_bytes.lines_bytes, csv_bytes.group_texts
    monkeypatch.setattr(csv_bytes, "lines_bytes", lambda *a: calls.append(1) or lines(*a))
    monkeypatch.setattr(csv_bytes, "group_texts", lambda *a: calls.append(2) or group(*a))
    sink = SinkConfig(delimiter=delimiter, null_value=null_value)
    by_rows, by_columns = io.BytesIO(), _KeptBytes()
    CsvWriter(by_rows, _plan(order), sink, "max").write_rows(rows)
    writer = CsvWriter(by_columns, _plan(order), sink, "max")
    writer.write_columns(columns)
    writer.close()
    assert by_columns.getvalue() == by_rows.getvalue()
    assert calls == ([1] if builder == "numpy" else [])  # one matrix, no str per row
    assert (
        by_columns.getvalue().split(b"\r\n")[1]
        == {
            ",": b"5,,1.5,7,true,,4611686018427387904,",
            ";": b"5;NULL;1.5;7;true;NULL;4611686018427387904;NULL",
            "::": b"5::x::1.5::7::true::x::4611686018427387904::x",
        }[delimiter]
    )


def _joined_in_python(parts: list[Any], delimiter: bytes, end: bytes) -> bytes:
    """What the line builders must write: each row's fields (a matrix row without its
    zero bytes, a str's UTF-8) joined by the delimiter, each line ended by ``end``."""
    fields = [
        [bytes(row).replace(b"\0", b"") for row in part]
        if isinstance(part, numpy.ndarray)
        else [text.encode("utf-8") for text in part]
        for part in parts
    ]
    return b"".join(delimiter.join(row) + end for row in zip(*fields, strict=True))


def _random_matrix(rng: random.Random, rows: int, width: int) -> Any:
    """Bytes 1-255 with zero runs anywhere (left, right, inside, whole rows)."""
    matrix = numpy.array(
        [[rng.choice([0, 0, rng.randrange(1, 256)]) for _ in range(width)] for _ in range(rows)],
        dtype=numpy.uint8,
    ).reshape(rows, width)
    if rows:
        matrix[rng.randrange(rows)] = 0
        matrix[rng.randrange(rows)] = rng.randrange(1, 256)  # no padding at all
    return matrix


TEXTS = [
    "",
    "a",
    "plain text",
    '"quoted, with ""quotes"""',
    "ünïcödé",
    "😀 wide",
    "nul\0in",
    "x" * 70,
]


@pytest.mark.skipif(not csv_bytes.COMPILED, reason="the compiled line builder is not built here")
@pytest.mark.parametrize("seed", range(6))
def test_compiled_lines_equal_a_python_join_and_the_numpy_path(seed: int) -> None:
    """Matrices of widths 0 to 19 (the 8-byte fast path and its tail), a column slice (not
    contiguous), str fields of any UTF-8 (NUL kept), 0 to 300 rows, delimiters and line
    ends of several bytes."""
    rng = random.Random(seed)
    rows = rng.choice([0, 1, 7, 300])
    delimiter = rng.choice([b",", b";", b"::", "¦".encode(), b"\t"])
    end = rng.choice([b"\r\n", b"\n"])
    parts: list[Any] = []
    for _ in range(rng.randrange(1, 7)):
        kind = rng.randrange(3)
        if kind == 0:
            parts.append(_random_matrix(rng, rows, rng.randrange(20)))
        elif kind == 1:
            parts.append(_random_matrix(rng, rows, 24)[:, 3:17])  # strided rows
        else:
            parts.append([rng.choice(TEXTS) for _ in range(rows)])
    expected = _joined_in_python(parts, delimiter, end)
    assert csv_bytes.compiled_lines(parts, rows, delimiter, end) == expected
    assert (
        csv_bytes.compiled_lines(
            [tuple(p) if isinstance(p, list) else p for p in parts], rows, delimiter, end
        )
        == expected
    )
    matrices = [p for p in parts if isinstance(p, numpy.ndarray)]
    if matrices and rows:
        assert csv_bytes.lines_bytes(matrices, delimiter, end) == _joined_in_python(
            matrices, delimiter, end
        )


@pytest.mark.skipif(not csv_bytes.COMPILED, reason="the compiled line builder is not built here")
@pytest.mark.parametrize("dtype", ["<i4", "<i8", ">i8", "<i2"])
def test_compiled_number_parts_equal_str_and_the_rfc3339_texts(dtype: str) -> None:
    """Integers as ``str``, milliseconds as ``timestamp_texts``, microseconds as
    ``writetime_texts`` (outside years 1-9999 the integer), nulls where masked; runs of
    equal values and seconds (the builder copies the previous text) and lone ones."""
    info = numpy.iinfo(dtype)
    rng = random.Random(dtype)
    edges = [0, -1, 1, 9, 10, -10, info.max, info.min, info.max - 1, info.min + 1]
    edges += [253402300799999, 253402300800000, -62135596800000, -62135596800001]
    edges += [253402300799999999, -62135596800000000, 1704498900003, 1704498900003]
    values = [v for v in edges if info.min <= v <= info.max]
    values += [rng.randrange(info.min, info.max + 1) for _ in range(3000)]
    values += [rng.randrange(-(10**14), 3 * 10**14) for _ in range(3000) if info.bits == 64]
    base = 1_700_000_000_000_000
    values += [
        base + rng.choice([0, 0, 1, 999_999, 1_000_000]) for _ in range(500) if info.bits == 64
    ]
    data = numpy.array(values, dtype=dtype)
    mask = numpy.array([rng.random() < 0.1 for _ in values])
    column = numpy.ma.MaskedArray(data, mask=mask)
    nulls = ["" if m else None for m in mask]
    parts = [csv_bytes.number_part(column, unit, b"NULL") for unit in (0, 1000, 1_000_000)]
    parts.append(csv_bytes.number_part(numpy.ma.MaskedArray(data), 1_000_000, b""))  # nomask
    out = csv_bytes.compiled_lines(parts, len(values), b";", b"\n")
    ints = [int(v) for v in data]
    expected = [
        ["NULL" if null is not None else text for null, text in zip(nulls, texts, strict=True)]
        for texts in (list(map(str, ints)), timestamp_texts(ints), writetime_texts(ints))
    ]
    expected.append(writetime_texts(ints))
    lines = [";".join(fields) + "\n" for fields in zip(*expected, strict=True)]
    assert out == "".join(lines).encode()
    assert csv_bytes.number_part(numpy.ma.MaskedArray([1.5]), 0, b"") is None


@pytest.mark.skipif(not csv_bytes.COMPILED, reason="the compiled line builder is not built here")
def test_compiled_lines_refuse_parts_that_do_not_fit() -> None:
    matrix = numpy.ones((3, 2), dtype=numpy.uint8)
    with pytest.raises(ValueError, match="row count"):
        csv_bytes.compiled_lines([matrix, ["a", "b"]], 3, b",")
    with pytest.raises(ValueError, match="one row per line"):
        csv_bytes.compiled_lines([matrix], 4, b",")
    with pytest.raises(ValueError, match="one row per line"):
        csv_bytes.compiled_lines([numpy.ones((3, 2, 2), dtype=numpy.uint8)], 3, b",")
    with pytest.raises(TypeError, match="not str"):
        csv_bytes.compiled_lines([matrix, ["a", None, "c"]], 3, b",")
    values = numpy.arange(3, dtype=numpy.int64)
    with pytest.raises(ValueError, match="style"):
        csv_bytes.compiled_lines([csv_bytes.NumberPart((7, values, None, b""))], 3, b",")
    floats = csv_bytes.NumberPart((csv_bytes.FLOAT, values, None, b""))
    with pytest.raises(ValueError, match="float32 or float64"):
        csv_bytes.compiled_lines([floats], 3, b",")
    halves = csv_bytes.NumberPart((csv_bytes.FLOAT, values * 0.5, None, b""))  # 0.0: others
    with pytest.raises(ValueError, match="needs others"):
        csv_bytes.compiled_lines([halves], 3, b",")
    with pytest.raises(ValueError, match="int32 or int64"):
        csv_bytes.compiled_lines([csv_bytes.NumberPart((0, values[:2], None, b""))], 3, b",")
    with pytest.raises(ValueError, match="int32 or int64"):
        csv_bytes.compiled_lines([csv_bytes.NumberPart((0, values * 1.0, None, b""))], 3, b",")
    with pytest.raises(ValueError, match="mask"):
        bad_mask = numpy.zeros(2, dtype=bool)
        csv_bytes.compiled_lines([csv_bytes.NumberPart((0, values, bad_mask, b""))], 3, b",")
    with pytest.raises(UnicodeEncodeError):
        csv_bytes.compiled_lines([["a", "\ud800", "c"]], 3, b",")  # as str.encode refuses


def test_the_compiled_line_builder_is_built_where_a_compiler_is() -> None:
    """``setup.py`` builds it (optional) at install; with a C compiler here, a missing
    build means the CSV writer silently lost its fast path."""
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler here: the NumPy path writes the same bytes")
    assert csv_bytes.COMPILED


@pytest.mark.skipif(not csv_bytes.COMPILED, reason="the compiled line builder is not built here")
@pytest.mark.parametrize("dtype", ["<f8", "<f4", ">f8"])
def test_compiled_float_parts_equal_repr_where_csv_doubles_renders(dtype: str) -> None:
    """Each float's shortest decimal (``repr``, float32's ``float32_texts``) exactly where
    ``csv_doubles.shortest_decimals`` finds one, and the column's other texts (asked by
    index) everywhere else: outside the range, powers of two, half-way values, zeros,
    NaN, infinities; nulls where masked."""
    rng = random.Random(dtype)
    values = [0.0, -0.0, 1.0, 0.5, 2.0**-7, 2.0**-8, 2.0**49, 2.0**24, 1.5, -1.5, 0.1, 1e16]
    values += [float("nan"), float("inf"), -float("inf"), 123.25, 2.0**49 - 1, 2.0**24 - 1]
    values += [rng.uniform(-1e6, 1e6) for _ in range(2000)]
    values += [rng.uniform(0, 1) * 10.0 ** rng.randrange(-9, 18) for _ in range(2000)]
    values += [round(rng.uniform(-1e4, 1e4), rng.randrange(0, 6)) for _ in range(2000)]
    data = numpy.array(values, dtype=dtype)
    if dtype == "<f8":  # every bit pattern class: random mantissas at random exponents
        raw = [rng.getrandbits(64) for _ in range(3000)]
        data = numpy.concatenate([data, numpy.array(raw, dtype=numpy.uint64).view("<f8")])
    mask = numpy.array([rng.random() < 0.05 for _ in range(len(data))])
    column = numpy.ma.MaskedArray(data, mask=mask)
    native = data.astype(data.dtype.newbyteorder("="))
    exact = csv_doubles.shortest_decimals(native)[3]
    asked: list[int] = []

    def others(values: Any) -> list[str]:
        asked.append(len(values))
        return [f"<{value!r}>" for value in values.tolist()]

    part = csv_bytes.float_part(column, others, b"N")
    out = csv_bytes.compiled_lines([part], len(data), b",", b"\\n")
    shortest = float32_texts(native.tolist()) if dtype == "<f4" else _reprs(native)
    expected = [
        "N" if masked else text if fine else f"<{value!r}>"
        for masked, fine, text, value in zip(mask, exact, shortest, native.tolist(), strict=True)
    ]
    assert out == "".join(f"{text}\\n" for text in expected).encode()
    assert len(asked) == int((~exact & ~mask).sum()) > 0
    assert csv_bytes.float_part(numpy.ma.MaskedArray([1]), others, b"") is None


def test_a_build_of_older_source_is_left_unused() -> None:
    """An install not redone after an update leaves a module of another interface (or
    none): the writer then keeps the NumPy path instead of calling it."""
    import types

    older = types.ModuleType("_lines")
    assert csv_bytes.built_for_this_source(older) is None
    older.INTERFACE = 0
    assert csv_bytes.built_for_this_source(older) is None
    older.INTERFACE = 1
    assert csv_bytes.built_for_this_source(older) is older
    assert csv_bytes.built_for_this_source(None) is None
