"""What ``_manifest/export.json`` records about a new export: the tool, the options that
shaped the output, the column plan, the work units, the row filter and where an
incremental export starts from. A resume reloads the export from it."""

from __future__ import annotations

import importlib.metadata
from typing import Any

from pipeline.config import Settings
from pipeline.options import OUTPUT_AFFECTING, SPECS_BY_DEST
from transforms import manifest as mf
from transforms.cql_text import format_writetime_iso
from transforms.normalize import WritetimeFilter
from transforms.table_plan import TablePlan
from transforms.token_ranges import WorkUnit

# The installed distribution (setup.py's name); its metadata holds the one version string.
DISTRIBUTION = "cassandra-export"

# Options recorded in export.json but free to differ on resume.
NOT_RECORDED = frozenset(
    {"config", "resume", "overwrite", "log_level", "progress_interval", "output"}
)


def tool_version() -> str:
    """``<distribution> <version>`` as installed (``pip install .`` or ``-e .``); a
    checkout run without installing says so instead of guessing a version."""
    try:
        version = importlib.metadata.version(DISTRIBUTION)
    except importlib.metadata.PackageNotFoundError:
        version = "(not installed)"
    return f"{DISTRIBUTION} {version}"


def export_config(settings: Settings, plan: TablePlan, workers: int) -> dict[str, Any]:
    """The ``export_config`` record: the planned columns and every recorded option."""
    config: dict[str, Any] = {
        "table": f"{plan.keyspace}.{plan.table}",
        "columns": [c.name for c in plan.columns],
        "writetime_columns": list(plan.writetime_columns),
        "ttl_columns": list(plan.ttl_columns),
        "batch_size": settings["batch_size"],
        "concurrency": workers,
    }
    options = {
        k: v
        for k, v in sorted(settings.values.items())
        if k not in NOT_RECORDED and k in SPECS_BY_DEST
    }
    options["keyspace"], options["table"] = plan.keyspace, plan.table
    config["options"] = options
    for key in OUTPUT_AFFECTING:
        if key not in ("keyspace", "table", "columns", "writetime_columns", "ttl_columns"):
            config[key] = options.get(key)
    return config


def export_record(
    *,
    started_micros: int,
    plan: TablePlan,
    units: list[WorkUnit],
    config: dict[str, Any],
    row_filter: WritetimeFilter,
    incremental_from: dict[str, Any] | None,
    schema: dict[str, Any],
) -> dict[str, Any]:
    """The whole ``export.json`` of a new export."""
    return {
        "version": mf.MANIFEST_VERSION,
        "format_version": mf.MANIFEST_VERSION,
        "tool": tool_version(),
        "started_at": format_writetime_iso(started_micros),
        "started_at_micros": started_micros,
        "cluster": {"name": plan.cluster_name, "release_version": plan.release_version},
        "export_config": config,
        "plan": plan.to_json(),
        "schema": schema,
        "units": [u.to_json() for u in units],
        "incremental_from": incremental_from,
        "row_filter": {
            "writetime_after_micros": row_filter.after,
            "writetime_before_micros": row_filter.before,
            "mode": row_filter.mode,
            "ttl_expiring_before_micros": row_filter.ttl_expiring_before,
        },
    }


def stored_row_filter(manifest: dict[str, Any]) -> WritetimeFilter:
    """The row filter ``export.json`` recorded (raises ValueError when it is malformed)."""
    stored = manifest.get("row_filter") or {}
    return WritetimeFilter(
        after=stored.get("writetime_after_micros"),
        before=stored.get("writetime_before_micros"),
        mode=stored.get("mode", "any"),
        ttl_expiring_before=stored.get("ttl_expiring_before_micros"),
    )
