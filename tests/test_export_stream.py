"""Tests for the streamed reading of unit files (transforms.export_stream and the two
passes of transforms.export_files): any block size gives the same rows, errors name the
right place, and a unit file is never held whole."""

from __future__ import annotations

import gzip
import tracemalloc
from pathlib import Path

import pytest

from tests.test_export_decode import (
    SINKS,
    all_types_plan,
    assert_rows_equal,
    error_of,
    expected_rows,
    manifest_of,
    rewrite,
    small_plan,
    source_rows,
    write_unit,
    written,
)
from transforms import export_stream
from transforms.export_decode import (
    ExportFileError,
    ExportLayout,
    read_unit_columns,
    read_unit_rows,
)
from transforms.formats import SinkConfig


@pytest.mark.parametrize("block_bytes", [1, 7, 64])
@pytest.mark.parametrize(("sink", "policy"), SINKS, ids=lambda s: getattr(s, "extension", s))
def test_every_type_round_trips_in_small_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sink: SinkConfig, policy: str, block_bytes: int
) -> None:
    """Blocks that cut records, quoted fields, CRLFs, ``",\\n"`` and UTF-8 characters
    anywhere give the same rows (the text values hold quotes, line breaks and non-ASCII)."""
    monkeypatch.setattr(export_stream, "BLOCK_BYTES", block_bytes)
    plan = all_types_plan()
    path = write_unit(tmp_path / "part-00000", plan, sink, policy, source_rows(plan))
    layout = ExportLayout.from_manifest(manifest_of(plan, sink, policy))
    assert_rows_equal(list(read_unit_rows(path, layout, chunk_rows=2)), expected_rows(plan, policy))


@pytest.mark.parametrize("fmt", ["csv", "jsonl", "json", "avro"])
def test_chunks_are_chunk_rows_long(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fmt: str
) -> None:
    """Chunks hold ``chunk_rows`` rows (the last the rest), whatever the blocks."""
    monkeypatch.setattr(export_stream, "BLOCK_BYTES", 100)
    path, layout = written(tmp_path, SinkConfig(fmt, writetime_format="micros"), rows=50)
    chunks = list(read_unit_columns(path, layout, 50, chunk_rows=7))
    assert [len(c[0]) for c in chunks] == [7] * 7 + [1]
    assert [pk for c in chunks for pk in c[0]] == list(range(50))


def test_not_utf8_names_the_byte_across_blocks(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(export_stream, "BLOCK_BYTES", 3)
    path, layout = written(tmp_path, SinkConfig("jsonl"), rows=3)
    data = Path(path).read_bytes()
    at = data.index(b"text 1")
    rewrite(path, lambda b: b[:at] + b"\xc3(" + b[at + 2 :])
    assert error_of(path, layout) == f"not UTF-8 at byte {at}"


def test_truncated_utf8_character_at_the_end(tmp_path: Path) -> None:
    path, layout = written(tmp_path, SinkConfig("jsonl"), rows=3)
    size = len(Path(path).read_bytes())
    rewrite(path, lambda b: b + b"\xe2\x9c")
    assert error_of(path, layout) == f"not UTF-8 at byte {size}"


def test_json_bad_row_names_its_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(export_stream, "BLOCK_BYTES", 50)
    path, layout = written(tmp_path, SinkConfig("json"))
    rewrite(path, lambda b: b.replace(b'{"pk":3,', b'{"pk":3', 1))
    assert error_of(path, layout) == "bad JSON at line 5 column 8: Expecting ',' delimiter"


def test_json_not_one_row_per_line(tmp_path: Path) -> None:
    """Rows not separated at their line ends are refused before any row is decoded."""
    path, layout = written(tmp_path, SinkConfig("json"), rows=3)
    rewrite(path, lambda b: b.replace(b",\n", b"\n", 1))
    with pytest.raises(ExportFileError) as caught:
        read_unit_rows(path, layout)
    assert caught.value.reason == "a JSON export file holds one array, one row per line"


def test_csv_quote_left_open_at_the_end(tmp_path: Path) -> None:
    path, layout = written(tmp_path, SinkConfig("csv"), rows=3)
    rewrite(path, lambda b: b[:-2] + b'"\r\n')
    assert error_of(path, layout) == "malformed CSV: an unbalanced or stray quote"


def test_gzip_members_split_by_blocks(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two gzip members, read 5 bytes at a time, decode as one text."""
    monkeypatch.setattr(export_stream, "BLOCK_BYTES", 5)
    path, layout = written(tmp_path, SinkConfig("csv", "gzip"), rows=20)
    body = gzip.decompress(Path(path).read_bytes())
    Path(path).write_bytes(gzip.compress(body[:33]) + gzip.compress(body[33:]))
    assert [r.values["pk"] for r in read_unit_rows(path, layout, 20)] == list(range(20))


@pytest.mark.parametrize("sink", [SinkConfig("csv"), SinkConfig("jsonl", "gzip")], ids=str)
def test_a_unit_file_is_never_held_whole(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, sink: SinkConfig
) -> None:
    """Reading a unit of more than 4 MB of text (64 KB blocks, chunks of 200 rows) allocates
    at most a quarter of that at any time, and no more for a larger unit (the code before
    held the file's bytes and its text, 2 to 3 times the text's size)."""
    monkeypatch.setattr(export_stream, "BLOCK_BYTES", 1 << 16)
    plan = small_plan()
    rows = [
        (i, f"text {i} " + "x" * 60, [i, i + 1], i, [i, i], None, [i, None]) for i in range(20_000)
    ]
    path = write_unit(tmp_path / "big", plan, sink, "list", rows)
    layout = ExportLayout.from_manifest(manifest_of(plan, sink, "list"))
    data = Path(path).read_bytes()
    text_size = len(gzip.decompress(data) if sink.compression == "gzip" else data)
    assert text_size > 4_000_000
    tracemalloc.start()
    try:
        chunks = read_unit_columns(path, layout, 20_000, chunk_rows=200)
        count = sum(len(chunk[0]) for chunk in chunks)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert count == 20_000
    assert peak < text_size // 4


def test_parquet_rows_the_same_in_any_chunk(tmp_path: Path) -> None:
    """A Parquet unit read 3 rows at a time (batches across row groups of 4) gives the rows
    it gives read at once, in order."""
    sink = SinkConfig("parquet", parquet_row_group_rows=4)
    path, layout = written(tmp_path, sink, rows=10)
    small = list(read_unit_rows(path, layout, 10, chunk_rows=3))
    assert [r.values["pk"] for r in small] == list(range(10))
    assert small == list(read_unit_rows(path, layout, 10))


def test_parquet_truncated_fails_before_any_row(tmp_path: Path) -> None:
    path, layout = written(tmp_path, SinkConfig("parquet"), rows=10)
    rewrite(path, lambda b: b[: len(b) // 2])
    with pytest.raises(ExportFileError) as caught:
        read_unit_rows(path, layout, 10)
    assert caught.value.reason.startswith("not a readable Parquet file (ArrowInvalid: ")


def test_parquet_row_count_checked_before_any_row(tmp_path: Path) -> None:
    path, layout = written(tmp_path, SinkConfig("parquet"), rows=10)
    with pytest.raises(ExportFileError) as caught:
        read_unit_rows(path, layout, 11)
    assert caught.value.reason == (
        "holds 10 rows but its export marker records 11: the file is truncated or was replaced"
    )
