"""Describe a table and the ring at launch: columns in table order, user types, the
Cassandra version, ring tokens and size estimates, and the table's plan from them."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from transforms.cql_types import user_type_table
from transforms.table_plan import (
    CLUSTERING,
    PARTITION_KEY,
    REGULAR,
    STATIC,
    TablePlan,
    build_table_plan,
    resolve_identifier,
)

__all__ = [
    "describe_table",
    "estimated_bytes",
    "partitions_per_range",
    "plan_described_table",
    "ring_tokens",
    "TableDescription",
    "TableNotFound",
]


class TableNotFound(LookupError):
    """The keyspace or table to export does not exist (the message lists what does)."""


@dataclass(frozen=True)
class TableDescription:
    """A table as the cluster describes it: what a TablePlan is built from."""

    keyspace: str
    table: str
    column_types: tuple[tuple[str, str, str], ...]
    user_types: dict[str, tuple[tuple[str, ...], tuple[str, ...]]]
    release_version: str
    cluster_name: str


def describe_table(cluster: Any, session: Any, keyspace: str, table: str) -> TableDescription:
    """Columns in table order (partition key, clustering, the rest), UDTs, version.

    Raises:
        TableNotFound: the keyspace or table does not exist, or names a materialized view.
    """

    keyspaces = cluster.metadata.keyspaces
    ks_name = resolve_identifier(keyspace, list(keyspaces))
    if ks_name is None:
        raise TableNotFound(
            f"keyspace {keyspace!r} does not exist; keyspaces: "
            + ", ".join(sorted(k for k in keyspaces if not k.startswith("system")))
        )
    ks_meta = keyspaces[ks_name]
    table_name = resolve_identifier(table, list(ks_meta.tables))
    if table_name is None:
        views = getattr(ks_meta, "views", {})
        if resolve_identifier(table, list(views)):
            raise TableNotFound(f"{ks_name}.{table} is a materialized view; export its base table")
        raise TableNotFound(
            f"table {table!r} does not exist in keyspace {ks_name}; tables: "
            + (", ".join(sorted(ks_meta.tables)) or "(none)")
        )
    meta = ks_meta.tables[table_name]
    pk = [c.name for c in meta.partition_key]
    ck = [c.name for c in meta.clustering_key]
    columns: list[tuple[str, str, str]] = []
    columns += [(n, meta.columns[n].cql_type, PARTITION_KEY) for n in pk]
    columns += [(n, meta.columns[n].cql_type, CLUSTERING) for n in ck]
    keys = set(pk) | set(ck)
    for name, column in meta.columns.items():
        if name in keys:
            continue
        columns.append((name, column.cql_type, STATIC if column.is_static else REGULAR))
    local = session.execute("SELECT release_version, cluster_name FROM system.local").one()
    return TableDescription(
        keyspace=ks_name,
        table=table_name,
        column_types=tuple(columns),
        user_types=user_type_table(ks_meta),
        release_version=str(local[0]),
        cluster_name=str(local[1]),
    )


def plan_described_table(described: TableDescription, **selection: Any) -> TablePlan:
    """The TablePlan of a described table; ``selection`` holds build_table_plan's choices
    (columns, writetime_columns, ttl_columns, suffixes)."""
    return build_table_plan(
        keyspace=described.keyspace,
        table=described.table,
        column_types=described.column_types,
        user_types=described.user_types,
        release_version=described.release_version,
        cluster_name=described.cluster_name,
        **selection,
    )


def ring_tokens(cluster: Any) -> list[int]:
    """The ring's tokens, sorted (empty when the driver has no token map)."""
    token_map = cluster.metadata.token_map
    if token_map is None:
        return []
    return sorted(t.value for t in token_map.ring)


def estimated_bytes(session: Any, keyspace: str, table: str) -> int | None:
    """The table's size by ``system.size_estimates`` of the node we talk to, scaled from the
    ranges it covers to the whole ring; None when it has no estimate yet (a fresh table)."""
    try:
        rows = session.execute(
            "SELECT range_start, range_end, partitions_count, mean_partition_size "
            "FROM system.size_estimates WHERE keyspace_name = %s AND table_name = %s",
            (keyspace, table),
        )
    except Exception:
        return None
    covered = 0
    size = 0
    for start, end, partitions, mean_size in rows:
        width = (int(end) - int(start)) % 2**64 or 2**64
        covered += width
        size += max(0, int(partitions)) * max(0, int(mean_size))
    if not covered:
        return None
    return size * 2**64 // min(covered, 2**64)


def partitions_per_range(session: Any, keyspace: str, table: str) -> dict[tuple[int, int], int]:
    """``system.size_estimates`` of the node we talk to (empty on a fresh node)."""
    try:
        rows = session.execute(
            "SELECT range_start, range_end, partitions_count FROM system.size_estimates "
            "WHERE keyspace_name = %s AND table_name = %s",
            (keyspace, table),
        )
    except Exception:
        return {}
    return {(int(r[0]), int(r[1])): int(r[2]) for r in rows}
