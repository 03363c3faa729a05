"""What restore needs from an export, and restore's own manifest of finished units.

Export side (written by ``cassandra-export``)::

    _manifest/export.json        "schema": columns with CQL types and kinds, UDT fields,
                                 CREATE TYPE / CREATE TABLE statements, release_version
    _manifest/reads/<unit>.json  {"unit_id", "read_started_at_micros"}: written just before
                                 the unit's first query, so it is a lower bound of the time
                                 every TTL of that unit was read at

Restore side (default ``OUT/_manifest/restore/<ks.table>/``, or ``--restore-manifest DIR``)::

    restore.json                 the run: target, export, options that must not change
    attempts/<stem>.json         written before the first write of a unit (a redo reads lists)
    <stem>.json                  written after every write of the unit was acknowledged

``<stem>`` is the export marker's name (``00012`` or ``00012.s<offset>``).
"""

from __future__ import annotations

import posixpath
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import apache_beam as beam

from transforms.cql_types import type_string_names
from transforms.manifest import (
    Layout,
    ManifestError,
    exists,
    join,
    list_files,
    read_json,
    write_json,
)
from transforms.table_plan import TablePlan, quote_identifier

__all__ = [
    "export_schema",
    "read_start_path",
    "read_starts",
    "RecordReadStartFn",
    "RestoreLayout",
    "retarget_create",
    "SCHEMA_VERSION",
    "udts_in_dependency_order",
]

SCHEMA_VERSION = 1


# --- export side: the table's schema --------------------------------------------------------


def export_schema(cluster: Any, keyspace: str, table: str, plan: TablePlan) -> dict[str, Any]:
    """The ``schema`` block of export.json: exported columns in file order with their CQL types
    and kinds, the UDTs they use (fields in order), and the CREATE statements of both."""
    ks_meta = cluster.metadata.keyspaces[keyspace]
    table_meta = ks_meta.tables[table]
    used = udts_in_dependency_order(
        [str(c.cql_type) for c in table_meta.columns.values()],
        {name: list(udt.field_types) for name, udt in ks_meta.user_types.items()},
    )
    return {
        "version": SCHEMA_VERSION,
        "keyspace": keyspace,
        "table": table,
        "release_version": plan.release_version,
        "columns": [
            {"name": c.name, "cql_type": str(c.cql_type), "kind": c.kind} for c in plan.columns
        ],
        "types": {
            name: [
                [field, field_type]
                for field, field_type in zip(
                    ks_meta.user_types[name].field_names,
                    ks_meta.user_types[name].field_types,
                    strict=True,
                )
            ]
            for name in used
        },
        "create_types": [ks_meta.user_types[name].as_cql_query(formatted=False) for name in used],
        "create_table": table_meta.as_cql_query(formatted=False),
    }


def udts_in_dependency_order(
    column_types: list[str], udt_fields: dict[str, list[str]]
) -> list[str]:
    """The UDTs that ``column_types`` use, each after every UDT its fields use."""
    ordered: list[str] = []

    def visit(name: str, path: tuple[str, ...]) -> None:
        if name in ordered or name in path:
            return
        for field_type in udt_fields[name]:
            for word in sorted(type_string_names(field_type) & udt_fields.keys()):
                visit(word, path + (name,))
        ordered.append(name)

    for cql_type in column_types:
        for word in sorted(type_string_names(cql_type) & udt_fields.keys()):
            visit(word, ())
    return ordered


def retarget_create(statement: str, kind: str, old: tuple[str, str], new: tuple[str, str]) -> str:
    """``CREATE TABLE old_ks.old_name (...`` -> ``CREATE TABLE new_ks.new_name (...``."""
    prefix = f"CREATE {kind} {quote_identifier(old[0])}.{quote_identifier(old[1])} ("
    if not statement.startswith(prefix):
        raise ValueError(f"recorded statement does not start with {prefix!r}")
    head = f"CREATE {kind} {quote_identifier(new[0])}.{quote_identifier(new[1])} ("
    return head + statement[len(prefix) :]


# --- export side: when each unit was read ---------------------------------------------------


def read_start_path(layout: Layout, unit_id: int) -> str:
    return join(layout.manifest_dir, "reads", f"{unit_id:05d}.json")


class RecordReadStartFn(beam.DoFn):
    """Passes work items through after recording when their unit's read starts.

    A TTL read from Cassandra is what was left at the moment of its query; restore needs that
    moment to keep the expiry instant. This stamp precedes every query of the unit (a redone
    unit stamps again), so ``stamp + TTL`` never lies after the true expiry; the unit's marker
    ``committed_at`` bounds the read from above."""

    def __init__(self, output: str) -> None:
        self.output = output

    def process(self, work_item: tuple[int, int, int, int]) -> Iterator[tuple[int, int, int, int]]:
        unit_id = int(work_item[0])
        stamp = {"unit_id": unit_id, "read_started_at_micros": time.time_ns() // 1000}
        write_json(read_start_path(Layout(self.output), unit_id), stamp)
        yield work_item


def read_starts(layout: Layout) -> dict[int, int]:
    """unit_id -> read_started_at_micros of every unit stamped in the export. A stamp that
    is not JSON or lacks its fields raises ManifestError (the export is damaged)."""
    starts = {}
    for path in list_files(join(layout.manifest_dir, "reads"), "*.json"):
        stamp = read_json(path)
        try:
            starts[int(stamp["unit_id"])] = int(stamp["read_started_at_micros"])
        except (KeyError, TypeError, ValueError):
            raise ManifestError(f"read stamp {path} is malformed") from None
    return starts


# --- restore side ---------------------------------------------------------------------------


@dataclass(frozen=True)
class RestoreLayout:
    """Paths of the restore manifest of one target table."""

    root: str

    @classmethod
    def for_target(cls, export_root: str, target: str, directory: str | None) -> RestoreLayout:
        base = directory or join(Layout(export_root).manifest_dir, "restore")
        return cls(join(base, target))

    @property
    def run_json(self) -> str:
        return join(self.root, "restore.json")

    def done(self, stem: str) -> str:
        return join(self.root, f"{stem}.json")

    def attempt(self, stem: str) -> str:
        return join(self.root, "attempts", f"{stem}.json")

    def done_markers(self) -> dict[str, dict[str, Any]]:
        """stem -> marker of every finished unit."""
        return {stem: read_json(self.done(stem)) for stem in self.done_stems()}

    def done_stems(self) -> set[str]:
        """Stems of every finished unit (their markers unread)."""
        return _json_stems(self.root) - {"restore"}

    def attempt_stems(self) -> set[str]:
        """Stems of every unit whose writing started (finished or not)."""
        return _json_stems(join(self.root, "attempts"))

    def has_attempt(self, stem: str) -> bool:
        return exists(self.attempt(stem))


def _json_stems(directory: str) -> set[str]:
    """Names without ``.json`` of the ``*.json`` files in ``directory`` (none hidden)."""
    names = (posixpath.basename(p.replace("\\", "/")) for p in list_files(directory, "*.json"))
    return {name[: -len(".json")] for name in names if not name.startswith(".")}
