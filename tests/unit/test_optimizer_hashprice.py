"""Hashprice per interval: time-weighted over steps that span UTC days or a halving, as
earned and as a decision may know it (only days already ended)."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import numpy as np
import pytest

from hcp.domain.market import BitcoinDays, MarketSeries
from hcp.economics import hashprice_usd_per_ths_day
from hcp.optimizer.world import MarketArrays, view_at

# 2024-04-18..22 as in the bitcoin file: the halving on the 20th at 00:09:27 UTC, with the
# Runes launch's 1,257.7 BTC of fees that day.
FIRST = date(2024, 4, 18)
DIFFICULTY = [88.10e12, 88.10e12, 88.10e12, 88.10e12, 88.10e12]
FEES = [32.9, 116.9, 1_257.7, 300.5, 104.2]
BTC = [63_512.0, 63_843.0, 64_994.0, 64_926.0, 66_837.0]
DAYS = BitcoinDays(FIRST, np.array(DIFFICULTY), np.array(FEES), np.array(BTC))
HALVING = datetime(2024, 4, 20, 0, 9, 27, tzinfo=UTC)


def series(start: datetime, step: timedelta, n: int, days: BitcoinDays = DAYS) -> MarketSeries:
    """`n` intervals of `step` from `start`, each with the bitcoin figures of its start's day."""
    index = [((start + k * step).date() - days.first).days for k in range(n)]
    return MarketSeries(
        start,
        step,
        {"N": np.full(n, 30.0)},
        btc_usd=days.btc_usd[index],
        difficulty=days.difficulty[index],
        fees_btc_per_day=days.fees_btc_per_day[index],
        bitcoin_days=days,
    )


def hashprice(day: int, at: datetime, btc_day: int | None = None) -> float:
    """Hashprice at `at` with the difficulty and fees of day `day` (0 = FIRST) and the BTC
    price of `btc_day` (default: the same day)."""
    btc = BTC[day if btc_day is None else btc_day]
    return hashprice_usd_per_ths_day(DIFFICULTY[day], FEES[day], btc, at)


def test_a_day_long_step_earns_each_days_figures_for_the_hours_it_holds() -> None:
    start = datetime(2024, 4, 18, 6, tzinfo=UTC)
    arrays = MarketArrays.from_series(series(start, timedelta(days=1), 1))
    expected = 18 / 24 * hashprice(0, start) + 6 / 24 * hashprice(1, start)
    assert arrays.hashprice_usd_per_ths_day[0] == pytest.approx(expected, rel=1e-12)


def test_mining_earns_the_same_over_steps_of_15_minutes_and_of_a_day() -> None:
    """Four days from 06:00 across the halving and the Runes day: the revenue of an always-on
    miner is the same whatever the step."""
    start = datetime(2024, 4, 18, 6, tzinfo=UTC)
    totals = []
    for step, n in ((timedelta(minutes=15), 4 * 96), (timedelta(days=1), 4)):
        arrays = MarketArrays.from_series(series(start, step, n))
        totals.append(float(np.sum(arrays.hashprice_usd_per_ths_day)) * arrays.step_seconds)
    assert totals[0] == pytest.approx(totals[1], rel=1e-12)


def test_a_halving_inside_an_interval_counts_each_subsidy_for_its_seconds() -> None:
    start = datetime(2024, 4, 20, tzinfo=UTC)
    arrays = MarketArrays.from_series(series(start, timedelta(minutes=15), 2))
    before, after = hashprice(2, start), hashprice(2, HALVING)
    assert after < before
    expected = (567 * before + 333 * after) / 900
    assert arrays.hashprice_usd_per_ths_day[0] == pytest.approx(expected, rel=1e-12)
    assert arrays.hashprice_usd_per_ths_day[1] == after


def test_a_day_long_step_is_known_by_the_days_ended_when_it_ends() -> None:
    """The step 06:00 on the 19th to 06:00 on the 20th is known, from the next decision on,
    with the 19th's fees and difficulty (the 20th has not ended), time-weighted with each
    day's opening price and subsidy; the Runes day's fees change nothing of it."""
    start = datetime(2024, 4, 18, 6, tzinfo=UTC)
    arrays = MarketArrays.from_series(series(start, timedelta(days=1), 3))
    at = datetime(2024, 4, 19, 6, tzinfo=UTC)
    expected = (
        18 / 24 * hashprice(1, at)
        + 9.45 / 1440 * hashprice(1, at, btc_day=2)  # 00:00 to the halving at 00:09:27
        + (6 * 60 - 9.45) / 1440 * hashprice(1, HALVING, btc_day=2)
    )
    known = arrays.hashprice_known_usd_per_ths_day
    assert known[1] == pytest.approx(expected, rel=1e-12)
    assert view_at(arrays, 2, {}).hashprice_usd_per_ths_day[-1] == known[1]
    fees = np.array(FEES)
    fees[2:] = 1e6
    later = MarketArrays.from_series(
        series(start, timedelta(days=1), 3, replace(DAYS, fees_btc_per_day=fees))
    )
    assert later.hashprice_known_usd_per_ths_day[1] == known[1]
    assert later.hashprice_usd_per_ths_day[1] > arrays.hashprice_usd_per_ths_day[1]


def test_on_15_minute_steps_the_interval_figures_give_what_the_days_give() -> None:
    """A series without a table of days (the simulator's) takes each interval's figures:
    within a day that is the same hashprice, earned and known."""
    start = datetime(2024, 4, 18, 6, tzinfo=UTC)
    with_days = series(start, timedelta(minutes=15), 4 * 96)
    without = replace(with_days, bitcoin_days=None)
    a, b = MarketArrays.from_series(with_days), MarketArrays.from_series(without)
    assert np.array_equal(a.hashprice_usd_per_ths_day, b.hashprice_usd_per_ths_day)
    assert np.array_equal(
        a.hashprice_known_usd_per_ths_day, b.hashprice_known_usd_per_ths_day, equal_nan=True
    )
    assert np.isnan(a.hashprice_known_usd_per_ths_day[: 18 * 4 - 1]).all()
    assert np.isfinite(a.hashprice_known_usd_per_ths_day[18 * 4 - 1 :]).all()


def test_a_table_of_days_must_cover_the_series() -> None:
    start = datetime(2024, 4, 21, 6, tzinfo=UTC)
    with pytest.raises(ValueError, match=r"bitcoin_days 2024-04-18\.\.2024-04-22 do not cover"):
        series(start, timedelta(days=1), 2)  # the second step ends on the 23rd


def test_an_empty_series_has_no_hashprice() -> None:
    start = datetime(2024, 4, 18, tzinfo=UTC)
    empty = MarketSeries(
        start, timedelta(minutes=15), {"N": []}, btc_usd=[], difficulty=[], fees_btc_per_day=[]
    )
    arrays = MarketArrays.from_series(empty)
    assert len(arrays) == 0 and len(arrays.hashprice_known_usd_per_ths_day) == 0
