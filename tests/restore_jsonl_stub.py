"""TEST-ONLY STAND-IN for ``transforms.export_decode`` (JSON lines only), to be deleted when
the real decoder lands. It has the real module's interface (``ExportLayout.from_manifest``,
``read_unit_rows`` yielding rows with ``.values``, ``.writetimes``, ``.ttls``) and decodes
the value types the restore tests use. ``install()`` registers it under the real module's
name only while that module does not exist.
"""

from __future__ import annotations

import base64
import datetime
import decimal
import gzip
import json
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from transforms.cql_types import CqlType, parse_cql_type
from transforms.normalize import parse_time_micros

EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


@dataclass
class DecodedRow:
    values: dict[str, Any]
    writetimes: dict[str, Any]
    ttls: dict[str, Any]


@dataclass
class ExportLayout:
    columns: list[tuple[str, CqlType]]
    writetime_names: dict[str, str]
    ttl_names: dict[str, str]

    @classmethod
    def from_manifest(cls, manifest: dict[str, Any], column_types: Any = None) -> ExportLayout:
        schema = manifest["schema"]
        udts = {n: ([f for f, _ in fs], [t for _, t in fs]) for n, fs in schema["types"].items()}
        plan = manifest["plan"]
        return cls(
            [(c["name"], parse_cql_type(c["cql_type"], udts)) for c in schema["columns"]],
            {c: c + plan["writetime_suffix"] for c in plan["writetime_columns"]},
            {c: c + plan["ttl_suffix"] for c in plan["ttl_columns"]},
        )


def _convert(cql: CqlType, value: Any) -> Any:
    if value is None:
        return None
    name = cql.name
    if name == "blob":
        return base64.b64decode(value)
    if name == "decimal":
        return decimal.Decimal(value)
    if name == "varint":
        return int(value)
    if name in ("uuid", "timeuuid"):
        return uuid.UUID(value)
    if name == "timestamp":
        return EPOCH + datetime.timedelta(microseconds=parse_time_micros(value))
    if name in ("list", "set"):
        return [_convert(cql.params[0], v) for v in value]
    if name == "map":
        return {_convert(cql.params[0], k): _convert(cql.params[1], v) for k, v in value.items()}
    if name == "udt":
        types = cql.params
        return tuple(_convert(t, value.get(f)) for f, t in zip(cql.field_names, types, strict=True))
    return value


def _micros(value: Any) -> Any:
    if isinstance(value, list):
        return [_micros(v) for v in value]
    return None if value is None else parse_time_micros(value)


def read_unit_rows(path: str, layout: ExportLayout) -> Iterator[DecodedRow]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rt", encoding="utf-8") as handle:
        for line in handle:
            record = json.loads(line)
            yield DecodedRow(
                {n: _convert(t, record[n]) for n, t in layout.columns},
                {c: _micros(record[f]) for c, f in layout.writetime_names.items()},
                {c: record[f] for c, f in layout.ttl_names.items()},
            )


def install() -> None:
    """Serve as ``transforms.export_decode`` until the real module exists."""
    try:
        import transforms.export_decode  # noqa: F401
    except ImportError:
        sys.modules["transforms.export_decode"] = sys.modules[__name__]
