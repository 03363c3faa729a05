"""Micro-benchmark of the format writers alone: microseconds per row, no Cassandra.

Synthetic row batches of the shape of a ``dev/bench.py`` table variant (narrow: pk int,
ck int, t text, b bigint, d double, ts timestamp, f boolean; wide; collections), with
(``-wt``) or without a writetime per regular column, go through each format's unit
writer into a file under a temporary directory, as the export writes a piece::

    python -m dev.bench_formats [--rows 200000] [--variant narrow] [--formats csv,avro,parquet]

Prints one line per format and writetime setting: best of ``--repeat`` runs, in µs/row.
``avro-records`` is the Avro writer as it was before the columnar encoder (fastavro's
``Writer.write`` of one dict per row, union branches named), kept here as the baseline.
A benchmark prints numbers; it never fails on a time.
"""

from __future__ import annotations

import argparse
import datetime
import tempfile
import time
import uuid
from collections.abc import Callable, Sequence
from itertools import repeat
from pathlib import Path
from typing import Any

from dev.bench import BASE_TIMESTAMP, VARIANTS
from transforms import cql_convert, cql_types
from transforms.formats import FORMATS, SinkConfig
from transforms.formats.avro import avro_schema_for
from transforms.table_plan import ColumnPlan, TablePlan

_BATCH_ROWS = 1000


def _value_fn(cql_type: str) -> Callable[[int], Any]:
    """A deterministic value of ``cql_type`` for row number ``i`` (as the driver gives it)."""
    by_type: dict[str, Callable[[int], Any]] = {
        "text": lambda i: f"value-{i:09d}-abcdefghij",
        "bigint": lambda i: i * 1_000_003,
        "int": lambda i: i % 1_000_000,
        "double": lambda i: i / 7,
        "float": lambda i: float(i % 1000) / 4,
        "timestamp": lambda i: 1_700_000_000_000 + i,  # top level: int milliseconds
        "boolean": lambda i: i % 2 == 0,
        "uuid": lambda i: uuid.UUID(int=i),
        "list<text>": lambda i: [f"e{i}", f"f{i}"],
        "set<int>": lambda i: [i, i + 1],
        "map<text, bigint>": lambda i: {f"k{i}": i},
    }
    return by_type[cql_type]


def _plan(variant: str, writetimes: bool) -> TablePlan:
    regular = VARIANTS[variant].columns
    columns = (
        ColumnPlan("pk", cql_types.parse_cql_type("int"), "partition_key"),
        ColumnPlan("ck", cql_types.parse_cql_type("int"), "clustering"),
        *(ColumnPlan(n, cql_types.parse_cql_type(t), "regular") for n, t in regular),
    )
    wt_columns = tuple(n for n, _ in regular) if writetimes else ()
    return TablePlan("bench", variant, columns, wt_columns, ())


def _batches(variant: str, writetimes: bool, rows: int) -> list[list[tuple[Any, ...]]]:
    fns = [_value_fn(t) for _, t in VARIANTS[variant].columns]
    batches = []
    for start in range(0, rows, _BATCH_ROWS):
        batch = []
        for i in range(start, min(rows, start + _BATCH_ROWS)):
            row: tuple[Any, ...] = (i // 100, i % 100, *(fn(i) for fn in fns))
            if writetimes:  # the cells of a row written together: one writetime
                row += (BASE_TIMESTAMP + i,) * len(fns)
            batch.append(row)
        batches.append(batch)
    return batches


class _RecordAvroWriter:
    """The earlier Avro writer: one dict per row through fastavro's ``Writer.write``."""

    def __init__(self, path: str, plan: TablePlan, sink: SinkConfig, policy: str) -> None:
        import fastavro

        schema, self._names = avro_schema_for(plan, policy, sink.writetime_format)
        self._handle = open(path, "wb")  # closed in close()
        self._converters = [
            None
            if f.role != "value" or cql_convert.writes_unchanged(f.column.cql_type, "avro")
            else cql_convert.avro_converter(f.column.cql_type)
            for f in plan.output_fields
        ]
        primitives = ("boolean", "int", "long", "float", "double", "bytes", "string")
        self._branches: list[str | None] = []
        for entry in schema["fields"]:
            branch = entry["type"][1]
            name = branch.get("type") if isinstance(branch, dict) else branch
            self._branches.append(name if name in primitives else None)
        self._writer = fastavro.write.Writer(
            self._handle,
            fastavro.parse_schema(schema),
            codec=sink.avro_codec,
            sync_interval=256 * 1024,
        )

    def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
        for i, (convert, branch) in enumerate(zip(self._converters, self._branches, strict=True)):
            column = columns[i] if convert is None else list(map(convert, columns[i]))
            if branch is not None:
                if None in column:
                    column = [None if v is None else (branch, v) for v in column]
                else:
                    column = list(zip(repeat(branch), column))
            columns[i] = column
        write, names = self._writer.write, self._names
        for values in zip(*columns, strict=True):
            write(dict(zip(names, values, strict=True)))

    def close(self) -> None:
        self._writer.flush()
        self._handle.close()


def _open_writer(fmt: str, path: str, plan: TablePlan, sink: SinkConfig) -> Any:
    if fmt == "avro-records":
        return _RecordAvroWriter(path, plan, sink, "max")
    return FORMATS[fmt].open_writer(path, plan, sink, "max")


def measure(fmt: str, variant: str, writetimes: bool, rows: int, repeat: int) -> float:
    """Best µs per row of writing ``rows`` synthetic rows with format ``fmt``."""
    plan = _plan(variant, writetimes)
    batches = _batches(variant, writetimes, rows)
    sink = SinkConfig(format=fmt.split("-")[0])
    best = float("inf")
    with tempfile.TemporaryDirectory(prefix="bench-formats-") as tmp:
        for attempt in range(repeat):
            path = str(Path(tmp) / f"part-{attempt}{FORMATS[sink.format].file_extension(sink)}")
            started = time.perf_counter()
            writer = _open_writer(fmt, path, plan, sink)
            for batch in batches:
                writer.write_rows(batch)
            writer.close()
            best = min(best, time.perf_counter() - started)
    return best / rows * 1e6


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000)
    parser.add_argument("--variant", default="narrow", choices=tuple(VARIANTS))
    parser.add_argument("--formats", default="csv,avro-records,avro,parquet")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args(argv)
    now = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    print(f"{now}  {args.variant}, {args.rows:,} rows, best of {args.repeat}")
    for fmt in args.formats.split(","):
        for writetimes in (False, True):
            micros = measure(fmt, args.variant, writetimes, args.rows, args.repeat)
            label = fmt + ("-wt" if writetimes else "")
            print(f"  {label:<12} {micros:6.2f} µs/row", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
