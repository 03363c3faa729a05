"""The output formats: one module per format, registered here by one line each.

Usage::

    from transforms import formats

    fmt = formats.get_format("parquet")
    writer = fmt.open_writer(path, plan, sink, policy)  # a UnitWriter
    writer.write_rows(rows)
    writer.close()

Adding a format: a module that builds a ``base.Format`` named ``FORMAT``, and its line in
``FORMATS`` below; ``--format`` choices, validation and the Flex template metadata
derive from this registry.
"""

from __future__ import annotations

from transforms.formats import avro, csv, json, jsonl, parquet
from transforms.formats.base import Format, SinkConfig, UnitWriter

__all__ = ["FORMATS", "Format", "SinkConfig", "UnitWriter", "check_sink", "get_format"]

FORMATS: dict[str, Format] = {
    f.name: f
    for f in (
        csv.FORMAT,
        jsonl.FORMAT,
        json.FORMAT,
        avro.FORMAT,
        parquet.FORMAT,
    )
}


def get_format(name: str) -> Format:
    """The registered format ``name``; ValueError naming the choices otherwise."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}, not {name!r}") from None


def check_sink(sink: SinkConfig) -> Format:
    """The format of ``sink``, after checking that it can honour every option of ``sink``."""
    fmt = get_format(sink.format)
    fmt.check(sink)
    return fmt
