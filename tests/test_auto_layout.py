"""The layout an export picks when its user names none (``pipeline.runners.auto_layout``),
and the table size estimate it picks it from (``estimated_bytes``, on a fake session: the
node refreshes ``system.size_estimates`` on its own schedule)."""

from __future__ import annotations

from typing import Any

import pytest

from pipeline import runners
from pipeline.config import parse_settings
from pipeline.runners import LIGHT_START_MAX_BYTES, auto_layout, names_layout
from transforms.cassandra_schema import estimated_bytes

MULTI = ["--direct_running_mode=multi_processing", "--direct_num_workers=2"]


@pytest.mark.parametrize(
    "args,named",
    [
        ([], False),
        (["--save_main_session"], False),
        (["--runner=FnApiRunner"], True),
        (["--runner", "dask"], True),
        (["--direct_num_workers=1"], True),
        (["--direct_running_mode", "in_memory"], True),
        (["--num_workers=4"], True),
        (["--parallelism=2"], True),
    ],
)
def test_names_layout(args: list[str], named: bool) -> None:
    assert names_layout(args) is named


def test_settings_record_whether_a_layout_was_named(tmp_path: Any) -> None:
    base = ["--hosts", "h", "--table", "k.t", "--output", str(tmp_path / "o")]
    assert parse_settings(base).layout_named is False
    assert parse_settings([*base, "--direct_num_workers=2"]).layout_named is True
    config = tmp_path / "local.yaml"
    config.write_text("direct_running_mode: multi_processing\ndirect_num_workers: 2\n")
    assert parse_settings([*base, "--config", str(config)]).layout_named is True


@pytest.mark.parametrize(
    "size,checkpoint_rows,cores,expected",
    [
        (None, 0, 2, []),  # no estimate yet: in-process, as before
        (LIGHT_START_MAX_BYTES - 1, 0, 2, []),
        (LIGHT_START_MAX_BYTES, 0, 2, MULTI),
        (10 * LIGHT_START_MAX_BYTES, 1000, 2, []),  # checkpoints need one worker
        (10 * LIGHT_START_MAX_BYTES, 0, 1, []),
    ],
)
def test_auto_layout(
    monkeypatch: pytest.MonkeyPatch,
    size: int | None,
    checkpoint_rows: int,
    cores: int,
    expected: list[str],
) -> None:
    monkeypatch.setattr(runners.os, "cpu_count", lambda: cores)
    args = ["--runner=FnApiRunner"]
    assert auto_layout(args, size, checkpoint_rows) == [*args, *expected]


class _Session:
    def __init__(self, rows: list[tuple[int, int, int, int]]) -> None:
        self.rows = rows

    def execute(self, query: str, values: Any) -> list[tuple[int, int, int, int]]:
        assert "system.size_estimates" in query and values == ("ks", "t")
        return self.rows


def test_estimated_bytes_scales_the_node_ranges_to_the_ring() -> None:
    quarter = 2**62
    # Two ranges covering a quarter of the ring: 10 x 100 + 30 x 200 bytes = 7000.
    rows = [(-(2**63), -(2**63) + quarter // 2, 10, 100), (0, quarter // 2, 30, 200)]
    assert estimated_bytes(_Session(rows), "ks", "t") == 28_000
    # A range wrapping past the ring's end: the whole ring.
    assert estimated_bytes(_Session([(5, 5, 3, 7)]), "ks", "t") == 21
    assert estimated_bytes(_Session([]), "ks", "t") is None
