"""The direct ``uuid``/``timeuuid`` decoder: the very ``uuid.UUID`` objects the driver makes,
its errors for malformed values, and on a node an export of UUIDs in every place a table
can hold them (key, column, collection elements, tuple, UDT; empty and null values)."""

from __future__ import annotations

import pickle
import random
import uuid
from pathlib import Path
from typing import Any

import pytest
from cassandra import cqltypes

from tests import helpers
from transforms.fast_uuids import UuidDecoder, decode_uuids_fast

UUID_TYPE = cqltypes.lookup_casstype("UUIDType")
TIMEUUID_TYPE = cqltypes.lookup_casstype("TimeUUIDType")


@pytest.mark.parametrize("cql_type", [UUID_TYPE, TIMEUUID_TYPE], ids=["uuid", "timeuuid"])
def test_random_values_give_the_drivers_objects(cql_type: type) -> None:
    decoder = UuidDecoder(cql_type)
    rng = random.Random(11)
    edges = [bytes(16), b"\xff" * 16, uuid.uuid1().bytes, uuid.uuid4().bytes]
    for data in edges + [rng.randbytes(16) for _ in range(3000)]:
        ours, theirs = decoder.deserialize(data, 5), cql_type.deserialize(data, 5)
        assert type(ours) is uuid.UUID
        assert ours == theirs and hash(ours) == hash(theirs)
        assert str(ours) == str(theirs) and ours.bytes == data
        assert ours.is_safe is theirs.is_safe
        assert pickle.loads(pickle.dumps(ours)) == theirs
        assert pickle.dumps(ours) == pickle.dumps(theirs)


@pytest.mark.parametrize("size", [1, 15, 17, 32])
def test_a_value_of_another_length_gets_the_drivers_error(size: int) -> None:
    data = bytes(range(size))
    ours = helpers.decoded_or_error(UuidDecoder(UUID_TYPE).deserialize, data, 5)
    assert ours == helpers.decoded_or_error(UUID_TYPE.deserialize, data, 5)
    assert ours[0] is ValueError


def test_the_driver_decodes_both_types_with_it() -> None:
    """What the driver's Cython row parser looks up for each column and element type."""
    from cassandra import deserializers

    decode_uuids_fast()
    for cql_type in (UUID_TYPE, TIMEUUID_TYPE):
        found = deserializers.find_deserializer(cql_type)
        assert type(found) is deserializers.GenericDeserializer
        assert "UuidDecoder" in repr(found)
    text = deserializers.find_deserializer(cqltypes.lookup_casstype("UTF8Type"))
    assert type(text) is deserializers.DesUTF8Type


# --- on a node ---------------------------------------------------------------------------

U = [uuid.UUID(int=(0x1234_5678_9ABC_DEF0 << 64) + i * 0x1111) for i in range(6)]
T = [uuid.UUID(f"{0x1000 + i:08x}-58a1-11ef-8f1a-0242ac120002") for i in range(6)]


def test_an_export_writes_every_uuid_exactly(
    session: Any, ks: str, hosts: str, tmp_path: Path
) -> None:
    session.execute(f"CREATE TYPE {ks}.ids (a uuid, b timeuuid)")
    table = f"{ks}.uuids"
    session.execute(
        f"CREATE TABLE {table} (pk uuid, ck timeuuid, u uuid, t timeuuid, lu list<uuid>, "
        "st set<timeuuid>, m map<timeuuid, uuid>, tu frozen<tuple<uuid, int>>, "
        "ud frozen<ids>, PRIMARY KEY (pk, ck))"
    )
    insert = session.prepare(
        f"INSERT INTO {table} (pk, ck, u, t, lu, st, m, tu, ud) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)"
    )
    session.execute(
        insert,
        (U[0], T[0], U[1], T[1], [U[2], U[3]], {T[2], T[3]}, {T[4]: U[4]}, (U[5], 7), (U[0], T[5])),
    )
    session.execute(insert, (U[1], T[1], None, None, None, None, None, None, None))
    # Zero-byte values: CQL can store them in any column; the driver reads them as null.
    session.execute(
        f"INSERT INTO {table} (pk, ck, u, t) VALUES ({U[2]}, {T[2]}, blobAsUuid(0x), "
        "blobAsTimeuuid(0x))"
    )

    helpers.export(hosts, table, tmp_path / "out", "--format", "jsonl")
    exported = sorted(helpers.read_jsonl(tmp_path / "out"), key=lambda r: r["pk"])
    names = ["pk", "ck", "u", "t", "lu", "st", "m", "tu", "ud"]
    rows = [{name: row[name] for name in names} for row in exported]
    s = str
    assert rows == [
        {
            "pk": s(U[0]),
            "ck": s(T[0]),
            "u": s(U[1]),
            "t": s(T[1]),
            "lu": [s(U[2]), s(U[3])],
            "st": [s(T[2]), s(T[3])],  # Cassandra's timeuuid order: by time
            "m": {s(T[4]): s(U[4])},
            "tu": [s(U[5]), 7],
            "ud": {"a": s(U[0]), "b": s(T[5])},
        },
        {"pk": s(U[1]), "ck": s(T[1]), **dict.fromkeys(["u", "t", "lu", "st", "m", "tu", "ud"])},
        {"pk": s(U[2]), "ck": s(T[2]), **dict.fromkeys(["u", "t", "lu", "st", "m", "tu", "ud"])},
    ]
    # The zero-byte values are cells (with a writetime); the nulls of the second row are not.
    assert [(r["u_writetime"] is None, r["t_writetime"] is None) for r in exported] == [
        (False, False),
        (True, True),
        (False, False),
    ]

    helpers.export(hosts, table, tmp_path / "csv")
    _, csv_rows = helpers.read_csv_parts(tmp_path / "csv")
    assert sorted((r["pk"], r["ck"], r["u"], r["t"]) for r in csv_rows) == [
        (s(U[0]), s(T[0]), s(U[1]), s(T[1])),
        (s(U[1]), s(T[1]), "", ""),
        (s(U[2]), s(T[2]), "", ""),
    ]
