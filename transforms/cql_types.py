"""The one table of how each CQL type is written in CSV, JSON and Avro.

Plan a converter once per column from table metadata, then call it per value::

    column_type = parse_cql_type(table.columns["tags"].cql_type, user_type_table(keyspace))
    to_csv = csv_formatter(column_type)
    to_csv(row.tags)  # -> '["a","b"]'

Every converter is chosen by the column's CQL type, never by the Python type of a
value, so a ``list<int>`` column can never decide how a ``list<text>`` one is written.
``_SCALARS`` is the type table of docs/export.md; collections, tuples,
UDTs and vectors are composed from it. Formats outside this module reach it only
through the public accessors (``is_scalar``, ``writes_unchanged``, ``timestamp_millis``,
``udt_field_names``, ``CqlType.to_json``).

Renderings chosen where several were possible:

- timestamps, dates and writetimes outside years 1-9999 are written as their integer
  (milliseconds, days since 1970-01-01, microseconds), as a string in JSON;
- ``decimal`` is written in plain notation with its scale kept (``1.50``, ``1000``,
  ``0.000000000123``); only exponents beyond +-1000 fall back to the exact scientific
  ``str()`` so that a tiny value cannot produce a huge string;
- ``float`` is the shortest text that round-trips through float32 (``0.1``), ``double``
  Python's shortest round-trip ``repr`` (``1e+16``); in JSON a ``float`` is the double
  nearest that text, so ``json.dumps`` writes the same digits;
- ``duration`` is ISO 8601 with years and months split from the month count, the
  nanoseconds as hours, minutes and seconds with trailing fraction zeros dropped, a
  leading ``-`` when negative and ``PT0S`` for zero;
- sets and maps keep the order the driver gives (Cassandra's order).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import functools
import json
import math
import re
import struct
from collections.abc import Callable, Iterable, Mapping, Sequence
from decimal import Decimal
from typing import Any, NamedTuple

__all__ = [
    "AvroNames",
    "CqlType",
    "avro_converter",
    "avro_field_name",
    "avro_schema",
    "csv_formatter",
    "float32_json_values",
    "float32_texts",
    "is_scalar",
    "json_text",
    "format_writetime_iso",
    "json_converter",
    "parse_cql_type",
    "timestamp_millis",
    "timestamp_texts",
    "udt_field_names",
    "user_type_table",
    "writetime_formatter",
    "writetime_texts",
    "writes_unchanged",
]

AvroSchema = dict[str, Any] | str
UserTypes = Mapping[str, tuple[Sequence[str], Sequence[str]]]

# ---------------------------------------------------------------------------
# CQL types and their parser
# ---------------------------------------------------------------------------

_COLLECTIONS = frozenset({"list", "set", "map"})
_FREEZABLE = frozenset({"list", "set", "map", "tuple", "udt"})
_TEXT_NAMES = frozenset({"text", "ascii"})
_ALIASES = {"varchar": "text"}
# The driver spells vectors from result metadata with the marshal class name.
_VECTOR_NAMES = frozenset({"vector", "org.apache.cassandra.db.marshal.vectortype"})
_PLAIN_IDENTIFIER = re.compile(r"[a-z][a-z0-9_]*")


@dataclasses.dataclass(frozen=True)
class CqlType:
    """A parsed CQL type; ``name`` is 'int', 'text', 'list', 'map', 'tuple', 'udt', 'vector', ..."""

    name: str
    params: tuple[CqlType, ...] = ()
    frozen: bool = False
    udt_name: str | None = None
    field_names: tuple[str, ...] = ()
    dimension: int | None = None

    @property
    def is_collection(self) -> bool:
        return self.name in _COLLECTIONS

    @property
    def is_multicell(self) -> bool:
        """Non-frozen list/set/map/UDT: Cassandra 5 gives these one writetime per element."""
        return self.name in ("list", "set", "map", "udt") and not self.frozen

    @property
    def is_counter(self) -> bool:
        return self.name == "counter"

    def __str__(self) -> str:
        if self.name == "udt":
            udt_name = self.udt_name or ""
            if _PLAIN_IDENTIFIER.fullmatch(udt_name):
                inner = udt_name
            else:
                inner = '"' + udt_name.replace('"', '""') + '"'
        elif self.name == "vector":
            inner = f"vector<{self.params[0]}, {self.dimension}>"
        elif self.params:
            inner = f"{self.name}<{', '.join(str(p) for p in self.params)}>"
        else:
            inner = self.name
        return f"frozen<{inner}>" if self.frozen and self.name in _FREEZABLE else inner

    def to_json(self) -> dict[str, Any]:
        """The whole type, UDT fields included, as JSON: a file can carry it and be read
        back without the keyspace's user types (see ``from_json``)."""
        out: dict[str, Any] = {"name": self.name}
        if self.params:
            out["params"] = [p.to_json() for p in self.params]
        if self.frozen:
            out["frozen"] = True
        if self.udt_name is not None:
            out["udt_name"] = self.udt_name
            out["field_names"] = list(self.field_names)
        if self.dimension is not None:
            out["dimension"] = self.dimension
        return out

    @classmethod
    def from_json(cls, value: Mapping[str, Any]) -> CqlType:
        """The type that ``to_json`` described."""
        return cls(
            name=value["name"],
            params=tuple(cls.from_json(p) for p in value.get("params", ())),
            frozen=bool(value.get("frozen", False)),
            udt_name=value.get("udt_name"),
            field_names=tuple(value.get("field_names", ())),
            dimension=value.get("dimension"),
        )


_TOKEN = re.compile(r'\s*(?:(?P<punct>[<>,])|"(?P<quoted>(?:[^"]|"")*)"|(?P<word>[A-Za-z0-9_.]+))')


def parse_cql_type(type_string: str, user_types: UserTypes | None = None) -> CqlType:
    """Parse a driver type string ('frozen<list<int>>', 'vector<float, 3>', '"MyType"', ...).

    ``user_types`` maps a UDT name to ``(field_names, field_type_strings)``, as
    ``UserType.field_names`` / ``UserType.field_types`` give them (see ``user_type_table``).
    """
    return _TypeParser(type_string, user_types or {}).parse_whole(resolving=())


def user_type_table(keyspace_metadata: Any) -> dict[str, tuple[Sequence[str], Sequence[str]]]:
    """The ``user_types`` argument of ``parse_cql_type`` from a driver ``KeyspaceMetadata``."""
    return {
        name: (tuple(udt.field_names), tuple(udt.field_types))
        for name, udt in keyspace_metadata.user_types.items()
    }


class _TypeParser:
    def __init__(self, type_string: str, user_types: UserTypes) -> None:
        self.type_string = type_string
        self.user_types = user_types
        self.tokens = self._tokenize(type_string)
        self.position = 0

    def _tokenize(self, text: str) -> list[tuple[str, str]]:
        tokens: list[tuple[str, str]] = []
        index = 0
        while text[index:].strip():
            match = _TOKEN.match(text, index)
            if match is None:
                raise ValueError(f"cannot parse CQL type {text!r} at position {index}")
            kind = match.lastgroup or ""
            value = match.group(kind)
            tokens.append((kind, value.replace('""', '"') if kind == "quoted" else value))
            index = match.end()
        return tokens

    def _next(self) -> tuple[str, str]:
        if self.position >= len(self.tokens):
            raise ValueError(f"unexpected end of CQL type {self.type_string!r}")
        token = self.tokens[self.position]
        self.position += 1
        return token

    def _expect(self, punct: str) -> None:
        kind, value = self._next()
        if kind != "punct" or value != punct:
            raise ValueError(
                f"expected {punct!r} but found {value!r} in CQL type {self.type_string!r}"
            )

    def _expect_end(self) -> None:
        if self.position != len(self.tokens):
            rest = self.tokens[self.position][1]
            raise ValueError(f"unexpected {rest!r} in CQL type {self.type_string!r}")

    def _params(self, resolving: tuple[str, ...]) -> tuple[CqlType, ...]:
        self._expect("<")
        params = [self.parse_type(resolving)]
        while True:
            kind, value = self._next()
            if kind == "punct" and value == ">":
                return tuple(params)
            if kind != "punct" or value != ",":
                raise ValueError(f"unexpected {value!r} in CQL type {self.type_string!r}")
            params.append(self.parse_type(resolving))

    def parse_type(self, resolving: tuple[str, ...]) -> CqlType:
        kind, word = self._next()
        if kind == "quoted":
            return self._user_type(word, word, resolving)
        if kind != "word":
            raise ValueError(f"unexpected {word!r} in CQL type {self.type_string!r}")
        name = word.lower()
        if name == "frozen":
            (inner,) = self._count(self._params(resolving), 1, "frozen")
            if inner.name in _FREEZABLE:
                return dataclasses.replace(inner, frozen=True)
            return inner
        if name in ("list", "set"):
            return CqlType(name, self._count(self._params(resolving), 1, name))
        if name == "map":
            return CqlType(name, self._count(self._params(resolving), 2, name))
        if name == "tuple":
            return CqlType(name, self._params(resolving))
        if name in _VECTOR_NAMES:
            return self._vector(resolving)
        name = _ALIASES.get(name, name)
        if name in _SCALARS:
            return CqlType(name)
        return self._user_type(word, name, resolving)

    def _count(self, params: tuple[CqlType, ...], count: int, name: str) -> tuple[CqlType, ...]:
        if len(params) != count:
            raise ValueError(f"{name} takes {count} type parameter(s) in {self.type_string!r}")
        return params

    def _vector(self, resolving: tuple[str, ...]) -> CqlType:
        self._expect("<")
        element = self.parse_type(resolving)
        self._expect(",")
        kind, size = self._next()
        if kind != "word" or not size.isdigit() or int(size) <= 0:
            raise ValueError(f"bad vector dimension {size!r} in CQL type {self.type_string!r}")
        self._expect(">")
        return CqlType("vector", (element,), dimension=int(size))

    def _user_type(self, spelled: str, folded: str, resolving: tuple[str, ...]) -> CqlType:
        candidates = [spelled, folded]
        if "." in spelled:  # keyspace-qualified: ks.address
            candidates += [spelled.rsplit(".", 1)[1], folded.rsplit(".", 1)[1]]
        for udt_name in candidates:
            if udt_name in self.user_types:
                break
        else:
            raise ValueError(f"unknown CQL type {spelled!r} in {self.type_string!r}")
        if udt_name in resolving:
            raise ValueError(f"user type {udt_name!r} refers to itself in {self.type_string!r}")
        field_names, field_types = self.user_types[udt_name]
        if len(field_names) != len(field_types):
            raise ValueError(
                f"user type {udt_name!r} has {len(field_names)} names but {len(field_types)} types"
            )
        params = tuple(
            _TypeParser(field_type, self.user_types).parse_whole(resolving + (udt_name,))
            for field_type in field_types
        )
        return CqlType("udt", params, udt_name=udt_name, field_names=tuple(field_names))

    def parse_whole(self, resolving: tuple[str, ...]) -> CqlType:
        parsed = self.parse_type(resolving)
        self._expect_end()
        return parsed


# ---------------------------------------------------------------------------
# Renderings shared by the formats
# ---------------------------------------------------------------------------

_EPOCH = datetime.datetime(1970, 1, 1)
_EPOCH_ORDINAL = _EPOCH.toordinal()  # 719163
_MAX_ORDINAL = datetime.date.max.toordinal()
_SECONDS_PER_DAY = 86_400
_ONE_MICROSECOND = datetime.timedelta(microseconds=1)
_NANOS_PER_SECOND = 1_000_000_000
# str(int) refuses more than 4300 digits (sys.get_int_max_str_digits); Decimal does not.
_MAX_INT_STR_BITS = 14_000
_PLAIN_DECIMAL_EXPONENT = 1000


_MIN_DAY = 1 - _EPOCH_ORDINAL  # 0001-01-01, in days since the epoch
_MAX_DAY = _MAX_ORDINAL - _EPOCH_ORDINAL  # 9999-12-31


@functools.lru_cache(maxsize=8192)
def _utc_day_prefix(days: int) -> str:
    """'YYYY-MM-DDT' of a day within years 1-9999 (days since the epoch). Cached: values
    of one export mostly fall on a few thousand days."""
    day = datetime.date.fromordinal(_EPOCH_ORDINAL + days)
    return f"{day.year:04d}-{day.month:02d}-{day.day:02d}T"


_TWO_DIGITS = tuple(f"{i:02d}" for i in range(60))
_HOUR_MINUTE = tuple(f"{h:02d}:{m:02d}:" for h in range(24) for m in range(60))  # by minute of day
_MILLIS_FRACTION = tuple(f".{i:03d}Z" for i in range(1000))


_MICROS_HEAD = tuple(f".{i:03d}" for i in range(1000))  # fraction digits 1-3 of 6
_MICROS_TAIL = tuple(f"{i:03d}Z" for i in range(1000))  # fraction digits 4-6 of 6


def _rfc3339_texts(values: Iterable[Any], per_second: int) -> list[str]:
    """Integers of ``per_second`` units since the epoch (1000: milliseconds, with three
    fraction digits; 1,000,000: microseconds, six) as RFC 3339 UTC, a column at a time:
    one day lookup per distinct day, the rest by table lookups (3-5x faster than value by
    value). Outside years 1-9999 the integer as text. Datetimes (timestamps nested in
    collections) are taken as milliseconds."""
    out: list[str] = []
    append = out.append
    day_prefix: dict[int, str] = {}
    micros = per_second == 1_000_000
    for value in values:
        if type(value) is not int:
            value = timestamp_millis(value)
        seconds, fraction = divmod(value, per_second)
        days, second_of_day = divmod(seconds, _SECONDS_PER_DAY)
        prefix = day_prefix.get(days)
        if prefix is None:
            if not _MIN_DAY <= days <= _MAX_DAY:
                append(str(value))
                continue
            prefix = day_prefix[days] = _utc_day_prefix(days)
        minute, second = divmod(second_of_day, 60)
        if micros:
            head, tail = divmod(fraction, 1000)
            append(
                prefix
                + _HOUR_MINUTE[minute]
                + _TWO_DIGITS[second]
                + _MICROS_HEAD[head]
                + _MICROS_TAIL[tail]
            )
        else:
            append(prefix + _HOUR_MINUTE[minute] + _TWO_DIGITS[second] + _MILLIS_FRACTION[fraction])
    return out


def writetime_texts(values: Iterable[int]) -> list[str]:
    """Writetimes (int microseconds, no None) as RFC 3339 UTC with six fraction digits;
    outside years 1-9999 the integer as text."""
    return _rfc3339_texts(values, 1_000_000)


def format_writetime_iso(micros: int) -> str:
    """RFC 3339 UTC with six fraction digits; outside years 1-9999 the integer as text."""
    return writetime_texts((micros,))[0]


def writetime_formatter(fmt: str) -> Callable[[int | None], str | int | None]:
    """The writetime rendering for ``--writetime-format`` 'iso' or 'micros'; None stays None."""
    if fmt == "iso":
        return lambda micros: None if micros is None else format_writetime_iso(micros)
    if fmt == "micros":
        return lambda micros: micros
    raise ValueError(f"writetime format must be 'iso' or 'micros', not {fmt!r}")


def timestamp_millis(value: int | datetime.datetime) -> int:
    """A CQL timestamp as integer milliseconds since the epoch, from an int (kept) or a
    driver datetime (naive UTC, or aware)."""
    # Top-level timestamps are selected as blobAsBigint(timestampAsBlob(c)) and arrive as
    # int ms; timestamps nested in collections arrive as the driver's naive UTC datetime.
    if isinstance(value, int):
        return value
    if value.tzinfo is not None:
        value = value.astimezone(datetime.UTC).replace(tzinfo=None)
    micros = (value - _EPOCH) // _ONE_MICROSECOND
    # The driver builds the datetime through float seconds, a few microseconds off the
    # stored whole millisecond; rounding to the nearest millisecond recovers it exactly.
    return (micros + 500) // 1000


def timestamp_texts(values: Iterable[int | datetime.datetime]) -> list[str]:
    """CQL timestamps (int ms or datetimes, no None) as RFC 3339 UTC with milliseconds;
    outside years 1-9999 the milliseconds as text."""
    return _rfc3339_texts(values, 1000)


def _timestamp_text(value: int | datetime.datetime) -> str:
    return timestamp_texts((value,))[0]


def _date_text(value: Any) -> str:
    days = value.days_from_epoch
    ordinal = _EPOCH_ORDINAL + days
    if not 1 <= ordinal <= _MAX_ORDINAL:
        return str(days)
    return datetime.date.fromordinal(ordinal).isoformat()


def _time_text(value: Any) -> str:
    nanos = value.nanosecond_time
    seconds, fraction = divmod(nanos, _NANOS_PER_SECOND)
    minutes, second = divmod(seconds, 60)
    hour, minute = divmod(minutes, 60)
    return f"{hour:02d}:{minute:02d}:{second:02d}.{fraction:09d}"


def _split(amount: int, unit: int) -> tuple[int, int]:
    """divmod that truncates toward zero, so both parts keep the sign of ``amount``."""
    quotient, remainder = divmod(abs(amount), unit)
    return (-quotient, -remainder) if amount < 0 else (quotient, remainder)


def _duration_text(value: Any) -> str:
    months, days, nanos = value.months, value.days, value.nanoseconds
    # Cassandra gives all three parts one sign; a hand-built mixed-sign value keeps a
    # sign per part, as java.time does.
    negative = months <= 0 and days <= 0 and nanos <= 0
    if negative:
        months, days, nanos = -months, -days, -nanos
    years, months = _split(months, 12)
    hours, nanos = _split(nanos, 3600 * _NANOS_PER_SECOND)
    minutes, nanos = _split(nanos, 60 * _NANOS_PER_SECOND)
    seconds, fraction = _split(nanos, _NANOS_PER_SECOND)
    date_part = "".join(f"{n}{unit}" for n, unit in ((years, "Y"), (months, "M"), (days, "D")) if n)
    time_part = "".join(f"{n}{unit}" for n, unit in ((hours, "H"), (minutes, "M")) if n)
    if seconds or fraction:
        sign = "-" if seconds == 0 and fraction < 0 else ""
        digits = f"{abs(fraction):09d}".rstrip("0")
        time_part += f"{sign}{seconds}" + (f".{digits}" if digits else "") + "S"
    if not date_part and not time_part:
        return "PT0S"
    return ("-" if negative else "") + "P" + date_part + ("T" + time_part if time_part else "")


def _duration_object(value: Any) -> dict[str, int]:
    return {"months": value.months, "days": value.days, "nanoseconds": value.nanoseconds}


def _non_finite_text(value: float) -> str | None:
    if value != value:
        return "NaN"
    if value == math.inf:
        return "Infinity"
    if value == -math.inf:
        return "-Infinity"
    return None


_FLOAT32 = struct.Struct("<f")


def _to_float32(value: float) -> float:
    return _FLOAT32.unpack(_FLOAT32.pack(value))[0]


def _rounds_back(target: float, digits: int) -> float | None:
    """``target`` rounded to ``digits`` significant decimal digits, if that decimal reads
    back as the same float32; else None."""
    candidate = float(f"{target:.{digits - 1}e}")
    try:
        return candidate if _to_float32(candidate) == target else None
    except OverflowError:  # rounded above the float32 maximum
        return None


def _float32_text(value: float) -> str:
    """Shortest text that reads back as the same float32 (0.1, not 0.10000000149011612).

    Binary search over 1-9 significant digits (9 always identify a float32): the decimals
    of d digits are among those of d + 1, so if d digits read back, d + 1 do too. About 3
    tries per value instead of up to 9."""
    special = _non_finite_text(value)
    if special is not None:
        return special
    try:
        target = _to_float32(value)
    except OverflowError:  # not a float32 at all; the double's own shortest text
        return repr(value)
    low, high = 1, 9
    best = None
    while low < high:
        middle = (low + high) // 2
        candidate = _rounds_back(target, middle)
        if candidate is None:
            low = middle + 1
        else:
            high, best = middle, candidate
    if best is None:  # 9 digits: not tried above
        best = _rounds_back(target, high)
    # repr of the parsed candidate is that same short text, in Python's layout.
    return repr(target) if best is None else repr(best)


def float32_texts(values: Sequence[float]) -> list[str]:
    """CQL floats (no None) as :func:`_float32_text` renders each, a column at a time:
    numpy's shortest float32 text (Dragon4, in C), put in Python's layout where numpy
    chose an exponent. Columns with a non-finite value (or one no float32 can hold) go
    value by value. 0.6 µs per value against 3.8 (tested equal on 300,000 values)."""
    import numpy

    with numpy.errstate(over="ignore"):
        array = numpy.asarray(values, dtype=numpy.float32)
    if not numpy.isfinite(array).all():
        return list(map(_float32_text, values))
    return [repr(float(t)) if "e" in t else t for t in array.astype(str).tolist()]


def _double_text(value: float) -> str:
    special = _non_finite_text(value)
    return repr(value) if special is None else special


def _float32_json(value: float) -> float | str:
    # The double nearest the float32's shortest text: json.dumps writes that text.
    text = _float32_text(value)
    return float(text) if math.isfinite(value) else text


_NON_FINITE_TEXTS = frozenset(map(_non_finite_text, (math.nan, math.inf, -math.inf)))


def float32_json_values(values: Sequence[float]) -> list[float | str]:
    """CQL floats (no None) as :func:`_float32_json` gives each, a column at a time."""
    return [t if t in _NON_FINITE_TEXTS else float(t) for t in float32_texts(values)]


def _double_json(value: float) -> float | str:
    return value if math.isfinite(value) else _double_text(value)


def _varint_text(value: int) -> str:
    if value.bit_length() <= _MAX_INT_STR_BITS:
        return str(value)
    return format(Decimal(value), "f")


def _decimal_text(value: Decimal) -> str:
    exponent = value.as_tuple().exponent
    if isinstance(exponent, int) and abs(exponent) <= _PLAIN_DECIMAL_EXPONENT:
        return format(value, "f")
    return str(value)


def _blob_hex(value: bytes) -> str:
    return "0x" + bytes(value).hex()


def _blob_base64(value: bytes) -> str:
    return base64.b64encode(value).decode("ascii")


def _identity(value: Any) -> Any:
    return value


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
    "varint": _ScalarSpec(_varint_text, _varint_text, _avro_primitive("string"), _varint_text),
    "decimal": _ScalarSpec(_decimal_text, _decimal_text, _avro_primitive("string"), _decimal_text),
    "float": _ScalarSpec(_float32_text, _float32_json, _avro_primitive("float"), _identity),
    "double": _ScalarSpec(_double_text, _double_json, _avro_primitive("double"), _identity),
    "boolean": _ScalarSpec(_bool_text, _identity, _avro_primitive("boolean"), _identity),
    "blob": _ScalarSpec(_blob_hex, _blob_base64, _avro_primitive("bytes"), bytes),
    "uuid": _UUID,
    "timeuuid": _UUID,
    "timestamp": _ScalarSpec(
        _timestamp_text,
        _timestamp_text,
        _avro_logical("long", "timestamp-millis"),
        timestamp_millis,
    ),
    "date": _ScalarSpec(
        _date_text, _date_text, _avro_logical("int", "date"), lambda d: d.days_from_epoch
    ),
    "time": _ScalarSpec(
        _time_text, _time_text, _avro_primitive("long"), lambda t: t.nanosecond_time
    ),
    "duration": _ScalarSpec(_duration_text, _duration_object, _avro_duration, _duration_object),
    "inet": _ScalarSpec(str, str, _avro_primitive("string"), str),
}


def is_scalar(t: CqlType) -> bool:
    """True for a type of the per-type table; False for collections, tuples, UDTs, vectors."""
    return t.name in _SCALARS


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


_JSON_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def json_text(value: Any) -> str:
    """Compact JSON (no spaces, UTF-8 kept, NaN refused). One encoder for all values:
    json.dumps with options builds a new one per call."""
    return _JSON_ENCODER.encode(value)


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
            return dict  # text keys, values as they are
        element = _nullable(value_json)

        def key_text(key: Any) -> str:
            converted = key_json(key)
            return converted if isinstance(converted, str) else json_text(converted)

        return lambda value: {key_text(k): element(v) for k, v in value.items()}
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


# ---------------------------------------------------------------------------
# Avro
# ---------------------------------------------------------------------------

_AVRO_INVALID = re.compile(r"[^A-Za-z0-9_]")
# Type names a record may not take: Avro would read them as the built-in types.
_AVRO_TYPE_NAMES = frozenset(
    {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}
    | {"record", "enum", "array", "map", "fixed", "error"}
)


def _avro_sanitize(name: str) -> str:
    cleaned = _AVRO_INVALID.sub("_", name) or "_"
    return "_" + cleaned if cleaned[0].isdigit() else cleaned


def _unique(base: str, used: set[str]) -> str:
    candidate, suffix = base, 2
    while candidate in used:
        candidate, suffix = f"{base}_{suffix}", suffix + 1
    used.add(candidate)
    return candidate


def avro_field_name(column_name: str, used: set[str]) -> str:
    """A valid Avro field name for ``column_name``, not in ``used`` (and added to it)."""
    return _unique(_avro_sanitize(column_name), used)


class AvroNames:
    """Hands out valid record names, unique within one Avro schema."""

    def __init__(self, reserved: Sequence[str] = ()) -> None:
        self._used: set[str] = set(_AVRO_TYPE_NAMES)
        self._used.update(reserved)

    def record_name(self, hint: str) -> str:
        return _unique(_avro_sanitize(hint), self._used)


def udt_field_names(t: CqlType) -> tuple[str, ...]:
    """The UDT's field names made valid Avro names (and unique): the Avro record fields and
    the Parquet struct fields of a UDT, so one export names them alike in both."""
    used: set[str] = set()
    return tuple(avro_field_name(name, used) for name in t.field_names)


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
            return lambda value: {k: value_datum(v) for k, v in value.items()}
        return lambda value: [
            {"key": key_datum(k), "value": value_datum(v)} for k, v in value.items()
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
