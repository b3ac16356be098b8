"""Replay of real market data: `load_market_series` reads ERCOT prices, bitcoin daily figures,
optional day-ahead prices and GPU spot quotes into one `MarketSeries`; `ReplayMarketFeed`
plays a series back as a `MarketFeed`.

Bad data raises `DataError` naming the file, the 1-based line and the column. The only
repairs are forward-fills within the limits the caller sets (`max_fill_steps` for
electricity, `max_fill_days` for bitcoin, `GpuSpotCsv.max_age` for GPU quotes); each one is
returned as a `Repair` and logged at WARNING. Day-ahead prices the file lacks are left NaN
and reported the same way.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

from hcp.adapters.market.bitcoin import bitcoin_days, on_intervals, read_bitcoin_daily
from hcp.adapters.market.csvtable import Repair, report
from hcp.adapters.market.ercot import DEFAULT_POINT_TYPE, read_day_ahead, read_electricity
from hcp.adapters.market.gpu_spot import GpuSpotCsv, gpu_spot_on_intervals
from hcp.adapters.market.timeline import (
    IntArray,
    TimedColumn,
    carry_forward,
    check_grid,
    grid_points,
    infer_step,
    iso,
    lines_up,
    span,
    to_step,
)
from hcp.domain.errors import DataError
from hcp.domain.market import FloatArray, MarketSeries, MarketSnapshot

__all__ = ["GpuSpotCsv", "Repair", "ReplayMarketFeed", "load_market_series"]


@dataclass(frozen=True, slots=True)
class _Window:
    """The intervals to build: `n` of `step_s` seconds from `start_s` (UTC epoch seconds)."""

    start_s: int
    step_s: int
    n: int

    @property
    def end_s(self) -> int:
        return self.start_s + self.n * self.step_s

    @property
    def starts(self) -> IntArray:
        return self.start_s + np.arange(self.n, dtype=np.int64) * self.step_s

    def describe(self) -> str:
        return f"{iso(self.start_s)}..{iso(self.end_s)}"


def load_market_series(
    *,
    electricity: Path,
    bitcoin: Path,
    nodes: Sequence[str],
    start: datetime | None = None,
    end: datetime | None = None,
    step: timedelta | None = None,
    day_ahead: Path | None = None,
    gpu_spot: Mapping[str, float] | Sequence[GpuSpotCsv] = (),
    max_fill_steps: int = 0,
    max_fill_days: int = 3,
    finer_steps: bool = True,
    settlement_point_type: str = DEFAULT_POINT_TYPE,
) -> tuple[MarketSeries, list[Repair]]:
    """The market over [start, end) at `step` from files, and the repairs made on the way.

    `electricity`: ERCOT real-time prices, wide or native long layout (gzip or plain), for
    `nodes`. `start`/`end` (UTC-aware) default to the file's span; `step` defaults to the file's
    own and may be a divisor (each price held) or a multiple (time-weighted mean) of it.
    `bitcoin`: the daily file, broadcast by UTC date of the interval start, and kept as the
    series' `bitcoin_days` for every day the intervals touch. `day_ahead`: the hourly day-ahead file
    (every settlement point in it, NaN where it has no price). `gpu_spot`: a constant USD/GPU-h
    per family, or `GpuSpotCsv` sources. `max_fill_steps` counts native electricity steps.
    `finer_steps=False` refuses a `step` finer than the electricity file's: a backtest must,
    since each price held over the sub-steps would show a decision the price of the interval
    it is in. `settlement_point_type`: the rows a native long file is read from for a point it
    lists under several types (load zones: LZ, the default, or LZEW).
    """
    if max_fill_steps < 0:
        raise ValueError(f"max_fill_steps must be ≥ 0, got {max_fill_steps}")
    columns = read_electricity(electricity, nodes, settlement_point_type)
    window, native = _window(columns[nodes[0]], start, end, step)
    if not finer_steps and window.step_s < native:
        first = columns[nodes[0]]
        message = (
            f"step {span(window.step_s)} is finer than the file's {span(native)} intervals: "
            "a decision would see the price of the interval it is in (the information rule); "
            f"use a step of {span(native)} or a multiple"
        )
        raise DataError(first.path, message, None, first.time_column)
    prices, repairs = _electricity(columns, window, native, max_fill_steps)
    days, more = bitcoin_days(
        read_bitcoin_daily(bitcoin), window.start_s, window.end_s, max_fill_days
    )
    btc = on_intervals(days, window.starts)
    repairs += more
    da, more = ({}, []) if day_ahead is None else _day_ahead(day_ahead, window)
    repairs += more
    gpu, more = _gpu_spot(gpu_spot, window)
    repairs += more
    series = MarketSeries(
        start=datetime.fromtimestamp(window.start_s, UTC),
        step=timedelta(seconds=window.step_s),
        electricity_usd_per_mwh=prices,
        btc_usd=btc["btc_usd"],
        difficulty=btc["difficulty"],
        fees_btc_per_day=btc["fees_btc_per_day"],
        gpu_spot_usd_per_gpu_hour=gpu,
        day_ahead_usd_per_mwh=da,
        bitcoin_days=days,
    )
    return series, report(repairs)


def _seconds(moment: datetime, name: str) -> int:
    if moment.utcoffset() is None:
        raise ValueError(f"{name} must be timezone-aware, got {moment!r}")
    return int(moment.timestamp())


def _window(
    first: TimedColumn, start: datetime | None, end: datetime | None, step: timedelta | None
) -> tuple[_Window, int]:
    """The requested window, checked against the file's step and grid; and the native step."""
    native = infer_step(first)
    if step is not None and step % timedelta(seconds=1):
        raise ValueError(f"step must be a whole number of seconds, got {step}")
    step_s = native if step is None else step // timedelta(seconds=1)
    start_s = int(first.times[0]) if start is None else _seconds(start, "start")
    end_s = int(first.times[-1]) + native if end is None else _seconds(end, "end")
    if end is not None and (end_s <= start_s or (end_s - start_s) % step_s):
        raise ValueError(
            f"window {iso(start_s)}..{iso(end_s)} is not a positive whole number "
            f"of {span(step_s)} steps"
        )
    if end_s - start_s < step_s:
        message = f"window from {iso(start_s)} is outside the file's coverage (ends {iso(end_s)})"
        raise first.error(len(first.times) - 1, message, at_time=True)
    if not lines_up(step_s, native, start_s - int(first.times[0])):
        message = (
            f"{span(step_s)} steps from {iso(start_s)} do not line up with the file's "
            f"{span(native)} intervals"
        )
        raise DataError(first.path, message, None, first.time_column)
    return _Window(start_s, step_s, (end_s - start_s) // step_s), native


def _check_coverage(column: TimedColumn, window: _Window, native: int) -> None:
    """DataError when the window reaches outside the column's rows."""
    last_end = int(column.times[-1]) + native
    if window.start_s >= int(column.times[0]) and window.end_s <= last_end:
        return
    row = 0 if window.start_s < column.times[0] else len(column.times) - 1
    message = (
        f"window {window.describe()} is outside the file's {column.name} coverage "
        f"{iso(column.times[0])}..{iso(last_end)}"
    )
    raise column.error(row, message, at_time=True)


def _electricity(
    columns: Mapping[str, TimedColumn], window: _Window, native: int, max_fill_steps: int
) -> tuple[dict[str, FloatArray], list[Repair]]:
    """Each node's prices on the window, gaps and empty values forward-filled within limits."""
    origin = int(next(iter(columns.values())).times[0])
    points = grid_points(window.start_s, window.end_s, native, origin)
    limit = f"max_fill_steps={max_fill_steps}"
    prices, repairs = {}, []
    for node, column in columns.items():
        check_grid(column, origin, native)
        _check_coverage(column, window, native)
        values, age = carry_forward(column, points, max_fill_steps * native, limit)
        prices[node] = to_step(values, points, native, window.start_s, window.step_s, window.n)
        filled = int(np.count_nonzero(age))
        if filled:
            what = f"missing or empty {node} intervals"
            repairs.append(Repair(column.path, what, f"forward-filled ({limit})", filled))
    return prices, repairs


def _day_ahead(path: Path, window: _Window) -> tuple[dict[str, FloatArray], list[Repair]]:
    """Day-ahead prices per settlement point on the window: each price held over the intervals
    of its hour; NaN (reported) where the file has none."""
    prices, notes = {}, []
    for point, column in read_day_ahead(path).items():
        native = infer_step(column)
        origin = int(column.times[0])
        check_grid(column, origin, native)
        if not lines_up(window.step_s, native, window.start_s - origin):
            message = (
                f"day-ahead {span(native)} intervals do not line up with the window's "
                f"{span(window.step_s)} steps from {iso(window.start_s)}"
            )
            raise DataError(column.path, message, None, column.time_column)
        points = grid_points(window.start_s, window.end_s, native, origin)
        found = np.searchsorted(column.times, points).clip(max=len(column.times) - 1)
        hourly = np.where(column.times[found] == points, column.values[found], np.nan)
        prices[point] = to_step(hourly, points, native, window.start_s, window.step_s, window.n)
        unknown = int(np.count_nonzero(np.isnan(prices[point])))
        if unknown:
            what = f"intervals without a day-ahead price for {point}"
            notes.append(Repair(column.path, what, "left NaN (unknown)", unknown))
    return prices, notes


def _gpu_spot(
    gpu_spot: Mapping[str, float] | Sequence[GpuSpotCsv], window: _Window
) -> tuple[dict[str, FloatArray], list[Repair]]:
    """GPU spot prices per family on the window, from constants or CSV sources."""
    if isinstance(gpu_spot, Mapping):
        return {family: np.full(window.n, float(p)) for family, p in gpu_spot.items()}, []
    prices, repairs = {}, []
    for source in gpu_spot:
        prices[source.family], more = gpu_spot_on_intervals(source, window.starts, window.end_s)
        repairs += more
    return prices, repairs


class ReplayMarketFeed:
    """A `MarketFeed` that plays a `MarketSeries` back, one interval per `next_snapshot()`."""

    def __init__(self, series: MarketSeries) -> None:
        self._series = series
        self._next = 0
        self._current: MarketSnapshot | None = None

    @property
    def step(self) -> timedelta:
        """Length of one interval."""
        return self._series.step

    @property
    def remaining(self) -> int:
        """How many intervals are still to come."""
        return len(self._series) - self._next

    def next_snapshot(self) -> MarketSnapshot | None:
        """The next interval's prices, or None once the series is exhausted."""
        if self._next >= len(self._series):
            return None
        self._current = self._series.snapshot(self._next)
        self._next += 1
        return self._current

    def current(self) -> MarketSnapshot | None:
        """The last snapshot produced (the first one if none was yet); None for an empty series."""
        return self._current or self.next_snapshot()
