"""Page data into charts: which series, in which colours, over which steps."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from itertools import pairwise

from hcp.http.dashboard.charts import Chart, Series, Step, line, resample, stacked_steps
from hcp.services.dashboard import MetricSeries, PowerHistory, UseKind

MAX_STEPS = 240
_PALETTE = {
    UseKind.MINING: ("#d97706", "#f59e0b", "#b45309", "#fbbf24", "#92400e"),
    UseKind.GPU: ("#2563eb", "#60a5fa", "#1e40af", "#93c5fd"),
    UseKind.SPOT: ("#7c3aed", "#a78bfa", "#5b21b6"),
    UseKind.CURTAILED: ("#94a3b8",),
}
WIDE = (960, 300)
PRICE_COLOR = "#0f766e"
METRIC_COLOR = "#2563eb"


def power_chart(history: PowerHistory) -> tuple[Chart, list[Series]]:
    """Site MW by use as stacked steps under the site's limit, and the legend of what is drawn."""
    used: dict[UseKind, int] = {}
    series = []
    for use in history.uses:
        colors = _PALETTE[use.kind]
        series.append(Series(use.label, colors[used.get(use.kind, 0) % len(colors)]))
        used[use.kind] = used.get(use.kind, 0) + 1
    steps = [
        Step(i.start, i.end, tuple(i.mw.get(u, 0.0) for u in history.uses))
        for i in history.intervals
    ]
    limit = (history.capacity_mw, f"site limit {history.capacity_mw:g} MW")
    chart = stacked_steps(
        "Site power by use", "MW", series, resample(steps, MAX_STEPS), limit, WIDE
    )
    drawn = {area.label for area in chart.areas}
    return chart, [s for s in series if s.label in drawn]


def price_chart(points: Sequence[tuple[datetime, float]]) -> Chart:
    """The real-time electricity price over the chart window (every n-th point of long ones)."""
    stride = math.ceil(len(points) / MAX_STEPS) if points else 1
    kept = list(points[::stride])
    if points and kept[-1] != points[-1]:
        kept.append(points[-1])
    return line("Electricity price", "USD/MWh", PRICE_COLOR, kept)


GAP_SPACINGS = 3
"""Telemetry points further apart than this many times their usual spacing are not joined:
steps without a sample (the device did not answer) show as a hole, not as a line across."""


def metric_chart(series: MetricSeries) -> Chart:
    """One telemetry metric over the window it was read for: its mean per step over the
    min-max band, broken where points are missing."""
    times = [at for at, _, _, _ in series.points]
    spacings = sorted(b - a for a, b in pairwise(times))
    gap = spacings[len(spacings) // 2] * GAP_SPACINGS if spacings else None
    return line(
        series.label,
        series.unit,
        METRIC_COLOR,
        [(at, avg) for at, avg, _, _ in series.points],
        [(at, lo, hi) for at, _, lo, hi in series.points],
        gap=gap,
        span=series.window,
    )
