"""Exported values back to typed Python values: one decoder per output field, planned from
the column's CQL type and the file's format, run over a whole column of values.

The inverse of the renderings in :mod:`transforms.cql_types` (see
:mod:`transforms.export_decode` for the Python types values come back as).
``column_decoders(layout)`` gives, per output field of the layout, a function from the
field's raw values (CSV texts, JSON values or Avro data; None for null) to the decoded
values.
"""

from __future__ import annotations

import base64
import datetime
import functools
import json
import re
import struct
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from transforms.cql_types import CqlType, avro_field_name
from transforms.export_layout import Decoder, ExportLayout, LayoutField, UdtValue
from transforms.number_texts import double_column, float32_column, integers_of
from transforms.timestamp_texts import rfc3339_column

__all__ = ["column_decoders", "csv_kinds"]

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
    """Whether decoded values of ``t`` can be dict keys: not a duration (the driver's
    defines no hash), nor a float or double, whose -0.0 and 0.0 a dict takes for one key
    where Cassandra holds two."""
    if t.name in _SCALARS:
        return t.name not in ("duration", "float", "double")
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


def _integer_column(texts: Sequence[str]) -> list[int]:
    """Integer texts -> ints: parsed by Arrow when they fit int64 (see
    :mod:`transforms.number_texts`), else one regex pass over the column checks every text,
    then int() runs in C; a column that fails is decoded value by value for the message."""
    fast = integers_of(texts)
    if fast is not None:
        return fast
    try:
        if _INTEGER_LINES.fullmatch("\n".join(texts)):
            return list(map(int, texts))
    except ValueError:  # more than 4300 digits
        pass
    return list(map(_integer, texts))


# Decoders with a faster form for a whole column of non-null values.
_COLUMN_FORMS: dict[Decoder, Callable[[Sequence[Any]], list[Any]]] = {
    _integer: _integer_column,
    _timestamp_millis: rfc3339_column(_timestamp_millis, 1000),
    _writetime_micros: rfc3339_column(_writetime_micros, 1_000_000),
    _float32: float32_column,
    _double: double_column,
}


def _column_decoder(decode: Decoder) -> Callable[[Sequence[Any]], list[Any]]:
    """A decoder of one field made one of a whole column (None stays None)."""
    if decode is _identity:
        return list
    whole = _COLUMN_FORMS.get(decode) or (lambda values: list(map(decode, values)))

    def column(values: Sequence[Any]) -> list[Any]:
        if None not in values:
            return whole(values)
        if values.count(None) == len(values):
            return [None] * len(values)
        found = iter(whole([v for v in values if v is not None]))
        return [None if v is None else next(found) for v in values]

    return column


def column_decoders(layout: ExportLayout) -> list[Callable[[Sequence[Any]], list[Any]]]:
    return [_column_decoder(_field_decoder(field, layout)) for field in layout.fields]


# The CSV decoders that a whole-column reader (transforms.csv_arrow) has a form of, by name.
_CSV_KINDS: dict[Decoder, str] = {
    _identity: "text",
    _integer: "integer",
    _double: "double",
    _float32: "float32",
    _boolean: "boolean",
    _timestamp_millis: "millis",
    _writetime_micros: "micros",
}


def csv_kinds(layout: ExportLayout) -> list[str]:
    """Per field of a CSV layout, the kind of text its column holds (one of the names
    above, "other" for the rest): what :func:`column_decoders` decodes it as."""
    return [_CSV_KINDS.get(_field_decoder(f, layout), "other") for f in layout.fields]
