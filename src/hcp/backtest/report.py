"""The HTML report of a backtest: a results table and inline SVG charts (no JavaScript, no
network): the real-time price, grid MW per use over time for each strategy, and cumulative
profit per strategy. Long windows are drawn from bucket means (at most `_POINTS` points)."""

from __future__ import annotations

import errno
import html
import os
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from hcp.backtest.engine import Result
from hcp.backtest.ledger import SOLD, USES
from hcp.domain.market import FloatArray
from hcp.optimizer.lp import IntArray

_POINTS = 600
_WIDTH, _HEIGHT, _PAD = 900, 260, 56
_COLORS = ("#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf")
_USE_LABELS = {
    "asic": "ASICs",
    "realtime": "GPU realtime",
    "batch": "GPU batch",
    "training": "GPU training",
    "spot": "GPU spot",
    SOLD: "sold back",
}


def report_path(folder: Path) -> Path:
    """Check, creating nothing, that `report.html` could be written in `folder` (made with
    its parents when missing); its path. OSError naming what is in the way: call it before a
    long replay, not after. Nothing is created before the report is written, so a replay
    that fails or is interrupted leaves no empty folders behind."""
    path = folder / "report.html"
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent  # the nearest part of the path that is there
    if not existing.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(existing))
    if existing == folder and path.is_dir():
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
    if not os.access(existing, os.W_OK | os.X_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), str(existing))
    return path


def write_report(folder: Path, title: str, results: Sequence[Result]) -> Path:
    """Write `report.html` for `results` (one per strategy, same window) into `folder`, whole
    or not at all: the page goes to a temporary file that then replaces `report.html`."""
    path = report_path(folder)
    page = render_report(title, results)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file put where the folder should be since the check
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder)) from None
    partial = path.with_name(f".{path.name}.partial")
    try:
        partial.write_text(page, encoding="utf-8")
        partial.replace(path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def render_report(title: str, results: Sequence[Result]) -> str:
    """The report as one self-contained HTML page."""
    trace = results[0].trace
    sections = [
        f"<h1>{html.escape(title)}</h1>",
        results_table(results),
        "<h2>Real-time price</h2>",
        line_chart(trace.seconds, dict(trace.prices), "USD/MWh"),
        "<h2>Cumulative profit</h2>",
        line_chart(
            trace.seconds,
            {r.strategy: np.cumsum(r.trace.profit_usd) for r in results},
            "USD",
            running_total=True,
        ),
    ]
    for result in results:
        sections.append(f"<h2>Grid MW per use, and sold back: {html.escape(result.strategy)}</h2>")
        shown = (*USES, SOLD) if result.trace.mw[SOLD].any() else USES  # SOLD: PPAs only
        uses = {_USE_LABELS[u]: result.trace.mw[u] for u in shown}
        sections.append(stacked_chart(result.trace.seconds, uses, "MW"))
    style = "body{font-family:sans-serif;margin:2em;max-width:960px}td,th{padding:4px 10px}"
    return (
        f"<!DOCTYPE html><html><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
        f"<style>{style}</style></head><body>{''.join(sections)}</body></html>"
    )


def results_table(results: Sequence[Result]) -> str:
    """An HTML table of each strategy's money and service figures."""
    oracle = next((r.ledger.profit_usd for r in results if r.strategy == "oracle"), None)
    head = (
        "<tr><th>strategy</th><th>profit USD</th><th>share of oracle</th><th>mining</th>"
        "<th>GPU</th><th>sell-back</th><th>energy</th><th>SLA penalties</th>"
        "<th>deadlines missed</th></tr>"
    )
    rows = []
    for r in results:
        money = r.ledger
        share = "" if not oracle else f"{money.profit_usd / oracle:.1%}"
        cells = (
            r.strategy,
            f"{money.profit_usd:,.0f}",
            share,
            f"{money.mining_revenue_usd:,.0f}",
            f"{money.gpu_revenue_usd:,.0f}",
            f"{money.sellback_revenue_usd:,.0f}",
            f"{money.energy_cost_usd:,.0f}",
            f"{money.sla_penalty_usd:,.0f}",
            str(money.deadlines_missed),
        )
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    return f"<table>{head}{''.join(rows)}</table>"


def _buckets(
    seconds: IntArray, values: FloatArray, *, running_total: bool = False
) -> tuple[FloatArray, FloatArray]:
    """(times, values) reduced to at most `_POINTS` buckets, the last one possibly shorter:
    each bucket's mean at its first time; for a running total its last value at its last time,
    so that the line ends at the total."""
    size = max(1, -(-len(values) // _POINTS))
    starts = np.arange(0, len(values), size)
    ends = np.append(starts[1:], len(values))
    if running_total:
        return seconds[ends - 1].astype(float), values[ends - 1]
    return seconds[starts].astype(float), np.add.reduceat(values, starts) / (ends - starts)


def line_chart(
    seconds: IntArray, series: Mapping[str, FloatArray], unit: str, *, running_total: bool = False
) -> str:
    """An SVG chart with one line per series (`running_total`: cumulative series)."""
    reduced = {
        name: _buckets(seconds, values, running_total=running_total)
        for name, values in series.items()
    }
    lows = [float(v.min()) for _, v in reduced.values()]
    highs = [float(v.max()) for _, v in reduced.values()]
    frame = _Frame(seconds, min(lows, default=0.0), max(highs, default=1.0), unit)
    lines = [
        f"<polyline fill='none' stroke='{_COLORS[i % len(_COLORS)]}' stroke-width='1.2' "
        f"points='{frame.points(t, v)}'/>"
        for i, (t, v) in enumerate(reduced.values())
    ]
    return frame.svg(lines, list(series))


def stacked_chart(seconds: IntArray, series: Mapping[str, FloatArray], unit: str) -> str:
    """An SVG chart of series stacked as areas."""
    reduced = {name: _buckets(seconds, values) for name, values in series.items()}
    tops = np.cumsum([v for _, v in reduced.values()], axis=0)
    times = next(iter(reduced.values()))[0]
    frame = _Frame(seconds, 0.0, float(tops.max(initial=1.0)), unit)
    areas, below = [], np.zeros_like(times)
    for i, top in enumerate(tops):
        outline = f"{frame.points(times, top)} {frame.points(times[::-1], below[::-1])}"
        color = _COLORS[i % len(_COLORS)]
        areas.append(f"<polygon fill='{color}' fill-opacity='0.75' points='{outline}'/>")
        below = top
    return frame.svg(areas, list(series))


class _Frame:
    """Axes of one chart: maps (epoch seconds, value) to SVG coordinates and draws the axes."""

    def __init__(self, seconds: IntArray, low: float, high: float, unit: str) -> None:
        self.t0, self.t1 = float(seconds[0]), float(seconds[-1]) or 1.0
        self.low, self.high = low, high if high > low else low + 1.0
        self.unit = unit

    def x(self, t: FloatArray) -> FloatArray:
        span = (self.t1 - self.t0) or 1.0
        result: FloatArray = _PAD + (t - self.t0) / span * (_WIDTH - 2 * _PAD)
        return result

    def y(self, v: FloatArray) -> FloatArray:
        result: FloatArray = (
            _HEIGHT - _PAD + (self.low - v) / (self.high - self.low) * (_HEIGHT - 2 * _PAD)
        )
        return result

    def points(self, t: FloatArray, v: FloatArray) -> str:
        return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(self.x(t), self.y(v), strict=True))

    def svg(self, shapes: list[str], labels: list[str]) -> str:
        """The chart: shapes, axes with five ticks each, and a legend."""
        parts = [*self._axes(), *shapes, *self._legend(labels)]
        return (
            f"<svg xmlns='http://www.w3.org/2000/svg' width='{_WIDTH}' height='{_HEIGHT}' "
            f"font-size='11'>{''.join(parts)}</svg>"
        )

    def _axes(self) -> list[str]:
        bottom = _HEIGHT - _PAD
        out = [
            f"<line x1='{_PAD}' y1='{bottom}' x2='{_WIDTH - _PAD}' y2='{bottom}' stroke='#888'/>"
        ]
        for value in np.linspace(self.low, self.high, 5):
            y = float(self.y(np.array(value)))
            label = _tick_label(value, self.high - self.low)
            out.append(f"<text x='{_PAD - 4}' y='{y + 4:.1f}' text-anchor='end'>{label}</text>")
            out.append(
                f"<line x1='{_PAD}' y1='{y:.1f}' x2='{_WIDTH - _PAD}' y2='{y:.1f}' stroke='#eee'/>"
            )
        for t in np.linspace(self.t0, self.t1, 5):
            x = float(self.x(np.array(t)))
            day = datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d")
            out.append(f"<text x='{x:.1f}' y='{bottom + 16}' text-anchor='middle'>{day}</text>")
        out.append(f"<text x='6' y='14'>{html.escape(self.unit)}</text>")
        return out

    def _legend(self, labels: list[str]) -> list[str]:
        out = []
        for i, label in enumerate(labels):
            x = _PAD + 130 * i
            color = _COLORS[i % len(_COLORS)]
            out.append(f"<rect x='{x}' y='{_HEIGHT - 20}' width='10' height='10' fill='{color}'/>")
            out.append(f"<text x='{x + 14}' y='{_HEIGHT - 11}'>{html.escape(label)}</text>")
        return out


def _tick_label(value: float, span: float) -> str:
    """`value` with as many decimals as a chart spanning `span` needs."""
    decimals = 0 if span >= 20 else 1 if span >= 2 else 2
    return f"{value:,.{decimals}f}"
