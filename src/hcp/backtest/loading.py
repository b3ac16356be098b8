"""Loading what a scenario names: its market (files or the simulator), and the scenario and
market put together, with the generated demand, as a `Setup` ready to replay."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta
from itertools import pairwise
from pathlib import Path

import numpy as np

from hcp.adapters.market.csvtable import Repair, report
from hcp.adapters.market.ercot import read_electricity
from hcp.adapters.market.gpu_spot import GpuSpotCsv, gpu_spot_on_intervals
from hcp.adapters.market.replay import load_market_series
from hcp.adapters.market.simulated import simulate_series
from hcp.adapters.market.timeline import infer_step
from hcp.backtest.demand import generate_demand
from hcp.backtest.engine import Setup
from hcp.backtest.scenario import ReplayMarket, Scenario, SimulatedMarket
from hcp.domain.errors import DataError
from hcp.domain.market import BitcoinDays, MarketSeries
from hcp.optimizer.world import MarketArrays
from hcp.tomlfile import key_lines

_BITCOIN = ("difficulty", "fees_btc_per_day", "btc_usd")


def load_market(scenario: Scenario) -> MarketSeries:
    """The market of the scenario's warm-up and window (reads files or runs the simulator)."""
    market = scenario.market
    if isinstance(market, SimulatedMarket):
        steps = (scenario.end - scenario.warmup_start) // scenario.step
        utc = scenario.warmup_start.astimezone(UTC)  # the simulator keeps time in UTC
        return simulate_series(market.config, utc, steps, scenario.step, market.seed)
    first = scenario.warmup_start
    read = [_replay_file(scenario, market, path) for path in market.electricity]
    parts = [part for part in read if part is not None]
    files = ", ".join(str(path) for path in market.electricity)
    if not parts:
        message = (
            f"the market data ({files}) holds nothing of the window {scenario.start.isoformat()}"
            f"..{scenario.end.isoformat()} and the day before it"
        )
        raise scenario_error(scenario, "window", message)
    series = _concatenate(scenario.path, parts)
    start = max(first, series.start)
    # A decision needs a past, and the day before's bitcoin figures (`MarketArrays`).
    if start > scenario.start - max(scenario.step, timedelta(days=1)) or series.end < scenario.end:
        message = (
            f"the market data ({files}) covers {series.start.isoformat()}.."
            f"{series.end.isoformat()} of what the window needs; the window "
            f"{scenario.start.isoformat()}..{scenario.end.isoformat()} needs it all and at "
            "least a day before it"
        )
        raise scenario_error(scenario, "window", message)
    if market.day_ahead is not None:
        _check_day_ahead_nodes(scenario, market.day_ahead, series)
    missing = (start - first) // scenario.step
    if missing:
        held = (scenario.start - start) // scenario.step
        what = "warm-up intervals before the market data starts"
        how = f"warm-up shortened to the {held} it holds (the forecasts see less history)"
        report([Repair(str(scenario.path), what, how, missing)])
    return _with_spot_files(series.window(start, scenario.end), market)


def scenario_error(scenario: Scenario, key: str, message: str) -> DataError:
    """A DataError about `key` of the scenario file, at its line, found once the files it names
    were read."""
    line = key_lines(scenario.path.read_text(encoding="utf-8")).get(key)
    return DataError(str(scenario.path), f"{key}: {message}", line)


def _check_day_ahead_nodes(scenario: Scenario, path: Path, series: MarketSeries) -> None:
    """Every site must find its day-ahead prices in the file given: a node missing from it
    would leave the forecast without them, silently."""
    known = series.day_ahead_usd_per_mwh
    for i, site in enumerate(scenario.sites):
        node = site.day_ahead_node or site.node
        if node in known:
            continue
        points = ", ".join(sorted(known))
        if site.day_ahead_node is None:
            key = f"sites[{i}]"
            message = (
                f"the day-ahead file {path} has no prices for node {node!r}: set "
                f"day_ahead_node to one of its settlement points ({points})"
            )
        else:
            key = f"sites[{i}].day_ahead_node"
            message = f"{node!r} is not in the day-ahead file {path} (it has: {points})"
        raise scenario_error(scenario, key, message)


def _replay_file(scenario: Scenario, market: ReplayMarket, path: Path) -> MarketSeries | None:
    """The market of one electricity file over the part of [warm-up start, window end) it
    holds, in steps on the window's grid (None: it holds none of it). Only that part is read
    into the series: a gap, an empty price or a missing bitcoin day elsewhere in the file
    plays no part in the run, and does not stop it."""
    node = scenario.sites[0].node
    column = read_electricity(path, [node], market.settlement_point_type)[node]
    native = timedelta(seconds=infer_step(column))
    file_start = datetime.fromtimestamp(int(column.times[0]), UTC)
    file_end = datetime.fromtimestamp(int(column.times[-1]), UTC) + native
    if (scenario.start - file_start) % native:
        message = (
            f"{scenario.start.isoformat()} is not on the {native} grid of the prices in {path} "
            f"(intervals from {file_start.isoformat()})"
        )
        raise scenario_error(scenario, "window.start", message)
    step = scenario.step
    if (scenario.start - file_start) % step and len(market.electricity) > 1:
        message = (
            f"{step} steps from here are off the grid of {path} (steps from "
            f"{file_start.isoformat()}), and one would straddle the seam between two "
            "market.electricity files: start the window on that grid, or join the files"
        )
        raise scenario_error(scenario, "window.start", message)
    # Whole steps of the window's grid inside both the file and [warm-up start, window end).
    low = max(file_start, scenario.warmup_start)
    high = min(file_end, scenario.end)
    first = scenario.start - ((scenario.start - low) // step) * step
    last = scenario.start + ((high - scenario.start) // step) * step
    if last <= first:
        return None
    return _read_replay_file(scenario, market, path, first, last)


def _read_replay_file(
    scenario: Scenario, market: ReplayMarket, path: Path, start: datetime, end: datetime
) -> MarketSeries:
    series, _ = load_market_series(
        electricity=path,
        bitcoin=market.bitcoin,
        nodes=tuple(dict.fromkeys(site.node for site in scenario.sites)),
        start=start,
        end=end,
        step=scenario.step,
        day_ahead=market.day_ahead,
        gpu_spot={
            f: p for f, p in market.gpu_spot_usd_per_gpu_hour.items() if isinstance(p, float)
        },
        max_fill_steps=market.max_fill_steps,
        finer_steps=False,
        settlement_point_type=market.settlement_point_type,
    )
    return series


def _with_spot_files(series: MarketSeries, market: ReplayMarket) -> MarketSeries:
    """`series` with the spot prices that come from CSV files, read for its intervals only: a
    quote file usually spans far less than a year of electricity prices."""
    sources = [p for p in market.gpu_spot_usd_per_gpu_hour.values() if isinstance(p, GpuSpotCsv)]
    if not sources:
        return series
    step_s = series.step // timedelta(seconds=1)
    first = int(series.start.timestamp())
    starts = first + step_s * np.arange(len(series), dtype=np.int64)
    prices = dict(series.gpu_spot_usd_per_gpu_hour)
    repairs = []
    for source in sources:
        prices[source.family], more = gpu_spot_on_intervals(
            source, starts, first + step_s * len(series)
        )
        repairs += more
    report(repairs)
    return dataclasses.replace(series, gpu_spot_usd_per_gpu_hour=prices)


def _concatenate(path: Path, parts: list[MarketSeries]) -> MarketSeries:
    """Series that follow one another without a gap, as one series."""
    for before, after in pairwise(parts):
        if before.end != after.start:
            message = (
                f"market.electricity files do not follow one another: one ends "
                f"{before.end.isoformat()}, the next starts {after.start.isoformat()}"
            )
            raise DataError(str(path), message)
    first = parts[0]

    def joined(column: str) -> dict[str, np.ndarray]:
        return {
            k: np.concatenate([getattr(p, column)[k] for p in parts])
            for k in getattr(first, column)
        }

    return MarketSeries(
        start=first.start,
        step=first.step,
        electricity_usd_per_mwh=joined("electricity_usd_per_mwh"),
        btc_usd=np.concatenate([p.btc_usd for p in parts]),
        difficulty=np.concatenate([p.difficulty for p in parts]),
        fees_btc_per_day=np.concatenate([p.fees_btc_per_day for p in parts]),
        gpu_spot_usd_per_gpu_hour=joined("gpu_spot_usd_per_gpu_hour"),
        day_ahead_usd_per_mwh=joined("day_ahead_usd_per_mwh"),
        bitcoin_days=_joined_days(parts),
    )


def _joined_days(parts: list[MarketSeries]) -> BitcoinDays | None:
    """The parts' tables of bitcoin days as one: parts that follow one another, read from the
    same file, share at most the days at their seams, with the same figures."""
    tables = [part.bitcoin_days for part in parts]
    if any(table is None for table in tables):
        return None
    held = [table for table in tables if table is not None]
    first, last = held[0], held[0].last
    columns = {name: [getattr(first, name)] for name in _BITCOIN}
    for table in held[1:]:
        known = (last - table.first).days + 1  # days the tables before already hold
        for name in _BITCOIN:
            columns[name].append(getattr(table, name)[known:])
        last = max(last, table.last)
    joined = {name: np.concatenate(columns[name]) for name in _BITCOIN}
    return BitcoinDays(first.first, **joined)


def setup_for(scenario: Scenario, series: MarketSeries) -> Setup:
    """The scenario over `series` (warm-up first, window last) with its generated demand."""
    market = MarketArrays.from_series(series)
    first = len(series) - (scenario.end - scenario.start) // scenario.step
    demand = generate_demand(scenario.demand, market.seconds, first, scenario.seed)
    return Setup(market, first, scenario.sites, demand, scenario.terms)
