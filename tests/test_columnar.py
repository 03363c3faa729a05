"""Pure tests of the column path (transforms.columnar, the CSV, Parquet and Avro writers'
``write_columns``, ``StatsBuilder.add_columns``, ``ColumnBatch``): the same bytes and figures as the row path
for the same values, and result pages decoded by the driver's NumPy parser exactly as the
row parser decodes them, or handed back as rows where columns would not be exact."""

from __future__ import annotations

import io
import itertools
import math
import random
import struct
import uuid
from pathlib import Path
from typing import Any

import numpy
import pytest
from cassandra import protocol

from tests.cql_values import f32
from tests.helpers import avro_without_sync
from transforms import cql_text
from transforms.columnar import ColumnPage, RowPage, columnar_handler, sized_rows_handler
from transforms.cql_text import rfc3339_array_texts, timestamp_texts, writetime_texts
from transforms.cql_types import parse_cql_type
from transforms.elements import ColumnBatch, PieceElementCoder, PieceKey
from transforms.formats.avro import open_avro_writer
from transforms.formats.base import AVRO_CODECS, SinkConfig
from transforms.formats.csv import CsvWriter, SharedWritetimeTexts, csv_lines
from transforms.formats.parquet_arrow import open_parquet_writer
from transforms.stats import HELD_ROWS, StatsBuilder
from transforms.table_plan import PARTITION_KEY, ColumnPlan, TablePlan

# --- values at their edges, as the driver gives them ------------------------------------

YEAR_1_MS = -62_135_596_800_000  # 0001-01-01T00:00:00.000Z
YEAR_10000_MS = 253_402_300_800_000  # the first millisecond after 9999
TIMESTAMPS = [
    0,
    -1,
    1,
    999,
    -999,
    -1000,
    -1001,
    86_399_999,
    -86_400_000,
    YEAR_1_MS,
    YEAR_1_MS - 1,
    YEAR_10000_MS - 1,
    YEAR_10000_MS,
    -(2**63),
    2**63 - 1,
    951_782_400_000,  # 2000-02-29
    4_102_444_800_000,  # 2100-01-01
    1_700_000_000_123,
]
WRITETIMES = [t * 1000 + extra for t in TIMESTAMPS[:13] for extra in (0, 1, 999)] + [
    -(2**63),
    2**63 - 1,
    1_700_000_000_123_456,
]
DOUBLES = [
    0.1,
    -0.0,
    0.0,
    math.nan,
    math.inf,
    -math.inf,
    1e16,
    1e-5,
    5e-324,
    1.7976931348623157e308,
]
FLOATS = [f32(v) for v in (0.1, -0.0, 1.5, 3.4028235e38, 1e-45, 16777217.0)] + [math.nan, math.inf]
TEXTS = ["plain", "a,b", 'say "hi"', "line1\nline2", "cr\r", "", "NULL", "0", "-", "1970", "ünï ✓"]

# (name, CQL type, NumPy dtype as the parser gives the column or None for objects, values)
COLUMNS: list[tuple[str, str, str | None, list[Any]]] = [
    ("pk", "bigint", "<i8", [2**63 - 1, -(2**63), 0, 12345678901234567]),
    ("t", "text", None, TEXTS),
    ("b", "bigint", "<i8", [2**63 - 1, -(2**63), 0, -1, 10**18]),
    ("i", "int", "<i4", [2**31 - 1, -(2**31), 0, 7]),
    ("s", "smallint", "<i2", [2**15 - 1, -(2**15), 0, -7]),
    ("d", "double", "<f8", DOUBLES),
    ("f", "float", "<f4", FLOATS),
    ("ts", "timestamp", "<i8", TIMESTAMPS),
    ("bo", "boolean", None, [True, False]),
    ("u", "uuid", None, [uuid.UUID(int=5), uuid.UUID(int=2**128 - 1)]),
]
WT_COLUMNS = ("t", "b", "i", "s", "d", "f", "ts", "bo", "u")
TTL_COLUMNS = ("b", "d", "u")


def _plan() -> TablePlan:
    columns = tuple(
        ColumnPlan(name, parse_cql_type(cql_type), PARTITION_KEY if name == "pk" else "regular")
        for name, cql_type, _, _ in COLUMNS
    )
    return TablePlan("ks", "t", columns, WT_COLUMNS, TTL_COLUMNS)


def _rows(count: int, seed: int) -> list[tuple[Any, ...]]:
    """Rows of edge values, about a fifth of each field null; writetimes mostly shared by
    the cells of a row (as written together), sometimes their own."""
    rng = random.Random(seed)
    rows = []
    for _ in range(count):
        values = [rng.choice(vals) if rng.random() > 0.2 else None for _, _, _, vals in COLUMNS]
        values[0] = rng.choice(COLUMNS[0][3])
        shared = rng.choice(WRITETIMES)
        writetimes = [
            None if rng.random() < 0.2 else shared if rng.random() < 0.7 else rng.choice(WRITETIMES)
            for _ in WT_COLUMNS
        ]
        ttls = [None if rng.random() < 0.3 else rng.randint(1, 630_720_000) for _ in TTL_COLUMNS]
        rows.append(tuple(values + writetimes + ttls))
    return rows


def _column(values: list[Any], dtype: str | None) -> Any:
    """A column as the NumPy parser gives it: masked numbers (nulls masked) or objects."""
    if dtype is None:
        array = numpy.empty(len(values), dtype=object)
        for index, value in enumerate(values):
            array[index] = value
        return array
    data = numpy.array([0 if v is None else v for v in values], dtype=dtype)
    return numpy.ma.MaskedArray(data, mask=[v is None for v in values])


def _columns(rows: list[tuple[Any, ...]]) -> list[Any]:
    dtypes = [dtype for _, _, dtype, _ in COLUMNS] + ["<i8"] * len(WT_COLUMNS)
    dtypes += ["<i4"] * len(TTL_COLUMNS)
    return [
        _column(list(values), dtype)
        for values, dtype in zip(zip(*rows, strict=True), dtypes, strict=True)
    ]


class _KeptBytes(io.BytesIO):
    def close(self) -> None:  # the bytes stay readable after the writer's close
        pass


def _csv(sink: SinkConfig, write: str, data: Any) -> bytes:
    handle = _KeptBytes()
    writer = CsvWriter(handle, _plan(), sink, "max")
    for chunk in data:
        getattr(writer, write)(chunk)
    writer.close()  # column batches are written once enough rows are held, or here
    return handle.getvalue()


# --- CSV --------------------------------------------------------------------------------

DELIMITERS = [",", ";", "\t", "|", "0", "-", "e", ":", "T", "Z", ".", "a", "::"]
NULLS = ["", "NULL", "0", "-", "1970", "NaN", "\\N", "true", "Infinity"]


@pytest.mark.parametrize(
    ("delimiter", "null_value", "writetime_format"),
    [
        (delimiter, null, wt_format)
        for delimiter, null, wt_format in itertools.product(DELIMITERS, NULLS, ("iso", "micros"))
        if delimiter not in null  # such a null text is refused: it is written unquoted
    ],
)
def test_csv_columns_write_the_bytes_of_the_rows(
    delimiter: str, null_value: str, writetime_format: str
) -> None:
    rows = _rows(300, seed=len(delimiter) * 31 + len(null_value))
    sink = SinkConfig(delimiter=delimiter, null_value=null_value, writetime_format=writetime_format)
    chunks = [rows[:1], rows[1:120], rows[120:]]
    by_rows = _csv(sink, "write_rows", chunks)
    by_columns = _csv(sink, "write_columns", [_columns(chunk) for chunk in chunks])
    assert by_columns == by_rows
    assert by_rows.count(b"\r\n") >= 301


def test_csv_columns_without_nulls_and_all_nulls() -> None:
    full = [tuple(vals[0] for _, _, _, vals in COLUMNS) + (5,) * 9 + (7,) * 3] * 4
    empty = [(1,) + (None,) * (len(full[0]) - 1)] * 3
    for rows in (full, empty):
        assert _csv(SinkConfig(), "write_columns", [_columns(rows)]) == _csv(
            SinkConfig(), "write_rows", [rows]
        )


def test_csv_columns_refuse_a_batch_of_another_width() -> None:
    writer = CsvWriter(io.BytesIO(), _plan(), SinkConfig(), "max")
    with pytest.raises(ValueError, match="rows have 3 fields, the plan 22"):
        writer.write_columns(_columns(_rows(2, seed=1))[:3])


def test_csv_lines_interleave_fields_delimiters_and_line_ends() -> None:
    fields = [["1", "22", ""], ["ünï", '"q"', "x"], ["a", "b", "c"]]
    assert csv_lines(fields, ";") == '1;ünï;a\r\n22;"q";b\r\n;x;c\r\n'.encode()
    assert csv_lines([("only",)], "::") == b"only\r\n"
    assert csv_lines([["1", "2"], ("3", "4")], "::") == b"1::3\r\n2::4\r\n"


def test_shared_writetime_texts_keep_each_rows_last_text(monkeypatch: pytest.MonkeyPatch) -> None:
    """A writetime equal to the row's last one reuses its text, also across a null cell;
    a different one is rendered; masked entries are the null text whatever they hold."""
    rendered: list[list[int]] = []

    def recorded(values: Any, per_second: int) -> list[str]:
        rendered.append(values.tolist())
        return rfc3339_array_texts(values, per_second)

    monkeypatch.setattr(cql_text, "rfc3339_array_texts", recorded)
    shared = SharedWritetimeTexts()
    first = shared.fields(numpy.array([0, 1, 5]), numpy.array([False, True, False]), "N")
    assert first == ["1970-01-01T00:00:00.000000Z", "N", "1970-01-01T00:00:00.000005Z"]
    second = shared.fields(numpy.array([7, 1, 5]), numpy.array([True, False, True]), "N")
    assert second == ["N", "1970-01-01T00:00:00.000001Z", "N"]
    third = shared.fields(numpy.array([0, 2**63 - 1, 5]), numpy.array([False] * 3), "")
    assert third == [
        "1970-01-01T00:00:00.000000Z",
        "9223372036854775807",
        "1970-01-01T00:00:00.000005Z",
    ]
    assert shared.texts.tolist() == [
        "1970-01-01T00:00:00.000000Z",
        "9223372036854775807",
        "1970-01-01T00:00:00.000005Z",
    ]
    other_length = shared.fields(numpy.array([-1]), numpy.array([False]), "")
    assert other_length == ["1969-12-31T23:59:59.999999Z"]
    assert rendered == [[0, 5], [1], [2**63 - 1], [-1]]


def test_rfc3339_arrays_render_as_the_value_loops() -> None:
    assert rfc3339_array_texts(numpy.array(TIMESTAMPS), 1000) == timestamp_texts(TIMESTAMPS)
    assert rfc3339_array_texts(numpy.array(WRITETIMES), 1_000_000) == writetime_texts(WRITETIMES)
    assert rfc3339_array_texts(numpy.array([YEAR_1_MS, -1, YEAR_10000_MS]), 1000) == [
        "0001-01-01T00:00:00.000Z",
        "1969-12-31T23:59:59.999Z",
        "253402300800000",
    ]
    assert rfc3339_array_texts(numpy.array([-1, 1_700_000_000_123_456]), 1_000_000) == [
        "1969-12-31T23:59:59.999999Z",
        "2023-11-14T22:13:20.123456Z",
    ]
    rng = random.Random(7)
    spread = [rng.randint(YEAR_1_MS - 10**6, YEAR_10000_MS + 10**6) for _ in range(20_000)]
    assert rfc3339_array_texts(numpy.array(spread), 1000) == timestamp_texts(spread)
    assert rfc3339_array_texts(numpy.array([], dtype=numpy.int64), 1000) == []


# --- statistics -------------------------------------------------------------------------


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_statistics_of_columns_equal_those_of_rows(seed: int) -> None:
    rows = _rows(500, seed)
    by_rows, by_columns = StatsBuilder(_plan()), StatsBuilder(_plan())
    by_rows.add_rows(rows[:200])
    by_rows.add_rows(rows[200:])
    by_columns.add_columns(_columns(rows[:200]))
    by_columns.add_columns(_columns(rows[200:]))
    assert by_columns.to_json() == by_rows.to_json()


def test_statistics_of_columns_held_past_their_limit_equal_those_of_rows() -> None:
    """Batches of writetimes and TTLs held beyond ``HELD_ROWS`` (reduced in two parts, the
    last at ``to_json``) give the figures of the rows."""
    rows = _rows(HELD_ROWS + 700, 11)
    by_rows, by_columns = StatsBuilder(_plan()), StatsBuilder(_plan())
    by_rows.add_rows(rows)
    for start in range(0, len(rows), 1000):
        by_columns.add_columns(_columns(rows[start : start + 1000]))
    assert by_columns.rows == HELD_ROWS + 700
    assert by_columns.to_json() == by_rows.to_json()
    assert by_columns.to_json() == by_rows.to_json()  # nothing held twice


def test_statistics_sum_writetimes_beyond_int64_exactly() -> None:
    plan = TablePlan("ks", "t", (ColumnPlan("b", parse_cql_type("bigint"), "regular"),), ("b",), ())
    writetimes = [2**63 - 1, 2**63 - 2, -(2**63), 9 * 10**18, 9 * 10**18]
    rows = [(1, w) for w in writetimes]
    by_rows, by_columns = StatsBuilder(plan), StatsBuilder(plan)
    by_rows.add_rows(rows)
    by_columns.add_columns([_column([1] * 5, "<i8"), _column(writetimes, "<i8")])
    assert by_columns.to_json() == by_rows.to_json()
    assert by_columns.to_json()["writetime"]["b"]["sum"] == sum(writetimes)


# --- Parquet and Avro -------------------------------------------------------------------

_OPENERS = {"parquet": open_parquet_writer, "avro": open_avro_writer}


def _written(path: Path, sink: SinkConfig, write: str, data: Any) -> bytes:
    """The file ``sink.format``'s writer makes of ``data`` (chunks of rows or of columns)
    through its ``write`` method; an Avro file's random sync marker zeroed."""
    writer = _OPENERS[sink.format](str(path), _plan(), sink, "max")
    for chunk in data:
        getattr(writer, write)(chunk)
    writer.close()
    written = path.read_bytes()
    return avro_without_sync(written) if sink.format == "avro" else written


def _both_ways(tmp_path: Path, sink: SinkConfig, rows: list[tuple[Any, ...]]) -> None:
    chunks = [rows[:1], rows[1:120], rows[120:]]
    by_rows = _written(tmp_path / "rows", sink, "write_rows", chunks)
    by_columns = _written(tmp_path / "columns", sink, "write_columns", map(_columns, chunks))
    assert by_columns == by_rows


@pytest.mark.parametrize(
    ("writetime_format", "codec", "group_rows"),
    [("iso", "zstd", 100_000), ("micros", "snappy", 100_000), ("iso", "none", 50)],
)
def test_parquet_columns_write_the_bytes_of_the_rows(
    tmp_path: Path, writetime_format: str, codec: str, group_rows: int
) -> None:
    """The same file, byte for byte, from a ColumnBatch's columns as from its rows: the
    numbers' masks become the nulls, NaN and infinities stay values, timestamps and
    writetimes outside years 1-9999 stay exact, row groups split alike."""
    sink = SinkConfig(
        format="parquet",
        writetime_format=writetime_format,
        parquet_codec=codec,
        parquet_row_group_rows=group_rows,
    )
    _both_ways(tmp_path, sink, _rows(300, seed=len(codec)))


@pytest.mark.parametrize("codec", AVRO_CODECS)
@pytest.mark.parametrize("writetime_format", ["iso", "micros"])
def test_avro_columns_write_the_bytes_of_the_rows(
    tmp_path: Path, writetime_format: str, codec: str
) -> None:
    """The same container file, byte for byte but for its random sync marker, from a
    ColumnBatch's columns as from its rows: masks become the union's null branch, NaN and
    infinities stay values, timestamps and writetimes outside years 1-9999 stay exact."""
    sink = SinkConfig(format="avro", writetime_format=writetime_format, avro_codec=codec)
    _both_ways(tmp_path, sink, _rows(300, seed=len(codec)))


@pytest.mark.parametrize("fmt", sorted(_OPENERS))
def test_columns_without_nulls_all_nulls_and_of_another_width(tmp_path: Path, fmt: str) -> None:
    full = [tuple(vals[0] for _, _, _, vals in COLUMNS) + (5,) * 9 + (7,) * 3] * 4
    empty = [(1,) + (None,) * (len(full[0]) - 1)] * 3
    sink = SinkConfig(format=fmt)
    for name, rows in (("full", full), ("empty", empty)):
        by_rows = _written(tmp_path / f"{name}-rows", sink, "write_rows", [rows])
        assert _written(tmp_path / name, sink, "write_columns", [_columns(rows)]) == by_rows
    writer = _OPENERS[fmt](str(tmp_path / "narrow"), _plan(), sink, "max")
    with pytest.raises(ValueError, match="rows have 3 fields, the plan 22"):
        writer.write_columns(_columns(_rows(2, seed=1))[:3])


# --- ColumnBatch -------------------------------------------------------------------------


def test_column_batch_rows_are_the_row_tuples_and_it_pickles() -> None:
    rows = _rows(50, seed=4)
    batch = ColumnBatch(PieceKey(1, 2, 3), _columns(rows), 50)
    assert repr(batch.rows) == repr(rows)  # repr: NaN equals NaN
    assert all(type(v) is not numpy.int64 for v in batch.rows[0])
    coder = PieceElementCoder()
    back = coder.decode(coder.encode(batch))
    assert isinstance(back, ColumnBatch) and back.piece == batch.piece
    assert repr(back.rows) == repr(rows)
    assert coder.estimate_size(batch) == 32 + 50 * 16 * 22


# --- result pages through the column handler ---------------------------------------------

_TYPE_IDS = {"bigint": 0x0002, "boolean": 0x0004, "double": 0x0007, "float": 0x0008}
_TYPE_IDS |= {"int": 0x0009, "text": 0x000D, "smallint": 0x0013}
_PACK = {"bigint": ">q", "double": ">d", "float": ">f", "int": ">i", "smallint": ">h"}


def _string(text: str) -> bytes:
    data = text.encode()
    return struct.pack(">H", len(data)) + data


def _cell(cql_type: str, value: Any) -> bytes:
    if value is None:
        return struct.pack(">i", -1)
    if isinstance(value, bytes):  # raw bytes, say an empty value
        data = value
    elif cql_type == "text":
        data = value.encode()
    elif cql_type == "boolean":
        data = b"\x01" if value else b"\x00"
    else:
        data = struct.pack(_PACK[cql_type], value)
    return struct.pack(">i", len(data)) + data


def _rows_message(columns: list[tuple[str, str]], rows: list[tuple[Any, ...]]) -> bytes:
    """The body of a ROWS result (global table spec, no paging state)."""
    body = struct.pack(">iii", 2, 0x0001, len(columns)) + _string("ks") + _string("t")
    for name, cql_type in columns:
        body += _string(name) + struct.pack(">H", _TYPE_IDS[cql_type])
    body += struct.pack(">i", len(rows))
    for row in rows:
        body += b"".join(_cell(t, v) for (_, t), v in zip(columns, row, strict=True))
    return body


def _decode(handler: Any, body: bytes) -> Any:
    opcode = protocol.ResultMessage.opcode
    return handler.decode_message(4, {}, 0, 0, opcode, body, None, None).parsed_rows


PAGE_COLUMNS = [
    ("k", "bigint"),
    ("t", "text"),
    ("i", "int"),
    ("s", "smallint"),
    ("d", "double"),
    ("f", "float"),
    ("bo", "boolean"),
    ("writetime(t)", "bigint"),
]
PAGE_ROWS = [
    (1, "a", 2**31 - 1, -(2**15), -0.0, f32(0.1), True, 1_700_000_000_000_000),
    (1, None, None, None, None, None, None, None),
    (-(2**63), "", -1, 5, math.inf, -math.inf, False, -5),
]


def _same(got: list[tuple[Any, ...]], want: list[tuple[Any, ...]]) -> bool:
    return repr(got) == repr(want)  # repr tells -0.0 from 0.0 and NaN from NaN


def test_a_page_decodes_into_the_columns_the_row_parser_gives() -> None:
    handler = columnar_handler()
    body = _rows_message(PAGE_COLUMNS, PAGE_ROWS)
    parsed = _decode(handler, body)
    assert type(parsed) is ColumnPage and parsed.length == 3
    assert parsed.nbytes == len(body)  # what sizes the next page
    assert [c.dtype.str for c in parsed.columns] == [
        "<i8",
        "|O",
        "<i4",
        "<i2",
        "<f8",
        "<f4",
        "|O",
        "<i8",
    ]
    rows = ColumnBatch(PieceKey(0, 0, 0), parsed.columns, 3).rows
    assert _same(rows, _decode(protocol.ProtocolHandler, body))
    assert _same(rows, PAGE_ROWS)


@pytest.mark.parametrize(
    "row",
    [
        (1, "a", b"", 1, 0.5, f32(0.5), True, 1),  # an empty int: the parser leaves its slot
        (1, "a", 1, 1, b"", f32(0.5), True, 1),  # an empty double
        (1, "a", 1, 1, 0.5, f32(0.5), True, 0x7FF4DEADBEEF5AA5),  # a bigint equal to the marker
        (1, "a", 0x7FA5DEAD, 1, 0.5, f32(0.5), True, 1),  # an int equal to the marker
        (1, "a", 1, 0x7FA5, 0.5, f32(0.5), True, 1),  # a smallint equal to the marker
    ],
)
def test_a_page_that_columns_cannot_hold_exactly_comes_as_rows(row: tuple[Any, ...]) -> None:
    body = _rows_message(PAGE_COLUMNS, PAGE_ROWS + [row])
    parsed = _decode(columnar_handler(), body)
    assert type(parsed) is RowPage and parsed.nbytes == len(body)
    assert _same(parsed, _decode(protocol.ProtocolHandler, body))
    assert len(parsed) == 4


def test_the_sized_rows_handler_gives_the_row_parsers_rows_and_their_size() -> None:
    body = _rows_message(PAGE_COLUMNS, PAGE_ROWS)
    parsed = _decode(sized_rows_handler(), body)
    assert type(parsed) is RowPage and parsed.nbytes == len(body)
    assert _same(parsed, _decode(protocol.ProtocolHandler, body))


def test_a_page_with_two_columns_of_one_name_comes_as_rows() -> None:
    columns = [("k", "bigint"), ("writetime(v)", "bigint"), ("writetime(v)", "bigint")]
    body = _rows_message(columns, [(1, 2, 3)])
    assert _decode(columnar_handler(), body) == [(1, 2, 3)]


def test_the_shipped_numpy_parser_fails_on_numpy_2_without_the_fix() -> None:
    """Why transforms.columnar patches the driver: its own byte swap, as shipped."""
    column = numpy.ma.MaskedArray(numpy.zeros(2, dtype=">i8"), mask=[False, True])
    with pytest.raises(AttributeError, match="newbyteorder"):
        column.byteswap().newbyteorder()


@pytest.mark.parametrize("policy", ["max", "min"])
def test_collection_writetime_columns_normalize_as_the_rows_do(policy: str) -> None:
    """``normalize_columns_fn`` on a ColumnBatch's columns gives, cell for cell, what
    ``normalize_row_fn`` gives on its rows (the file's columns), and the latest element for
    statistics, whatever the policy: element lists with nulls, single elements, null cells;
    the scalar columns pass unchanged."""
    from transforms.normalize import latest, normalize_columns_fn, normalize_row_fn

    columns = (
        ColumnPlan("pk", parse_cql_type("int"), PARTITION_KEY),
        ColumnPlan("l", parse_cql_type("list<text>"), "regular"),
        ColumnPlan("m", parse_cql_type("map<text, int>"), "regular"),
        ColumnPlan("v", parse_cql_type("text"), "regular"),
    )
    plan = TablePlan("ks", "t", columns, ("l", "m", "v"), ("l", "v"))
    rng = random.Random(3)

    def cell(ttl: bool) -> Any:
        if rng.random() < 0.2:
            return None
        size = rng.choice([1, 2, 5])
        high = 10**6 if ttl else 2**62
        return [None if ttl and rng.random() < 0.3 else rng.randint(1, high) for _ in range(size)]

    rows = [
        (i, ["x"], {"k": 1}, "v", cell(False), cell(False), rng.randint(0, 2**62), cell(True), None)
        for i in range(500)
    ]
    batch_columns = []
    for values in zip(*rows, strict=True):
        column = numpy.empty(len(values), dtype=object)
        for i, value in enumerate(values):  # one by one: a slice would unpack the lists
            column[i] = value
        batch_columns.append(column)
    stats_columns, file_columns = normalize_columns_fn(plan, policy)(batch_columns)
    normalize = normalize_row_fn(plan, policy)

    def cells(columns: list[Any]) -> list[tuple[Any, ...]]:
        def values(column: Any) -> list[Any]:
            if column.dtype.kind == "O":
                return column.tolist()
            masks = numpy.ma.getmaskarray(column).tolist()
            data = numpy.ma.getdata(column).tolist()
            return [None if masked else value for value, masked in zip(data, masks, strict=True)]

        return list(zip(*map(values, columns), strict=True))

    assert cells(file_columns) == [normalize(row) for row in rows]
    lists = (4, 5, 7)  # the writetimes of l and m, the TTLs of l
    latest_rows = [tuple(latest(v) if p in lists else v for p, v in enumerate(r)) for r in rows]
    assert cells(stats_columns) == latest_rows
    for p in lists:  # integers now, masked where null
        assert file_columns[p].dtype == numpy.int64 and stats_columns[p].dtype == numpy.int64
    assert file_columns[6] is batch_columns[6] and file_columns[8] is batch_columns[8]
    assert normalize_columns_fn(plan, "list") is None
