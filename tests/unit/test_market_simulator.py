"""The market simulator: deterministic per seed, mean-reverting, with spikes, negative prices
and a stepwise difficulty."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from hcp.adapters.market.simulated import (
    MarketSimulatorConfig,
    SimulatedMarketFeed,
    simulate_series,
)
from hcp.domain.errors import ValidationError
from hcp.services.ports import MarketFeed

START = datetime(2024, 1, 1, tzinfo=UTC)
QUARTER = timedelta(minutes=15)
YEAR = 366 * 96
CALM = MarketSimulatorConfig(spike_probability_per_hour=0, negative_probability_per_hour=0)


def test_shapes_and_columns() -> None:
    config = MarketSimulatorConfig(nodes=("HB_WEST", "HB_NORTH"))
    series = simulate_series(config, START, 96, QUARTER, seed=1)
    assert len(series) == 96 and series.nodes == ("HB_WEST", "HB_NORTH")
    assert series.start == START and series.end == START + timedelta(days=1)
    assert set(series.gpu_spot_usd_per_gpu_hour) == {"H100", "A100"}
    for column in [series.btc_usd, series.difficulty, series.fees_btc_per_day]:
        assert column.shape == (96,) and np.isfinite(column).all()
    assert series.snapshot(0).btc_usd == pytest.approx(60_000, rel=0.01)


def test_same_seed_same_series_other_seed_other_series() -> None:
    config = MarketSimulatorConfig(nodes=("HB_WEST", "HB_NORTH"))
    a = simulate_series(config, START, 500, QUARTER, seed=7)
    b = simulate_series(config, START, 500, QUARTER, seed=7)
    c = simulate_series(config, START, 500, QUARTER, seed=8)
    assert all(a.snapshot(i) == b.snapshot(i) for i in range(500))
    assert not np.array_equal(
        a.electricity_usd_per_mwh["HB_WEST"], c.electricity_usd_per_mwh["HB_WEST"]
    )


def test_feed_step_by_step_equals_the_vectorised_series() -> None:
    config = MarketSimulatorConfig(nodes=("HB_WEST", "LZ_WEST"))
    series = simulate_series(config, START, 3 * 96, QUARTER, seed=3)
    feed = SimulatedMarketFeed(config, start=START, step=QUARTER, seed=3)
    assert feed.step == QUARTER
    produced = [feed.next_snapshot() for _ in range(3 * 96)]
    assert produced == [series.snapshot(i) for i in range(3 * 96)]
    assert feed.current() == produced[-1]


def test_feed_current_starts_at_the_first_interval() -> None:
    feed = SimulatedMarketFeed(start=START, seed=0)
    port: MarketFeed = feed  # mypy checks the feed against the port
    assert port.step == timedelta(minutes=5)
    assert feed.current().at == START and feed.next_snapshot().at == START + timedelta(minutes=5)


def test_price_reverts_to_the_mean() -> None:
    config = replace(CALM, initial_price_usd_per_mwh=200.0, daily_amplitude_usd_per_mwh=0.0)
    series = simulate_series(config, START, YEAR, QUARTER, seed=11)
    price = series.electricity_usd_per_mwh["HB_WEST"]
    assert price[0] > 150
    # After a day the start is forgotten (reversion 0.5/h: e^-12), and the long-run mean is 40.
    assert abs(price[96:].mean() - 40) < 1.5
    assert 9 < price[96:].std() < 15


def test_spikes_and_negative_prices_occur_at_plausible_rates() -> None:
    series = simulate_series(MarketSimulatorConfig(), START, YEAR, QUARTER, seed=5)
    price = series.electricity_usd_per_mwh["HB_WEST"]
    negative, spiking = np.mean(price < 0), np.mean(price > 200)
    # Real HB_WEST: about 1-15% negative intervals and well under 2% above $200 a year.
    assert 0.005 < negative < 0.10
    assert 0.0003 < spiking < 0.02
    assert price.max() <= 5000 and price.min() >= -250
    calm = simulate_series(CALM, START, YEAR, QUARTER, seed=5).electricity_usd_per_mwh["HB_WEST"]
    assert np.mean(calm < 0) < 0.002 and calm.max() < 200


def test_difficulty_is_a_step_function_every_epoch() -> None:
    series = simulate_series(MarketSimulatorConfig(), START, 60 * 24, timedelta(hours=1), seed=2)
    changes = np.flatnonzero(np.diff(series.difficulty)) + 1
    assert changes.tolist() == [14 * 24, 28 * 24, 42 * 24, 56 * 24]
    assert series.difficulty[0] == 90e12


def test_fees_change_only_at_utc_midnight() -> None:
    start = START + timedelta(hours=20)
    series = simulate_series(MarketSimulatorConfig(), start, 96, QUARTER, seed=4)
    changes = np.flatnonzero(np.diff(series.fees_btc_per_day)) + 1
    assert changes.tolist() == [16]  # 20:00 + 16 × 15 min = midnight
    assert (series.fees_btc_per_day > 0).all()


def test_bad_parameters_are_refused() -> None:
    with pytest.raises(ValidationError) as caught:
        MarketSimulatorConfig(reversion_per_hour=0)
    assert caught.value.field == "reversion_per_hour"
    with pytest.raises(ValidationError):
        MarketSimulatorConfig(nodes=())
    with pytest.raises(ValueError, match="UTC"):
        simulate_series(MarketSimulatorConfig(), datetime(2024, 1, 1), 4)
