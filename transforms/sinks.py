"""Writing an export: one file per work unit piece, committed atomically, then finalized.

How a piece commits, so that no retry or crash can duplicate or lose rows::

    RowBatch...  -> append to OUT/_temporary/part-<unit>-<random>.<ext>
    PieceEnd     -> close; rename to OUT/data/part-<unit>.<ext>; write its marker
                    OUT/_manifest/ranges/<unit>.json (rows, token range, stats)

The file name depends only on the piece's start token, so a retried bundle writes
the same name again and the rename replaces the earlier attempt; a file whose
marker never got written is an orphan that finalization (and ``--resume``) deletes.
The writer is fused with the reader on every runner (no shuffle between them), so
a piece's batches and its end reach the same writer in the same bundle.

``Finalize`` runs once after every piece: it checks that the committed ranges
cover the ring exactly once, removes orphans, and writes checkpoint.json,
stats.json and, last, ``_SUCCESS``.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import logging
import posixpath
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from itertools import repeat
from typing import Any

import apache_beam as beam
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.metrics import Metrics

from transforms import cql_types
from transforms.elements import NAMESPACE, PieceEnd, PieceKey, RowBatch, relax_gc
from transforms.manifest import (
    Layout,
    check_exact_cover,
    checkpoint_body,
    completed_ranges,
    delete_files,
    ensure_dir,
    join,
    orphan_files,
    read_json,
    read_markers,
    remove_empty_dir,
    write_bytes_atomically,
    write_json,
)
from transforms.normalize import normalize_row_fn
from transforms.stats import StatsBuilder, merge_stats, summarize
from transforms.table_plan import (
    COLLECTION_LIST,
    DEFAULT_COLLECTION_POLICY,
    OutputField,
    TablePlan,
)

_LOG = logging.getLogger(__name__)

_EXTENSIONS = {"csv": ".csv", "jsonl": ".jsonl", "json": ".json", "avro": ".avro"}
_COMPRESSION = {
    "none": (CompressionTypes.UNCOMPRESSED, ""),
    "gzip": (CompressionTypes.GZIP, ".gz"),
    "zstd": (CompressionTypes.ZSTD, ".zst"),
}


@dataclass(frozen=True)
class SinkConfig:
    """How rows become bytes."""

    format: str = "csv"
    compression: str = "none"
    delimiter: str = ","
    null_value: str = ""
    writetime_format: str = "iso"
    avro_codec: str = "deflate"

    def __post_init__(self) -> None:
        if self.format not in _EXTENSIONS:
            raise ValueError(f"format must be one of {', '.join(_EXTENSIONS)}")
        if self.compression not in _COMPRESSION:
            raise ValueError(f"compression must be one of {', '.join(_COMPRESSION)}")
        if self.format == "avro" and self.compression != "none":
            raise ValueError("--compression applies to text formats; Avro uses --avro-codec")

    @property
    def extension(self) -> str:
        return _EXTENSIONS[self.format] + _COMPRESSION[self.compression][1]

    @property
    def compression_type(self) -> str:
        return _COMPRESSION[self.compression][0]


# --- per-field converters, planned once per output column -------------------------------


def _writetime_text(fmt: str) -> Callable[[Any], Any]:
    """A writetime, or a list of element writetimes (None where an element has none),
    rendered per ``--writetime-format``; a list as a column when it has no None."""
    single = cql_types.writetime_formatter(fmt)
    column = cql_types.writetime_texts if fmt == "iso" else list

    def convert(value: Any) -> Any:
        if isinstance(value, list):
            return [single(v) for v in value] if None in value else column(value)
        return single(value)

    return convert


def _json_field(field: OutputField, sink: SinkConfig) -> Callable[[Any], Any]:
    if field.role == "value":
        return cql_types.json_converter(field.column.cql_type)
    if field.role == "writetime":
        return _writetime_text(sink.writetime_format)
    return lambda v: v  # TTL: int, list of int, or None


def _csv_field(field: OutputField, sink: SinkConfig) -> Callable[[Any], str | None]:
    """Field text, or None for null (rendered as --null-value, never quoted)."""
    if field.role == "value":
        csv_text = cql_types.csv_formatter(field.column.cql_type, null_value="\x00")

        def value_text(v: Any) -> str | None:
            return None if v is None else csv_text(v)

        return value_text
    convert = _writetime_text(sink.writetime_format) if field.role == "writetime" else None

    def meta_text(v: Any) -> str | None:
        if v is None:
            return None
        if convert is not None:
            v = convert(v)
        if isinstance(v, list):
            return cql_types.json_text(v)
        return str(v)

    return meta_text


def _avro_field(field: OutputField) -> Callable[[Any], Any]:
    if field.role == "value":
        return cql_types.avro_converter(field.column.cql_type)
    return lambda v: v  # writetime micros / TTL ints (or lists) as they are


# --- CSV a column at a time ----------------------------------------------------------------
# A batch is converted column by column (zip(*rows)): builtins such as str() run over a
# whole column in C, text needs no conversion, and a column is scanned once for what
# needs quoting. The text is the same as _csv_field and _CsvWriter._quote field by field.

_DIGITS = frozenset("-0123456789")
_ISO_CHARS = _DIGITS | frozenset(":.TZ")
# Every character a non-null field of these types can hold; such a field is never empty.
_CSV_ALPHABETS = {
    **dict.fromkeys(("int", "bigint", "smallint", "tinyint", "counter", "varint"), _DIGITS),
    "double": _DIGITS | frozenset(".e+NaInfity"),
    "boolean": frozenset("truefals"),
    "uuid": _DIGITS | frozenset("abcdef"),
    "timeuuid": _DIGITS | frozenset("abcdef"),
    "timestamp": _ISO_CHARS,
    "date": _DIGITS,
}
_BOOL_TEXT = {False: "false", True: "true"}
_NON_FINITE_REPRS = ("nan", "inf", "-inf")


def _csv_quote(delimiter: str, null: str, text: str) -> str:
    # RFC 4180: quote when needed; an empty string is quoted so it differs from null.
    if not text or delimiter in text or '"' in text or "\n" in text or "\r" in text or text == null:
        return '"' + text.replace('"', '""') + '"'
    return text


# Enough to share one rendering between the writetime columns of a batch and across a few
# batches; 100,000 entries (about 18 MB per open file) showed as +35 MB peak RSS at 2M rows.
_ISO_CACHE_ENTRIES = 10_000


def _iso_texts(cache: dict[int, str]) -> Callable[[Sequence[int]], list[str]]:
    """Writetimes -> RFC 3339 texts, each distinct value formatted once: the cells of a
    row written together share one writetime, and ``cache`` is shared by the columns."""
    iso_texts = cql_types.writetime_texts

    def texts(values: Sequence[int]) -> list[str]:
        if len(cache) > _ISO_CACHE_ENTRIES:
            cache.clear()
        missing = set(values).difference(cache)
        if missing:
            cache.update(zip(missing, iso_texts(missing), strict=True))
        return list(map(cache.__getitem__, values))

    return texts


def _csv_texts_fn(
    field: OutputField, sink: SinkConfig, iso_cache: dict[int, str], lists: bool = True
) -> tuple[Any, frozenset[str] | None]:
    """(non-null values -> texts, the characters those texts can hold or None if any)."""
    column_type = field.column.cql_type
    if field.role == "value":
        spec = cql_types._SCALARS.get(column_type.name)
        if spec is None:  # collections, tuples, UDTs, vectors: JSON text
            text = cql_types.csv_formatter(column_type)
            return (lambda values: list(map(text, values))), None
        csv_text = spec.csv
        if csv_text is cql_types._identity:  # text, ascii
            return (lambda values: values), None
        if column_type.name == "double":

            def doubles(values: Sequence[Any]) -> list[str]:
                texts = list(map(repr, values))
                if any(special in texts for special in _NON_FINITE_REPRS):
                    return list(map(csv_text, values))
                return texts

            return doubles, _CSV_ALPHABETS["double"]
        if column_type.name == "timestamp":
            return cql_types.timestamp_texts, _CSV_ALPHABETS.get(column_type.name)
        if column_type.name == "float":
            return cql_types.float32_texts, _CSV_ALPHABETS.get(column_type.name)
        if column_type.name == "boolean":

            def booleans(values: Sequence[Any]) -> list[str]:
                try:
                    return list(map(_BOOL_TEXT.__getitem__, values))
                except (KeyError, TypeError):
                    return list(map(csv_text, values))

            return booleans, _CSV_ALPHABETS["boolean"]
        return (lambda values: list(map(csv_text, values))), _CSV_ALPHABETS.get(column_type.name)
    if not (column_type.is_multicell and lists):  # one integer per cell
        if field.role == "writetime" and sink.writetime_format == "iso":
            return _iso_texts(iso_cache), _ISO_CHARS
        if field.role == "ttl" or sink.writetime_format == "micros":
            return (lambda values: list(map(str, values))), _DIGITS
    text = _csv_field(field, sink)  # lists of element writetimes / TTLs
    return (lambda values: list(map(text, values))), None


def _csv_column(
    field: OutputField, sink: SinkConfig, iso_cache: dict[int, str], lists: bool = True
) -> Callable[[Sequence[Any]], Sequence[str]]:
    """A column's values (None for null) -> its CSV fields, quoted where needed."""
    delimiter, null = sink.delimiter, sink.null_value
    texts_of, alphabet = _csv_texts_fn(field, sink, iso_cache, lists)
    # A field drawn from ``alphabet`` is never empty and never holds a quote, CR or LF; it
    # needs quoting only if it could hold the delimiter or equal a non-empty null text.
    never_quoted = alphabet is not None and not (
        all(ch in alphabet for ch in delimiter) or (null and all(ch in alphabet for ch in null))
    )

    def convert(column: Sequence[Any]) -> Sequence[str]:
        has_null = None in column
        values = [v for v in column if v is not None] if has_null else column
        texts = texts_of(values)
        if not never_quoted:
            joined = "".join(texts)
            if (
                delimiter in joined
                or '"' in joined
                or "\n" in joined
                or "\r" in joined
                or "" in texts
                or null in texts
            ):
                texts = [_csv_quote(delimiter, null, t) for t in texts]
        if has_null:
            found = iter(texts)
            return [null if v is None else next(found) for v in column]
        return texts

    return convert


def avro_schema_for(plan: TablePlan, policy: str) -> tuple[dict[str, Any], list[str]]:
    """The Avro schema of the export and the Avro field name of each output column."""
    names = cql_types.AvroNames(reserved=())
    used: set[str] = set()
    fields = []
    field_names = []
    for field in plan.output_fields:
        avro_name = cql_types.avro_field_name(field.name, used)
        field_names.append(avro_name)
        multi = field.column.cql_type.is_multicell and policy == COLLECTION_LIST
        if field.role == "value":
            schema = cql_types.avro_schema(field.column.cql_type, field.name, names)
        elif field.role == "writetime":
            schema = {"type": "long", "logicalType": "timestamp-micros"}
            if multi:
                schema = {"type": "array", "items": ["null", schema]}  # UDT: null per null field
        else:
            schema = {"type": "array", "items": ["null", "int"]} if multi else "int"
        entry: dict[str, Any] = {"name": avro_name, "type": ["null", schema], "default": None}
        if avro_name != field.name:
            entry["doc"] = f"CQL column {field.name}"
        fields.append(entry)
    schema = {
        "type": "record",
        "name": names.record_name(f"{plan.table}_row"),
        "namespace": "cassandra_export." + cql_types.avro_field_name(plan.keyspace, set()),
        "doc": f"Export of {plan.keyspace}.{plan.table} with writetimes",
        "fields": fields,
    }
    return schema, field_names


def _is_identity(field: OutputField, fmt: str) -> bool:
    """True when the field's value goes into the JSON / Avro record unchanged."""
    if field.role == "ttl" or (field.role == "writetime" and fmt == "avro"):
        return True
    if field.role != "value":
        return False
    spec = cql_types._SCALARS.get(field.column.cql_type.name)
    return spec is not None and getattr(spec, fmt) is cql_types._identity


def _nulls_kept(
    texts_of: Callable[[Sequence[Any]], Sequence[Any]],
) -> Callable[[Sequence[Any]], Sequence[Any]]:
    """A column function for non-null values made one that passes None through."""

    def convert(column: Sequence[Any]) -> Sequence[Any]:
        if None in column:
            found = iter(texts_of([v for v in column if v is not None]))
            return [None if v is None else next(found) for v in column]
        return texts_of(column)

    return convert


def _json_column_fn(
    field: OutputField,
    sink: SinkConfig,
    convert: Callable[[Any], Any],
    iso_cache: dict[int, str],
    lists: bool = True,
) -> Callable[[Sequence[Any]], Sequence[Any]] | None:
    """A column's values -> its JSON values (None: as they are)."""
    if _is_identity(field, "json"):
        return None
    multicell = field.column.cql_type.is_multicell and lists
    if field.role == "writetime" and sink.writetime_format == "iso" and not multicell:
        return _nulls_kept(_iso_texts(iso_cache))
    if field.role == "value" and field.column.cql_type.name == "timestamp":
        return _nulls_kept(cql_types.timestamp_texts)
    if field.role == "value" and field.column.cql_type.name == "float":
        return _nulls_kept(cql_types.float32_json_values)
    return lambda column: list(map(convert, column))


def _converted_rows(
    rows: Sequence[tuple[Any, ...]],
    column_fns: Sequence[Callable[[Sequence[Any]], Sequence[Any]] | None],
) -> Iterator[tuple[Any, ...]]:
    """Rows with each column converted (None: as it is), a column at a time."""
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
    if columns and len(columns) != len(column_fns):
        raise ValueError(f"rows have {len(columns)} fields, the plan {len(column_fns)}")
    for i, convert in enumerate(column_fns):
        if convert is not None and columns:
            columns[i] = convert(columns[i])
    return zip(*columns, strict=True)


# --- unit writers ------------------------------------------------------------------------


class UnitWriter:
    """Writes rows of one piece to one file handle."""

    def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        raise NotImplementedError

    def close(self) -> None:
        raise NotImplementedError


class _CsvWriter(UnitWriter):
    def __init__(
        self,
        handle: Any,
        plan: TablePlan,
        sink: SinkConfig,
        policy: str = DEFAULT_COLLECTION_POLICY,
    ) -> None:
        # Bytes straight to the handle: Beam's CompressedFile (gzip, zstd) has no
        # writable(), so io.TextIOWrapper cannot wrap it.
        self._handle = handle
        self._delimiter = sink.delimiter
        self._null = sink.null_value
        fields = plan.output_fields
        self._converters = [_csv_field(f, sink) for f in fields]
        iso_cache: dict[int, str] = {}
        # With policy max or min a collection's writetime / TTL is one value, not a list.
        lists = policy == COLLECTION_LIST
        self._columns = [_csv_column(f, sink, iso_cache, lists) for f in fields]
        self._handle.write(self._line([f.name for f in fields]).encode("utf-8"))

    def _quote(self, text: str) -> str:
        # RFC 4180: quote when needed; an empty string is quoted so it differs from null.
        if (
            not text
            or self._delimiter in text
            or '"' in text
            or "\n" in text
            or "\r" in text
            or text == self._null
        ):
            return '"' + text.replace('"', '""') + '"'
        return text

    def _line(self, texts: Sequence[str | None]) -> str:
        null = self._null
        quote = self._quote
        return self._delimiter.join(null if t is None else quote(t) for t in texts) + "\r\n"

    def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        if not rows:
            return
        columns = self._columns
        if set(map(len, rows)) != {len(columns)}:  # a malformed row: fail as field by field
            converters = self._converters
            for row in rows:
                self._line([c(v) for c, v in zip(converters, row, strict=True)])
        fields = [
            convert(column)
            for convert, column in zip(columns, zip(*rows, strict=True), strict=True)
        ]
        lines = map(self._delimiter.join, zip(*fields, strict=True))
        self._handle.write(("\r\n".join(lines) + "\r\n").encode("utf-8"))

    def close(self) -> None:
        self._handle.close()


def _json_default(value: Any) -> Any:
    if isinstance(value, bytes):
        return base64.b64encode(value).decode()
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return str(value)


class _JsonWriter(UnitWriter):
    def __init__(
        self,
        handle: Any,
        plan: TablePlan,
        sink: SinkConfig,
        array: bool,
        policy: str = DEFAULT_COLLECTION_POLICY,
    ) -> None:
        self._handle = handle
        self._names = list(plan.field_names)
        self._converters = [_json_field(f, sink) for f in plan.output_fields]
        iso_cache: dict[int, str] = {}
        self._columns = [
            _json_column_fn(f, sink, c, iso_cache, policy == COLLECTION_LIST)
            for f, c in zip(plan.output_fields, self._converters, strict=True)
        ]
        self._array = array
        self._first = True
        self._encoder = json.JSONEncoder(
            ensure_ascii=False, separators=(",", ":"), allow_nan=False, default=_json_default
        )
        if array:
            handle.write(b"[")

    def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        names = self._names
        encode = self._encoder.encode
        lines = [
            encode(dict(zip(names, values, strict=True)))
            for values in _converted_rows(rows, self._columns)
        ]
        if not lines:
            return
        if self._array:
            sep = "\n" if self._first else ",\n"
            text = sep + ",\n".join(lines)
        else:
            text = "\n".join(lines) + "\n"
        self._first = False
        self._handle.write(text.encode("utf-8"))

    def close(self) -> None:
        if self._array:
            self._handle.write(b"\n]\n" if not self._first else b"]\n")
        self._handle.close()


_AVRO_PRIMITIVES = frozenset(("boolean", "int", "long", "float", "double", "bytes", "string"))


def _avro_primitive_branch(schema: Any) -> str | None:
    """The union branch name of a primitive (or logical) Avro type, else None."""
    if isinstance(schema, dict):
        schema = schema.get("type")
    return schema if isinstance(schema, str) and schema in _AVRO_PRIMITIVES else None


class _AvroWriter(UnitWriter):
    def __init__(self, handle: Any, plan: TablePlan, sink: SinkConfig, policy: str) -> None:
        import fastavro

        schema, field_names = avro_schema_for(plan, policy)
        self._handle = handle
        self._names = field_names
        self._converters = [_avro_field(f) for f in plan.output_fields]
        self._columns = [
            None if _is_identity(f, "avro") else c
            for f, c in zip(plan.output_fields, self._converters, strict=True)
        ]
        # fastavro picks a union branch by validating the value against each branch,
        # unless the value comes as (branch name, value). Columns of a primitive type
        # (logical types included) name their branch; records, arrays and maps do not.
        self._branches = [_avro_primitive_branch(f["type"][1]) for f in schema["fields"]]
        codec = "null" if sink.avro_codec == "null" else sink.avro_codec
        self._writer = fastavro.write.Writer(
            handle, fastavro.parse_schema(schema), codec=codec, sync_interval=256 * 1024
        )

    def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
        if not columns:
            return
        if len(columns) != len(self._columns):
            raise ValueError(f"rows have {len(columns)} fields, the plan {len(self._columns)}")
        for i, (convert, branch) in enumerate(zip(self._columns, self._branches, strict=True)):
            column = columns[i]
            if convert is not None:
                column = list(map(convert, column))
            if branch is not None:
                if None in column:
                    column = [None if v is None else (branch, v) for v in column]
                else:
                    column = list(zip(repeat(branch), column))
            columns[i] = column
        names = self._names
        write = self._writer.write
        for values in zip(*columns, strict=True):
            write(dict(zip(names, values, strict=True)))

    def close(self) -> None:
        self._writer.flush()
        self._handle.close()


def open_unit_writer(path: str, plan: TablePlan, sink: SinkConfig, policy: str) -> UnitWriter:
    """Create ``path`` (through FileSystems) and return a writer of ``sink.format`` rows."""
    if sink.format == "avro":
        return _AvroWriter(FileSystems.create(path, mime_type="avro/binary"), plan, sink, policy)
    handle = FileSystems.create(path, compression_type=sink.compression_type)
    if sink.format == "csv":
        return _CsvWriter(handle, plan, sink, policy)
    return _JsonWriter(handle, plan, sink, array=sink.format == "json", policy=policy)


# --- the commit DoFn ---------------------------------------------------------------------


class _OpenPiece:
    def __init__(self, temp_path: str, writer: UnitWriter, stats: StatsBuilder) -> None:
        self.temp_path = temp_path
        self.writer = writer
        self.stats = stats
        self.rows = 0


class WritePiecesFn(beam.DoFn):
    """RowBatch... PieceEnd -> one committed data file and marker per piece."""

    def __init__(
        self,
        plan: TablePlan,
        output: str,
        sink: SinkConfig,
        policy: str = DEFAULT_COLLECTION_POLICY,
    ) -> None:
        self.plan = plan
        self.output = output
        self.sink = sink
        self.policy = policy
        self.rows_written = Metrics.counter(NAMESPACE, "rows_written")
        self.bytes_written = Metrics.counter(NAMESPACE, "bytes_written")
        self.ranges_done = Metrics.counter(NAMESPACE, "ranges_done")

    def setup(self) -> None:
        relax_gc()
        self._layout = Layout(self.output)
        self._normalize = normalize_row_fn(self.plan, self.policy)
        self._open: dict[PieceKey, _OpenPiece] = {}
        ensure_dir(self._layout.data_dir)

    def start_bundle(self) -> None:
        self._open = {}

    def _piece(self, key: PieceKey) -> _OpenPiece:
        piece = self._open.get(key)
        if piece is None:
            stem = self._layout.piece_stem(key.unit_id, key.offset)
            temp = self._layout.temp_file(stem, self.sink.extension)
            writer = open_unit_writer(temp, self.plan, self.sink, self.policy)
            piece = self._open[key] = _OpenPiece(temp, writer, StatsBuilder(self.plan))
        return piece

    def process(self, element: RowBatch | PieceEnd) -> Iterator[dict[str, Any]]:
        if isinstance(element, RowBatch):
            piece = self._piece(element.piece)
            # Statistics take a collection's max whatever the policy (spec 4), so they see
            # the per-element lists; the file gets them normalized by the policy.
            piece.stats.add_rows(element.rows)
            normalize = self._normalize
            rows = element.rows
            piece.writer.write_rows(rows if normalize is None else [normalize(r) for r in rows])
            piece.rows += len(element.rows)
            return
        if element.piece_end <= element.piece.piece_start:
            # An empty restriction (a runner checkpointed it before its first claim): no
            # token, no rows. A marker (start, start] would be an invalid range that breaks
            # every later read of the manifest, so nothing is committed.
            self._discard(element.piece)
            return
        yield self._commit(element)

    def _discard(self, key: PieceKey) -> None:
        piece = self._open.pop(key, None)
        if piece is not None:
            piece.writer.close()
            delete_files([piece.temp_path])

    def _commit(self, end: PieceEnd) -> dict[str, Any]:
        key = end.piece
        piece = self._piece(key)
        del self._open[key]
        piece.writer.close()
        layout = self._layout
        stem = layout.piece_stem(key.unit_id, key.offset)
        final = layout.data_file(stem, self.sink.extension)
        FileSystems.rename([piece.temp_path], [final])
        size = _size(final)
        stats = piece.stats.to_json()
        max_wt = max(
            (w["max"] for w in stats["writetime"].values() if w["max"] is not None), default=None
        )
        marker = {
            "unit_id": key.unit_id,
            "start": key.piece_start,
            "end": end.piece_end,
            "rows": piece.rows,
            "rows_read": end.rows_read,
            "file": posixpath.basename(final.replace("\\", "/")),
            "bytes": size,
            "committed_at": _now_iso(),
            "max_writetime": max_wt,
            "windows_split": end.windows_split,
            "retries": end.retries,
            "stats": stats,
        }
        write_json(layout.marker(stem), marker)
        self.rows_written.inc(piece.rows)
        self.bytes_written.inc(size or 0)
        self.ranges_done.inc()
        return {k: marker[k] for k in ("unit_id", "start", "end", "rows")}

    def finish_bundle(self) -> None:
        if self._open:
            stranded = list(self._open.values())
            self._open = {}
            for piece in stranded:
                try:
                    piece.writer.close()
                    delete_files([piece.temp_path])
                except Exception:  # best effort; the bundle fails below anyway
                    pass
            raise RuntimeError(
                "a work unit's rows were split across bundles before its end arrived; the "
                "runner did not fuse the reader with the writer, which this export requires"
            )


def _size(path: str) -> int | None:
    try:
        return FileSystems.match([path])[0].metadata_list[0].size_in_bytes
    except Exception:
        return None


def _now_iso() -> str:
    return cql_types.format_writetime_iso(time.time_ns() // 1000)


class WriteExport(beam.PTransform):
    """Row batches of pieces -> committed files and markers; emits one summary per piece."""

    def __init__(
        self,
        plan: TablePlan,
        output: str,
        sink: SinkConfig,
        policy: str = DEFAULT_COLLECTION_POLICY,
    ):
        super().__init__()
        self.plan = plan
        self.output = output
        self.sink = sink
        self.policy = policy

    def expand(self, pcoll: beam.PCollection) -> beam.PCollection:
        return pcoll | "CommitPieces" >> beam.ParDo(
            WritePiecesFn(self.plan, self.output, self.sink, self.policy)
        )


# --- finalization ------------------------------------------------------------------------


class FinalizeError(RuntimeError):
    pass


def finalize_export(
    output: str,
    *,
    single_file: bool = False,
    stats_chart: bool = False,
    finished_at_micros: int | None = None,
) -> dict[str, Any]:
    """Verify the committed ranges, clean orphans, write checkpoint, stats and _SUCCESS."""
    from transforms.manifest import load_export
    from transforms.token_ranges import WorkUnit

    layout = Layout(output)
    manifest = load_export(layout)
    units = [WorkUnit.from_json(u) for u in manifest["units"]]
    markers = read_markers(layout)
    problems = check_exact_cover(completed_ranges(markers))
    if problems:
        raise FinalizeError(f"committed ranges do not cover the ring exactly: {problems[:3]}")
    delete_files(orphan_files(layout, markers))
    remove_empty_dir(layout.temp_dir)
    checkpoint = checkpoint_body(markers, manifest["export_config"], len(units))
    write_json(layout.checkpoint_json, checkpoint)
    finished = finished_at_micros or time.time_ns() // 1000
    started = int(manifest.get("started_at_micros") or finished)
    duration = max(0.0, (finished - started) / 1e6)
    merged = merge_stats(m.get("stats", {}) for m in markers)
    stats = summarize(merged, manifest["plan"], cql_types.format_writetime_iso)
    stats["duration_seconds"] = round(duration, 3)
    stats["rows_per_second"] = round(stats["rows"] / duration, 1) if duration > 0 else None
    stats["pieces"] = len(markers)
    stats["ranges_split"] = sum(int(m.get("windows_split", 0)) for m in markers)
    stats["retries"] = sum(int(m.get("retries", 0)) for m in markers)
    write_json(layout.stats_json, stats)
    if stats_chart:
        from transforms.stats_chart import draw_stats_chart

        draw_stats_chart(stats, layout.stats_png)
    if single_file:
        merge_single_file(layout, manifest, markers)
    write_bytes_atomically(layout.success, b"")
    return stats


def merge_single_file(layout: Layout, manifest: dict[str, Any], markers: list[dict]) -> str:
    """Concatenate the parts, in token order, into OUT/export.<ext>."""
    config = manifest["export_config"]
    sink = SinkConfig(
        format=config["format"],
        compression=config.get("compression", "none"),
    )
    ordered = sorted(markers, key=lambda m: int(m["start"]))
    target = join(layout.root, "export" + sink.extension)
    temp = target + ".tmp"
    parts = [join(layout.data_dir, m["file"]) for m in ordered]
    if sink.format == "avro":
        import fastavro

        with FileSystems.open(parts[0]) as first:
            schema = fastavro.reader(first).writer_schema
        codec = config.get("avro_codec", "deflate")
        with FileSystems.create(temp) as out:
            writer = fastavro.write.Writer(out, fastavro.parse_schema(schema), codec=codec)
            for part in parts:
                with FileSystems.open(part) as handle:
                    for record in fastavro.reader(handle):
                        writer.write(record)
            writer.flush()
    else:
        ctype = sink.compression_type
        with FileSystems.create(temp, compression_type=ctype) as out:
            if sink.format == "json":
                out.write(b"[")
            first_row = True
            for index, part in enumerate(parts):
                with FileSystems.open(part, compression_type=ctype) as handle:
                    data = handle.read()
                if sink.format == "csv":
                    header_end = _csv_header_end(data)
                    out.write(data if index == 0 else data[header_end:])
                elif sink.format == "jsonl":
                    out.write(data)
                else:
                    body = data.strip()[1:-1].strip()
                    if body:
                        out.write((b"\n" if first_row else b",\n") + body)
                        first_row = False
            if sink.format == "json":
                out.write(b"\n]\n" if not first_row else b"]\n")
    FileSystems.rename([temp], [target])
    return target


def _csv_header_end(data: bytes) -> int:
    """Offset just past the header line (header names may be quoted with newlines)."""
    in_quotes = False
    for i, byte in enumerate(data):
        if byte == 0x22:
            in_quotes = not in_quotes
        elif byte == 0x0A and not in_quotes:
            return i + 1
    return len(data)


class FinalizeFn(beam.DoFn):
    """Runs once, after every piece committed (its input is a global count)."""

    def __init__(self, output: str, single_file: bool, stats_chart: bool) -> None:
        self.output = output
        self.single_file = single_file
        self.stats_chart = stats_chart

    def process(self, _count: int) -> Iterator[dict[str, Any]]:
        yield finalize_export(
            self.output, single_file=self.single_file, stats_chart=self.stats_chart
        )


def read_stats(output: str) -> dict[str, Any]:
    return read_json(Layout(output).stats_json)
