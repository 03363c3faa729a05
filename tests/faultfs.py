"""A Beam ``FileSystem`` for scheme ``faultfs://`` whose disk fills up.

Files are kept in :data:`tests.memfs.FILES` (object-store semantics, see tests/memfs.py),
but a file being written is visible while it grows, as on a local disk, and the disk has
a size: :data:`DISK` ``.limit`` bytes for everything stored under ``faultfs://``. A write
that does not fit stores what fits and raises ``OSError(ENOSPC)``, as ``write(2)`` does
on a full filesystem. Raising the limit ("freeing space") lets later writes succeed.

Importing this module registers the scheme; only pipelines running in this process
(FnApiRunner in-memory) see it.
"""

from __future__ import annotations

import errno
import io
import os
import threading
from dataclasses import dataclass, field
from typing import Any

from tests import memfs

SCHEME = "faultfs"
PREFIX = SCHEME + "://"


@dataclass
class Disk:
    """The size of the disk and what happened on it."""

    limit: int | None = None  # bytes; None: unlimited
    enospc: int = 0  # writes refused
    bytes_written: int = 0  # accepted by write() calls
    refused_paths: list[str] = field(default_factory=list)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def used(self) -> int:
        with memfs._LOCK:
            return sum(len(d) for p, (d, _) in memfs.FILES.items() if p.startswith(PREFIX))


DISK = Disk()


def set_limit(limit: int | None) -> None:
    with DISK.lock:
        DISK.limit = limit


def reset(prefix: str = PREFIX) -> None:
    memfs.reset(prefix)
    with DISK.lock:
        DISK.limit = None
        DISK.enospc = 0
        DISK.bytes_written = 0
        DISK.refused_paths.clear()


class _FillingWriter(io.BytesIO):
    """Appends to the stored file on every write, up to the disk's limit."""

    mode = "wb"

    def __init__(self, path: str) -> None:
        super().__init__()
        self._path = path
        memfs.put(path, b"")

    def write(self, data: Any) -> int:
        data = bytes(data)
        with DISK.lock:
            room = len(data)
            if DISK.limit is not None:
                room = max(0, min(room, DISK.limit - DISK.used()))
            if room:
                super().write(data[:room])
                memfs.put(self._path, self.getvalue())
                DISK.bytes_written += room
            if room < len(data):
                DISK.enospc += 1
                DISK.refused_paths.append(self._path)
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), self._path)
        return len(data)

    def close(self) -> None:
        if not self.closed:
            memfs.put(self._path, self.getvalue())
        super().close()


class FaultFileSystem(memfs.MemoryFileSystem):
    """``faultfs://bucket/key`` files on a disk of :data:`DISK` ``.limit`` bytes."""

    writer = _FillingWriter

    @classmethod
    def scheme(cls) -> str:
        return SCHEME


def read(path: str) -> bytes:
    return memfs.read(path)


def paths(prefix: str = PREFIX) -> list[str]:
    return memfs.paths(prefix)
