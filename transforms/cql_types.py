"""CQL types: the parsed type of a column, its parser, and the names its fields take in
Avro and Parquet schemas.

Parse a column's type once from table metadata::

    column_type = parse_cql_type(table.columns["tags"].cql_type, user_type_table(keyspace))
    column_type.is_multicell  # True for a non-frozen list<text>

How a value of each type is written lives beside: :mod:`transforms.cql_text` renders single
values as text (timestamps, writetimes, floats, durations...), :mod:`transforms.cql_convert`
holds the per-type table of CSV, JSON and Avro and plans one converter per column from it.
"""

from __future__ import annotations

import dataclasses
import re
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = [
    "AvroNames",
    "CqlType",
    "SCALAR_TYPES",
    "avro_field_name",
    "is_scalar",
    "parse_cql_type",
    "type_string_names",
    "udt_field_names",
    "user_type_table",
]

UserTypes = Mapping[str, tuple[Sequence[str], Sequence[str]]]

# The types of the per-type table (docs/export.md, "How each CQL type is written"):
# everything that is not a collection, tuple, UDT or vector.
SCALAR_TYPES = frozenset(
    {"text", "ascii", "tinyint", "smallint", "int", "bigint", "counter", "varint", "decimal"}
    | {"float", "double", "boolean", "blob", "uuid", "timeuuid", "timestamp", "date", "time"}
    | {"duration", "inet"}
)

# ---------------------------------------------------------------------------
# CQL types and their parser
# ---------------------------------------------------------------------------

_COLLECTIONS = frozenset({"list", "set", "map"})
_FREEZABLE = frozenset({"list", "set", "map", "tuple", "udt"})
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


def type_string_names(type_string: str) -> set[str]:
    """Every name a CQL type string spells, quoted ones unquoted (``frozen<"two words">``:
    ``frozen`` and ``two words``): the names of the user types it may use are among them."""
    tokens = _TypeParser(type_string, {}).tokens
    return {value for kind, value in tokens if kind != "punct"}


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
        if name in SCALAR_TYPES:
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


def is_scalar(t: CqlType) -> bool:
    """True for a type of the per-type table; False for collections, tuples, UDTs, vectors."""
    return t.name in SCALAR_TYPES


# ---------------------------------------------------------------------------
# Names valid in Avro (and Parquet) schemas
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
    """``base``, or ``base_2``, ``base_3``, ...: the first not in ``used`` whatever its case
    (Spark and BigQuery compare column names without case, and refuse a file with ``a`` and
    ``A``); ``used`` holds the names handed out, lowercased."""
    candidate, suffix = base, 2
    while candidate.lower() in used:
        candidate, suffix = f"{base}_{suffix}", suffix + 1
    used.add(candidate.lower())
    return candidate


def avro_field_name(column_name: str, used: set[str]) -> str:
    """A valid Avro field name for ``column_name``, not in ``used`` (and added to it)."""
    return _unique(_avro_sanitize(column_name), used)


class AvroNames:
    """Hands out valid record names, unique within one Avro schema."""

    def __init__(self, reserved: Sequence[str] = ()) -> None:
        self._used: set[str] = set(_AVRO_TYPE_NAMES)
        self._used.update(name.lower() for name in reserved)

    def record_name(self, hint: str) -> str:
        return _unique(_avro_sanitize(hint), self._used)


def udt_field_names(t: CqlType) -> tuple[str, ...]:
    """The UDT's field names made valid Avro names (and unique): the Avro record fields and
    the Parquet struct fields of a UDT, so one export names them alike in both."""
    used: set[str] = set()
    return tuple(avro_field_name(name, used) for name in t.field_names)
