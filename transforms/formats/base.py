"""What every output format shares: the sink settings, the unit-writer protocol, the
registry entry of a format, and the column helpers of the text formats.

A format is one module that builds a :class:`Format` and one line in
``transforms/formats/__init__.py``. The commit protocol (``transforms/sinks.py``) only
ever calls ``Format.open_writer`` (one file per work unit piece) and ``Format.merge``
(``--single-file``); restore calls ``Format.read_rows`` where a format has it.

Rows reach a writer as tuples in ``TablePlan.output_fields`` order, already normalized
by the collection writetime policy: values as the driver gives them (top-level
timestamps as int milliseconds), writetimes as int microseconds (a list of them, None
where an element has none, for a non-frozen collection under policy ``list``), TTLs as
int seconds (or such lists), None for null.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, Protocol

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from transforms import cql_text
from transforms.table_plan import COLLECTION_LIST, OutputField, TablePlan

__all__ = [
    "AVRO_CODECS",
    "check_width",
    "column_rows",
    "ColumnFn",
    "COMPRESSIONS",
    "converted_columns",
    "create_text_file",
    "Format",
    "is_list_field",
    "iso_texts",
    "MergeParts",
    "nulls_kept",
    "OpenWriter",
    "PARQUET_CODECS",
    "PARQUET_ROW_GROUP_ROWS",
    "read_whole",
    "ReadRows",
    "SinkConfig",
    "UnitWriter",
    "writetime_column_fn",
    "WRITETIME_FORMATS",
]

# One source of truth for each enumeration of the sink settings; the first is the default.
WRITETIME_FORMATS = ("iso", "micros")
# --compression: Beam's compression type and the file name suffix it adds.
COMPRESSIONS: dict[str, tuple[str, str]] = {
    "none": (CompressionTypes.UNCOMPRESSED, ""),
    "gzip": (CompressionTypes.GZIP, ".gz"),
    "zstd": (CompressionTypes.ZSTD, ".zst"),
}
AVRO_CODECS = ("deflate", "null", "zstandard")
PARQUET_CODECS = ("zstd", "snappy", "gzip", "none")
# Rows per Parquet row group: large enough for good compression and fast scans (DuckDB
# writes 122,880), small enough that a worker holding several open pieces stays lean.
PARQUET_ROW_GROUP_ROWS = 100_000


@dataclass(frozen=True)
class SinkConfig:
    """How rows become bytes: the output options of an export."""

    format: str = "csv"
    compression: str = "none"
    delimiter: str = ","
    null_value: str = ""
    writetime_format: str = WRITETIME_FORMATS[0]
    avro_codec: str = AVRO_CODECS[0]
    parquet_codec: str = PARQUET_CODECS[0]
    parquet_row_group_rows: int = PARQUET_ROW_GROUP_ROWS

    def __post_init__(self) -> None:
        checks = (
            ("compression", self.compression, COMPRESSIONS),
            ("writetime format", self.writetime_format, WRITETIME_FORMATS),
            ("Avro codec", self.avro_codec, AVRO_CODECS),
            ("Parquet codec", self.parquet_codec, PARQUET_CODECS),
        )
        for what, value, allowed in checks:
            if value not in allowed:
                raise ValueError(f"{what} must be one of {', '.join(allowed)}, not {value!r}")
        if self.parquet_row_group_rows < 1:
            raise ValueError("Parquet row group rows must be a positive integer")
        if self.format == "csv" and any(
            ch in self.null_value for ch in (self.delimiter, '"', "\r", "\n")
        ):
            # A null is written unquoted, so any of these would split or shift the fields.
            raise ValueError(
                f"--null-value: {self.null_value!r} holds the delimiter, a quote, CR or LF; "
                "a null is written unquoted, so it would break the CSV rows: choose another text"
            )

    @property
    def compression_type(self) -> str:
        """Beam's compression type of ``--compression``."""
        return COMPRESSIONS[self.compression][0]

    @property
    def compression_suffix(self) -> str:
        return COMPRESSIONS[self.compression][1]


class UnitWriter(Protocol):
    """Writes the rows of one work unit piece to one file."""

    def write_rows(self, rows: Sequence[tuple[Any, ...]]) -> None:
        """Append rows (tuples in ``plan.output_fields`` order)."""

    def close(self) -> None:
        """Finish the file (footer, last block) and close it; the file is then complete."""


OpenWriter = Callable[[str, TablePlan, SinkConfig, str], UnitWriter]
MergeParts = Callable[[Sequence[str], str, SinkConfig], None]
ReadRows = Callable[..., Iterator[dict[str, Any]]]


@dataclass(frozen=True)
class Format:
    """A registry entry: everything the commit protocol and restore need of a format.

    Attributes:
        name: the ``--format`` value.
        extension: file name extension of a part, with its dot (``.csv``).
        text_compression: True when ``--compression`` applies (text formats); formats
            with their own block codec (Avro, Parquet) refuse it.
        open_writer: ``(path, plan, sink, policy) -> UnitWriter``; creates ``path``.
        merge: ``(parts, target, sink)``: the parts, in token order, into one file.
        read_rows: ``(path, ...) -> iterator of dict``: a committed file back into rows,
            or None where the format's reader lives elsewhere.
        takes_columns: True when its writers also have ``write_columns(columns)``, the
            columns of a ``ColumnBatch`` (same bytes as ``write_rows`` of its rows).
    """

    name: str
    extension: str
    text_compression: bool
    open_writer: OpenWriter
    merge: MergeParts
    read_rows: ReadRows | None = None
    takes_columns: bool = False

    def file_extension(self, sink: SinkConfig) -> str:
        """Extension of a part or merged file, compression suffix included."""
        return self.extension + (sink.compression_suffix if self.text_compression else "")

    def check(self, sink: SinkConfig) -> None:
        """Raise ValueError when ``sink`` holds an option this format cannot honour."""
        if not self.text_compression and sink.compression != "none":
            raise ValueError(
                f"--compression applies to text formats; {self.name} compresses with "
                f"--{self.name}-codec"
            )


def create_text_file(path: str, sink: SinkConfig) -> Any:
    """``path`` created through FileSystems, compressed per ``--compression``."""
    return FileSystems.create(path, compression_type=sink.compression_type)


# --- column helpers shared by the text formats ---------------------------------------------

ColumnFn = Callable[[Sequence[Any]], Sequence[Any]]

# Enough to share one rendering between the writetime columns of a batch and across a few
# batches; 100,000 entries (about 18 MB per open file) showed as +35 MB peak RSS at 2M rows.
_ISO_CACHE_ENTRIES = 10_000


def iso_texts(cache: dict[int, str]) -> Callable[[Sequence[int]], list[str]]:
    """Writetimes -> RFC 3339 texts, each distinct value formatted once (by NumPy when there
    are many): the cells of a row written together share one writetime, and ``cache`` is
    shared by the columns."""
    array_texts = cql_text.rfc3339_array_texts

    def texts(values: Sequence[int]) -> list[str]:
        if len(cache) > _ISO_CACHE_ENTRIES:
            cache.clear()
        missing = list(set(values).difference(cache))
        if missing:
            cache.update(zip(missing, array_texts(missing, 1_000_000), strict=True))
        return list(map(cache.__getitem__, values))

    return texts


def nulls_kept(texts_of: ColumnFn) -> ColumnFn:
    """A column function for non-null values made one that passes None through."""

    def convert(column: Sequence[Any]) -> Sequence[Any]:
        if None in column:
            found = iter(texts_of([v for v in column if v is not None]))
            return [None if v is None else next(found) for v in column]
        return texts_of(column)

    return convert


def is_list_field(field: OutputField, policy: str) -> bool:
    """True when a writetime / TTL field holds a list per row (policy ``list``)."""
    return (
        field.role != "value" and field.column.cql_type.is_multicell and policy == COLLECTION_LIST
    )


def writetime_column_fn(
    field: OutputField, sink: SinkConfig, policy: str, iso_cache: dict[int, str]
) -> ColumnFn | None:
    """A writetime column (None kept) -> its values per ``--writetime-format`` for the text
    formats: RFC 3339 texts or the integers; lists element by element (None where an
    element has none). None when the column stays as it is. The one place text formats
    read ``--writetime-format``."""
    if sink.writetime_format == "micros":
        return None
    texts = iso_texts(iso_cache)
    if not is_list_field(field, policy):
        return nulls_kept(texts)

    def lists_texts(lists: Sequence[list[int | None]]) -> list[list[str | None]]:
        # Every element of the column rendered in one call, then put back in its list.
        found = iter(texts([v for value in lists for v in value if v is not None]))
        return [[None if v is None else next(found) for v in value] for value in lists]

    return nulls_kept(lists_texts)


def check_width(rows: Sequence[tuple[Any, ...]], width: int) -> None:
    """Raise ValueError unless every row has ``width`` fields."""
    widths = set(map(len, rows))
    if widths and widths != {width}:
        raise ValueError(f"rows have {sorted(widths)} fields, the plan {width}")


def column_rows(columns: Sequence[Any], width: int) -> int:
    """The rows in a ``ColumnBatch``'s ``columns`` (0 for none); raise ValueError unless
    there are ``width`` columns, as :func:`check_width` does for rows."""
    if len(columns) != width:
        raise ValueError(f"rows have {len(columns)} fields, the plan {width}")
    return len(columns[0]) if columns else 0


def converted_columns(
    rows: Sequence[tuple[Any, ...]], column_fns: Sequence[ColumnFn | None]
) -> list[Sequence[Any]]:
    """The batch's columns, each converted by its function (None: as it is)."""
    check_width(rows, len(column_fns))
    columns: list[Sequence[Any]] = list(zip(*rows, strict=True))
    for i, convert in enumerate(column_fns):
        if convert is not None and columns:
            columns[i] = convert(columns[i])
    return columns


def read_whole(path: str, sink: SinkConfig) -> bytes:
    """A part's bytes, decompressed per ``--compression``."""
    with FileSystems.open(path, compression_type=sink.compression_type) as handle:
        return handle.read()
