"""How an export's unit files are laid out, read back from its manifest.

``ExportLayout.from_manifest(manifest)`` gives the format, compression, CSV options,
writetime format, collection writetime policy and the output fields (each column's value,
writetime and TTL with its CQL type) that :mod:`transforms.export_decode` reads files with.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from transforms.cql_types import CqlType, parse_cql_type
from transforms.table_plan import OutputField, TablePlan

__all__ = [
    "Decoder",
    "ExportFileError",
    "ExportLayout",
    "LayoutField",
    "UdtValue",
]

_FORMATS = ("csv", "jsonl", "json", "avro", "parquet")
_COMPRESSIONS = ("none", "gzip", "zstd")
_POLICIES = ("max", "min", "list")
_WRITETIME_FORMATS = ("iso", "micros")

Decoder = Callable[[Any], Any]


class ExportFileError(ValueError):
    """A unit file that cannot be decoded: truncated, corrupt, or not of the layout."""

    def __init__(self, path: str, reason: str) -> None:
        super().__init__(f"{path}: {reason}")
        self.path = path
        self.reason = reason


class UdtValue(dict):
    """A UDT value: a dict by field name, in field order, that the driver also binds
    (its UDT serializer reads ``value[i]`` by position)."""

    def __getitem__(self, key: Any) -> Any:
        if isinstance(key, int):
            return tuple(self.values())[key]
        return super().__getitem__(key)


@dataclass(frozen=True)
class LayoutField:
    """One output field of the files: a column's value, writetime or TTL."""

    name: str
    role: str  # value, writetime, ttl
    column: str
    cql_type: CqlType
    per_element: bool  # writetime / TTL is a list (multicell column, policy list)


@dataclass(frozen=True)
class ExportLayout:
    """How an export's unit files are written: format, options and output fields."""

    format: str
    compression: str
    delimiter: str
    null_value: str
    writetime_format: str
    collection_policy: str
    fields: tuple[LayoutField, ...]

    @property
    def field_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)

    @classmethod
    def from_manifest(
        cls,
        manifest: Mapping[str, Any],
        column_types: Mapping[str, str] | None = None,
        user_types: Mapping[str, Sequence[Sequence[str]]] | None = None,
    ) -> ExportLayout:
        """The layout recorded in a parsed ``_manifest/export.json``.

        Column types come from ``manifest["schema"]["columns"]`` (``cql_type``), else
        the plan's ``type``, else ``column_types``; UDTs from ``manifest["schema"]
        ["types"]`` ({name: [[field, type], ...]}), the plan's ``user_types`` and
        ``user_types`` (same shape as the schema's). A type given both ways must agree.
        """
        try:
            config = manifest["export_config"]
            plan_json = dict(manifest["plan"])
        except (KeyError, TypeError):
            raise ValueError("not an export manifest: no export_config or plan") from None
        options = config.get("options") or {}

        def option(key: str, default: Any) -> Any:
            value = config.get(key, options.get(key))
            return default if value is None else value

        udts = _user_type_table(manifest, plan_json, user_types)
        schema_types = {
            c["name"]: c["cql_type"] for c in (manifest.get("schema") or {}).get("columns", ())
        }
        columns = []
        for column in plan_json["columns"]:
            name = column["name"]
            recorded = schema_types.get(name) or column.get("type")
            given = (column_types or {}).get(name)
            if recorded is None and given is None:
                raise ValueError(f"the manifest records no CQL type for column {name!r}")
            if recorded is not None and given is not None:
                if parse_cql_type(recorded, udts) != parse_cql_type(given, udts):
                    raise ValueError(f"column {name!r} is {recorded} in the manifest, not {given}")
            columns.append({**column, "type": recorded or given})
        plan_json["columns"] = columns
        plan_json["user_types"] = {n: [list(f), list(t)] for n, (f, t) in udts.items()}
        plan = TablePlan.from_json(plan_json)
        layout = cls(
            format=option("format", "csv"),
            compression=option("compression", "none"),
            delimiter=option("delimiter", ","),
            null_value=option("null_value", ""),
            writetime_format=option("writetime_format", "iso"),
            collection_policy=option("collection_writetime", "max"),
            fields=tuple(
                _layout_field(f, option("collection_writetime", "max")) for f in plan.output_fields
            ),
        )
        layout._check()
        return layout

    def _check(self) -> None:
        for value, allowed, what in (
            (self.format, _FORMATS, "format"),
            (self.compression, _COMPRESSIONS, "compression"),
            (self.writetime_format, _WRITETIME_FORMATS, "writetime format"),
            (self.collection_policy, _POLICIES, "collection writetime policy"),
        ):
            if value not in allowed:
                raise ValueError(f"unknown {what} {value!r} in the manifest")
        if len(self.delimiter) != 1:
            raise ValueError(f"CSV delimiter must be one character, not {self.delimiter!r}")


def _layout_field(field: OutputField, policy: str) -> LayoutField:
    cql_type = field.column.cql_type
    per_element = field.role != "value" and cql_type.is_multicell and policy == "list"
    return LayoutField(field.name, field.role, field.column.name, cql_type, per_element)


def _user_type_table(
    manifest: Mapping[str, Any],
    plan_json: Mapping[str, Any],
    user_types: Mapping[str, Sequence[Sequence[str]]] | None,
) -> dict[str, tuple[tuple[str, ...], tuple[str, ...]]]:
    """UDT definitions in ``parse_cql_type``'s shape: {name: (field names, field types)}."""
    table = {
        name: (tuple(names), tuple(types))
        for name, (names, types) in (plan_json.get("user_types") or {}).items()
    }
    for source in ((manifest.get("schema") or {}).get("types") or {}, user_types or {}):
        for name, pairs in source.items():
            table[name] = (tuple(p[0] for p in pairs), tuple(p[1] for p in pairs))
    return table
