"""JSON: one array of row objects per file (the objects of ``transforms/formats/jsonl.py``)."""

from __future__ import annotations

from collections.abc import Sequence

from apache_beam.io.filesystems import FileSystems

from transforms.formats.base import Format, SinkConfig, create_text_file
from transforms.formats.jsonl import JsonWriter
from transforms.table_plan import TablePlan

__all__ = ["FORMAT", "merge_json", "open_json_writer"]


def open_json_writer(path: str, plan: TablePlan, sink: SinkConfig, policy: str) -> JsonWriter:
    return JsonWriter(create_text_file(path, sink), plan, sink, policy, array=True)


def merge_json(parts: Sequence[str], target: str, sink: SinkConfig) -> None:
    """The parts' array elements, in order, in one array."""
    ctype = sink.compression_type
    with FileSystems.create(target, compression_type=ctype) as out:
        out.write(b"[")
        first_row = True
        for part in parts:
            with FileSystems.open(part, compression_type=ctype) as handle:
                body = handle.read().strip()[1:-1].strip()
            if body:
                out.write((b"\n" if first_row else b",\n") + body)
                first_row = False
        out.write(b"\n]\n" if not first_row else b"]\n")


FORMAT = Format(
    name="json",
    extension=".json",
    text_compression=True,
    open_writer=open_json_writer,
    merge=merge_json,
)
