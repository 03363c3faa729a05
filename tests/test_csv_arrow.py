"""Tests for transforms.csv_arrow: a CSV unit read by Arrow decodes to exactly the values
(types, float bits, None) and errors of the text path (export_files + value_decoders),
on tricky files: quoted fields with delimiters, quotes and line breaks, null and empty
text apart (with the default and another null text), far timestamps written as integers,
-0.0, NaN and infinities, integers beyond int64, chunks across Arrow's read blocks.
"""

from __future__ import annotations

import math
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from unittest import mock

import pyarrow
import pytest

from transforms import export_decode
from transforms.cql_types import parse_cql_type
from transforms.csv_arrow import arrow_column, arrow_csv_usable, field_decoders
from transforms.export_decode import ExportFileError, read_unit_columns
from transforms.export_layout import ExportLayout, LayoutField
from transforms.value_decoders import column_decoders

COLUMNS = [
    ("i", "int"),
    ("b", "bigint"),
    ("v", "varint"),
    ("d", "double"),
    ("f", "float"),
    ("o", "boolean"),
    ("ts", "timestamp"),
    ("t", "text"),
    ("m", "decimal"),
    ("x", "blob"),
    ("l", "list<int>"),
]


def layout_of(null_value: str = "", writetime_format: str = "iso") -> ExportLayout:
    fields = [LayoutField(n, "value", n, parse_cql_type(t), False) for n, t in COLUMNS]
    for name in ("d", "t"):
        fields.append(
            LayoutField(f"{name}_writetime", "writetime", name, parse_cql_type("bigint"), False)
        )
        fields.append(LayoutField(f"{name}_ttl", "ttl", name, parse_cql_type("int"), False))
    return ExportLayout("csv", "none", ",", null_value, writetime_format, "max", tuple(fields))


HEADER = "i,b,v,d,f,o,ts,t,m,x,l,d_writetime,d_ttl,t_writetime,t_ttl"
WT = "2023-11-14T22:13:21.584000Z"
TRICKY = [
    f"1,2,3,1.5,0.1,true,2024-01-02T20:00:00.003Z,plain,1.50,0x00ff,[1],{WT},10,{WT},",
    ',,,,,,,"",,,,,,,',  # every value null but an empty text
    f"-0,-9223372036854775808,123456789012345678901234567890,-0.0,-0.0,false,"
    f'-62135596800001,"a,b ""q""\r\nline\nx\ry",-1E+3,0x,[],-1,5,{WT},7',
    f"007,9223372036854775807,-9223372036854775809,NaN,Infinity,true,"
    f'253402300800000,\u00e9t\u00e9,1e-7,0xABCDEF,"[1, 2]",{WT},,,',
    f"2147483647,1,0,-Infinity,-1e-45,false,1970-01-01T00:00:00.000Z,,0,,,,,{WT},",
    "1,2,3,22630.571428571428,3.4028235e38,true,2000-02-29T23:59:59.999Z,NULL,"
    "12345678901234567890.123,0x01,[3],1700000000123456,,9999-12-31T23:59:59.999999Z,0",
    f'5,6,7,1e308,1e-400,true,0001-01-01T00:00:00.000Z," ",1,0x02,[4],{WT},1,{WT},2',
]


def canon(value: Any) -> Any:
    """A value with its type and float bits, so 0 == 0.0 == False or -0.0 == 0.0 cannot pass."""
    if isinstance(value, float):
        return ("float", struct.pack("<d", value))
    if isinstance(value, list | tuple):
        return (type(value).__name__, [canon(v) for v in value])
    return (type(value).__name__, repr(value))


def write(tmp_path: Path, lines: list[str], name: str = "part-00000.csv") -> str:
    path = tmp_path / name
    path.write_bytes(("\r\n".join([HEADER, *lines]) + "\r\n").encode())
    return str(path)


def text_path(path: str, layout: ExportLayout, chunk_rows: int) -> Iterator[Any]:
    """The chunks as the text path (export_files + value_decoders) decodes them."""
    raw = export_decode._raw_chunks(path, layout, chunk_rows)
    return export_decode._decoded_chunks(path, layout, column_decoders(layout), raw)


def both(path: str, layout: ExportLayout, chunk_rows: int) -> tuple[Any, Any]:
    """(Arrow's chunks, the text path's), canonical; Arrow's read without the text path."""
    with mock.patch.object(export_decode, "_raw_chunks", side_effect=AssertionError):
        fast = list(read_unit_columns(path, layout, chunk_rows=chunk_rows))
    return canon(fast), canon(list(text_path(path, layout, chunk_rows)))


@pytest.mark.parametrize("chunk_rows", [1, 3, 2000])
def test_tricky_values_decode_as_the_text_path(tmp_path: Path, chunk_rows: int) -> None:
    path = write(tmp_path, TRICKY)
    fast, text = both(path, layout_of(), chunk_rows)
    assert fast == text
    assert len(fast[1]) == math.ceil(len(TRICKY) / chunk_rows)


def test_another_null_text_keeps_null_and_text_apart(tmp_path: Path) -> None:
    lines = [
        'NULL,NULL,NULL,NULL,NULL,NULL,NULL,"NULL",NULL,NULL,NULL,NULL,NULL,NULL,NULL',
        f"1,1,2,3.5,1,true,1970-01-01T00:00:00.001Z,,1,0x,[],{WT},NULL,NULL,NULL",
    ]
    layout = layout_of(null_value="NULL")
    path = write(tmp_path, lines)
    fast, text = both(path, layout, 2000)
    assert fast == text
    columns = list(read_unit_columns(path, layout))[0]
    assert columns[7] == ["NULL", ""]
    assert columns[0] == [None, 1]


def test_integer_writetimes_decode_as_the_text_path(tmp_path: Path) -> None:
    lines = [f"{i},1,1,1.0,1.0,true,{i},t,1,0x,[],{i * 1_000_003},{i},-{i}," for i in range(50)]
    path = write(tmp_path, lines)
    fast, text = both(path, layout_of(writetime_format="micros"), 7)
    assert fast == text


def test_many_rows_across_arrow_blocks(tmp_path: Path) -> None:
    """More than one 1 MiB read block, chunks cut across its batches."""
    lines = [
        f"{i},{i * 7919},{i},{i / 7},{i / 3},{str(i % 2 == 0).lower()},"
        f'2024-01-02T20:00:{i % 60:02d}.{i % 1000:03d}Z,"t {i}\r\n,x",{i}.5,0x{i % 256:02x},'
        f"[{i}],{WT},{'' if i % 3 else i},{WT if i % 5 else ''},"
        for i in range(12_000)
    ]
    path = write(tmp_path, lines)
    assert Path(path).stat().st_size > 1 << 20
    fast, text = both(path, layout_of(), 777)
    assert fast == text


@pytest.mark.parametrize(
    ("line", "reason"),
    [
        (f"1,2,3,1.5,0.1,yes,,t,1,0x,[],{WT},,,", "field 'o': bad value"),
        (f"1,2,3,1.5e,0.1,true,,t,1,0x,[],{WT},,,", "field 'd': bad value"),
        (f"1,2,3,1.5,1e39,true,,t,1,0x,[],{WT},,,", "field 'f': bad value"),
        (f"1,+2,3,1.5,0.1,true,,t,1,0x,[],{WT},,,", "field 'b': bad value"),
        (f"1,2,3,1.5,0.1,true,2024-02-30T00:00:00.000Z,t,1,0x,[],{WT},,,", "field 'ts': bad"),
        ("1,2,3,1.5,0.1,true,,t,1,0x,[],,,", "CSV record 4 has 14 fields, the header 15"),
    ],
)
def test_bad_value_in_a_later_chunk_fails_as_the_text_path(
    tmp_path: Path, line: str, reason: str
) -> None:
    path = write(tmp_path, [TRICKY[0], TRICKY[4], line, TRICKY[0]])
    layout = layout_of()
    chunks = read_unit_columns(path, layout, chunk_rows=2)
    text_chunks = text_path(path, layout, 2)
    assert canon(next(chunks)) == canon(next(text_chunks))
    with pytest.raises(ExportFileError) as fast:
        next(chunks)
    with pytest.raises(ExportFileError) as text:
        next(text_chunks)
    assert str(fast.value) == str(text.value)
    assert reason in fast.value.reason


def test_plain_columns_never_reach_the_value_decoders() -> None:
    """The fast forms take plain columns (nulls included) without the text path."""

    def refuse(values: list[Any]) -> list[Any]:
        raise AssertionError(f"decoded by the text path: {values}")

    strings = pyarrow.array(["1", None, "-20"])
    assert arrow_column("integer", refuse, strings) == [1, None, -20]
    doubles = pyarrow.array(["1.5", None, "-0.0"])
    assert canon(arrow_column("double", refuse, doubles)) == canon([1.5, None, -0.0])
    assert arrow_column("boolean", refuse, pyarrow.array([None, "true", "false"])) == [
        None,
        True,
        False,
    ]
    stamps = pyarrow.array(["1970-01-01T00:00:01.000Z", None])
    assert arrow_column("millis", refuse, stamps) == [1000, None]
    assert arrow_column("micros", refuse, pyarrow.array([WT])) == [1700000001584000]
    assert arrow_column("text", refuse, pyarrow.array(["", None])) == ["", None]


def test_unusual_layouts_keep_the_text_path() -> None:
    assert arrow_csv_usable(layout_of())
    assert not arrow_csv_usable(layout_of(null_value='"'))
    tab = layout_of()
    assert not arrow_csv_usable(ExportLayout(**{**tab.__dict__, "delimiter": "::"}))


def test_writetimes_repeating_the_first_one_decode_as_the_text_path() -> None:
    """A later writetime column takes the first one's values where its text is the same,
    and decodes the rest itself: nulls on either side, other texts, a far one, a bad one."""
    other = "1999-01-01T00:00:00.000001Z"
    first = [WT, WT, None, WT, other, WT, "-62135596800000001"]
    later = [WT, None, WT, other, other, "-1", "-62135596800000001"]
    apart = [other, None, other, "5", other, other, other]
    layout = layout_of()
    kinds = ["micros", "micros", "micros"]
    decode = column_decoders(layout)[11]  # d_writetime: ISO writetimes
    fields = field_decoders(kinds, [decode] * 3)
    for field, texts in zip(fields, (first, later, apart), strict=True):
        assert canon(field(pyarrow.array(texts, pyarrow.string()))) == canon(decode(texts))
    bad = field_decoders(kinds, [decode] * 3)
    bad[0](pyarrow.array(first, pyarrow.string()))
    texts = [WT, "1999-13-01T00:00:00.000001Z", *[None] * 5]
    with pytest.raises(ValueError) as text:
        decode(texts)
    with pytest.raises(ValueError, match="month must be in 1..12") as fast:
        bad[1](pyarrow.array(texts, pyarrow.string()))
    assert str(fast.value) == str(text.value)


def typed_and_lists(path: str, layout: ExportLayout, chunk_rows: int) -> tuple[Any, Any]:
    """(the typed read's chunks as lists, the class of each of their columns), read
    without the text path."""
    from transforms.typed_column import as_list

    with mock.patch.object(export_decode, "_raw_chunks", side_effect=AssertionError):
        chunks = list(read_unit_columns(path, layout, chunk_rows=chunk_rows, typed=True))
    kinds = [[type(c).__name__ for c in chunk] for chunk in chunks]
    return [[as_list(c) for c in chunk] for chunk in chunks], kinds


@pytest.mark.parametrize("chunk_rows", [1, 3, 2000])
def test_typed_columns_hold_the_text_paths_values(tmp_path: Path, chunk_rows: int) -> None:
    path = write(tmp_path, TRICKY)
    typed, _ = typed_and_lists(path, layout_of(), chunk_rows)
    assert canon(typed) == canon(list(text_path(path, layout_of(), chunk_rows)))


def test_typed_columns_exact_values(tmp_path: Path) -> None:
    """Nulls, negative numbers, int64's extremes, -0.0, both ends of the fixed-width
    timestamps; a far timestamp (an integer text) and an int64 overflow leave theirs as lists."""
    lines = [
        f"-7,9223372036854775807,1,-0.0,-2.5,false,0001-01-01T00:00:00.000Z,a,1,0x,[],{WT},,,",
        ",-9223372036854775808,2,,,,9999-12-31T23:59:59.999Z,,1,0x,[],,,1999-01-01T00:00:00"
        ".000001Z,",
        f'0,0,3,1e308,3.4028235e38,true,,"",1,0x,[],{WT},86400,{WT},',
    ]
    path = write(tmp_path, lines)
    [columns], [typed] = typed_and_lists(path, layout_of(), 2000)
    assert canon(columns[:7]) == canon(
        [
            [-7, None, 0],
            [2**63 - 1, -(2**63), 0],
            [1, 2, 3],
            [-0.0, None, 1e308],
            [-2.5, None, 3.4028234663852886e38],
            [False, None, True],
            [-62135596800000, 253402300799999, None],
        ]
    )
    assert columns[7] == ["a", None, ""]
    assert columns[11:] == [
        [1700000001584000, None, 1700000001584000],
        [None, None, 86400],
        [None, 915148800000001, 1700000001584000],
        [None, None, None],
    ]
    assert typed == ["TypedColumn"] * 7 + ["TextColumn"] + ["list"] * 3 + ["TypedColumn"] * 3 + [
        "list"
    ]
    far = [f"1,1,1,1.0,1.0,true,253402300800000,t,1,0x,[],{WT},,,"]
    [columns], [typed] = typed_and_lists(write(tmp_path, far, "far.csv"), layout_of(), 2000)
    assert columns[6] == [253402300800000] and typed[6] == "list"  # noqa: PT018


def test_later_writetimes_typed_as_the_text_path() -> None:
    """``_like`` over a typed first writetime column: same texts, nulls on either side,
    other texts in the fixed width, and one that is not (the whole column as a list)."""
    from transforms.typed_column import TypedColumn, as_list

    other = "1999-01-01T00:00:00.000001Z"
    first = [WT, WT, None, WT, other, WT]
    later = [WT, None, WT, other, other, "1970-01-01T00:00:00.000000Z"]
    apart = [WT, None, WT, "-62135596800000001", other, other]
    decode = column_decoders(layout_of())[11]
    fields = field_decoders(["micros"] * 3, [decode] * 3, typed=True)
    got = [
        f(pyarrow.array(t, pyarrow.string()))
        for f, t in zip(fields, (first, later, apart), strict=True)
    ]
    assert [isinstance(c, TypedColumn) for c in got] == [True, True, False]
    assert [as_list(c) for c in got] == [decode(t) for t in (first, later, apart)]
    assert as_list(got[1]) == [
        1700000001584000,
        None,
        1700000001584000,
        915148800000001,
        915148800000001,
        0,
    ]


@pytest.mark.parametrize(
    "body",
    [
        "1\n2\r\n",  # a bare LF inside a record
        "1\r2\r\n",  # a bare CR
        "1\r\r\n",  # a CR before the CRLF
        "1\r\n\n2\r\n",  # an LF at the start of a record
        "1\n\r2\r\n",  # LF then CR
        "\u00e9\r\u00e9\r\n",  # next to non-ASCII text
    ],
)
def test_bare_line_breaks_outside_quotes_are_refused(body: str) -> None:
    from transforms.export_files import check_csv

    layout = layout_of()
    with pytest.raises(ExportFileError, match="a bare line break outside quotes"):
        check_csv("f.csv", [HEADER + "\r\n" + body], layout, None)


def test_line_ends_count_the_records() -> None:
    from transforms.export_files import check_csv

    layout = layout_of()
    body = "".join(f"{i},\u00e9\r\n" for i in range(5))
    check_csv("f.csv", [HEADER + "\r\n", body[:7], body[7:]], layout, 5)
    with pytest.raises(ExportFileError, match="holds 5 rows but its export marker records 4"):
        check_csv("f.csv", [HEADER + "\r\n" + body], layout, 4)


def test_a_wrong_field_count_without_quotes_fails_as_the_text_path(tmp_path: Path) -> None:
    """A piece without a quote is read with quoting off: a short record still fails with
    the text path's message, after the chunks before it."""
    good = f"1,2,3,1.5,0.1,true,1970-01-01T00:00:00.001Z,t,1,0x,[1],{WT},,,"
    path = write(tmp_path, [good, good, "1,2,3,1.5,0.1,true,,t,1,0x,[],,,", good])
    chunks = read_unit_columns(path, layout_of(), chunk_rows=2, typed=True)
    assert len(next(chunks)[0]) == 2
    with pytest.raises(ExportFileError, match="CSV record 4 has 14 fields, the header 15"):
        next(chunks)
