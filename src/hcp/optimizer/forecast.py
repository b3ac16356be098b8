"""Price forecasts built only from what is known at decision time (the information rule): for
interval t, real-time prices up to t−1 and day-ahead prices from t where published.

The electricity forecast blends the last known price into a base curve: k steps ahead it is
w·p(t−1) + (1−w)·base with w = persistence^(k+1). The base is the day-ahead price where known,
else the mean price at the same time of day over the last `profile_days` days (the daily
profile). A risk-neutral decision needs the expected price, so spikes are averaged in.
Bitcoin and GPU spot figures are carried forward from their last known value.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from hcp.domain.market import FloatArray


@dataclass(frozen=True, slots=True)
class ForecastSettings:
    """Chosen on ERCOT HB_WEST 2021–2023 only (scripts/tune_forecast.py), never on 2024–2025."""

    persistence: float = 0.9
    profile_days: int = 21


def forecast_electricity(
    history: FloatArray,
    day_ahead: FloatArray | None,
    steps_per_day: int,
    horizon: int,
    settings: ForecastSettings = ForecastSettings(),
) -> FloatArray:
    """Expected real-time price in USD/MWh for intervals t .. t+horizon−1.

    `history` holds the prices of the intervals before t (at least one); `day_ahead` the
    day-ahead prices from t on (NaN where unknown; None when the market has none).
    """
    base = same_time_profile(history, steps_per_day, horizon, settings.profile_days)
    if day_ahead is not None:
        known = day_ahead[:horizon]
        base[: len(known)] = np.where(np.isnan(known), base[: len(known)], known)
    weight = settings.persistence ** np.arange(1, horizon + 1)
    forecast: FloatArray = weight * history[-1] + (1 - weight) * base
    return forecast


def same_time_profile(history: FloatArray, steps_per_day: int, count: int, days: int) -> FloatArray:
    """For intervals t .. t+count−1 (t = len(history)): the mean of the prices at the same
    time of day on the `days` previous days that `history` holds (else the last price)."""
    n = len(history)
    positions = n + np.arange(count)
    lags = steps_per_day * np.arange(1, days + 1)
    index = positions[np.newaxis, :] - lags[:, np.newaxis]
    if index[-1, 0] >= 0 and index[0, -1] < n:  # every day held (all but the first weeks)
        full: FloatArray = history[index].sum(axis=0) / days
        return full
    valid = (index >= 0) & (index < n)
    values = np.where(valid, history[np.where(valid, index, 0)], 0.0)
    counts = valid.sum(axis=0)
    mean: FloatArray = np.where(counts > 0, values.sum(axis=0) / np.maximum(counts, 1), history[-1])
    return mean


def carry_forward(history: FloatArray, horizon: int, default: float = 0.0) -> FloatArray:
    """The last known value held over the horizon (`default` with no history)."""
    last = float(history[-1]) if len(history) else default
    return np.full(horizon, last)
