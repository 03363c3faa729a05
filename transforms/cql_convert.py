"""The one table of how each CQL type is written in CSV, JSON and Avro, and the converters
planned from it, one per column.

Plan a converter once per column from its parsed type, then call it per value::

    to_csv = csv_formatter(parse_cql_type("list<text>"))
    to_csv(row.tags)  # -> '["a","b"]'

Every converter is chosen by the column's CQL type, never by the Python type of a
value, so a ``list<int>`` column can never decide how a ``list<text>`` one is written.
``_SCALARS`` is the type table of docs/export.md (its renderings are in
:mod:`transforms.cql_text`); collections, tuples, UDTs and vectors are composed from it.
Formats reach it only through the public functions (``writes_unchanged``, the converters,
``avro_schema``). Sets and maps keep the order the driver gives (Cassandra's order).
"""

from __future__ import annotations

import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Any, NamedTuple

from cassandra.util import OrderedMap, OrderedMapSerializedKey, SortedSet

from transforms.cql_text import (
    blob_base64,
    blob_hex,
    date_text,
    decimal_text,
    double_json,
    double_text,
    duration_text,
    float32_json,
    float32_text,
    time_text,
    timestamp_millis,
    timestamp_text,
    varint_text,
)
from transforms.cql_types import AvroNames, CqlType, udt_field_names
from transforms.json_text import json_text, json_texts
from transforms.wire_sets import WireOrderSet

__all__ = [
    "avro_converter",
    "avro_schema",
    "csv_formatter",
    "csv_texts",
    "json_converter",
    "writes_unchanged",
]

AvroSchema = dict[str, Any] | str
_TEXT_NAMES = frozenset({"text", "ascii"})


def _identity(value: Any) -> Any:
    return value


# The driver's map values: their entries, in order, are the list ``_items``; their own
# ``items()`` and ``dict()`` look every key up again by its serialized bytes (about 1 µs
# an entry).
_DRIVER_MAPS = frozenset((OrderedMap, OrderedMapSerializedKey))
_ENTRIES = operator.attrgetter("_items")


def _map_items(value: Any) -> Iterable[tuple[Any, Any]]:
    """A map value's (key, value) pairs in its own order."""
    return value._items if type(value) in _DRIVER_MAPS else value.items()


def _as_dict(value: Any) -> dict[Any, Any]:
    """A map value as a dict, its order kept."""
    return dict(_map_items(value))


def _duration_object(value: Any) -> dict[str, int]:
    return {"months": value.months, "days": value.days, "nanoseconds": value.nanoseconds}


# ---------------------------------------------------------------------------
# The per-type table (docs/export.md, "How each CQL type is written")
# ---------------------------------------------------------------------------


class _ScalarSpec(NamedTuple):
    """How one non-null scalar CQL value is written in each format."""

    csv: Callable[[Any], str]
    json: Callable[[Any], Any]
    avro_schema: Callable[[str, AvroNames], AvroSchema]
    avro: Callable[[Any], Any]


def _avro_primitive(type_name: str) -> Callable[[str, AvroNames], AvroSchema]:
    return lambda name_hint, names: type_name


def _avro_logical(type_name: str, logical_type: str) -> Callable[[str, AvroNames], AvroSchema]:
    return lambda name_hint, names: {"type": type_name, "logicalType": logical_type}


def _avro_duration(name_hint: str, names: AvroNames) -> AvroSchema:
    return {
        "type": "record",
        "name": names.record_name("duration"),
        "fields": [
            {"name": "months", "type": "int"},
            {"name": "days", "type": "int"},
            {"name": "nanoseconds", "type": "long"},
        ],
    }


def _bool_text(value: bool) -> str:
    return "true" if value else "false"


_TEXT = _ScalarSpec(_identity, _identity, _avro_primitive("string"), _identity)
_INT32 = _ScalarSpec(str, _identity, _avro_primitive("int"), _identity)
_INT64 = _ScalarSpec(str, _identity, _avro_primitive("long"), _identity)
_UUID = _ScalarSpec(str, str, _avro_logical("string", "uuid"), str)

_SCALARS: dict[str, _ScalarSpec] = {
    "text": _TEXT,
    "ascii": _TEXT,
    "tinyint": _INT32,
    "smallint": _INT32,
    "int": _INT32,
    "bigint": _INT64,
    "counter": _INT64,
    "varint": _ScalarSpec(varint_text, varint_text, _avro_primitive("string"), varint_text),
    "decimal": _ScalarSpec(decimal_text, decimal_text, _avro_primitive("string"), decimal_text),
    "float": _ScalarSpec(float32_text, float32_json, _avro_primitive("float"), _identity),
    "double": _ScalarSpec(double_text, double_json, _avro_primitive("double"), _identity),
    "boolean": _ScalarSpec(_bool_text, _identity, _avro_primitive("boolean"), _identity),
    "blob": _ScalarSpec(blob_hex, blob_base64, _avro_primitive("bytes"), bytes),
    "uuid": _UUID,
    "timeuuid": _UUID,
    "timestamp": _ScalarSpec(
        timestamp_text,
        timestamp_text,
        _avro_logical("long", "timestamp-millis"),
        timestamp_millis,
    ),
    "date": _ScalarSpec(
        date_text, date_text, _avro_logical("int", "date"), lambda d: d.days_from_epoch
    ),
    "time": _ScalarSpec(time_text, time_text, _avro_primitive("long"), lambda t: t.nanosecond_time),
    "duration": _ScalarSpec(duration_text, _duration_object, _avro_duration, _duration_object),
    "inet": _ScalarSpec(str, str, _avro_primitive("string"), str),
}


def writes_unchanged(t: CqlType, fmt: str) -> bool:
    """True when a value of ``t`` goes into ``fmt`` ('csv', 'json' or 'avro') as the driver
    gives it (text into CSV, ints into JSON...): a writer may skip converting the column."""
    spec = _SCALARS.get(t.name)
    return spec is not None and getattr(spec, fmt) is _identity


# ---------------------------------------------------------------------------
# Planners: one converter per column, composed from the table
# ---------------------------------------------------------------------------


def _nullable(convert: Callable[[Any], Any]) -> Callable[[Any], Any]:
    return lambda value: None if value is None else convert(value)


def _fields(value: Sequence[Any], count: int) -> Sequence[Any]:
    """A tuple or UDT value by position; the driver pads missing trailing fields with None."""
    items = tuple(value)
    return items + (None,) * (count - len(items)) if len(items) < count else items[:count]


def _json_plan(t: CqlType) -> Callable[[Any], Any]:
    """JSON value of a non-null value of type ``t``."""
    if t.name in _SCALARS:
        return _SCALARS[t.name].json
    if t.name in ("list", "set", "vector"):
        element_plan = _json_plan(t.params[0])
        if element_plan is _identity:  # text, ints, booleans: the elements as they are
            return list
        element = _nullable(element_plan)
        return lambda value: [element(item) for item in value]
    if t.name == "map":
        key_json = _json_plan(t.params[0])
        value_json = _json_plan(t.params[1])
        if t.params[0].name in ("text", "ascii") and value_json is _identity:
            return _as_dict  # text keys, values as they are
        element = _nullable(value_json)

        def key_text(key: Any) -> str:
            converted = key_json(key)
            return converted if isinstance(converted, str) else json_text(converted)

        return lambda value: {key_text(k): element(v) for k, v in _map_items(value)}
    if t.name == "tuple":
        parts = tuple(_nullable(_json_plan(p)) for p in t.params)
        return lambda value: [
            part(item) for part, item in zip(parts, _fields(value, len(parts)), strict=True)
        ]
    if t.name == "udt":
        named = tuple(
            (name, _nullable(_json_plan(p)))
            for name, p in zip(t.field_names, t.params, strict=True)
        )
        return lambda value: {
            name: part(item)
            for (name, part), item in zip(named, _fields(value, len(named)), strict=True)
        }
    raise ValueError(f"no JSON rendering for CQL type {t}")


def json_converter(t: CqlType) -> Callable[[Any], Any]:
    """Value of type ``t`` -> json.dumps-able value (None stays None)."""
    return _nullable(_json_plan(t))


def csv_formatter(t: CqlType, null_value: str = "") -> Callable[[Any], str]:
    """Value of type ``t`` -> CSV field text (unquoted; the csv module quotes)."""
    if t.name in _SCALARS:
        convert = _SCALARS[t.name].csv
    else:
        to_json = _json_plan(t)

        def convert(value: Any) -> str:
            return json_text(to_json(value))

    return lambda value: null_value if value is None else convert(value)


def csv_texts(t: CqlType) -> Callable[[Iterable[Any]], list[str]]:
    """Non-null values of type ``t`` -> the CSV field texts ``csv_formatter(t)`` gives for
    each, a column at a time (collections, tuples, UDTs and vectors: JSON through one C
    encoder call per value)."""
    if t.name in _SCALARS:
        convert = _SCALARS[t.name].csv
        return lambda values: list(map(convert, values))
    to_json = _json_plan(t)
    if to_json is list:
        return _sequence_texts
    if to_json is not _as_dict:
        return lambda values: json_texts(map(to_json, values))

    def maps(values: Iterable[Any]) -> list[str]:
        values = list(values)
        if set(map(type, values)).issubset(_DRIVER_MAPS):  # no Python call per value
            return json_texts(map(dict, map(_ENTRIES, values)))
        return json_texts(map(_as_dict, values))

    return maps


def _sequence_texts(values: Iterable[Any]) -> list[str]:
    """Lists, sets or vectors of elements JSON writes as they are -> their JSON texts: the
    driver's lists as they are, its sets' sorted element lists (``_items``), with no Python
    call per value; any other sequence copied into a list first."""
    values = list(values)
    kinds = set(map(type, values))
    if kinds.issubset((list, tuple)):
        return json_texts(values)
    if kinds <= {SortedSet, WireOrderSet}:
        return json_texts(map(_ENTRIES, values))
    return json_texts(map(list, values))


# ---------------------------------------------------------------------------
# Avro
# ---------------------------------------------------------------------------


def _avro_nullable_field(name: str, schema: AvroSchema) -> dict[str, Any]:
    return {"name": name, "type": ["null", schema], "default": None}


def _avro_key_is_text(t: CqlType) -> bool:
    return t.params[0].name in _TEXT_NAMES


def avro_schema(t: CqlType, name_hint: str, names: AvroNames) -> AvroSchema:
    """The non-null Avro schema of type ``t``; the caller wraps a column in ["null", schema]."""
    if t.name in _SCALARS:
        return _SCALARS[t.name].avro_schema(name_hint, names)
    if t.name in ("list", "set", "vector"):
        return {"type": "array", "items": avro_schema(t.params[0], f"{name_hint}_item", names)}
    if t.name == "map":
        key_type, value_type = t.params
        if _avro_key_is_text(t):
            return {"type": "map", "values": avro_schema(value_type, f"{name_hint}_value", names)}
        entry_name = names.record_name(f"{name_hint}_entry")
        return {
            "type": "array",
            "items": {
                "type": "record",
                "name": entry_name,
                "fields": [
                    {"name": "key", "type": avro_schema(key_type, f"{name_hint}_key", names)},
                    {
                        "name": "value",
                        "type": avro_schema(value_type, f"{name_hint}_value", names),
                    },
                ],
            },
        }
    if t.name == "tuple":
        record_name = names.record_name(name_hint)
        fields = [
            _avro_nullable_field(f"f{i}", avro_schema(p, f"{record_name}_f{i}", names))
            for i, p in enumerate(t.params)
        ]
        return {"type": "record", "name": record_name, "fields": fields}
    if t.name == "udt":
        record_name = names.record_name(t.udt_name or name_hint)
        fields = [
            _avro_nullable_field(field, avro_schema(p, f"{record_name}_{field}", names))
            for field, p in zip(udt_field_names(t), t.params, strict=True)
        ]
        return {"type": "record", "name": record_name, "fields": fields}
    raise ValueError(f"no Avro schema for CQL type {t}")


def _avro_plan(t: CqlType) -> Callable[[Any], Any]:
    """Avro datum of a non-null value of type ``t``, matching ``avro_schema(t)``."""
    if t.name in _SCALARS:
        return _SCALARS[t.name].avro
    if t.name in ("list", "set", "vector"):
        element = _avro_plan(t.params[0])
        return lambda value: [element(item) for item in value]
    if t.name == "map":
        key_datum = _avro_plan(t.params[0])
        value_datum = _avro_plan(t.params[1])
        if _avro_key_is_text(t):
            return lambda value: {k: value_datum(v) for k, v in _map_items(value)}
        return lambda value: [
            {"key": key_datum(k), "value": value_datum(v)} for k, v in _map_items(value)
        ]
    if t.name in ("tuple", "udt"):
        if t.name == "tuple":
            field_names = tuple(f"f{i}" for i in range(len(t.params)))
        else:
            field_names = udt_field_names(t)
        named = tuple(
            (name, _nullable(_avro_plan(p))) for name, p in zip(field_names, t.params, strict=True)
        )
        return lambda value: {
            name: part(item)
            for (name, part), item in zip(named, _fields(value, len(named)), strict=True)
        }
    raise ValueError(f"no Avro rendering for CQL type {t}")


def avro_converter(t: CqlType) -> Callable[[Any], Any]:
    """Value of type ``t`` -> datum for fastavro under ``avro_schema(t)`` (None stays None)."""
    return _nullable(_avro_plan(t))
