"""``--protocol-version``: the native protocol the export and the restore speak (4 by
default, 5 on request), on a real node.

Each run's sessions are watched as they are made (the real ``connect``, wrapped to note
what it asked for and what the node agreed to); the export is the same file byte for byte
under both versions, for a table with the types whose wire form differs between them
(``duration`` is a custom type under 4), collections with per-element writetimes (no TTL:
a TTL counts down between the two exports);
and a restore under either version puts back the same cells.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from pipeline.config import parse_settings
from pipeline.restore_options import RESTORE_OPTION_SPECS, restore_parser
from pipeline.validation import connection_config
from tests.helpers import export, part_files
from tests.test_restore import restore
from transforms import cassandra_session
from transforms.cassandra_session import ConnectionConfig, connect

ROWS = 30


def test_the_default_is_4_and_5_is_taken() -> None:
    base = ["--hosts", "127.0.0.1", "--table", "ks.t", "--output", "/tmp/x"]
    assert connection_config(parse_settings(base)).protocol_version == 4
    five = parse_settings([*base, "--protocol-version", "5"])
    assert connection_config(five).protocol_version == 5
    restore_argv = ["--hosts", "127.0.0.1", "--input", "/tmp/x", "--protocol_version", "5"]
    restored = parse_settings(restore_argv, RESTORE_OPTION_SPECS, restore_parser)
    assert restored["protocol_version"] == "5"
    assert ConnectionConfig().protocol_version == 4
    assert ConnectionConfig(protocol_version=5).session_key() != ConnectionConfig().session_key()


@pytest.mark.parametrize("version", [4, 5])
def test_a_session_speaks_the_version_asked_for(hosts: str, version: int) -> None:
    cluster, session = connect(
        ConnectionConfig(hosts=tuple(hosts.split(",")), protocol_version=version)
    )
    try:
        assert session.cluster.protocol_version == version
        assert session.execute("SELECT release_version FROM system.local").one() is not None
    finally:
        cluster.shutdown()


@pytest.fixture(scope="module")
def table(session: Any, ks: str) -> str:
    name = f"{ks}.wire"
    session.execute(
        f"CREATE TABLE {name} (pk int, ck int, d duration, l list<text>, m map<int, text>, "
        "ts timestamp, v vector<float, 2>, PRIMARY KEY (pk, ck))"
    )
    insert = session.prepare(
        f"INSERT INTO {name} (pk, ck, d, ts, v) VALUES (?, ?, ?, ?, ?) USING TIMESTAMP ?"
    )
    from cassandra.util import Duration

    for i in range(ROWS):
        session.execute(
            insert,
            (
                i % 3,
                i,
                Duration(1, i, 5),
                i * 1000,
                [float(i), -1.5],
                1_700_000_000_000_000 + i,
            ),
        )
        session.execute(
            f"UPDATE {name} USING TIMESTAMP {1_700_000_000_000_100 + i} "
            f"SET l = l + ['a{i}'], m = m + {{{i}: 'x'}} WHERE pk = {i % 3} AND ck = {i}"
        )
        session.execute(
            f"UPDATE {name} USING TIMESTAMP {1_700_000_000_000_200 + i} "
            f"SET l = l + ['b{i}'] WHERE pk = {i % 3} AND ck = {i}"
        )
    return name


def _watching(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, int]]:
    """(asked, agreed) protocol versions of every session made from now on."""
    seen: list[tuple[int, int]] = []
    real = cassandra_session.connect

    def watched(config: ConnectionConfig) -> tuple[Any, Any]:
        cluster, session = real(config)
        seen.append((config.protocol_version, session.cluster.protocol_version))
        return cluster, session

    monkeypatch.setattr(cassandra_session, "connect", watched)
    return seen


def _export(hosts: str, table: str, out: Path, *extra: str) -> list[bytes]:
    export(
        hosts,
        table,
        str(out),
        "--writetime-columns",
        "*",
        "--ttl-columns",
        "*",
        "--collection-writetime",
        "list",
        "--splits",
        "4",
        *extra,
    )
    return [Path(p).read_bytes() for p in part_files(out)]


def test_export_and_restore_are_the_same_under_4_and_5(
    hosts: str, session: Any, ks: str, table: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _watching(monkeypatch)
    four = _export(hosts, table, tmp_path / "four")
    assert seen and set(seen) == {(4, 4)}
    seen.clear()
    five = _export(hosts, table, tmp_path / "five", "--protocol-version", "5")
    assert seen and set(seen) == {(5, 5)}
    assert five == four
    assert sum(part.count(b"\r\n") - 1 for part in four) == ROWS

    cells = {}
    for version, source in (("4", "four"), ("5", "five")):
        seen.clear()
        target = f"{ks}.wire_{version}"
        result = restore(
            "--hosts",
            hosts,
            "--input",
            str(tmp_path / source),
            "--table",
            target,
            "--create-table",
            "--protocol-version",
            version,
        )
        assert result.code == 0, result.describe()
        assert seen and set(seen) == {(int(version), int(version))}
        cells[version] = sorted(
            tuple(row)
            for row in session.execute(
                f"SELECT pk, ck, d, l, m, ts, v, WRITETIME(d), WRITETIME(l), WRITETIME(m), "
                f"WRITETIME(ts) FROM {target}"
            )
        )
    source_cells = sorted(
        tuple(row)
        for row in session.execute(
            f"SELECT pk, ck, d, l, m, ts, v, WRITETIME(d), WRITETIME(l), WRITETIME(m), "
            f"WRITETIME(ts) FROM {table}"
        )
    )
    assert len(source_cells) == ROWS
    assert cells["4"] == cells["5"] == source_cells
