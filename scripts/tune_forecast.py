"""How the mpc strategy's settings were chosen, on ERCOT HB_WEST 2021–2023 only.

1. Forecast grid: for every 2021–2023 interval, forecast the next price from the past only
   and charge the decision it implies (a stock S21 on or asleep against its breakeven) by how
   far the real price was on the other side. Lower is better; pure persistence is shown too.
2. MPC check: the best forecasts and a few horizons run as the full mpc strategy against the
   oracle on four 2021–2023 months (Winter Storm Uri included).

Usage: .venv/bin/python scripts/tune_forecast.py [--quick]
Never point this at 2024–2025: those years are kept for evaluation.
"""

from __future__ import annotations

import dataclasses
import sys
from datetime import UTC, datetime
from itertools import product
from pathlib import Path

import numpy as np

from hcp.backtest.engine import make_strategy, run_backtest
from hcp.backtest.loading import load_market, setup_for
from hcp.backtest.scenario import ReplayMarket, Scenario, load_scenario
from hcp.domain.catalog import asic_model
from hcp.economics import breakeven_usd_per_mwh
from hcp.optimizer.forecast import ForecastSettings, forecast_electricity
from hcp.optimizer.strategies import MpcSettings

EXAMPLE = Path(__file__).parents[1] / "examples" / "ercot-west-2024.toml"
YEARS = (2021, 2022, 2023)
MONTHS = (("2021-02-01", "2021-03-01"), ("2022-07-01", "2022-08-01"),
          ("2023-01-01", "2023-02-01"), ("2023-08-01", "2023-09-01"))  # fmt: skip


def tuning_scenario(base: Scenario, start: str, end: str) -> Scenario:
    """The example's site over [start, end) of 2021–2023 (Texas midnight), no day-ahead."""
    assert isinstance(base.market, ReplayMarket)
    folder = base.market.electricity[0].parent
    files = tuple(folder / f"ercot_rtm_spp_15min_{year}.csv.gz" for year in (2020, *YEARS))
    market = dataclasses.replace(base.market, electricity=files, day_ahead=None)
    sites = tuple(dataclasses.replace(s, day_ahead_node=None) for s in base.sites)
    return dataclasses.replace(
        base, start=_texas_midnight(start), end=_texas_midnight(end), market=market, sites=sites
    )


def _texas_midnight(day: str) -> datetime:
    return datetime.fromisoformat(f"{day}T06:00:00").replace(tzinfo=UTC)


def forecast_grid(base: Scenario) -> None:
    """Decision loss (USD per MW of miners) of each forecast setting over 2021–2023."""
    setup = setup_for(*_with_market(tuning_scenario(base, "2021-01-01", "2024-01-01")))
    price = setup.market.electricity_usd_per_mwh[base.sites[0].node]
    stock = asic_model("S21").stock
    site = base.sites[0]
    adder = getattr(site.contract, "adder_usd_per_mwh", 0.0)
    hashprice = setup.market.hashprice_usd_per_ths_day
    times = range(setup.first, len(price))
    breakeven = np.array([breakeven_usd_per_mwh(stock, hashprice[t], site.pue) for t in times])
    actual = price[setup.first :] + adder

    def loss(forecast: np.ndarray) -> float:
        wrong = (forecast + adder <= breakeven) != (actual <= breakeven)
        return float(np.sum(np.abs(actual - breakeven) * wrong) * setup.market.step_hours)

    print(f"persistence: {loss(price[setup.first - 1 : -1]):,.0f}")
    for persistence, days in product((0.9, 0.95, 0.98), (1, 3, 7, 14)):
        settings = ForecastSettings(persistence, days)
        spd = setup.market.steps_per_day
        first = np.array(
            [forecast_electricity(price[:t], None, spd, 1, settings)[0] for t in times]
        )
        print(f"persistence={persistence} profile_days={days}: {loss(first):,.0f}")


def _with_market(scenario: Scenario) -> tuple[Scenario, object]:
    return scenario, load_market(scenario)


def mpc_check(base: Scenario, quick: bool) -> None:
    """Share of the oracle's profit of mpc settings on 2021–2023 months, and their mean."""
    grid = [
        MpcSettings(hours, ForecastSettings(persistence, days))
        for hours, persistence, days in product((2.0, 4.0), (0.9, 0.95, 0.98, 1.0), (3, 7, 14))
    ]
    # A second round around the best of the first (persistence 0.9, 14 days).
    grid += [
        MpcSettings(2.0, ForecastSettings(persistence, days))
        for persistence, days in ((0.85, 14), (0.9, 21), (0.9, 28), (0.93, 14), (0.93, 21))
    ]
    shares: dict[MpcSettings, list[float]] = {settings: [] for settings in grid}
    for start, end in MONTHS[:1] if quick else MONTHS:
        setup = setup_for(*_with_market(tuning_scenario(base, start, end)))
        oracle = run_backtest(setup, make_strategy("oracle", setup)).ledger.profit_usd
        breakeven = run_backtest(setup, make_strategy("breakeven", setup)).ledger.profit_usd
        print(f"{start}..{end}: breakeven {breakeven / oracle:.2%}", flush=True)
        for settings in grid:
            mpc = run_backtest(setup, make_strategy("mpc", setup, mpc=settings))
            shares[settings].append(mpc.ledger.profit_usd / oracle)
            print(
                f"  {settings}: {shares[settings][-1]:.2%} ({mpc.wall_seconds:.0f} s)", flush=True
            )
    for settings, values in sorted(shares.items(), key=lambda kv: -float(np.mean(kv[1]))):
        print(f"mean {np.mean(values):.3%}: {settings}")


if __name__ == "__main__":
    example = load_scenario(EXAMPLE)
    forecast_grid(example)
    mpc_check(example, quick="--quick" in sys.argv)
