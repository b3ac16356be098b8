"""The price forecast: built from the past (and published day-ahead prices) only."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

from hcp.optimizer.forecast import (
    ForecastSettings,
    carry_forward,
    forecast_electricity,
    same_time_profile,
)

DAY = 4  # intervals per day in these tests


def test_pure_persistence_repeats_the_last_price() -> None:
    history = np.array([10.0, 20.0, 30.0, 40.0, 50.0])
    forecast = forecast_electricity(history, None, DAY, 3, ForecastSettings(1.0, 1))
    assert forecast == pytest.approx([50.0, 50.0, 50.0])


def test_the_forecast_fades_from_the_last_price_to_the_daily_profile() -> None:
    history = np.array([0.0, 100.0, 0.0, 0.0, 0.0, 100.0, 0.0, 60.0])  # two days of 4
    settings = ForecastSettings(persistence=0.5, profile_days=2)
    forecast = forecast_electricity(history, None, DAY, 2, settings)
    # Next interval: 0.5 × 60 + 0.5 × mean(0, 0); the one after: 0.25 × 60 + 0.75 × 100.
    assert forecast == pytest.approx([30.0, 90.0])


def test_day_ahead_prices_replace_the_profile_where_published() -> None:
    history = np.full(8, 10.0)
    day_ahead = np.array([np.nan, 200.0, 200.0])
    forecast = forecast_electricity(history, day_ahead, DAY, 3, ForecastSettings(0.5, 1))
    assert forecast == pytest.approx([10.0, 0.25 * 10 + 0.75 * 200, 0.125 * 10 + 0.875 * 200])


def test_the_profile_uses_only_days_the_history_holds() -> None:
    profile = same_time_profile(np.array([1.0, 2.0, 3.0]), DAY, 2, days=7)
    # Interval 3 has no earlier day (the last price stands in); interval 4 has interval 0.
    assert profile == pytest.approx([3.0, 1.0])


@given(st.lists(st.floats(-250, 9000), min_size=1, max_size=40), st.integers(1, 12))
def test_without_day_ahead_the_forecast_stays_within_the_prices_seen(
    prices: list[float], horizon: int
) -> None:
    history = np.array(prices)
    forecast = forecast_electricity(history, None, DAY, horizon)
    assert np.all(forecast >= history.min() - 1e-9) and np.all(forecast <= history.max() + 1e-9)


def test_carry_forward_holds_the_last_value() -> None:
    assert carry_forward(np.array([1.0, 2.0]), 3) == pytest.approx([2.0, 2.0, 2.0])
    assert carry_forward(np.array([]), 2, default=5.0) == pytest.approx([5.0, 5.0])
