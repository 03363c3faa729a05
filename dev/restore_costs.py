"""Client CPU per row of a plain table's restore, in this process, without sending: an
export's unit files read, decoded and built into encoded batches (``read_unit_columns``
and ``ColumnarWriter``, as ``cassandra-restore`` does), the batches kept instead of sent.

    PYTHONPATH=. .venv/bin/python -m dev.restore_costs --hosts 127.0.31.1:9042 \\
        --input /tmp/export --table bench.narrow_200000 [--repeat 5] [--profile]

The statements are prepared against ``--table`` (a table of the export's schema: its
source will do, nothing is written). Each pass over every unit file is timed with
``time.process_time`` and the best of ``--repeat`` kept; ``batches`` is a digest of every
batch's bytes, so two trees (``PYTHONPATH``) that must write the same can be compared.
Not in it: Beam, the driver's sending, process start-up.
"""

from __future__ import annotations

import argparse
import functools
import hashlib
import json
import time
from pathlib import Path
from typing import Any

from transforms.cassandra_session import ConnectionConfig, connect
from transforms.export_decode import ExportLayout, read_unit_columns
from transforms.restore_columnar import ColumnarWriter, columnar_fields
from transforms.restore_encode import EncodedBatch, batch_statement
from transforms.restore_plan import Shape, build_restore_plan, statement_cql
from transforms.write_sender import UnitCounts

READ_STARTED_MICROS = 1_764_000_000_000_000


def _restore_pass(
    writer: ColumnarWriter, files: list[str], layout: ExportLayout
) -> tuple[int, str]:
    """Every unit file once: (rows, digest of the batches' bytes)."""
    counts = UnitCounts()
    digest = hashlib.sha256()

    def send(batch: EncodedBatch) -> None:
        digest.update(batch.members)

    def fallback(columns: list[list[Any]]) -> None:
        raise SystemExit("a row without its whole key: not a plain export")

    for path in files:
        chunks = read_unit_columns(path, layout, typed=True)
        writer.write_unit(chunks, READ_STARTED_MICROS, counts, lambda rows: None, send, fallback)
    return counts.rows, digest.hexdigest()[:16]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hosts", required=True)
    parser.add_argument("--input", required=True, help="an export's directory")
    parser.add_argument("--table", required=True, help="keyspace.table of its schema")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--profile", action="store_true", help="cProfile one pass instead")
    args = parser.parse_args(argv)
    root = Path(args.input)
    manifest = json.loads((root / "_manifest" / "export.json").read_text())
    schema, recorded = manifest["schema"], manifest["plan"]
    keyspace, table = args.table.split(".")
    plan = build_restore_plan(
        keyspace,
        table,
        schema["columns"],
        schema.get("types", {}),
        recorded["writetime_columns"],
        recorded["ttl_columns"],
    )
    layout = ExportLayout.from_manifest(manifest)
    fields = columnar_fields(plan, layout)
    if fields is None:
        raise SystemExit("not a plain table's export: the restore writes it row by row")
    files = sorted(str(p) for p in (root / "data").glob("part-*"))
    cluster, session = connect(ConnectionConfig(hosts=tuple(args.hosts.split(","))))
    try:

        @functools.cache
        def prepare(shape: Shape) -> Any:
            return session.prepare(statement_cql(plan, shape))

        batch = functools.partial(batch_statement, keyspace)
        version = cluster.protocol_version
        writer = ColumnarWriter(plan, fields, prepare, version, 128, 1000, batch)
        _restore_pass(writer, files, layout)  # statements prepared, modules loaded
        if args.profile:
            import cProfile
            import pstats

            profile = cProfile.Profile()
            profile.runcall(_restore_pass, writer, files, layout)
            pstats.Stats(profile).sort_stats("cumulative").print_stats(40)
            return
        best = float("inf")
        for _ in range(args.repeat):
            started = time.process_time()
            rows, digest = _restore_pass(writer, files, layout)
            best = min(best, time.process_time() - started)
        report = {"format": layout.format, "rows": rows, "batches": digest}
        print(json.dumps({**report, "us_per_row": round(best * 1e6 / rows, 3)}))
    finally:
        cluster.shutdown()


if __name__ == "__main__":
    main()
