"""Which rows of a chunk the columnar restore writes as one statement
(``transforms.restore_chunk.shared_cells``): rows whose present cells share one
writetime and one exported TTL, with the bits of those cells. Pure logic on made-up
columns; the bytes written are compared with the row path's on a real node in
tests/test_restore_columnar.py."""

from __future__ import annotations

from typing import Any

from transforms.restore_chunk import MAX_CODED_COLUMNS, shared_cells

C = b"\x00\x00\x00\x01x"  # an encoded cell


def test_rows_whose_present_cells_share_a_writetime_and_ttl() -> None:
    encoded = [
        [C, C, None, C, None, C, C, C],
        [C, None, C, C, None, C, C, C],
        [C, C, C, C, None, C, C, C],
    ]
    stamps = [
        [5, 5, None, 5, None, 5, 5, 5],
        [5, None, 6, 5, None, 5, 5, 5],
        [5, 5, 6, 6, None, 5, 5, 5],
    ]
    ttls = [
        [None, 9, None, None, None, 9, None, 0],
        [None, None, 9, None, None, 9, 9, None],
        [None, 9, 9, None, None, 8, None, None],
    ]
    codes, shared_stamps, shared_ttls, ttl_none, present = shared_cells(encoded, stamps, ttls, 8)
    assert codes.tolist() == [
        0b111,  # all at writetime 5, no TTL
        0b101,  # the null cell left out: 5 and TTL 9 for both others
        0b110,  # the null cell left out: 6 and TTL 9 for both others
        -1,  # writetimes 5 and 6
        -1,  # no cell present: its row marker
        -1,  # TTLs 9 and 8
        -1,  # TTL 9 next to none
        -1,  # TTL 0 next to none (not a TTL the exporter writes, still not the same)
    ]
    assert shared_stamps[:3].tolist() == [5, 5, 6]
    assert shared_ttls[1:3].tolist() == [9, 9]
    assert ttl_none[:3].tolist() == [True, False, False]
    assert present[:3].tolist() == [3, 2, 2]


def test_a_present_cell_without_writetime_is_not_shared() -> None:
    codes, *_ = shared_cells([[C, C]], [[None, 3]], [[None, None]], 2)
    assert codes.tolist() == [-1, 0b1]
    # writetime 0 next to none (None is held as 0 in the arrays)
    codes, *_ = shared_cells([[C], [C]], [[0], [None]], [[None], [None]], 1)
    assert codes.tolist() == [-1]


def test_writetimes_beyond_int64_go_row_by_row() -> None:
    codes, *_ = shared_cells([[C, C]], [[2**63, 1]], [[None, None]], 2)
    assert codes.tolist() == [-1, -1]


def test_tables_wider_than_a_code_go_row_by_row() -> None:
    width = MAX_CODED_COLUMNS + 1
    codes, *_ = shared_cells([[C]] * width, [[1]] * width, [[None]] * width, 1)
    assert codes.tolist() == [-1]


def test_a_table_of_key_columns_only_goes_row_by_row() -> None:
    codes, *_ = shared_cells([], [], [], 3)
    assert codes.tolist() == [-1, -1, -1]


def test_typed_writetimes_and_ttls_share_as_lists() -> None:
    """Writetimes and TTLs given as TypedColumn (the CSV reader's) give what lists give;
    a row's item is the list's (a Python int, None where null)."""
    import numpy

    from transforms.typed_column import TypedColumn, as_list, has_null

    encoded = [[C, C, None, C], [C, None, C, C]]
    stamps = [[5, 5, None, -(2**63)], [5, None, 6, 2**63 - 1]]
    ttls = [[None, 9, None, None], [None, None, 9, 1]]

    def typed(column: list[Any]) -> TypedColumn:
        nulls = numpy.array([v is None for v in column])
        return TypedColumn(numpy.array([v or 0 for v in column], numpy.int64), nulls)

    lists = shared_cells(encoded, stamps, ttls, 4)
    arrays = shared_cells(encoded, [typed(c) for c in stamps], [typed(c) for c in ttls], 4)
    assert [a.tolist() for a in arrays] == [a.tolist() for a in lists]
    assert lists[0].tolist() == [0b11, 0b01, 0b10, -1]
    column = typed(stamps[0])
    assert [column[i] for i in range(4)] == stamps[0] and type(column[0]) is int  # noqa: PT018
    assert as_list(column) == stamps[0] and has_null(column) and len(column) == 4  # noqa: PT018
    assert not has_null(TypedColumn(numpy.array([1]), numpy.array([False])))
    floats = TypedColumn(numpy.array([1.5]))
    assert shared_cells([[C]], [floats], [[None]], 1)[0].tolist() == [-1]


def test_known_null_rows_give_what_the_encoded_columns_give() -> None:
    """``nulls`` (the decoded columns' null masks, None where unknown) stand for looking
    at the encoded columns: the same codes, and null cells filled with b""."""
    import numpy

    from transforms.restore_chunk import chunk_cells
    from transforms.typed_column import TextColumn, TypedColumn, null_mask

    encoded = [[C, None, C], [None, C, C], [C, C, C]]
    stamps = [[5, None, 5], [None, 5, 6], [5, 5, 6]]
    ttls = [[None, None, None]] * 3
    nulls = [numpy.array([False, True, False]), None, numpy.zeros(3, bool)]
    looked = chunk_cells(encoded, stamps, ttls, 3)
    known = chunk_cells(encoded, stamps, ttls, 3, nulls)
    assert [a.tolist() for a in known[4:]] == [a.tolist() for a in looked[4:]]
    assert known.codes.tolist() == [0b101, 0b110, -1]
    assert known.filled == looked.filled == [[C, b"", C], [b"", C, C], [C, C, C]]
    assert null_mask(TypedColumn(numpy.array([1, 2]))).tolist() == [False, False]
    assert null_mask(TextColumn(pyarrow_strings(["a", None]))).tolist() == [False, True]
    assert null_mask([1, None]) is None


def pyarrow_strings(texts: list[Any]) -> Any:
    import pyarrow

    return pyarrow.array(texts, pyarrow.string())
