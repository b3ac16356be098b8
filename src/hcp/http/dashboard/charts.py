"""Chart geometry for the dashboard: pure functions from series to SVG coordinates.

The templates draw what these return (paths, ticks, guides) as inline SVG; nothing here knows
HTML or the domain. Times are UTC; x runs over time, y over one unit per chart.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, TypeVar

SIZE = (640, 240)
"""Default (width, height) in SVG units; text is sized in the same units, so a chart shown
wide gets a wider viewBox to keep its labels from growing."""
LEFT, TOP, RIGHT, BOTTOM = 64, 14, 14, 28
_TIME_STEPS_S = (60, 300, 600, 900, 1800, 3600, 7200, 10800, 21600, 43200, 86400, 172800, 604800)


@dataclass(frozen=True, slots=True)
class Tick:
    """An axis mark at `pos` (x or y in SVG units) with its label."""

    pos: float
    label: str


@dataclass(frozen=True, slots=True)
class Shape:
    """One drawn series: an SVG path `d` filled (areas) or stroked (lines) in `color`."""

    label: str
    color: str
    d: str


@dataclass(frozen=True, slots=True)
class Guide:
    """A horizontal reference line at `y` (SVG units), e.g. the site's power limit."""

    y: float
    label: str


@dataclass(frozen=True, slots=True)
class Chart:
    title: str
    unit: str
    areas: tuple[Shape, ...] = ()
    lines: tuple[Shape, ...] = ()
    x_ticks: tuple[Tick, ...] = ()
    y_ticks: tuple[Tick, ...] = ()
    guides: tuple[Guide, ...] = ()
    width: int = SIZE[0]
    height: int = SIZE[1]
    left: int = LEFT
    top: int = TOP

    @property
    def right(self) -> int:
        return self.width - RIGHT

    @property
    def bottom(self) -> int:
        return self.height - BOTTOM

    @property
    def empty(self) -> bool:
        return not self.areas and not self.lines


@dataclass(frozen=True, slots=True)
class Series:
    label: str
    color: str


@dataclass(frozen=True, slots=True)
class Step:
    """Values that hold over [start, end), one per series of a stacked chart."""

    start: datetime
    end: datetime
    values: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class _Scale:
    """Maps [t0, t1] (epoch seconds) and [v0, v1] onto the plot area of a `size` chart."""

    t0: float
    t1: float
    v0: float
    v1: float
    size: tuple[int, int] = SIZE

    def x(self, at: datetime) -> float:
        share = (at.timestamp() - self.t0) / (self.t1 - self.t0)
        return LEFT + share * (self.size[0] - LEFT - RIGHT)

    def y(self, value: float) -> float:
        share = (value - self.v0) / (self.v1 - self.v0)
        return self.size[1] - BOTTOM - share * (self.size[1] - TOP - BOTTOM)


def nice_ticks(lo: float, hi: float, count: int = 5) -> list[float]:
    """Round values (1, 2 or 5 times a power of ten apart) spanning [lo, hi] in about `count`."""
    if not hi > lo:
        lo, hi = (lo - 1, hi + 1) if lo != 0 else (0.0, 1.0)
    raw = (hi - lo) / max(1, count)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first, last = math.floor(lo / step + 1e-9), math.ceil(hi / step - 1e-9)
    return [round(i * step, 12) for i in range(first, last + 1)]


def time_ticks(start: datetime, end: datetime, count: int = 6) -> list[datetime]:
    """Round instants (whole minutes, hours or days, UTC) inside [start, end], at most `count`."""
    span = (end - start).total_seconds()
    step = next((s for s in _TIME_STEPS_S if span / s <= count), _TIME_STEPS_S[-1])
    first = math.ceil(start.timestamp() / step) * step
    stop = end.timestamp()
    return [datetime.fromtimestamp(t, UTC) for t in range(int(first), int(stop) + 1, step)]


def resample(steps: Sequence[Step], most: int) -> list[Step]:
    """At most `most` steps: runs of consecutive steps merged into their time-weighted mean."""
    if len(steps) <= most:
        return list(steps)
    size = math.ceil(len(steps) / most)
    return [_merge(steps[i : i + size]) for i in range(0, len(steps), size)]


def _merge(run: Sequence[Step]) -> Step:
    weights = [max((s.end - s.start).total_seconds(), 1e-9) for s in run]
    total = sum(weights)
    columns = zip(*(s.values for s in run), strict=True)
    values = tuple(sum(w * v for w, v in zip(weights, col, strict=True)) / total for col in columns)
    return Step(run[0].start, run[-1].end, values)


def stacked_steps(
    title: str,
    unit: str,
    series: Sequence[Series],
    steps: Sequence[Step],
    limit: tuple[float, str] | None = None,
    size: tuple[int, int] = SIZE,
) -> Chart:
    """Series stacked bottom-up, each constant over every step; `limit` draws a guide line."""
    if not steps:
        return Chart(title, unit, width=size[0], height=size[1])
    tops = [sum(s.values) for s in steps]
    v_ticks = nice_ticks(0.0, max([*tops, limit[0] if limit else 0.0]))
    start, end = _span(steps[0].start, steps[-1].end)
    scale = _Scale(start.timestamp(), end.timestamp(), v_ticks[0], v_ticks[-1], size)
    areas = []
    for k, s in enumerate(series):
        if any(step.values[k] > 0 for step in steps):
            areas.append(Shape(s.label, s.color, _layer(scale, steps, k)))
    guides = (Guide(scale.y(limit[0]), limit[1]),) if limit else ()
    return Chart(
        title,
        unit,
        areas=tuple(areas),
        x_ticks=_x_ticks(scale, start, end),
        y_ticks=_y_ticks(scale, v_ticks),
        guides=guides,
        width=size[0],
        height=size[1],
    )


def _layer(scale: _Scale, steps: Sequence[Step], k: int) -> str:
    top, bottom = [], []
    for step in steps:
        base = sum(step.values[:k])
        high = base + step.values[k]
        top += [(scale.x(step.start), scale.y(high)), (scale.x(step.end), scale.y(high))]
        bottom += [(scale.x(step.start), scale.y(base)), (scale.x(step.end), scale.y(base))]
    return _path([*top, *reversed(bottom)], closed=True)


def line(
    title: str,
    unit: str,
    color: str,
    points: Sequence[tuple[datetime, float]],
    band: Sequence[tuple[datetime, float, float]] = (),
    size: tuple[int, int] = SIZE,
    gap: timedelta | None = None,
    span: tuple[datetime, datetime] | None = None,
) -> Chart:
    """A line through `points` over an optional shaded min-max `band`, y fitted to the data;
    with `gap`, points further apart than it are not joined (the line and band break there).
    The time axis runs over `span` when given (the window read), else over the points."""
    if not points:
        return Chart(title, unit, width=size[0], height=size[1])
    values = [v for _, v in points] + [v for _, lo, hi in band for v in (lo, hi)]
    v_ticks = nice_ticks(min(values), max(values))
    start, end = _span(*(span or (points[0][0], points[-1][0])))
    scale = _Scale(start.timestamp(), end.timestamp(), v_ticks[0], v_ticks[-1], size)
    d = " ".join(_path([(scale.x(t), scale.y(v)) for t, v in run]) for run in _runs(points, gap))
    shapes = [Shape(title, color, d)]
    areas: tuple[Shape, ...] = ()
    if band:
        polygons = []
        for run in _runs(band, gap):
            upper = [(scale.x(t), scale.y(hi)) for t, _, hi in run]
            lower = [(scale.x(t), scale.y(lo)) for t, lo, _ in reversed(run)]
            polygons.append(_path([*upper, *lower], closed=True))
        areas = (Shape(f"{title} min-max", color, " ".join(polygons)),)
    return Chart(
        title,
        unit,
        areas=areas,
        lines=tuple(shapes),
        x_ticks=_x_ticks(scale, start, end),
        y_ticks=_y_ticks(scale, v_ticks),
        width=size[0],
        height=size[1],
    )


P = TypeVar("P", bound=tuple[Any, ...])


def _runs(points: Sequence[P], gap: timedelta | None) -> list[list[P]]:
    """`points` (each starting with its time) cut where the next is more than `gap` later."""
    runs: list[list[P]] = []
    for point in points:
        if runs and (gap is None or point[0] - runs[-1][-1][0] <= gap):
            runs[-1].append(point)
        else:
            runs.append([point])
    return runs


def _span(start: datetime, end: datetime) -> tuple[datetime, datetime]:
    """The time axis: [start, end], widened to a minute when the data has no extent."""
    return (start, end) if end > start else (start, start + timedelta(minutes=1))


def _path(points: Sequence[tuple[float, float]], closed: bool = False) -> str:
    d = "M" + " L".join(f"{x:.1f},{y:.1f}" for x, y in points)
    return d + " Z" if closed else d


def _x_ticks(scale: _Scale, start: datetime, end: datetime) -> tuple[Tick, ...]:
    ticks = time_ticks(start, end)
    daily = len(ticks) > 1 and (ticks[1] - ticks[0]) >= timedelta(days=1)
    fmt = "%b %d" if daily else "%H:%M"
    return tuple(Tick(scale.x(t), t.strftime(fmt)) for t in ticks)


def _y_ticks(scale: _Scale, values: Sequence[float]) -> tuple[Tick, ...]:
    step = values[1] - values[0] if len(values) > 1 else 1.0
    decimals = 0 if step >= 1 else min(4, math.ceil(-math.log10(step)))
    return tuple(Tick(scale.y(v), f"{v:,.{decimals}f}") for v in values)
