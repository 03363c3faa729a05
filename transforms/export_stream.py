"""An export unit file as a stream: its bytes decompressed a block at a time, then its UTF-8
text, then its lines, so that a reader's memory does not grow with the file.

Each function reads the file afresh from its start: the restore reads a unit twice, once to
check its whole structure before its first write and once to decode and write it
(:mod:`transforms.export_decode`). Errors are :class:`ExportFileError` (bad input).
"""

from __future__ import annotations

import codecs
import functools
import gzip
import io
import itertools
from collections.abc import Iterable, Iterator
from typing import Any

from transforms.export_layout import ExportFileError

__all__ = [
    "BLOCK_BYTES",
    "PrefixedStream",
    "byte_blocks",
    "first_line",
    "line_chunks",
    "open_unit_file",
    "text_blocks",
]

# Bytes read (and, for compressed files, decompressed) at a time: small beside a large
# unit, large enough that the per-block costs vanish (thousands of narrow rows).
BLOCK_BYTES = 1 << 18


def first_line(exc: BaseException) -> str:
    """An exception as one line: its type and the first line of its message."""
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


def open_unit_file(path: str) -> Any:
    """The file's raw bytes as a binary file object (any Beam FileSystems path)."""
    from apache_beam.io.filesystem import CompressionTypes
    from apache_beam.io.filesystems import FileSystems

    try:
        return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)
    except Exception as exc:  # FileNotFoundError, BeamIOError, permission errors, ...
        raise ExportFileError(path, f"cannot read: {first_line(exc)}") from None


class PrefixedStream(io.RawIOBase):
    """A readable stream of ``prefix`` followed by the rest of ``handle``."""

    def __init__(self, prefix: bytes, handle: Any) -> None:
        super().__init__()
        self._prefix = memoryview(prefix)
        self._handle = handle
        self._position = 0

    def readable(self) -> bool:
        return True

    def tell(self) -> int:
        """Bytes read so far (fastavro's block reader asks)."""
        return self._position

    def readinto(self, buffer: Any) -> int:
        if self._prefix:
            size = min(len(buffer), len(self._prefix))
            buffer[:size] = self._prefix[:size]
            self._prefix = self._prefix[size:]
        else:
            data = self._handle.read(len(buffer))
            size = len(data)
            buffer[:size] = data
        self._position += size
        return size


def _read_blocks(path: str, handle: Any, size: int) -> Iterator[bytes]:
    while True:
        try:
            block = handle.read(size)
        except Exception as exc:  # storage trouble mid-file
            raise ExportFileError(path, f"cannot read: {first_line(exc)}") from None
        if not block:
            return
        yield block


def byte_blocks(path: str, compression: str) -> Iterator[bytes]:
    """The file's bytes, decompressed (``gzip``, ``zstd`` or ``none``), ``BLOCK_BYTES`` of
    input at a time; compressed data is checked to its end (a truncated stream raises)."""
    size = BLOCK_BYTES
    with open_unit_file(path) as handle:
        raw = _read_blocks(path, handle, size)
        if compression == "none":
            yield from raw
            return
        first = next(raw, b"")
        if not first:
            raise ExportFileError(path, f"empty file, not {compression} data")
        if compression == "gzip":
            # GzipFile reads every member (a file appended to) and checks each one's end.
            stream: Any = gzip.GzipFile(
                fileobj=io.BufferedReader(PrefixedStream(first, handle), size)
            )
            blocks = iter(functools.partial(stream.read, size), b"")
        else:
            blocks = _zstd_blocks(itertools.chain([first], raw))
        try:
            yield from blocks
        except ExportFileError:
            raise
        except Exception as exc:  # OSError, EOFError, zlib.error, zstandard.ZstdError
            raise ExportFileError(path, f"bad {compression} data: {first_line(exc)}") from None


def _zstd_blocks(compressed: Iterable[bytes]) -> Iterator[bytes]:
    """Zstandard frames (one or more, one after another) decompressed as they arrive."""
    import zstandard

    frame = None
    for block in compressed:
        while block:
            if frame is None:
                frame = zstandard.ZstdDecompressor().decompressobj()
            data = frame.decompress(block)
            if data:
                yield data
            block = b""
            if frame.eof:
                block, frame = frame.unused_data, None
    if frame is not None:
        raise EOFError("compressed data ends before the end of its frame")


def text_blocks(path: str, blocks: Iterable[bytes]) -> Iterator[str]:
    """UTF-8 text of the byte blocks (a character split between blocks is kept whole)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0  # bytes of the file before this block
    for block in blocks:
        held = len(decoder.getstate()[0])  # bytes of a character the last block began
        try:
            text = decoder.decode(block)
        except UnicodeDecodeError as exc:
            raise ExportFileError(path, f"not UTF-8 at byte {offset - held + exc.start}") from None
        offset += len(block)
        if text:
            yield text
    held = len(decoder.getstate()[0])
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError as exc:
        raise ExportFileError(path, f"not UTF-8 at byte {offset - held + exc.start}") from None


def line_chunks(texts: Iterable[str], separator: str, size: int) -> Iterator[list[str]]:
    """The lines of the text (each without its ``separator``), ``size`` at a time; text
    after the last separator is not a line (the caller checked the file ends with one)."""
    pending: list[str] = []
    carry = ""
    for block in texts:
        lines = (carry + block).split(separator)
        carry = lines.pop()
        pending.extend(lines)
        start = 0
        while len(pending) - start >= size:
            yield pending[start : start + size]
            start += size
        del pending[:start]
    if pending:
        yield pending
