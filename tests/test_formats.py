"""The format registry and the format modules' pure logic (no Cassandra).

Writers are run on literal rows of a plan built by hand; their files are read back with
fastavro / pyarrow and compared with literal values.
"""

from __future__ import annotations

import io
import math
from pathlib import Path
from typing import Any

import fastavro
import numpy as np
import pytest

from transforms import cql_types, formats
from transforms.formats.avro_encoding import interleave, nullable_column_encoder, varints
from transforms.formats.base import SinkConfig
from transforms.table_plan import ColumnPlan, TablePlan


def _fastavro_bytes(schema: dict[str, Any], records: list[dict[str, Any]]) -> bytes:
    parsed = fastavro.parse_schema(schema)
    buffer = io.BytesIO()
    for record in records:
        fastavro.schemaless_writer(buffer, parsed, record)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "value",
    [
        0,
        -1,
        1,
        63,
        -64,
        64,
        -65,
        2**31 - 1,
        -(2**31),
        2**62,
        2**63 - 1,
        -(2**63),
        1_700_000_000_123_456,
    ],
)
def test_varints_are_avro_zigzag_longs(value: int) -> None:
    data, lengths = varints(np.array([value, 5], dtype=np.int64))
    assert data.tobytes() == _fastavro_bytes("long", [value, 5])  # type: ignore[arg-type]
    assert lengths.tolist() == [len(_fastavro_bytes("long", [value])), 1]  # type: ignore[arg-type]


# (Avro type of the non-null branch, column values with nulls)
COLUMNS: list[tuple[Any, list[Any]]] = [
    ("int", [1, None, -(2**31), 2**31 - 1, 0]),
    ("long", [None, 2**63 - 1, -(2**63), 1_700_000_000_123_456, -1]),
    ({"type": "long", "logicalType": "timestamp-micros"}, [5, 6, None, 7, 8]),
    ("boolean", [True, False, None, True, False]),
    ("double", [0.1, math.nan, math.inf, None, -0.0]),
    ("float", [0.5, -math.inf, None, 1.25, 3.0]),
    ("string", ["", "héllo ✓ 🎉", None, "a" * 300, "x"]),
    ({"type": "string", "logicalType": "uuid"}, [None, None, None, None, None]),
    ("bytes", [b"", b"\x00\xff", None, bytes(200), b"z"]),
    ({"type": "array", "items": ["null", "int"]}, [[1, None, 3], [], None, [2], [None]]),
    ({"type": "map", "values": "long"}, [{"a": 1}, None, {}, {"b": -2, "c": 3}, {"d": 0}]),
    (
        {
            "type": "record",
            "name": "duration",
            "fields": [{"name": "months", "type": "int"}, {"name": "nanoseconds", "type": "long"}],
        },
        [{"months": 1, "nanoseconds": -5}, None, {"months": 0, "nanoseconds": 0}, None, None],
    ),
]


def test_columns_interleave_to_fastavro_records() -> None:
    """Every kind of column, nulls in most, all nulls in one: the batch's bytes equal
    fastavro's encoding of the same records, field after field."""
    fields = [
        {"name": f"c{i}", "type": ["null", schema], "default": None}
        for i, (schema, _) in enumerate(COLUMNS)
    ]
    record_schema = {"type": "record", "name": "row", "fields": fields}
    columns = [values for _, values in COLUMNS]
    rows = len(columns[0])
    runs = [
        run
        for (schema, _), column in zip(COLUMNS, columns, strict=True)
        for run in nullable_column_encoder(schema, None)(column)
    ]
    records = [{f"c{i}": column[r] for i, column in enumerate(columns)} for r in range(rows)]
    assert interleave(runs, rows) == _fastavro_bytes(record_schema, records)


def test_converter_applies_to_non_null_values_only() -> None:
    encode = nullable_column_encoder("string", str)
    runs = encode([7, None, -3])
    expected = _fastavro_bytes(["null", "string"], ["7", None, "-3"])  # type: ignore[arg-type]
    assert interleave(runs, 3) == expected


def _plan(*columns: tuple[str, str], writetimes: tuple[str, ...] = ()) -> TablePlan:
    plans = tuple(
        ColumnPlan(
            name, cql_types.parse_cql_type(cql_type), "partition_key" if i == 0 else "regular"
        )
        for i, (name, cql_type) in enumerate(columns)
    )
    return TablePlan("ks", "t", plans, writetimes, ())


@pytest.mark.parametrize("codec", ["deflate", "zstandard", "null"])
def test_avro_writer_file_reads_back_in_blocks(tmp_path: Path, codec: str) -> None:
    """Enough rows for several blocks, in each codec: fastavro reads every record back,
    values exact."""
    plan = _plan(("k", "int"), ("t", "text"), ("d", "double"), writetimes=("t", "d"))
    rows = [
        (i, None if i % 7 == 0 else f"text {i}", i / 3, 1_700_000_000_000_000 + i, None)
        for i in range(20_000)
    ]
    path = str(tmp_path / "part.avro")
    sink = SinkConfig(format="avro", writetime_format="micros", avro_codec=codec)
    writer = formats.get_format("avro").open_writer(path, plan, sink, "max")
    for start in range(0, len(rows), 1000):
        writer.write_rows(rows[start : start + 1000])
    writer.close()
    with open(path, "rb") as handle:
        blocks = list(fastavro.block_reader(handle))
    assert len(blocks) > 1 and sum(b.num_records for b in blocks) == len(rows)
    with open(path, "rb") as handle:
        reader = fastavro.reader(handle)
        assert reader.metadata["avro.codec"] == codec
        records = [tuple(r.values()) for r in reader]
    assert records == rows


def test_registry_entries() -> None:
    assert list(formats.FORMATS) == ["csv", "jsonl", "json", "avro", "parquet"]
    extensions = {
        name: f.file_extension(SinkConfig(compression="gzip"))
        for name, f in formats.FORMATS.items()
    }
    assert extensions == {
        "csv": ".csv.gz",
        "jsonl": ".jsonl.gz",
        "json": ".json.gz",
        "avro": ".avro",
        "parquet": ".parquet",
    }
    with pytest.raises(
        ValueError, match="format must be one of csv, jsonl, json, avro, parquet, not 'orc'"
    ):
        formats.get_format("orc")
    with pytest.raises(
        ValueError, match="--compression applies to text formats; avro compresses with --avro-codec"
    ):
        formats.check_sink(SinkConfig(format="avro", compression="zstd"))
    with pytest.raises(
        ValueError, match="Parquet codec must be one of zstd, snappy, gzip, none, not 'lz4'"
    ):
        SinkConfig(format="parquet", parquet_codec="lz4")


def test_parquet_values_outside_years_1_to_9999_round_trip(tmp_path: Path) -> None:
    """Timestamps, dates and writetimes far outside what datetime holds are stored as
    their integers and read back by read_parquet_rows as what the driver binds."""
    import datetime

    import pyarrow.parquet as pq
    from cassandra.util import Date

    from transforms.formats.parquet import read_parquet_rows

    plan = _plan(
        ("k", "int"),
        ("ts", "timestamp"),
        ("d", "date"),
        ("l", "list<timestamp>"),
        writetimes=("ts",),
    )
    far_ms = 2**62  # about 146 million years after 1970
    rows = [
        (
            1,
            far_ms,
            Date(-(2**31)),
            [datetime.datetime(2023, 11, 14, 22, 13, 20, 123000)],
            -(2**62),
        ),
        (2, -1, Date(2**31 - 1), None, 1_700_000_000_123_456),
    ]
    path = str(tmp_path / "part.parquet")
    writer = formats.get_format("parquet").open_writer(
        path, plan, SinkConfig(format="parquet"), "max"
    )
    writer.write_rows(rows)
    writer.close()
    raw = pq.read_table(path)
    assert raw.column("ts").cast("int64").to_pylist() == [far_ms, -1]
    assert raw.column("d").cast("int32").to_pylist() == [-(2**31), 2**31 - 1]
    assert raw.column("ts_writetime").cast("int64").to_pylist() == [-(2**62), 1_700_000_000_123_456]
    back = list(read_parquet_rows(path))
    utc = datetime.UTC
    assert back == [
        {
            "k": 1,
            "ts": far_ms,
            "d": Date(-(2**31)),
            "l": [datetime.datetime(2023, 11, 14, 22, 13, 20, 123000, tzinfo=utc)],
            "ts_writetime": -(2**62),
        },
        {
            "k": 2,
            "ts": datetime.datetime(1969, 12, 31, 23, 59, 59, 999000, tzinfo=utc),
            "d": Date(2**31 - 1),
            "l": None,
            "ts_writetime": 1_700_000_000_123_456,
        },
    ]
    assert back[0]["d"].days_from_epoch == -(2**31)


def test_parquet_row_groups_close_early_at_32_mb(tmp_path: Path) -> None:
    import pyarrow.parquet as pq

    plan = _plan(("k", "int"), ("t", "text"))
    path = str(tmp_path / "part.parquet")
    writer = formats.get_format("parquet").open_writer(
        path, plan, SinkConfig(format="parquet"), "max"
    )
    for k in range(40):  # one MiB of text per row, one row per batch
        writer.write_rows([(k, "x" * 2**20)])
    writer.close()
    metadata = pq.ParquetFile(path).metadata
    assert [metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)] == [32, 8]


def test_vector_is_a_list_because_pyarrow_cannot_read_null_fixed_size_lists(
    tmp_path: Path,
) -> None:
    """Why a vector column is list<T> (docs/export.md): the pinned pyarrow writes a
    fixed_size_list column with a null cell but cannot read it back. When this fails, the
    pinned pyarrow reads such files and vectors can become fixed_size_list."""
    import duckdb
    import pyarrow as pa
    import pyarrow.parquet as pq

    from transforms.formats.parquet_arrow import arrow_type

    assert arrow_type(cql_types.parse_cql_type("vector<float, 3>")) == pa.list_(pa.float32())
    path = str(tmp_path / "vector.parquet")
    vectors = pa.array([[1.0, 2.0, 3.0], None], type=pa.list_(pa.float32(), 3))
    pq.write_table(pa.table({"v": vectors}), path)
    with pytest.raises(
        pa.ArrowInvalid, match=r"^Expected all lists to be of size=3 but index 2 had size=0$"
    ):
        pq.read_table(path)
    assert duckdb.sql(f"SELECT v FROM '{path}'").fetchall() == [([1.0, 2.0, 3.0],), (None,)]
