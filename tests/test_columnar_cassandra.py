"""Pages read as columns give byte-identical CSV and Parquet: every table exported twice on a
real node, through the column path (the default for both) and through the row path, files
compared byte for byte (docs/architecture.md, "Columnar reading").

TTL columns are left out of these exports: a TTL is the seconds a cell has left, so two
exports a second apart differ there whatever the path (TTL texts are compared on the same
values in ``tests/test_columnar.py``).
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Any

import fastavro
import pyarrow.parquet as pq
import pytest

from pipeline import graph
from tests import helpers
from tests.test_export_types import WT_COLUMNS, all_types, collections_table, edge
from transforms.formats.avro import AvroWriter
from transforms.formats.csv import CsvWriter
from transforms.formats.parquet_arrow import ParquetWriter

__all__ = ["all_types", "collections_table", "edge"]  # fixtures of test_export_types, used here

# The 8-, 4- and 2-byte patterns the column parser fills numeric arrays with, as values:
# a page holding one of them is read again as rows (transforms.columnar).
MARK_BIGINT = int.from_bytes(b"\x7f\xf4\xde\xad\xbe\xef\x5a\xa5", "big", signed=True)
MARK_INT = int.from_bytes(b"\x7f\xa5\xde\xad", "big", signed=True)
MARK_SMALLINT = int.from_bytes(b"\x7f\xa5", "big", signed=True)

NUMBER_ROWS = [
    # (ck, t, b, i, s, d, f, ts, bo, writetime)
    (0, "plain", 1, 2, 3, "0.1", "0.1", "0", "true", 1_700_000_000_000_000),
    (1, "a,b", -(2**63), -(2**31), -(2**15), "NaN", "NaN", "-1", "false", -5),
    (2, 'say "hi"', 2**63 - 1, 2**31 - 1, 2**15 - 1, "Infinity", "Infinity", "1", "true", 0),
    (3, "line1\nline2", 0, 0, 0, "-Infinity", "-Infinity", "-62135596800000", "false", 1),
    (4, "", 7, 7, 7, "-0.0", "-0.0", "-62135596800001", "true", 253_402_300_800_000_000),
    (
        5,
        "NULL",
        8,
        8,
        8,
        "1e16",
        "3.4028235e38",
        "253402300799999",
        "false",
        253_402_300_799_999_999,
    ),
    (6, "0", 9, 9, 9, "5e-324", "1e-45", "253402300800000", "true", -62_135_596_800_000_001),
    (7, "\r", 10, 10, 10, "1.7976931348623157e308", "1.5", "4102444800000", "false", 42),
]
# Only in partition 0: values equal to the markers, and empty numeric values. A page
# holding them is read as rows; the pages of the other partitions as columns.
MARKER_ROW = (8, "1970", MARK_BIGINT, MARK_INT, MARK_SMALLINT, "2.5", "2.5", "86399999", "true", 43)


@pytest.fixture(scope="module")
def numbers(session: Any, ks: str) -> str:
    """Numbers at their edges, text needing quotes, timestamps and writetimes outside years
    1-9999, nulls, in 12 partitions of 10 rows (so that partitions straddle pages of 7 rows);
    empty numeric values and values equal to the parser's marker in partition 0."""
    table = f"{ks}.numbers"
    session.execute(
        f"CREATE TABLE {table} (pk bigint, ck int, t text, b bigint, i int, s smallint, "
        "d double, f float, ts timestamp, bo boolean, PRIMARY KEY (pk, ck))"
    )
    for pk in range(12):
        for ck, t, b, i, s, d, f, ts, bo, wt in NUMBER_ROWS + ([MARKER_ROW] if pk == 0 else []):
            text = t.replace("'", "''")
            session.execute(
                f"INSERT INTO {table} (pk, ck, t, b, i, s, d, f, ts, bo) VALUES ({pk}, {ck}, "
                f"'{text}', {b}, {i}, {s}, {d}, {f}, {ts}, {bo}) USING TIMESTAMP {wt + pk}"
            )
        # A row of nulls, a row never written but its key, and empty numeric values.
        session.execute(
            f"INSERT INTO {table} (pk, ck, t, b, i, d) VALUES ({pk}, 20, null, null, 5, null)"
        )
        session.execute(f"INSERT INTO {table} (pk, ck) VALUES ({pk}, 21)")
        if pk == 0:
            session.execute(
                f"INSERT INTO {table} (pk, ck, b, i, d, f, ts) VALUES ({pk}, 22, "
                "blobAsBigint(0x), blobAsInt(0x), blobAsDouble(0x), blobAsFloat(0x), "
                "blobAsTimestamp(0x))"
            )
    return table


def _files(out: Path) -> dict[str, bytes]:
    """Each data file's bytes (gzip decompressed: its header holds the time it was written;
    an Avro file's random sync marker zeroed)."""
    files = {}
    for p in sorted((out / "data").iterdir()):
        data = p.read_bytes()
        if p.suffix == ".gz":
            data = gzip.decompress(data)
        elif p.suffix == ".avro":
            data = helpers.avro_without_sync(data)
        files[p.name] = data
    return files


def _export_both(
    monkeypatch: pytest.MonkeyPatch, hosts: str, table: str, base: Path, options: tuple[str, ...]
) -> tuple[dict[str, bytes], dict[str, bytes], int]:
    """(files of the column path, files of the row path, column batches written)."""
    calls: list[int] = []

    def counted(writer_class: Any) -> Any:
        write_columns = writer_class.write_columns

        def write(self: Any, columns: Any) -> None:
            calls.append(len(columns))
            write_columns(self, columns)

        return write

    with monkeypatch.context() as patch:
        for writer_class in (CsvWriter, ParquetWriter, AvroWriter):
            patch.setattr(writer_class, "write_columns", counted(writer_class))
        helpers.export(hosts, table, base / "columns", "--splits", "3", *options)
        column_batches = len(calls)
        patch.setattr(graph, "takes_columns", lambda *args: False)
        helpers.export(hosts, table, base / "rows", "--splits", "3", *options)
    assert len(calls) == column_batches  # the row path wrote no columns
    return _files(base / "columns"), _files(base / "rows"), column_batches


WT = ("--writetime-columns", "*")
NUMBER_OPTIONS = [
    WT,
    (*WT, "--fetch-size", "7"),
    (*WT, "--writetime-format", "micros", "--delimiter", ";", "--null-value", "NULL"),
    (*WT, "--delimiter", "-", "--null-value", "1970"),
    (*WT, "--delimiter", "0", "--null-value", "1", "--fetch-size", "13"),
    (*WT, "--delimiter", "T", "--null-value", "NaN", "--compression", "gzip"),
    ("--writetime-columns", "none", "--delimiter", "\\t", "--null-value", "\\N"),
    (*WT, "--writetime-format", "micros", "--delimiter", "e", "--null-value", "-"),
    (*WT, "--format", "parquet", "--fetch-size", "7"),
    (*WT, "--format", "parquet", "--writetime-format", "micros", "--parquet-codec", "snappy"),
    (*WT, "--format", "avro", "--fetch-size", "7"),
    (*WT, "--format", "avro", "--writetime-format", "micros", "--avro-codec", "null"),
]


@pytest.mark.parametrize("options", NUMBER_OPTIONS, ids=lambda o: " ".join(o))
def test_numbers_export_the_same_bytes_through_columns_and_rows(
    monkeypatch: pytest.MonkeyPatch,
    hosts: str,
    numbers: str,
    tmp_path: Path,
    options: tuple[str, ...],
) -> None:
    columns, rows, batches = _export_both(monkeypatch, hosts, numbers, tmp_path, options)
    assert batches > 0
    assert columns == rows
    if "parquet" in options:  # 12 partitions of 10 rows, and 2 more in partition 0
        assert (
            sum(pq.ParquetFile(io.BytesIO(data)).metadata.num_rows for data in rows.values()) == 122
        )
    elif "avro" in options:
        blocks = [b for d in rows.values() for b in fastavro.block_reader(io.BytesIO(d))]
        assert sum(b.num_records for b in blocks) == 122
    else:
        assert sum(data.count(b"\n") for data in rows.values()) > 0


# Writetimes of every column that has one value per cell. A non-frozen collection's
# per-element writetimes are made one per cell on the columns under ``max`` and ``min``;
# only ``list``, whose files hold the lists, makes the export read rows.
MULTICELL = {"c_list", "c_map", "c_nested", "c_set", "c_set_blob", "c_udt"}
SINGLE_CELL_WT = ("--writetime-columns", ",".join(c for c in WT_COLUMNS if c not in MULTICELL))


@pytest.mark.parametrize(
    ("table", "options", "columnar"),
    [
        ("all_types", SINGLE_CELL_WT, True),
        ("all_types", (*SINGLE_CELL_WT, "--writetime-format", "micros", "--delimiter", "|"), True),
        ("all_types", ("--writetime-columns", "none", "--null-value", "NULL"), True),
        ("all_types", WT, True),
        ("all_types", (*WT, "--collection-writetime", "min"), True),
        ("all_types", (*WT, "--collection-writetime", "list"), False),
        ("edge", ("--writetime-columns", "t,b,fl,i"), True),
        (
            "edge",
            ("--writetime-columns", "t,b,fl,i", "--null-value", "NULL", "--delimiter", ";"),
            True,
        ),
        ("edge", WT, True),
        ("collections_table", ("--writetime-columns", "none"), True),
        ("collections_table", WT, True),
        ("all_types", (*SINGLE_CELL_WT, "--format", "parquet"), True),
        ("all_types", (*WT, "--format", "parquet"), True),
        ("all_types", (*WT, "--format", "parquet", "--collection-writetime", "min"), True),
        ("edge", ("--writetime-columns", "t,b,fl,i", "--format", "parquet"), True),
        ("collections_table", ("--writetime-columns", "none", "--format", "parquet"), True),
        ("all_types", (*SINGLE_CELL_WT, "--format", "avro"), True),
        ("all_types", (*WT, "--format", "avro"), True),
        ("all_types", (*WT, "--format", "avro", "--collection-writetime", "list"), False),
        ("edge", ("--writetime-columns", "t,b,fl,i", "--format", "avro"), True),
        ("collections_table", ("--writetime-columns", "none", "--format", "avro"), True),
    ],
)
def test_every_type_exports_the_same_bytes_through_columns_and_rows(
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    hosts: str,
    tmp_path: Path,
    table: str,
    options: tuple[str, ...],
    columnar: bool,
) -> None:
    name = request.getfixturevalue(table)
    columns, rows, batches = _export_both(monkeypatch, hosts, name, tmp_path, options)
    assert (batches > 0) == columnar
    assert columns == rows
