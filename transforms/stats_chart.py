"""Draw ``_manifest/stats.png``: one histogram of writetimes by UTC day per column.

Reads the ``stats.json`` body (``stats["columns"][c]["writetime"]["histogram_by_day"]``)
and writes the PNG through Beam's ``FileSystems``, so ``gs://`` and ``s3://`` outputs work
like local ones::

    draw_stats_chart(read_stats(OUT), OUT + "/_manifest/stats.png")
"""

from __future__ import annotations

import datetime as dt
import io
import math
from typing import Any

from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

__all__ = ["day_label", "day_number", "draw_stats_chart", "render_stats_chart"]

_EPOCH_ORDINAL = dt.date(1970, 1, 1).toordinal()
_MAX_ORDINAL = dt.date.max.toordinal()


def day_number(key: str) -> int:
    """A ``histogram_by_day`` key (``YYYY-MM-DD``, or ``day<N>`` out of range) -> days since 1970."""
    if key.startswith("day"):
        return int(key[3:])
    return dt.date.fromisoformat(key).toordinal() - _EPOCH_ORDINAL


def day_label(number: float) -> str:
    """Days since 1970 -> ``YYYY-MM-DD`` where that is a date, else ``day<N>``."""
    days = int(math.floor(number))
    ordinal = _EPOCH_ORDINAL + days
    if 1 <= ordinal <= _MAX_ORDINAL:
        return dt.date.fromordinal(ordinal).isoformat()
    return f"day{days}"


def _histograms(stats: dict[str, Any]) -> list[tuple[str, dict[str, int]]]:
    """(column, histogram) of every column that has a writetime, in stats order."""
    result = []
    for name, column in stats.get("columns", {}).items():
        writetime = column.get("writetime")
        if writetime is not None:
            result.append((name, writetime.get("histogram_by_day") or {}))
    return result


def render_stats_chart(stats: dict[str, Any]) -> bytes:
    """The PNG bytes of the chart (Agg backend: no display needed)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    histograms = _histograms(stats)
    panels = max(1, len(histograms))
    grid_columns = 1 if panels <= 6 else 2 if panels <= 20 else 3
    grid_rows = -(-panels // grid_columns)
    figure = Figure(figsize=(7.5 * grid_columns, 0.6 + 2.3 * grid_rows), dpi=100)
    FigureCanvasAgg(figure)
    rows = stats.get("rows")
    figure.suptitle(
        "Writetimes by day (UTC)" + (f", {rows:,} rows" if isinstance(rows, int) else "")
    )
    axes = figure.subplots(grid_rows, grid_columns, squeeze=False).ravel()
    if not histograms:
        axes[0].text(0.5, 0.5, "no writetime columns", ha="center", va="center")
        axes[0].set_axis_off()
    for ax, (name, histogram) in zip(axes, histograms, strict=False):
        days = sorted((day_number(k), n) for k, n in histogram.items())
        cells = sum(n for _, n in days)
        ax.set_title(f"{name}: {cells:,} cells", fontsize=10, loc="left")
        if not days:
            ax.text(0.5, 0.5, "no writetimes", ha="center", va="center", transform=ax.transAxes)
            ax.set_yticks([])
            ax.set_xticks([])
            continue
        xs = [d for d, _ in days]
        low, high = xs[0], xs[-1] + 1
        # A day is a bar 0.9 wide; over years it would vanish, so keep it >= 1/150 of the span.
        width = max(0.9, (high - low) / 150)
        ax.bar(xs, [n for _, n in days], width=width, align="edge", color="#3b6ea5")
        pad = max(1, (high - low) // 20)
        ax.set_xlim(low - pad, high + pad)
        ax.xaxis.set_major_locator(MaxNLocator(nbins=6, integer=True))
        ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _pos: day_label(value)))
        ax.yaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_ylabel("cells")
        ax.tick_params(axis="x", labelsize=8)
    for ax in axes[len(histograms) or 1 :]:
        ax.set_axis_off()
    figure.tight_layout()
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()


def draw_stats_chart(stats: dict[str, Any], path: str) -> None:
    """Write the writetime-by-day chart of ``stats`` (a stats.json body) to ``path`` as PNG."""
    data = render_stats_chart(stats)
    with FileSystems.create(
        path, mime_type="image/png", compression_type=CompressionTypes.UNCOMPRESSED
    ) as handle:
        handle.write(data)
