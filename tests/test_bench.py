"""The benchmark command's pure parts: medians, ratios, row counting, the Markdown report.
(The benchmark itself prints numbers; it is never a timed test.)"""

from __future__ import annotations

from pathlib import Path

import fastavro
import pytest

from dev import bench


def _run(tool: str, wall: float, cpu: float, rss: float, rows: int = 1000) -> dict:
    return {
        "tool": tool,
        "status": "ok",
        "wall_s": wall,
        "cpu_s": cpu,
        "peak_rss_mb": rss,
        "peak_pss_mb": rss / 2,
        "rows_per_s": rows / wall,
        "cpu_us_per_row": cpu * 1e6 / rows,
        "rows": rows,
    }


def test_summary_takes_the_median_round_and_ratios_divide_medians() -> None:
    runs = [
        _run("ours", 2.0, 1.0, 400),
        _run("ours", 4.0, 3.0, 420),
        _run("ours", 3.0, 2.0, 410),
        _run("dsbulk", 5.0, 4.0, 900),
        {"tool": "cqlsh", "status": "unavailable", "why": "no venv"},
    ]
    summary = bench.summarize(runs, ["ours", "dsbulk", "cqlsh"])
    assert summary["ours"]["wall_s"] == 3.0
    assert summary["ours"]["rows_per_s"] == round(1000 / 3.0, 3)
    assert summary["ours"]["peak_rss_mb"] == 410 and summary["ours"]["peak_rss_mb_max"] == 420
    assert summary["ours"]["rounds"] == 3
    assert summary["cqlsh"] == {"status": "unavailable", "why": "no venv"}
    ratios = bench.ratios(summary)
    assert ratios["ours/dsbulk"]["value"] == round((1000 / 3.0) / (1000 / 5.0), 3)
    assert ratios["ours cpu/dsbulk cpu"]["value"] == 0.5
    assert "ours/cqlsh" not in ratios  # a tool that did not run gives no ratio


def test_rows_are_counted_from_csv_lines_and_avro_blocks(tmp_path: Path) -> None:
    first, empty = tmp_path / "a.csv", tmp_path / "b.csv"
    first.write_bytes(b"pk,v\r\n1,a\r\n2,b\r\n")
    empty.write_bytes(b"")
    assert bench.count_csv_rows([str(first), str(empty)], header=True) == 2
    assert bench.count_csv_rows([str(first)], header=False) == 3
    schema = {"type": "record", "name": "r", "fields": [{"name": "pk", "type": "int"}]}
    path = tmp_path / "a.avro"
    with path.open("wb") as handle:
        fastavro.writer(handle, schema, [{"pk": i} for i in range(7)], sync_interval=16)
    assert bench.count_avro_rows([str(path)]) == 7


def test_markdown_report() -> None:
    summary = bench.summarize(
        [_run("ours", 2.0, 1.0, 400), _run("raw", 1.0, 0.5, 300)], ["ours", "raw", "cqlsh"]
    )
    summary["cqlsh"] = {"status": "unavailable"}
    result = {
        "variant": "narrow",
        "rows": 1000,
        "workers": 2,
        "fetch_size": 5000,
        "repeat": 1,
        "machine": {"load_avg_at_end": [1.25, 1.0, 1.0]},
        "summary": summary,
        "ratios": bench.ratios(summary),
    }
    assert bench.markdown_report(result, "r.json").splitlines() == [
        "**narrow, 1,000 rows**, 2 workers, fetch size 5000, 1 round(s), load average 1.2 at "
        "end (`r.json`)",
        "",
        "| tool | rows/s | wall s | CPU s | CPU µs/row | peak RSS MB | peak PSS MB "
        "| node CPU µs/row |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
        "| ours | 500 | 2.0 | 1.0 | 1000.0 | 400 | 200 |  |",
        "| raw | 1,000 | 1.0 | 0.5 | 500.0 | 300 | 150 |  |",
        "| cqlsh | unavailable | | | | | | |",
        "",
        "| ratio | value |",
        "|---|---:|",
        "| ours/raw | 0.50 |",
    ]


def test_report_says_how_ours_sized_pages() -> None:
    assert bench._ours_pages({"fetch_size": 5000}) == ""  # results from before the option
    assert bench._ours_pages({"ours_fetch_size": None}) == " (ours: pages sized from their bytes)"
    assert bench._ours_pages({"ours_fetch_size": 5000}) == " (ours: 5000)"


def test_write_probe_measures_and_removes_its_file(tmp_path: Path) -> None:
    ns_per_byte = bench.write_probe(tmp_path, mib=4)
    assert ns_per_byte >= 0  # CPU clock ticks are 10 ms: a small file may read 0
    assert list(tmp_path.iterdir()) == []


def test_a_page_size_of_zero_is_refused_for_dsbulk_and_cqlsh(capsys: pytest.CaptureFixture) -> None:
    """Page size 0 disables paging in DSBulk and cqlsh: the node would build a whole token
    range's result at once (it ran out of heap so). Refused before any node is touched."""
    for tools in ("ours,dsbulk-ts", "cqlsh"):
        with pytest.raises(SystemExit) as exit_info:
            bench.main(["--hosts", "192.0.2.1:9042", "--fetch-size", "0", "--tools", tools])
        assert exit_info.value.code == 2
        assert "--fetch-size 0 is no page size for" in capsys.readouterr().err
