"""MarketSeries: a columnar, immutable market over a window."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest

from hcp.domain.market import MarketSeries

T0 = datetime(2024, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def series() -> MarketSeries:
    """Four hourly intervals at one node, day-ahead known for the first two."""
    return MarketSeries(
        start=T0,
        step=HOUR,
        electricity_usd_per_mwh={"HB_WEST": np.array([10.0, -2.0, 30.0, 40.0])},
        btc_usd=np.array([1.0, 2.0, 3.0, 4.0]),
        difficulty=np.full(4, 8e13),
        fees_btc_per_day=np.full(4, 5.0),
        gpu_spot_usd_per_gpu_hour={"H100": np.full(4, 2.0)},
        day_ahead_usd_per_mwh={"HB_HUBAVG": np.array([11.0, 12.0, np.nan, np.nan])},
    )


def test_snapshot_carries_every_price_of_its_interval(series: MarketSeries) -> None:
    snap = series.snapshot(1)
    assert snap.at == T0 + HOUR and snap.electricity("HB_WEST") == -2.0
    assert (snap.btc_usd, snap.difficulty, snap.fees_btc_per_day) == (2.0, 8e13, 5.0)
    assert snap.gpu_spot("H100") == 2.0 and snap.day_ahead_usd_per_mwh == {"HB_HUBAVG": 12.0}
    assert series.snapshot(-1).day_ahead_usd_per_mwh == {}
    with pytest.raises(IndexError):
        series.snapshot(4)


def test_times_nodes_and_index(series: MarketSeries) -> None:
    assert len(series) == 4 and series.nodes == ("HB_WEST",)
    assert series.times[1] == np.datetime64("2024-01-01T01:00:00")
    assert series.time_at(-1) == T0 + 3 * HOUR and series.end == T0 + 4 * HOUR
    assert series.index_of(T0 + 2 * HOUR) == 2
    with pytest.raises(ValueError, match="grid"):
        series.index_of(T0 + timedelta(minutes=30))


def test_window_slices_every_column(series: MarketSeries) -> None:
    part = series.window(T0 + HOUR, T0 + 3 * HOUR)
    assert len(part) == 2 and part.start == T0 + HOUR
    assert part.electricity_usd_per_mwh["HB_WEST"].tolist() == [-2.0, 30.0]
    assert part.btc_usd.tolist() == [2.0, 3.0] and part.snapshot(0) == series.snapshot(1)


def test_window_outside_or_off_grid_is_refused(series: MarketSeries) -> None:
    with pytest.raises(ValueError, match="outside"):
        series.window(T0, T0 + 5 * HOUR)
    with pytest.raises(ValueError, match="outside"):
        series.window(T0 + 2 * HOUR, T0 + 2 * HOUR)
    with pytest.raises(ValueError, match="grid"):
        series.window(T0 + timedelta(minutes=1), T0 + 2 * HOUR)


def test_series_is_immutable(series: MarketSeries) -> None:
    with pytest.raises(ValueError, match="read-only"):
        series.btc_usd[0] = 9.0
    with pytest.raises(ValueError, match="read-only"):
        series.electricity_usd_per_mwh["HB_WEST"][0] = 9.0
    with pytest.raises(TypeError):
        series.electricity_usd_per_mwh["HB_NORTH"] = np.zeros(4)  # type: ignore[index]


def test_inconsistent_input_is_refused() -> None:
    one, two = np.ones(1), np.ones(2)
    with pytest.raises(ValueError, match="difficulty has 1 values"):
        MarketSeries(T0, HOUR, {}, btc_usd=two, difficulty=one, fees_btc_per_day=two)
    with pytest.raises(ValueError, match="UTC"):
        MarketSeries(datetime(2024, 1, 1), HOUR, {}, one, one, one)
