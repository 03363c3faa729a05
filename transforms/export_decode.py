"""Reading committed export files back into typed Python values, exactly.

The inverse of the renderings in :mod:`transforms.cql_types` and the unit writers of
:mod:`transforms.sinks`, for CSV, JSON lines, JSON and Avro::

    layout = ExportLayout.from_manifest(read_json(".../_manifest/export.json"))
    for row in read_unit_rows(".../data/part-00003.csv.gz", layout):
        row.values["tags"], row.writetimes["tags"], row.ttls["tags"]

A decoder is planned once per output field from the column's CQL type, then run over a
whole column of the file, never chosen by the Python type of a value. Values come back
as the cassandra-driver binds them:

- text, ints, varint, booleans, floats, doubles, ``inet`` as ``str``/``int``/``bool``/
  ``float``/``str``; a ``float`` is the float32 value (as the driver returns it);
- ``decimal`` a :class:`~decimal.Decimal` built from the exported digits; ``blob`` bytes;
  ``uuid``/``timeuuid`` :class:`uuid.UUID`;
- ``timestamp`` integer milliseconds since the epoch (exact in every year, which a
  ``datetime`` is not; the driver binds an int as milliseconds);
- ``date`` :class:`cassandra.util.Date`, ``time`` :class:`cassandra.util.Time`,
  ``duration`` :class:`cassandra.util.Duration`;
- ``list``, ``vector`` and ``set`` a list (a set in Cassandra's order, so element ``i``
  pairs with writetime ``i`` under ``--collection-writetime list``); ``map`` a dict in
  Cassandra's order (a :class:`cassandra.util.OrderedMap` when its keys are collections
  or UDTs, which a dict cannot hold); ``tuple`` a tuple; a UDT a :class:`UdtValue` (a
  dict by field name that the driver can also bind).

Writetimes are integer microseconds, TTLs integer seconds; a collection's are a list
(``None`` where an element has none) under ``--collection-writetime list``.

In CSV, null and the empty string stay apart: null is the unquoted ``--null-value`` and
the exporter quotes an empty string (and any text equal to the null text).

What a file cannot tell: ``decimal`` values with a positive exponent are exported in
plain notation (``1.5E+3`` as ``1500``), so the decoded value is numerically equal with
scale 0. A unit file cut exactly at a row boundary reads as a shorter, valid file: compare
the row count with the unit's marker (``_manifest/ranges/<unit>.json``, ``rows``). Avro
has no checksum: with ``--avro-codec null`` a damaged byte inside a block can decode as
another valid value. A file is read whole into memory (unit files are one work unit).
"""

from __future__ import annotations

import base64
import datetime
import functools
import gzip
import io
import itertools
import json
import operator
import re
import struct
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from transforms.cql_types import CqlType, avro_field_name, parse_cql_type, udt_field_names
from transforms.table_plan import OutputField, TablePlan

__all__ = [
    "DecodedRow",
    "ExportFileError",
    "ExportLayout",
    "LayoutField",
    "UdtValue",
    "read_unit_rows",
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


@dataclass(slots=True)
class DecodedRow:
    """One exported row: values by column, writetimes and TTLs by column."""

    values: dict[str, Any]
    writetimes: dict[str, int | list[int | None] | None]
    ttls: dict[str, int | list[int | None] | None]


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


# ---------------------------------------------------------------------------
# Scalar decoders: the inverse of cql_types._SCALARS, per format
# ---------------------------------------------------------------------------

_EPOCH_ORDINAL = datetime.date(1970, 1, 1).toordinal()
_SECONDS_PER_DAY = 86_400
_NANOS_PER_SECOND = 1_000_000_000
_INTEGER = re.compile(r"-?\d+")
_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")
_RFC3339_MILLIS = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{3})Z")
_RFC3339_MICROS = re.compile(r"(\d{4}-\d{2}-\d{2})T(\d{2}):(\d{2}):(\d{2})\.(\d{6})Z")
_TIME = re.compile(r"(\d{2}):(\d{2}):(\d{2})\.(\d{9})")
_DURATION = re.compile(
    r"(-)?P(?:(-?\d+)Y)?(?:(-?\d+)M)?(?:(-?\d+)D)?"
    r"(?:T(?:(-?\d+)H)?(?:(-?\d+)M)?(?:(-?)(\d+)(?:\.(\d{1,9}))?S)?)?"
)
_FLOAT32 = struct.Struct("<f")
_BOOLEANS = {"true": True, "false": False}


def _identity(value: Any) -> Any:
    return value


def _integer(text: str) -> int:
    """Decimal digits (with an optional sign) -> int; anything else is an error."""
    if not _INTEGER.fullmatch(text):
        raise ValueError(f"{text!r} is not an integer")
    if len(text) > 4000:  # str -> int refuses more than 4300 digits; Decimal does not
        return int(Decimal(text))
    return int(text)


@functools.lru_cache(maxsize=8192)
def _day_number(date_text: str) -> int:
    """'YYYY-MM-DD' -> days since 1970-01-01 (cached: a file holds few distinct days)."""
    return datetime.date.fromisoformat(date_text).toordinal() - _EPOCH_ORDINAL


def _rfc3339(pattern: re.Pattern[str], per_second: int) -> Callable[[str], int]:
    """RFC 3339 UTC text -> integer units since the epoch; the exporter writes values
    outside years 1-9999 as that integer."""
    match_text = pattern.fullmatch

    def parse(text: str) -> int:
        match = match_text(text)
        if match is None:
            return _integer(text)
        day, hour, minute, second, fraction = match.groups()
        seconds = _day_number(day) * _SECONDS_PER_DAY + (
            int(hour) * 3600 + int(minute) * 60 + int(second)
        )
        return seconds * per_second + int(fraction)

    return parse


_timestamp_millis = _rfc3339(_RFC3339_MILLIS, 1000)
_writetime_micros = _rfc3339(_RFC3339_MICROS, 1_000_000)


def _date_value(text: str) -> Any:
    from cassandra.util import Date

    if _DATE.fullmatch(text):
        return Date(_day_number(text))
    return Date(_integer(text))  # outside years 1-9999: days since the epoch


def _date_days(days: int) -> Any:
    from cassandra.util import Date

    return Date(days)


def _time_value(text: str) -> Any:
    from cassandra.util import Time

    match = _TIME.fullmatch(text)
    if match is None:
        raise ValueError(f"{text!r} is not a time of day")
    hour, minute, second, fraction = match.groups()
    seconds = int(hour) * 3600 + int(minute) * 60 + int(second)
    return Time(seconds * _NANOS_PER_SECOND + int(fraction))


def _time_nanos(nanos: int) -> Any:
    from cassandra.util import Time

    return Time(nanos)


def _duration_from_iso(text: str) -> Any:
    """The exporter's ISO 8601 duration -> Duration. All parts carry one sign after a
    leading '-'; without it each part keeps its own (hand-built mixed-sign values)."""
    from cassandra.util import Duration

    match = _DURATION.fullmatch(text)
    if match is None or text in ("P", "-P") or text.endswith("T"):
        raise ValueError(f"{text!r} is not an ISO 8601 duration")
    negative, years, months, days, hours, minutes, s_sign, seconds, fraction = match.groups()
    total_months = int(years or 0) * 12 + int(months or 0)
    nanos = (int(hours or 0) * 3600 + int(minutes or 0) * 60) * _NANOS_PER_SECOND
    second_nanos = int(seconds or 0) * _NANOS_PER_SECOND + int((fraction or "").ljust(9, "0"))
    nanos += -second_nanos if s_sign else second_nanos
    day_count = int(days or 0)
    if negative:
        return Duration(-total_months, -day_count, -nanos)
    return Duration(total_months, day_count, nanos)


def _duration_from_object(value: Mapping[str, int]) -> Any:
    from cassandra.util import Duration

    return Duration(int(value["months"]), int(value["days"]), int(value["nanoseconds"]))


def _to_float32(value: float) -> float:
    return _FLOAT32.unpack(_FLOAT32.pack(value))[0]


def _float32(value: str | float) -> float:
    """Exported float text (or JSON number / 'NaN' / 'Infinity') -> the float32 value."""
    return _to_float32(float(value))


def _double(value: str | float) -> float:
    return float(value)


def _blob_from_hex(text: str) -> bytes:
    if not text.startswith("0x"):
        raise ValueError(f"blob {text[:20]!r} does not start with 0x")
    return bytes.fromhex(text[2:])


def _blob_from_base64(text: str) -> bytes:
    return base64.b64decode(text, validate=True)


def _boolean(text: str) -> bool:
    return _BOOLEANS[text]


def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{value!r} is not a string")
    return value


def _json_int(value: Any) -> int:
    if type(value) is not int:
        raise ValueError(f"{value!r} is not an integer")
    return value


def _json_bool(value: Any) -> bool:
    if type(value) is not bool:
        raise ValueError(f"{value!r} is not a boolean")
    return value


@dataclass(frozen=True)
class _ScalarDecoders:
    """How one non-null scalar is read back from each format."""

    csv: Decoder
    json: Decoder
    avro: Decoder
    json_key_is_text: bool  # its JSON value is a string, so a JSON map key holds it as is


_TEXT = _ScalarDecoders(_identity, _text, _identity, True)
_INT = _ScalarDecoders(_integer, _json_int, _identity, False)

_SCALARS: dict[str, _ScalarDecoders] = {
    "text": _TEXT,
    "ascii": _TEXT,
    "tinyint": _INT,
    "smallint": _INT,
    "int": _INT,
    "bigint": _INT,
    "counter": _INT,
    "varint": _ScalarDecoders(_integer, _integer, _integer, True),
    "decimal": _ScalarDecoders(Decimal, Decimal, Decimal, True),
    "float": _ScalarDecoders(_float32, _float32, _identity, False),
    "double": _ScalarDecoders(_double, _double, _identity, False),
    "boolean": _ScalarDecoders(_boolean, _json_bool, _identity, False),
    "blob": _ScalarDecoders(_blob_from_hex, _blob_from_base64, bytes, True),
    "uuid": _ScalarDecoders(uuid.UUID, uuid.UUID, uuid.UUID, True),
    "timeuuid": _ScalarDecoders(uuid.UUID, uuid.UUID, uuid.UUID, True),
    "timestamp": _ScalarDecoders(_timestamp_millis, _timestamp_millis, _identity, True),
    "date": _ScalarDecoders(_date_value, _date_value, _date_days, True),
    "time": _ScalarDecoders(_time_value, _time_value, _time_nanos, True),
    "duration": _ScalarDecoders(
        _duration_from_iso, _duration_from_object, _duration_from_object, False
    ),
    "inet": _ScalarDecoders(_identity, _text, _identity, True),
}


def _nullable(decode: Decoder) -> Decoder:
    return lambda value: None if value is None else decode(value)


def _hashable(t: CqlType) -> bool:
    """Whether decoded values of ``t`` can be dict keys."""
    if t.name in _SCALARS:
        return t.name != "duration"  # cassandra.util.Duration defines no hash
    return t.name == "tuple" and all(_hashable(p) for p in t.params)


def _map_of(t: CqlType) -> Callable[[list[tuple[Any, Any]]], Any]:
    if _hashable(t.params[0]):
        return dict
    from cassandra.util import OrderedMap

    return OrderedMap


def _json_key_decoder(t: CqlType) -> Decoder:
    """A JSON map key (always a string) -> the key value: text-like keys are the key's
    JSON value itself, the others (numbers, booleans, collections) its JSON text."""
    decode = _json_decoder(t)
    if t.name in _SCALARS and _SCALARS[t.name].json_key_is_text:
        return decode
    return lambda key: decode(json.loads(key))


def _fields_of(value: Any, count: int) -> Sequence[Any]:
    if len(value) != count:
        raise ValueError(f"{len(value)} fields where the type has {count}")
    return value


def _json_decoder(t: CqlType) -> Decoder:
    """JSON value (as json.loads gives it, not None) -> the value of type ``t``."""
    if t.name in _SCALARS:
        return _SCALARS[t.name].json
    if t.name in ("list", "set", "vector"):
        element = _json_decoder(t.params[0])
        return lambda value: [element(item) for item in value]
    if t.name == "map":
        key = _json_key_decoder(t.params[0])
        item_value = _json_decoder(t.params[1])
        make = _map_of(t)
        return lambda value: make([(key(k), item_value(v)) for k, v in value.items()])
    if t.name == "tuple":
        parts = tuple(_nullable(_json_decoder(p)) for p in t.params)
        count = len(parts)
        return lambda value: tuple(
            part(item) for part, item in zip(parts, _fields_of(value, count), strict=True)
        )
    if t.name == "udt":
        named = tuple(
            (name, _nullable(_json_decoder(p)))
            for name, p in zip(t.field_names, t.params, strict=True)
        )
        return lambda value: UdtValue((name, part(value[name])) for name, part in named)
    raise ValueError(f"no JSON decoding for CQL type {t}")


def _csv_decoder(t: CqlType) -> Decoder:
    """CSV field text (not null) -> the value of type ``t``."""
    if t.name in _SCALARS:
        return _SCALARS[t.name].csv
    from_json = _json_decoder(t)
    return lambda text: from_json(json.loads(text))


def _avro_decoder(t: CqlType) -> Decoder:
    """fastavro datum (logical types not applied, not None) -> the value of type ``t``."""
    if t.name in _SCALARS:
        return _SCALARS[t.name].avro
    if t.name in ("list", "set", "vector"):
        element = _avro_decoder(t.params[0])
        if element is _identity:
            return list
        return lambda value: [element(item) for item in value]
    if t.name == "map":
        key = _avro_decoder(t.params[0])
        item_value = _avro_decoder(t.params[1])
        make = _map_of(t)
        if t.params[0].name in ("text", "ascii"):
            return lambda value: make([(k, item_value(v)) for k, v in value.items()])
        return lambda value: make([(key(e["key"]), item_value(e["value"])) for e in value])
    if t.name in ("tuple", "udt"):
        if t.name == "tuple":
            avro_names: tuple[str, ...] = tuple(f"f{i}" for i in range(len(t.params)))
        else:
            used: set[str] = set()
            avro_names = tuple(avro_field_name(name, used) for name in t.field_names)
        named = tuple(
            (avro_name, _nullable(_avro_decoder(p)))
            for avro_name, p in zip(avro_names, t.params, strict=True)
        )
        if t.name == "tuple":
            return lambda value: tuple(part(value[name]) for name, part in named)
        field_names = t.field_names
        return lambda value: UdtValue(
            zip(field_names, (part(value[name]) for name, part in named), strict=True)
        )
    raise ValueError(f"no Avro decoding for CQL type {t}")


# ---------------------------------------------------------------------------
# Per-field column decoders
# ---------------------------------------------------------------------------


def _element_times(single: Decoder) -> Decoder:
    """A list of element writetimes / TTLs (None where an element has none)."""
    return lambda values: [None if v is None else single(v) for v in values]


def _meta_json_single(field: LayoutField, layout: ExportLayout) -> Decoder:
    if field.role == "writetime" and layout.writetime_format == "iso":
        return _writetime_micros
    return _json_int


def _field_decoder(field: LayoutField, layout: ExportLayout) -> Decoder:
    """Non-null field (CSV text, JSON value or Avro datum) -> its decoded value."""
    fmt = layout.format
    if field.role == "value":
        if fmt == "csv":
            return _csv_decoder(field.cql_type)
        if fmt == "avro":
            return _avro_decoder(field.cql_type)
        return _json_decoder(field.cql_type)
    if fmt == "avro":  # micros / seconds as they are (logical types not applied)
        return _identity
    single = _meta_json_single(field, layout)
    if fmt == "csv":
        if field.per_element:
            times = _element_times(single)
            return lambda text: times(json.loads(text))
        return _writetime_micros if single is _writetime_micros else _integer
    return _element_times(single) if field.per_element else single


_INTEGER_LINES = re.compile(r"-?\d+(?:\n-?\d+)*")
# Distinct whole seconds remembered while decoding one writetime column.
_SECOND_CACHE_ENTRIES = 100_000


def _integer_column(texts: Sequence[str]) -> list[int]:
    """Integer texts -> ints: one regex pass over the column checks every text, then
    int() runs in C; a column that fails is decoded value by value for the message."""
    try:
        if _INTEGER_LINES.fullmatch("\n".join(texts)):
            return list(map(int, texts))
    except ValueError:  # more than 4300 digits
        pass
    return list(map(_integer, texts))


def _writetime_column(texts: Sequence[str]) -> list[int]:
    """RFC 3339 writetimes (or out-of-range integers) -> micros, each whole second parsed
    (and checked) once: the cells of a row, and rows written together, share it."""
    seconds: dict[str, int] = {}
    out = []
    append = out.append
    for text in texts:
        fraction = text[20:26]
        if len(text) != 27 or text[26] != "Z" or text[19] != "." or not fraction.isdigit():
            append(_writetime_micros(text))
            continue
        second = text[:19]
        base = seconds.get(second)
        if base is None:
            if len(seconds) > _SECOND_CACHE_ENTRIES:
                seconds.clear()
            base = seconds[second] = _writetime_micros(second + ".000000Z")
        append(base + int(fraction))
    return out


def _float32_column(values: Sequence[Any]) -> list[float]:
    """Float texts (or JSON numbers, 'NaN'...) -> float32 values, converted by numpy."""
    import numpy

    with numpy.errstate(over="raise"):
        floats = numpy.asarray(list(map(float, values)), dtype=numpy.float64)
        return floats.astype(numpy.float32).astype(numpy.float64).tolist()


# Decoders with a faster form for a whole column of non-null values.
_COLUMN_FORMS: dict[Decoder, Callable[[Sequence[Any]], list[Any]]] = {
    _integer: _integer_column,
    _writetime_micros: _writetime_column,
    _float32: _float32_column,
}


def _column_decoder(decode: Decoder) -> Callable[[Sequence[Any]], list[Any]]:
    """A decoder of one field made one of a whole column (None stays None)."""
    if decode is _identity:
        return list
    whole = _COLUMN_FORMS.get(decode) or (lambda values: list(map(decode, values)))

    def column(values: Sequence[Any]) -> list[Any]:
        if None not in values:
            return whole(values)
        found = iter(whole([v for v in values if v is not None]))
        return [None if v is None else next(found) for v in values]

    return column


def _plan_columns(layout: ExportLayout) -> list[Callable[[Sequence[Any]], list[Any]]]:
    return [_column_decoder(_field_decoder(field, layout)) for field in layout.fields]


# ---------------------------------------------------------------------------
# Files
# ---------------------------------------------------------------------------


def _read_bytes(path: str, compression: str) -> bytes:
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    try:
        with FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED) as handle:
            data = handle.read()
    except Exception as exc:  # FileNotFoundError, BeamIOError, permission errors, ...
        raise ExportFileError(path, f"cannot read: {_first_line(exc)}") from None
    if compression == "none":
        return data
    if not data:
        raise ExportFileError(path, f"empty file, not {compression} data")
    try:
        if compression == "gzip":
            return gzip.decompress(data)
        return _zstd_decompress(data)
    except Exception as exc:  # OSError, EOFError, zlib.error, zstandard.ZstdError
        raise ExportFileError(path, f"bad {compression} data: {_first_line(exc)}") from None


def _zstd_decompress(data: bytes) -> bytes:
    import zstandard

    parts = []
    while data:
        frame = zstandard.ZstdDecompressor().decompressobj()
        parts.append(frame.decompress(data))
        if not frame.eof:
            raise EOFError("compressed data ends before the end of its frame")
        data = frame.unused_data
    return b"".join(parts)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def _text_of(path: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ExportFileError(path, f"not UTF-8 at byte {exc.start}") from None


@functools.lru_cache(maxsize=16)
def _csv_pattern(delimiter: str) -> re.Pattern[str]:
    d = re.escape(delimiter)
    return re.compile(rf'"((?:[^"]|"")*)"({d}|\r\n)|([^{d}"\r\n]*)({d}|\r\n)')


def _csv_columns(path: str, text: str, layout: ExportLayout) -> list[list[Any]]:
    """The fields of an exported CSV file, a list per output field (None for null).

    RFC 4180 as the exporter writes it: CRLF after every record, the header included; an
    unquoted field equal to the null text is null, a quoted one never is (the exporter
    quotes an empty string, and any text equal to the null text)."""
    if not text.endswith("\r\n"):
        raise ExportFileError(path, "truncated: the last CSV record has no line end")
    delimiter, null = layout.delimiter, layout.null_value
    expected = list(layout.field_names)
    width = len(expected)
    if '"' in text:
        records = _csv_quoted_records(path, text, delimiter, null)
    else:  # nothing quoted: split in C, then slice the columns out of one flat list
        body = text[:-2]
        line_ends = body.count("\r\n")
        if body.count("\n") != line_ends or body.count("\r") != line_ends:
            raise ExportFileError(path, "malformed CSV: a bare line break outside quotes")
        lines = body.split("\r\n")
        counts = list(map(operator.methodcaller("count", delimiter), lines))
        if counts.count(width - 1) == len(lines):
            flat = body.replace("\r\n", delimiter).split(delimiter)
            _check_header(path, flat[:width], expected)
            columns = [flat[width + i :: width] for i in range(width)]
            return [
                [None if f == null else f for f in column] if null in column else column
                for column in columns
            ]
        records = [[None if f == null else f for f in line.split(delimiter)] for line in lines]
    _check_header(path, records[0], expected)
    for number, record in enumerate(records[1:], start=2):
        if len(record) != width:
            raise ExportFileError(
                path, f"CSV record {number} has {len(record)} fields, the header {width}"
            )
    return [list(column) for column in zip(*records[1:], strict=True)] or [[]] * width


def _check_header(path: str, header: Sequence[Any], expected: list[str]) -> None:
    if list(header) != expected:
        raise ExportFileError(
            path, f"CSV header {_brief(header)} is not the layout's {_brief(expected)}"
        )


def _csv_quoted_records(path: str, text: str, delimiter: str, null: str) -> list[list[Any]]:
    """Records of a CSV text with quoted fields, by one regex (no field is skipped: the
    matched lengths must add up to the whole text)."""
    records = []
    record: list[str | None] = []
    consumed = 0
    for quoted, quoted_end, plain, plain_end in _csv_pattern(delimiter).findall(text):
        if quoted_end:
            consumed += len(quoted) + 2 + len(quoted_end)
            record.append(quoted.replace('""', '"'))
            end = quoted_end
        else:
            consumed += len(plain) + len(plain_end)
            record.append(None if plain == null else plain)
            end = plain_end
        if end == "\r\n":
            records.append(record)
            record = []
    if consumed != len(text):
        raise ExportFileError(path, "malformed CSV: an unbalanced or stray quote")
    return records


def _brief(names: Sequence[Any]) -> str:
    text = ",".join(map(str, names))
    return text if len(text) <= 80 else text[:77] + "..."


def _json_objects(path: str, text: str, layout: ExportLayout) -> list[Any]:
    try:
        if layout.format == "json":
            objects = json.loads(text)
            if not isinstance(objects, list):
                raise ExportFileError(path, "a JSON export file holds one array")
            return objects
        if text and not text.endswith("\n"):
            raise ExportFileError(path, "truncated: the last JSON line has no line end")
        objects = []
        for number, line in enumerate(text.split("\n")[:-1], start=1):
            try:
                objects.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise ExportFileError(path, f"bad JSON on line {number}: {exc.msg}") from None
        return objects
    except json.JSONDecodeError as exc:
        raise ExportFileError(
            path, f"bad JSON at line {exc.lineno} column {exc.colno}: {exc.msg}"
        ) from None


def _json_columns(path: str, text: str, layout: ExportLayout) -> list[list[Any]]:
    names = layout.field_names
    expected = set(names)
    objects = _json_objects(path, text, layout)
    for number, obj in enumerate(objects, start=1):
        if not isinstance(obj, dict) or obj.keys() != expected:
            found = list(obj) if isinstance(obj, dict) else type(obj).__name__
            raise ExportFileError(
                path, f"JSON row {number} has fields {found}, not the layout's {list(names)}"
            )
    return [list(map(operator.itemgetter(name), objects)) for name in names]


def _without_logical_types(schema: Any) -> Any:
    """The schema with logicalType removed, so fastavro returns the stored ints and
    strings (exact in every year) instead of datetimes and UUIDs."""
    if isinstance(schema, dict):
        return {k: _without_logical_types(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [_without_logical_types(s) for s in schema]
    return schema


def _avro_field_names(layout: ExportLayout) -> list[str]:
    used: set[str] = set()
    return [avro_field_name(name, used) for name in layout.field_names]


# The Avro object container header (Avro specification, "Object Container Files").
_AVRO_HEADER_SCHEMA = {
    "type": "record",
    "name": "org.apache.avro.file.Header",
    "fields": [
        {"name": "magic", "type": {"type": "fixed", "name": "magic", "size": 4}},
        {"name": "meta", "type": {"type": "map", "values": "bytes"}},
        {"name": "sync", "type": {"type": "fixed", "name": "sync", "size": 16}},
    ],
}


def _avro_columns(path: str, data: bytes, layout: ExportLayout) -> list[list[Any]]:
    """The records' fields, a list per output field. fastavro applies the *writer* schema's logical
    types (datetimes that overflow past year 9999, dates, UUIDs), so the header is
    rewritten with a schema without them and the stored ints and strings come back."""
    import fastavro

    names = _avro_field_names(layout)
    try:
        stream = io.BytesIO(data)
        header = fastavro.schemaless_reader(stream, _AVRO_HEADER_SCHEMA)
        if header["magic"] != b"Obj\x01":
            raise ExportFileError(path, "not an Avro object container file")
        schema = json.loads(header["meta"]["avro.schema"])
        found = [f["name"] for f in schema.get("fields", ())]
        if found != names:
            raise ExportFileError(
                path, f"Avro fields {_brief(found)} are not the layout's {_brief(names)}"
            )
        meta = dict(header["meta"])
        meta["avro.schema"] = json.dumps(_without_logical_types(schema)).encode()
        plain = io.BytesIO()
        fastavro.schemaless_writer(plain, _AVRO_HEADER_SCHEMA, {**header, "meta": meta})
        plain.write(data[stream.tell() :])
        plain.seek(0)
        records = list(fastavro.reader(plain))
        return [list(map(operator.itemgetter(name), records)) for name in names]
    except ExportFileError:
        raise
    except Exception as exc:  # fastavro: EOFError, ValueError, zlib.error, ...
        raise ExportFileError(path, f"bad Avro data: {_first_line(exc)}") from None


def read_unit_rows(
    path: str, layout: ExportLayout, expected_rows: int | None = None
) -> Iterator[DecodedRow]:
    """Decode one committed unit file (any FileSystems path) into rows.

    The file is read and checked whole before the first row is yielded, so a truncated
    or corrupt file raises :class:`ExportFileError` before any of its rows are used.
    ``expected_rows`` (the unit marker's count) also catches a file cut at a row boundary,
    which still parses.
    """
    data = _read_bytes(path, "none" if layout.format in ("avro", "parquet") else layout.compression)
    if layout.format == "parquet":
        return _parquet_rows(path, data, layout, expected_rows)
    if layout.format == "avro":
        columns = _avro_columns(path, data, layout)
    elif layout.format == "csv":
        columns = _csv_columns(path, _text_of(path, data), layout)
    else:
        columns = _json_columns(path, _text_of(path, data), layout)
    fields = layout.fields
    for index, decode in enumerate(_plan_columns(layout)):
        try:
            columns[index] = decode(columns[index])
        except Exception as exc:  # a value the exporter cannot have written
            raise ExportFileError(
                path, f"field {fields[index].name!r}: bad value ({_first_line(exc)})"
            ) from None
    _check_row_count(path, len(columns[0]) if columns else 0, expected_rows)
    return _rows(layout, columns)


def _check_row_count(path: str, rows: int, expected_rows: int | None) -> None:
    if expected_rows is not None and rows != expected_rows:
        raise ExportFileError(
            path,
            f"holds {rows} rows but its export marker records {expected_rows}: the file is "
            "truncated or was replaced",
        )


def _parquet_rows(
    path: str, data: bytes, layout: ExportLayout, expected_rows: int | None
) -> Iterator[DecodedRow]:
    """A Parquet unit, decoded whole (so a corrupt file fails before any row is used) by the
    Parquet format's own reader, which knows each column's CQL type from the file."""
    from transforms.formats.parquet import read_parquet_rows

    try:
        rows = list(read_parquet_rows(io.BytesIO(data), sets_in_file_order=True))
    except Exception as exc:  # pyarrow's errors have no common base class
        raise ExportFileError(path, f"not a readable Parquet file ({_first_line(exc)})") from None
    _check_row_count(path, len(rows), expected_rows)
    expected = list(layout.field_names)
    if rows and list(rows[0]) != expected:
        raise ExportFileError(
            path, f"columns {_brief(list(rows[0]))} do not match the export's {_brief(expected)}"
        )
    by_role: dict[str, list[LayoutField]] = {"value": [], "writetime": [], "ttl": []}
    for field in layout.fields:
        by_role[field.role].append(field)
    return (
        DecodedRow(
            {f.column: _udt_of(f.cql_type, row[f.name]) for f in by_role["value"]},
            {f.column: row[f.name] for f in by_role["writetime"]},
            {f.column: row[f.name] for f in by_role["ttl"]},
        )
        for row in rows
    )


def _udt_of(t: CqlType, value: Any) -> Any:
    # Parquet's reader gives UDTs as tuples in field order; the other formats as UdtValue.
    if value is None or t.name != "udt":
        return value
    return UdtValue(zip(udt_field_names(t), value, strict=True))


def _rows(layout: ExportLayout, columns: list[list[Any]]) -> Iterator[DecodedRow]:
    groups = []
    for role in ("value", "writetime", "ttl"):
        indexes = [i for i, f in enumerate(layout.fields) if f.role == role]
        names = [layout.fields[i].column for i in indexes]
        # zip() of no columns yields no rows: a role without fields is empty per row
        rows = zip(*(columns[i] for i in indexes), strict=True) if indexes else itertools.repeat(())
        groups.append((names, rows))
    (value_names, values), (writetime_names, writetimes), (ttl_names, ttls) = groups
    for value, writetime, ttl in zip(values, writetimes, ttls, strict=False):  # repeat()
        yield DecodedRow(
            dict(zip(value_names, value, strict=True)),
            dict(zip(writetime_names, writetime, strict=True)),
            dict(zip(ttl_names, ttl, strict=True)),
        )
