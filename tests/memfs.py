"""An in-memory Beam ``FileSystem`` for scheme ``memory://``, with object-store semantics.

Importing this module registers the scheme (Beam finds ``FileSystem`` subclasses by
``scheme()``). Files live in the module-level dict :data:`FILES`, so only pipelines that
run in this process (FnApiRunner in-memory mode) see them. Like GCS or S3 it has no
directories: ``exists()`` is true only for an object, ``mkdirs()`` does nothing, a file
becomes visible when its writer is closed, ``delete()`` deletes one object (or, for a
path ending in ``/``, everything under that prefix, as GCS does), and listing a prefix
is recursive.
"""

from __future__ import annotations

import hashlib
import io
import posixpath
import threading
import time
from collections.abc import Iterator
from typing import Any, BinaryIO

from apache_beam.io.filesystem import (
    BeamIOError,
    CompressedFile,
    CompressionTypes,
    FileMetadata,
    FileSystem,
)

SCHEME = "memory"
PREFIX = SCHEME + "://"

FILES: dict[str, tuple[bytes, float]] = {}
_LOCK = threading.RLock()


def reset(prefix: str = PREFIX) -> None:
    """Forget every file under ``prefix`` (all of them by default)."""
    with _LOCK:
        for path in [p for p in FILES if p.startswith(prefix)]:
            del FILES[path]


def paths(prefix: str = PREFIX) -> list[str]:
    with _LOCK:
        return sorted(p for p in FILES if p.startswith(prefix))


def read(path: str) -> bytes:
    with _LOCK:
        return FILES[path][0]


def put(path: str, data: bytes) -> None:
    with _LOCK:
        FILES[path] = (bytes(data), time.time())


class _Writer(io.BytesIO):
    """Buffers writes; the object appears (or is replaced) atomically on close()."""

    mode = "wb"

    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path

    def close(self) -> None:
        if not self.closed:
            put(self._path, self.getvalue())
        super().close()


class _Reader(io.BytesIO):
    mode = "rb"


class MemoryFileSystem(FileSystem):
    """``memory://bucket/key`` objects in :data:`FILES`."""

    writer: type[io.BytesIO] = _Writer  # what create() opens: a subclass may swap it

    @classmethod
    def scheme(cls) -> str:
        return SCHEME

    @property
    def _prefix(self) -> str:
        return self.scheme() + "://"

    def join(self, basepath: str, *paths: str) -> str:
        prefix = self._prefix
        if not basepath.startswith(prefix):
            raise ValueError(f"{basepath!r} is not a {prefix} path")
        path = basepath
        for part in paths:
            path = path.rstrip("/") + "/" + part.lstrip("/")
        return path

    def split(self, path: str) -> tuple[str, str]:
        prefix = self._prefix
        if not path.startswith(prefix):
            raise ValueError(f"{path!r} is not a {prefix} path")
        head, _, tail = path[len(prefix) :].rpartition("/")
        return prefix + head, tail

    def mkdirs(self, path: str) -> None:
        pass  # no directories in an object store

    def has_dirs(self) -> bool:
        return False

    def _list(self, dir_or_prefix: str) -> Iterator[FileMetadata]:
        with _LOCK:
            found = [(p, len(d), t) for p, (d, t) in FILES.items() if p.startswith(dir_or_prefix)]
        for path, size, mtime in sorted(found):
            yield FileMetadata(path, size, mtime)

    def _open_path(self, handle: Any, path: str, compression_type: str) -> BinaryIO:
        compression_type = FileSystem._get_compression_type(path, compression_type)
        if compression_type == CompressionTypes.UNCOMPRESSED:
            return handle
        return CompressedFile(handle, compression_type=compression_type)

    def create(
        self,
        path: str,
        mime_type: str = "application/octet-stream",
        compression_type: str = CompressionTypes.AUTO,
    ) -> BinaryIO:
        return self._open_path(self.writer(path), path, compression_type)

    def open(
        self,
        path: str,
        mime_type: str = "application/octet-stream",
        compression_type: str = CompressionTypes.AUTO,
    ) -> BinaryIO:
        with _LOCK:
            if path not in FILES:
                raise BeamIOError("Open operation failed", {path: FileNotFoundError(path)})
            data = FILES[path][0]
        return self._open_path(_Reader(data), path, compression_type)

    def _transfer(self, sources: list[str], destinations: list[str], keep: bool) -> None:
        if len(sources) != len(destinations):
            raise BeamIOError("source and destination lists differ in length")
        exceptions: dict[Any, Exception] = {}
        with _LOCK:
            for source, destination in zip(sources, destinations, strict=True):
                if source not in FILES:
                    exceptions[(source, destination)] = FileNotFoundError(source)
                    continue
                FILES[destination] = (FILES[source][0], time.time())
                if not keep and destination != source:
                    del FILES[source]
        if exceptions:
            raise BeamIOError("Copy or rename operation failed", exceptions)

    def copy(self, source_file_names: list[str], destination_file_names: list[str]) -> None:
        self._transfer(source_file_names, destination_file_names, keep=True)

    def rename(self, source_file_names: list[str], destination_file_names: list[str]) -> None:
        self._transfer(source_file_names, destination_file_names, keep=False)

    def exists(self, path: str) -> bool:
        with _LOCK:
            return path in FILES

    def _entry(self, path: str) -> tuple[bytes, float]:
        with _LOCK:
            entry = FILES.get(path)
        if entry is None:
            raise BeamIOError(f"Path does not exist: {path}", {path: FileNotFoundError(path)})
        return entry

    def size(self, path: str) -> int:
        return len(self._entry(path)[0])

    def last_updated(self, path: str) -> float:
        return self._entry(path)[1]

    def checksum(self, path: str) -> str:
        return hashlib.md5(self._entry(path)[0]).hexdigest()

    def metadata(self, path: str) -> FileMetadata:
        data, mtime = self._entry(path)
        return FileMetadata(path, len(data), mtime)

    def delete(self, paths: list[str]) -> None:
        """Delete objects like GCS does: a path ending in ``/`` deletes everything under that
        prefix, any other path exactly one object; a path that matches nothing is an error."""
        exceptions: dict[str, Exception] = {}
        with _LOCK:
            for path in paths:
                if path.endswith("/"):
                    doomed = [p for p in FILES if p.startswith(path)]
                else:
                    doomed = [path] if path in FILES else []
                if not doomed:
                    exceptions[path] = FileNotFoundError(f"No files found to delete under {path}")
                for p in doomed:
                    del FILES[p]
        if exceptions:
            raise BeamIOError("Delete operation failed", exceptions)


def memory_path(*parts: str) -> str:
    return PREFIX + posixpath.join(*parts)
