"""The export manifest: what was planned, which token ranges are committed, and the summary.

Layout under ``OUT``::

    data/part-<unit>.<ext>          one file per work unit piece, renamed into place
    _manifest/export.json           format version, config, plan, units, cluster, started_at
    _manifest/ranges/<unit>.json    one marker per committed piece, written after its file
    _manifest/checkpoint.json       completed_ranges, total_rows, export_config
    _manifest/stats.json            writetime / TTL statistics
    _SUCCESS                        written last

A piece's data file is complete once its marker exists; a data file without a
marker is an orphan of a crashed attempt and is deleted before a resume and at the
end of a run. Everything goes through Beam's ``FileSystems``, so local paths,
``gs://`` and ``s3://`` behave alike.
"""

from __future__ import annotations

import json
import posixpath
import re
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

from apache_beam.io.filesystem import FileSystem
from apache_beam.io.filesystems import FileSystems

from transforms.token_ranges import TokenRange, WorkUnit, check_exact_cover

__all__ = [
    "checkpoint_body",
    "completed_ranges",
    "delete_files",
    "delete_tree",
    "ensure_dir",
    "exists",
    "is_empty_dir",
    "iter_markers",
    "join",
    "Layout",
    "list_files",
    "load_export",
    "MANIFEST_VERSION",
    "ManifestError",
    "orphan_files",
    "read_json",
    "read_markers",
    "remaining_work",
    "remove_empty_dir",
    "SUPPORTED_VERSIONS",
    "write_bytes_atomically",
    "write_json",
]

MANIFEST_VERSION = "1.0"
SUPPORTED_VERSIONS = ("1.0",)


class ManifestError(ValueError):
    """A manifest that cannot be used (missing, malformed, from a newer version...)."""


def join(base: str, *parts: str) -> str:
    if "://" in base:
        return posixpath.join(base.rstrip("/"), *parts)
    return FileSystems.join(base, *parts)


@dataclass(frozen=True)
class Layout:
    """Paths of one export directory."""

    root: str

    @property
    def data_dir(self) -> str:
        return join(self.root, "data")

    @property
    def manifest_dir(self) -> str:
        return join(self.root, "_manifest")

    @property
    def ranges_dir(self) -> str:
        return join(self.manifest_dir, "ranges")

    @property
    def temp_dir(self) -> str:
        return join(self.root, "_temporary")

    @property
    def export_json(self) -> str:
        return join(self.manifest_dir, "export.json")

    @property
    def checkpoint_json(self) -> str:
        return join(self.manifest_dir, "checkpoint.json")

    @property
    def stats_json(self) -> str:
        return join(self.manifest_dir, "stats.json")

    @property
    def stats_png(self) -> str:
        return join(self.manifest_dir, "stats.png")

    @property
    def success(self) -> str:
        return join(self.root, "_SUCCESS")

    def piece_stem(self, unit_id: int, offset: int) -> str:
        """``00012`` for a piece starting at its unit's start, ``00012.s<offset>`` after."""
        return f"{unit_id:05d}" if offset == 0 else f"{unit_id:05d}.s{offset}"

    def data_file(self, stem: str, extension: str) -> str:
        return join(self.data_dir, f"part-{stem}{extension}")

    def marker(self, stem: str) -> str:
        return join(self.ranges_dir, f"{stem}.json")

    def temp_file(self, stem: str, extension: str) -> str:
        return join(self.temp_dir, f"part-{stem}-{uuid.uuid4().hex[:12]}{extension}")


# --- small file helpers ------------------------------------------------------------------


def write_bytes_atomically(path: str, data: bytes) -> None:
    """Write ``data`` to a temporary sibling, then rename it over ``path``."""
    directory, name = posixpath.split(path) if "://" in path else _split_local(path)
    temp = join(directory, f".{name}.{uuid.uuid4().hex[:12]}.tmp")
    with FileSystems.create(temp) as handle:
        handle.write(data)
    FileSystems.rename([temp], [path])


def _split_local(path: str) -> tuple[str, str]:
    import os

    return os.path.split(path)


def write_json(path: str, value: Any) -> None:
    write_bytes_atomically(path, (json.dumps(value, indent=1, sort_keys=False) + "\n").encode())


def read_json(path: str, filesystem: FileSystem | None = None) -> Any:
    """The JSON document in ``path``. ``filesystem``: the path's, given by a caller that
    reads many files of one directory (Beam resolves it anew on every open, walking its
    filesystem classes and creating an instance: a tenth of a marker's read, measured)."""
    with (filesystem or FileSystems.get_filesystem(path)).open(path) as handle:
        data = handle.read()
    try:
        return json.loads(data.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ManifestError(f"{path} is not valid JSON ({exc}); was it edited by hand?") from None


def exists(path: str) -> bool:
    return FileSystems.exists(path)


def ensure_dir(path: str) -> None:
    """Create a directory where the filesystem has them (object stores need none)."""
    if "://" in path:
        return
    try:
        FileSystems.mkdirs(path)
    except Exception:
        pass  # exists already


def remove_empty_dir(path: str) -> None:
    """Remove a local directory left empty (object stores have no directories)."""
    if "://" in path:
        return
    import os

    try:
        os.rmdir(path)
    except OSError:
        pass  # missing or not empty


def list_files(directory: str, pattern: str = "*") -> list[str]:
    try:
        result = FileSystems.match([join(directory, pattern)])[0]
    except Exception:
        return []
    return sorted(m.path for m in result.metadata_list)


def delete_files(paths: Iterable[str]) -> None:
    paths = list(paths)
    if paths:
        FileSystems.delete(paths)


def is_empty_dir(path: str) -> bool:
    """True when no file lies anywhere under ``path`` (hidden ones and subdirectories count).

    An object store has no directory objects, so ``exists`` says nothing there: list the
    prefix. ``*`` would only see files directly in ``path``, missing data/ and _manifest/.
    """
    if "://" not in path and not FileSystems.exists(path):
        return True
    return not list_files(path, "**")


def delete_tree(path: str) -> None:
    """Delete everything under ``path``: a local directory, or every object under an object
    store prefix (``FileSystems.delete`` of a bare prefix deletes nothing on GCS)."""
    if "://" in path:
        delete_files(list_files(path, "**"))
    else:
        FileSystems.delete([path])


# --- markers -----------------------------------------------------------------------------

_MARKER_NAME = re.compile(r"^(\d{5,})(?:\.s(\d+))?\.json$")


def iter_markers(layout: Layout) -> Iterator[dict[str, Any]]:
    """Every committed piece's marker, whole (with its ``stats``), one at a time, in name
    order. Raises ManifestError on a malformed one."""
    paths = list_files(layout.ranges_dir, "*.json")
    filesystem = FileSystems.get_filesystem(paths[0]) if paths else None
    for path in paths:
        name = posixpath.basename(path.replace("\\", "/"))
        if not _MARKER_NAME.match(name):
            continue
        marker = read_json(path, filesystem)
        try:
            int(marker["unit_id"])
            TokenRange(int(marker["start"]), int(marker["end"]))
            int(marker["rows"])
            str(marker["file"])
        except (KeyError, TypeError, ValueError) as exc:
            raise ManifestError(
                f"marker {path} is malformed ({exc}); was it edited by hand?"
            ) from None
        yield marker


def read_markers(layout: Layout) -> list[dict[str, Any]]:
    """Every committed piece's marker without its writetime statistics (``stats``).

    The statistics are most of a marker (2.6 KB of JSON for 4 writetime columns, about
    200 small Python objects) and only finalize needs them, once: kept for 100,000
    markers they took about 850 MB and every full garbage collection walked them all
    (measured). Finalize merges them as it reads (:func:`iter_markers`)."""
    markers = []
    for marker in iter_markers(layout):
        marker.pop("stats", None)
        markers.append(marker)
    return markers


def completed_ranges(markers: Iterable[dict[str, Any]]) -> list[TokenRange]:
    return sorted(TokenRange(int(m["start"]), int(m["end"])) for m in markers)


def load_export(layout: Layout) -> dict[str, Any]:
    if not exists(layout.export_json):
        raise ManifestError(
            f"{layout.root} holds no export manifest (_manifest/export.json): "
            "it is not an export directory"
        )
    manifest = read_json(layout.export_json)
    if not isinstance(manifest, dict):
        raise ManifestError(f"{layout.export_json} is not an export manifest")
    # "version" since 1.0 exports of this release; "format_version" alone in older ones.
    version = str(manifest.get("version", manifest.get("format_version", "")))
    if version not in SUPPORTED_VERSIONS:
        raise ManifestError(
            f"{layout.export_json} has format version {version!r}; this exporter reads "
            f"{', '.join(SUPPORTED_VERSIONS)} (use the exporter version that wrote it)"
        )
    try:
        units = [WorkUnit.from_json(u) for u in manifest["units"]]
        manifest["export_config"]["table"]
        manifest["plan"]["columns"]
    except (KeyError, TypeError, ValueError) as exc:
        raise ManifestError(f"{layout.export_json} is malformed ({exc})") from None
    problems = check_exact_cover(u.token_range for u in units)
    if problems:
        raise ManifestError(
            f"{layout.export_json}: planned units do not cover the ring ({problems[0]})"
        )
    return manifest


def checkpoint_body(
    markers: list[dict[str, Any]], export_config: dict[str, Any], units_total: int
) -> dict[str, Any]:
    ranges = completed_ranges(markers)
    units_done = {int(m["unit_id"]) for m in markers}
    return {
        "version": MANIFEST_VERSION,
        "completed_ranges": [[r.start, r.end] for r in ranges],
        "total_rows": sum(int(m["rows"]) for m in markers),
        "export_config": export_config,
        "units_total": units_total,
        "units_with_data_committed": len(units_done),
        "pieces_committed": len(markers),
    }


def remaining_work(
    units: list[WorkUnit], markers: list[dict[str, Any]]
) -> list[tuple[int, int, int, int]]:
    """Work items ``(unit_id, unit_start, start, end)`` not yet covered by a committed piece."""
    from transforms.token_ranges import subtract

    by_unit: dict[int, list[TokenRange]] = {}
    for m in markers:
        by_unit.setdefault(int(m["unit_id"]), []).append(TokenRange(int(m["start"]), int(m["end"])))
    work = []
    for unit in units:
        for part in subtract(unit.token_range, by_unit.get(unit.unit_id, [])):
            work.append((unit.unit_id, unit.start, part.start, part.end))
    return work


def orphan_files(layout: Layout, markers: list[dict[str, Any]]) -> list[str]:
    """Data files no marker refers to: leftovers of attempts that did not commit."""
    committed = {posixpath.basename(str(m["file"])) for m in markers}
    orphans = [
        p
        for p in list_files(layout.data_dir, "part-*")
        if posixpath.basename(p.replace("\\", "/")) not in committed
    ]
    orphans += list_files(layout.temp_dir, "*")
    orphans += list_files(layout.ranges_dir, ".*.tmp")
    orphans += list_files(layout.manifest_dir, ".*.tmp")
    return orphans
