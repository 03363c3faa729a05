"""The restore's target table: its name from the options (checked before anything is
written), then on the cluster: connect, check that the keyspace exists,
create the table and its user types from the export's recorded schema when asked, and check
that every exported column exists there with the same type and kind; and the refusals of
runs that would redo units unsafely (on a target before 5.0, or beside busy Dask workers)."""

from __future__ import annotations

import re
from typing import Any

from pipeline.config import Settings
from pipeline.connect_errors import connect_or_explain
from pipeline.options import UsageError
from pipeline.runners import dask_tasks_executing
from pipeline.validation import QUALIFIED_NAME, connection_config
from transforms.cassandra_session import ConnectionConfig
from transforms.cassandra_write import RestoreUnit
from transforms.restore_manifest import RestoreLayout, retarget_create
from transforms.restore_plan import RestorePlan
from transforms.table_plan import supports_multicell_writetime

__all__ = ["prepare_target", "refuse_redo_beside_running_tasks", "target_name"]


def target_name(settings: Settings, schema: dict[str, Any]) -> tuple[str, str]:
    """(keyspace, table) of the target, unquoted: the options, else the exported table's.
    A name Cassandra cannot hold (empty, a dot or a space in it) is refused here, before
    anything is created: an empty one would otherwise mean the exported table itself."""
    keyspace = settings.get("keyspace")
    table = settings.get("table")
    keyspace = schema["keyspace"] if keyspace is None else keyspace
    table = schema["table"] if table is None else table
    keyspace_option = "--keyspace"
    ks_part, table = QUALIFIED_NAME.fullmatch(table).groups()
    if ks_part is not None:
        if settings.get("keyspace") and _unquote(settings["keyspace"]) != _unquote(ks_part):
            raise UsageError(
                f"--table {settings['table']} names keyspace {ks_part} but --keyspace is "
                f"{settings['keyspace']}"
            )
        keyspace = ks_part
        keyspace_option = "--table"
    keyspace, table = _unquote(keyspace), _unquote(table)
    for option, name, kind in (
        (keyspace_option, keyspace, "keyspace"),
        ("--table", table, "table"),
    ):
        if not re.fullmatch(r"\w+", name, re.ASCII):
            raise UsageError(
                f"{option}: {name!r} is not a {kind} name: Cassandra names are letters, "
                "digits and underscores"
            )
    return keyspace, table


def _unquote(name: str) -> str:
    """A name without its CQL double quotes (and with "" inside as one quote)."""
    return name[1:-1].replace('""', '"') if len(name) > 1 and name[0] == name[-1] == '"' else name


def _check_columns(
    plan: RestorePlan, schema: dict[str, Any], table_meta: Any, target_types: dict[str, Any]
) -> None:
    """Every exported column must exist on the target with the same type and kind."""
    problems = []
    key_kinds = {c.name: "partition_key" for c in table_meta.partition_key}
    key_kinds.update({c.name: "clustering" for c in table_meta.clustering_key})
    for column in plan.columns:
        target = table_meta.columns.get(column.name)
        if target is None:
            problems.append(f"column {column.name} ({column.cql_type}) does not exist")
            continue
        if str(target.cql_type) != column.cql_type:
            problems.append(
                f"column {column.name} is {target.cql_type} on the target but "
                f"{column.cql_type} in the export"
            )
        kind = key_kinds.get(column.name, "static" if target.is_static else "regular")
        if kind != column.kind:
            problems.append(
                f"column {column.name} is {kind} on the target but {column.kind} in the export"
            )
    exported_keys = [c.name for c in plan.columns if c.is_key]
    target_keys = list(key_kinds)
    if exported_keys != target_keys:
        problems.append(
            f"primary key columns are ({', '.join(target_keys)}) on the target but "
            f"({', '.join(exported_keys)}) in the export"
        )
    _refuse(plan, problems + _type_problems(schema, target_types))


def _type_problems(schema: dict[str, Any], target_types: dict[str, Any]) -> list[str]:
    """Each user type of the export that exists on the target with other fields."""
    problems = []
    for name, fields in schema.get("types", {}).items():
        have = target_types.get(name)
        want = [(f, t) for f, t in fields]
        if have is not None and have != want:
            problems.append(
                f"type {name} has fields ({', '.join(f'{f} {t}' for f, t in have)}) on the "
                f"target but ({', '.join(f'{f} {t}' for f, t in want)}) in the export"
            )
    return problems


def _refuse(plan: RestorePlan, problems: list[str]) -> None:
    """Bad input naming every problem, if there is any."""
    if problems:
        raise UsageError(
            f"the target table {plan.keyspace}.{plan.table} does not match the export: "
            + "; ".join(problems)
        )


def _user_types(ks_meta: Any) -> dict[str, Any]:
    """name -> [(field, type), ...] of each user type of a keyspace."""
    return {
        name: list(zip(udt.field_names, udt.field_types, strict=True))
        for name, udt in ks_meta.user_types.items()
    }


def prepare_target(
    settings: Settings,
    plan: RestorePlan,
    schema: dict[str, Any],
    layout: RestoreLayout,
    lists_reread: bool,
) -> ConnectionConfig:
    """The connection the restore writes with, once the target is ready: the keyspace
    exists, the table exists (created from the export's schema with ``--create-table``),
    and its columns and user types match the export's; and, on a target before 5.0, no
    unit with lists is to be redone (``_refuse_list_redo``)."""
    values = dict(settings.values)
    values.update(
        read_timeout=settings["write_timeout"],
        fetch_size=5000,
        max_concurrent_queries=0,
    )
    connection = connection_config(Settings(values, settings.explicit, settings.beam_args))
    cluster, session = connect_or_explain(connection)
    try:
        keyspaces = cluster.metadata.keyspaces
        if plan.keyspace not in keyspaces:
            raise UsageError(
                f"--table: keyspace {plan.keyspace} does not exist on the target; create it "
                "first (restore creates tables, not keyspaces)"
            )
        ks_meta = keyspaces[plan.keyspace]
        if plan.table not in ks_meta.tables:
            if not settings["create_table"]:
                raise UsageError(
                    f"--table: table {plan.keyspace}.{plan.table} does not exist; add "
                    "--create-table to create it from the export's schema"
                )
            # A type that differs is refused before the table is created with it.
            _refuse(plan, _type_problems(schema, _user_types(ks_meta)))
            _create(session, plan, schema, ks_meta)
            cluster.refresh_schema_metadata()
            ks_meta = cluster.metadata.keyspaces[plan.keyspace]
        _check_columns(plan, schema, ks_meta.tables[plan.table], _user_types(ks_meta))
        _refuse_list_redo(session, plan, layout, lists_reread)
    finally:
        cluster.shutdown()
    return connection


def _create(session: Any, plan: RestorePlan, schema: dict[str, Any], ks_meta: Any) -> None:
    if "create_table" not in schema:
        raise UsageError(
            "--create-table: this export was made before exports recorded their table's "
            "schema; create the target table by hand, then restore without --create-table"
        )
    source = (schema["keyspace"], schema["table"])
    for statement, name in zip(schema["create_types"], schema["types"], strict=True):
        if name in ks_meta.user_types:
            continue  # compared field by field afterwards
        create = retarget_create(statement, "TYPE", (source[0], name), (plan.keyspace, name))
        session.execute(create.replace("CREATE TYPE ", "CREATE TYPE IF NOT EXISTS ", 1), timeout=60)
    create = retarget_create(schema["create_table"], "TABLE", source, (plan.keyspace, plan.table))
    session.execute(create.replace("CREATE TABLE ", "CREATE TABLE IF NOT EXISTS ", 1), timeout=60)


def _refuse_list_redo(
    session: Any, plan: RestorePlan, layout: RestoreLayout, lists_reread: bool
) -> None:
    """Refuse, on a target before Cassandra 5.0, a run that would redo units with lists.

    A redone unit reads each row's lists with their element writetimes to append only the
    elements the target lacks; Cassandra 4.x refuses WRITETIME of a non-frozen list, and
    without it a redo would append every element again. So a restore into 4.x that would
    redo (``--overwrite``, an incremental export, or ``--resume`` of units started and not
    finished) is refused before anything is written; a first run needs no read."""
    if not plan.list_columns:
        return
    release = str(session.execute("SELECT release_version FROM system.local").one()[0])
    if supports_multicell_writetime(release):
        return
    started = layout.attempt_stems() - layout.done_stems()
    if not lists_reread and not started:
        return
    why = (
        f"{len(started)} unit(s) were started and not finished"
        if started and not lists_reread
        else "this run rewrites units (--overwrite, or an incremental export)"
    )
    names = ", ".join(c.name for c in plan.list_columns)
    raise UsageError(
        f"the target runs Cassandra {release}, which cannot read a list's element writetimes "
        f"(5.0 can): {why}, and rewriting them would append the elements of list column(s) "
        f"{names} again. Truncate {plan.keyspace}.{plan.table}, delete the restore manifest "
        f"{layout.root} and restore again (or restore into an empty table)"
    )


def refuse_redo_beside_running_tasks(
    restore_layout: RestoreLayout, todo: list[RestoreUnit], target: str, beam_args: list[str]
) -> None:
    """Refuse to redo units on a Dask cluster whose workers still execute tasks.

    A launcher killed mid-run leaves the tasks it had started running on the workers, each
    writing its unit to the end. Redoing such a unit at the same time would read the
    target's lists before that task appends to them, and append those elements again. So
    a run that redoes units (an earlier attempt without a finished marker, or
    ``--overwrite``) waits for idle workers: the user waits and reruns. Called before
    anything of the restore manifest is written or deleted."""
    attempts = restore_layout.attempt_stems()
    redo = [u.stem for u in todo if u.redo or u.stem in attempts]
    if not redo:
        return
    busy = dask_tasks_executing(beam_args)
    if busy:
        raise UsageError(
            f"{len(redo)} unit(s) of this restore into {target} were started before and "
            f"are to be redone, but the Dask workers still execute {busy} task(s), perhaps "
            "an earlier run's (the tasks of a killed launcher run on): redoing a unit while "
            "such a task still writes it could append list elements twice. Wait until the "
            "workers are idle (or restart them), then run the same command again"
        )
