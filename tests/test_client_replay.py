"""``dev/client_replay.py`` on a real node: the CSV it builds from captured result pages is
the export's CSV, row for row, on the columns path (no collection writetimes), with the
collection writetimes made one per cell (``max``) and on the sink's row path (``list``).
Its timings are only as good as this: a replay that wrote other bytes would measure other
work."""

from __future__ import annotations

import io
import json
import subprocess
import sys
from contextlib import redirect_stdout
from pathlib import Path

import pytest

from dev import client_replay
from tests.helpers import REPO, export, part_files

ROWS = 120
BASE = 1_700_000_000_000_000


@pytest.fixture(scope="module")
def table(session, ks: str) -> str:
    """Rows whose collections got elements at different writetimes; some sets hold
    ``-0.0`` and ``0.0``, which the driver's own set decoding merges (so a replay that
    decoded without the export's driver fixes would write other bytes)."""
    session.execute(
        f"CREATE TABLE {ks}.t (pk int, ck int, l list<text>, s set<double>, "
        "m map<text, bigint>, v text, PRIMARY KEY (pk, ck))"
    )
    insert = session.prepare(
        f"INSERT INTO {ks}.t (pk, ck, l, s, m, v) VALUES (?, ?, ?, ?, ?, ?) USING TIMESTAMP ?"
    )
    append = session.prepare(
        f"UPDATE {ks}.t USING TIMESTAMP ? SET l = l + ?, m = m + ? WHERE pk = ? AND ck = ?"
    )
    for i in range(ROWS):
        pk, ck = i // 3, i % 3
        s = {float(i)} if i % 4 == 1 else None
        v = "" if i % 5 == 0 else f'text {i}, "quoted"'
        session.execute(insert, (pk, ck, [f"e{i}"], s, {"a": i}, v, BASE + i))
        if i % 2 == 0:
            session.execute(append, (BASE + 1_000 + i, [f"f{i}"], {"b": -i}, pk, ck))
        if i % 4 == 0:  # a CQL literal: a Python set cannot hold both zeros
            session.execute(
                f"UPDATE {ks}.t USING TIMESTAMP {BASE + 2_000 + i} "
                f"SET s = {{-0.0, 0.0, 1.5}} WHERE pk = {pk} AND ck = {ck}"
            )
    return f"{ks}.t"


def _data_lines(data: bytes) -> list[bytes]:
    """The data lines of one CSV file (no value in this table holds a line break)."""
    return data.split(b"\r\n")[1:-1]


@pytest.mark.parametrize(
    ("writetimes", "policy"),
    [(False, "max"), (True, "max"), (True, "list")],
    ids=["columns", "rows-max", "rows-list"],
)
def test_replayed_csv_is_the_exports_csv(
    hosts: str, table: str, tmp_path: Path, writetimes: bool, policy: str
) -> None:
    pages, replayed = tmp_path / "pages.pkl", tmp_path / "replayed.csv"
    capture = ["capture", "--hosts", hosts, "--table", table, "--rows", "1000"]
    capture += ["--pages", str(pages), "--fetch-size", "50"]
    with redirect_stdout(io.StringIO()) as out:
        client_replay.main(capture + (["--writetimes"] if writetimes else []))
    assert json.loads(out.getvalue()) == {"pages": 3, "rows": ROWS}
    # A process of its own, as users run it: the capture's connect() in this one has
    # already changed how the driver decodes.
    run = [sys.executable, "dev/client_replay.py", "run", "--pages", str(pages)]
    run += ["--repeat", "1", "--csv", str(replayed), "--collection-writetime", policy]
    done = subprocess.run(run, cwd=REPO, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout.strip().splitlines()[-1])
    extra = {(True, "list"): {"to_rows"}, (True, "max"): {"normalize"}}.get((writetimes, policy))
    stages = {"decode", "claims", "stats", "csv"} | (extra or set())
    assert stages | {"total", "rows", "csv_sha256", "stats_sha256"} == set(report)
    assert report["rows"] == ROWS

    exported = tmp_path / "export"
    options = ["--format", "csv", "--collection-writetime", policy]
    export(hosts, table, exported, *options, "--writetime-columns", "*" if writetimes else "none")
    export_lines: list[bytes] = []
    for path in part_files(exported):
        export_lines += _data_lines(Path(path).read_bytes())
    replayed_bytes = replayed.read_bytes()
    replay_lines = _data_lines(replayed_bytes)
    assert len(replay_lines) == ROWS
    assert sorted(replay_lines) == sorted(export_lines)
    assert (
        replayed_bytes.split(b"\r\n")[0]
        == Path(part_files(exported)[0]).read_bytes().split(b"\r\n")[0]
    )
    assert sum(b'"[-0.0,0.0,1.5]"' in line for line in replay_lines) == ROWS // 4
