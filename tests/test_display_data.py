"""What a runner's UI shows of the public read, write and restore transforms and their DoFns:
the table, the connection and the output, never the password."""

from __future__ import annotations

from typing import Any

from apache_beam.transforms.display import DisplayData

from transforms.cassandra_io import ReadCassandraWithWritetime
from transforms.cassandra_session import ConnectionConfig
from transforms.cassandra_write import RestoreExportUnits, RestoreUnitsFn, WriteSettings
from transforms.formats import SinkConfig
from transforms.range_reader import ReadRangesFn
from transforms.restore_plan import build_restore_plan
from transforms.sinks import WriteExport, WritePiecesFn
from transforms.table_plan import build_table_plan

PASSWORD = "s3cret-Pa55word"
CONNECTION = ConnectionConfig(
    hosts=("10.0.0.5", "10.0.0.6:9043"),
    local_dc="dc1",
    username="reader",
    password=PASSWORD,
    ssl_enabled=True,
    ssl_key_file="/keys/client.key",
    consistency="QUORUM",
    fetch_size=2000,
)
SHOWN_CONNECTION = {
    "hosts": "10.0.0.5,10.0.0.6:9043",
    "port": 9042,
    "local_dc": "dc1",
    "username": "reader",
    "ssl": True,
    "consistency": "QUORUM",
}
PLAN = build_table_plan(
    keyspace="shop",
    table="orders",
    column_types=(("id", "int", "partition_key"), ("status", "text", "regular")),
    user_types={},
    release_version="5.0.8",
)
RESTORE_PLAN = build_restore_plan(
    "shop_copy",
    "orders",
    [
        {"name": "id", "cql_type": "int", "kind": "partition_key"},
        {"name": "status", "cql_type": "text", "kind": "regular"},
    ],
    {},
    ["status"],
    [],
)
SETTINGS = WriteSettings(export_root="/data/orders", restore_root="/data/orders/_manifest/r")


def shown(component: Any) -> dict[str, Any]:
    """The display data items of ``component`` as ``{key: value}``, checked password-free."""
    items = DisplayData.create_from(component).items
    assert all(PASSWORD not in repr((i.key, i.value, i.label)) for i in items)
    return {item.key: item.value for item in items}


def test_the_reader_shows_table_connection_and_selection() -> None:
    read = ReadCassandraWithWritetime(
        connection=CONNECTION,
        keyspace="shop",
        table="orders",
        columns=["id", "status"],
        ttl_columns=["status"],
        splits=8,
    )
    assert shown(read) == {
        **SHOWN_CONNECTION,
        "keyspace": "shop",
        "table": "orders",
        "columns": "id,status",
        "writetime_columns": "*",
        "ttl_columns": "status",
        "collection_writetime": "max",
        "splits": 8,
        "batch_size": 1000,
    }


def test_the_reader_spells_default_selections_as_the_cli() -> None:
    read = ReadCassandraWithWritetime(connection=ConnectionConfig(), keyspace="k", table="t")
    assert {k: v for k, v in shown(read).items() if k.endswith("columns")} == {
        "columns": "*",
        "writetime_columns": "*",
        "ttl_columns": "none",
    }


def test_the_read_dofn_shows_what_it_reads() -> None:
    assert shown(ReadRangesFn(CONNECTION, PLAN, batch_size=500, checkpoint_rows=10_000)) == {
        **SHOWN_CONNECTION,
        "table": "shop.orders",
        "fetch_size": 2000,
        "batch_size": 500,
        "checkpoint_rows": 10_000,
        "columnar": True,
    }
    assert shown(ReadRangesFn(CONNECTION, PLAN, columnar=False))["columnar"] is False


def test_the_writer_and_its_dofn_show_the_output() -> None:
    sink = SinkConfig(format="jsonl", compression="gzip", writetime_format="micros")
    expected = {
        "table": "shop.orders",
        "output": "gs://bucket/orders",
        "format": "jsonl",
        "compression": "gzip",
        "writetime_format": "micros",
        "collection_writetime": "list",
    }
    assert shown(WriteExport(PLAN, "gs://bucket/orders", sink, "list")) == expected
    assert shown(WritePiecesFn(PLAN, "gs://bucket/orders", sink, "list")) == expected


def test_the_restore_and_its_dofn_show_target_and_input() -> None:
    expected = {
        **SHOWN_CONNECTION,
        "target": "shop_copy.orders",
        "input": "/data/orders",
        "restore_manifest": "/data/orders/_manifest/r",
        "batch_statements": 128,
        "batch_partitions": 10,
        "max_in_flight": 32,
    }
    manifest: dict[str, Any] = {}
    assert shown(RestoreExportUnits(CONNECTION, RESTORE_PLAN, manifest, SETTINGS)) == expected
    assert shown(RestoreUnitsFn(CONNECTION, RESTORE_PLAN, manifest, SETTINGS)) == expected


def test_the_password_check_can_fail() -> None:
    """``shown`` would catch a password: a component that displays it fails the check."""

    class Leaky(ReadRangesFn):
        def display_data(self) -> dict[str, Any]:
            return {"password": self.connection.password}

    try:
        shown(Leaky(CONNECTION, PLAN))
    except AssertionError:
        return
    raise AssertionError("a displayed password went unnoticed")
