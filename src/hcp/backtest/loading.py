"""Loading what a scenario names: its market (files or the simulator), and the scenario and
market put together, with the generated demand, as a `Setup` ready to replay."""

from __future__ import annotations

from itertools import pairwise
from pathlib import Path

import numpy as np

from hcp.adapters.market.replay import load_market_series
from hcp.adapters.market.simulated import simulate_series
from hcp.backtest.demand import generate_demand
from hcp.backtest.engine import Setup
from hcp.backtest.scenario import ReplayMarket, Scenario, SimulatedMarket
from hcp.domain.errors import DataError
from hcp.domain.market import MarketSeries
from hcp.optimizer.world import MarketArrays


def load_market(scenario: Scenario) -> MarketSeries:
    """The market of the scenario's warm-up and window (reads files or runs the simulator)."""
    first = scenario.start - scenario.warmup
    steps = (scenario.end - first) // scenario.step
    market = scenario.market
    if isinstance(market, SimulatedMarket):
        return simulate_series(market.config, first, steps, scenario.step, market.seed)
    parts = [_replay_file(scenario, market, path) for path in market.electricity]
    series = _concatenate(scenario.path, parts)
    start = max(first, series.start)
    if start > scenario.start - scenario.step or series.end < scenario.end:
        message = (
            f"the market data covers {series.start.isoformat()}..{series.end.isoformat()}; the "
            f"window {scenario.start.isoformat()}..{scenario.end.isoformat()} needs it all and "
            "at least one interval before it"
        )
        raise DataError(str(scenario.path), message)
    return series.window(start, scenario.end)


def _replay_file(scenario: Scenario, market: ReplayMarket, path: Path) -> MarketSeries:
    series, _ = load_market_series(
        electricity=path,
        bitcoin=market.bitcoin,
        nodes=tuple(dict.fromkeys(site.node for site in scenario.sites)),
        step=scenario.step,
        day_ahead=market.day_ahead,
        gpu_spot=market.gpu_spot_usd_per_gpu_hour,
        max_fill_steps=market.max_fill_steps,
    )
    return series


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
    )


def setup_for(scenario: Scenario, series: MarketSeries) -> Setup:
    """The scenario over `series` (warm-up first, window last) with its generated demand."""
    market = MarketArrays.from_series(series)
    first = len(series) - (scenario.end - scenario.start) // scenario.step
    demand = generate_demand(scenario.demand, market.seconds, first, scenario.seed)
    return Setup(market, first, scenario.sites, demand, scenario.terms)
