"""Client-side partition tokens (``transforms.partition_token``) against the server's
``token(pk)``, for every partition key type the reader hashes itself, on a real node.

Each table is read with the reader's own statement with the token selected
(``select_cql(with_token=True)``, the reader's session set-up), and the token computed from
the decoded key columns must equal the server's for every partition.
"""

from __future__ import annotations

from typing import Any

import pytest

from transforms.cassandra_schema import describe_table, plan_described_table
from transforms.cassandra_session import ConnectionConfig, connect
from transforms.columnar import send_columnar, sized_rows_handler
from transforms.partition_token import partition_tokens_for
from transforms.token_ranges import MAX_TOKEN, MIN_TOKEN

pytestmark = pytest.mark.cassandra

# (CQL type, literals of distinct keys): edge values of every type.
KEY_VALUES: list[tuple[str, list[str]]] = [
    ("int", ["0", "1", "-1", "2147483647", "-2147483648", "123456"]),
    ("bigint", ["0", "-1", "9223372036854775807", "-9223372036854775808", "1700000000000"]),
    ("smallint", ["0", "-1", "32767", "-32768"]),
    ("tinyint", ["0", "-1", "127", "-128"]),
    ("text", ["'a'", "'hello world'", "'é中文🙂'", "'x''y'"]),
    ("ascii", ["'a'", "'Z~'", "'0123456789'"]),
    ("blob", ["0x00", "0xff", "0x0102030405060708090a0b0c0d0e0f1011", "0xcafebabe"]),
    (
        "uuid",
        ["00000000-0000-0000-0000-000000000000", "123e4567-e89b-12d3-a456-426614174000"],
    ),
    ("timeuuid", ["e7a3f0a0-3c5b-11ee-be56-0242ac120002", "00000000-0000-1000-8000-000000000000"]),
    ("date", ["'1970-01-01'", "'2024-02-29'", "'1900-01-01'", "'9999-12-31'", "0", "4294967295"]),
    ("time", ["'00:00:00'", "'23:59:59.999999999'", "'12:34:56.789'"]),
    (
        "timestamp",
        ["0", "-1", "1700000000123", "'2024-02-29 12:00:00.001+0000'", "253402300799999"],
    ),
    ("inet", ["'127.0.0.1'", "'::1'", "'2001:db8::ff00:42:8329'", "'::ffff:10.0.0.1'"]),
]

COMPOSITE_TYPES = ["int", "text", "uuid", "blob", "inet", "date", "timestamp", "bigint"]
COMPOSITE_ROWS = [
    ["1", "'a'", "123e4567-e89b-12d3-a456-426614174000", "0x01", "'10.0.0.1'", "'2024-01-01'", "0", "5"],
    ["-1", "''", "00000000-0000-0000-0000-000000000000", "0x", "'::1'", "'1970-01-01'", "-1", "0"],
    ["2147483647", "'é'", "123e4567-e89b-12d3-a456-426614174001", "0xff00", "'::ffff:1.2.3.4'", "'1900-01-01'",
     "1700000000123", "-9223372036854775808"],
]  # fmt: skip


def _server_and_client_tokens(hosts: str, ks: str, table: str) -> list[tuple[int, int]]:
    """(server token, client token) of every row of ``ks.table``."""
    cluster, session = connect(ConnectionConfig(hosts=(hosts,)))
    try:
        plan = plan_described_table(
            describe_table(cluster, session, ks, table),
            columns=None,
            writetime_columns=None,
            ttl_columns=None,
        )
        tokens = partition_tokens_for(plan)
        assert tokens is not None
        statement = session.prepare(plan.select_cql(with_token=True))
        bound = statement.bind((MIN_TOKEN, MAX_TOKEN))
        rows = list(send_columnar(session, bound, None, sized_rows_handler()).result())
    finally:
        cluster.shutdown()
    return [(row[0], tokens.token(tokens.key_of(row[1:]))) for row in rows]


@pytest.mark.parametrize("cql_type,literals", KEY_VALUES, ids=[t for t, _ in KEY_VALUES])
def test_client_token_equals_server_token(
    session: Any, ks: str, hosts: str, cql_type: str, literals: list[str]
) -> None:
    table = f"pk_{cql_type}"
    session.execute(f"CREATE TABLE {ks}.{table} (k {cql_type}, c int, v int, PRIMARY KEY (k, c))")
    for literal in literals:
        for c in (1, 2):
            session.execute(f"INSERT INTO {ks}.{table} (k, c, v) VALUES ({literal}, {c}, 0)")
    pairs = _server_and_client_tokens(hosts, ks, table)
    assert len(pairs) == 2 * len(literals)
    assert [client for _, client in pairs] == [server for server, _ in pairs]


def test_composite_key_tokens_equal_server_tokens(session: Any, ks: str, hosts: str) -> None:
    columns = [f"k{i}" for i in range(len(COMPOSITE_TYPES))]
    definitions = ", ".join(f"{c} {t}" for c, t in zip(columns, COMPOSITE_TYPES, strict=True))
    session.execute(
        f"CREATE TABLE {ks}.composite ({definitions}, c int, v text, "
        f"PRIMARY KEY (({', '.join(columns)}), c))"
    )
    for literals in COMPOSITE_ROWS:
        session.execute(
            f"INSERT INTO {ks}.composite ({', '.join(columns)}, c, v) "
            f"VALUES ({', '.join(literals)}, 7, 'x')"
        )
    pairs = _server_and_client_tokens(hosts, ks, "composite")
    assert len(pairs) == len(COMPOSITE_ROWS)
    assert [client for _, client in pairs] == [server for server, _ in pairs]


# Key types read with token(pk): a frozen collection cannot be hashed here, and for the
# others distinct stored keys can decode to equal values (0.0 and -0.0, 1.0 and 1.00,
# non-canonical varint or boolean bytes), so the decoded key cannot tell partitions apart.
SERVER_TOKEN_KEYS = ["frozen<list<int>>", "float", "double", "decimal", "varint", "boolean"]


@pytest.mark.parametrize("cql_type", SERVER_TOKEN_KEYS)
def test_other_key_types_keep_server_tokens(
    session: Any, ks: str, hosts: str, cql_type: str
) -> None:
    table = "server_" + "".join(ch for ch in cql_type if ch.isalpha())
    session.execute(f"CREATE TABLE {ks}.{table} (k {cql_type}, v int, PRIMARY KEY (k))")
    cluster, cql = connect(ConnectionConfig(hosts=(hosts,)))
    try:
        plan = plan_described_table(
            describe_table(cluster, cql, ks, table),
            columns=None,
            writetime_columns=None,
            ttl_columns=None,
        )
    finally:
        cluster.shutdown()
    assert partition_tokens_for(plan) is None
    assert plan.select_cql(with_token=False).startswith("SELECT k, v FROM ")
