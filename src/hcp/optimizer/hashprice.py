"""Hashprice per interval of a market series: what mining earned in each interval, and what
was known of it when the interval ended (the information rule: a day's fees are a total known
only when the day ends, and its difficulty may change during it).

Both are time-weighted over the interval, as electricity prices are over a step longer than
theirs: an interval may span UTC days and a halving, and each day's difficulty, fees and BTC
price, and each moment's block subsidy, count for the part of the interval they hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

import numpy as np

from hcp.domain.market import BitcoinDays, FloatArray, MarketSeries
from hcp.economics import hashprice_usd_per_ths_day, subsidy_changes
from hcp.optimizer.lp import IntArray

_DAY_S = 86_400
_EPOCH = date(1970, 1, 1)
_SECOND = timedelta(seconds=1)


@dataclass(frozen=True, slots=True)
class _Pieces:
    """The intervals cut at UTC midnights and halvings, in time order: piece p starts at
    `start[p]` (epoch seconds), lasts `seconds[p]` and lies in interval `interval[p]` and UTC
    day `day[p]` (days since the epoch); `ended[p]` is the last UTC day that had ended when
    its interval ended."""

    start: IntArray
    seconds: IntArray
    interval: IntArray
    day: IntArray
    ended: IntArray

    @property
    def known_day(self) -> IntArray:
        """The day whose difficulty and fees stand for each piece's once its interval has ended:
        the piece's own day if that has ended, else the last that has."""
        known: IntArray = np.minimum(self.day, self.ended)
        return known


def _pieces(starts: IntArray, step_s: int) -> _Pieces:
    """The pieces of the intervals starting at `starts` (`step_s` apart)."""
    end = int(starts[-1]) + step_s
    midnights = np.arange(int(starts[0]) // _DAY_S + 1, (end - 1) // _DAY_S + 1) * _DAY_S
    halvings = [int(at.timestamp()) for at in subsidy_changes()]
    inside = [s for s in halvings if starts[0] < s < end]
    bounds = np.unique(np.concatenate([starts, midnights, inside, [end]]).astype(np.int64))
    start = bounds[:-1]
    interval = (start - starts[0]) // step_s
    return _Pieces(
        start=start,
        seconds=np.diff(bounds),
        interval=interval,
        day=start // _DAY_S,
        ended=(starts[interval] + step_s) // _DAY_S - 1,
    )


def hashprices(series: MarketSeries) -> tuple[FloatArray, FloatArray]:
    """(earned, known) hashprice in USD per TH/s per day for each interval of `series`.

    Earned: from `series.bitcoin_days` where it has them (each day's own figures), else from
    each interval's figures. Known: the same, but with the difficulty and fees of the last day
    ended when the interval ends in place of a day not yet ended; NaN where the series holds
    no such day (its first day's intervals, warm-up).
    """
    step_s = series.step // _SECOND
    if not len(series):
        return np.zeros(0), np.zeros(0)
    starts = int(series.start.timestamp()) + step_s * np.arange(len(series), dtype=np.int64)
    pieces = _pieces(starts, step_s)
    if series.bitcoin_days is not None:
        earned, known = _from_days(series.bitcoin_days, pieces)
    else:
        earned, known = _from_intervals(series, starts, pieces)
    return _means(earned, pieces, len(series), step_s), _means(known, pieces, len(series), step_s)


def _from_days(days: BitcoinDays, pieces: _Pieces) -> tuple[FloatArray, FloatArray]:
    """Earned and known hashprice of each piece from a table of days."""
    first = (days.first - _EPOCH).days
    own, known = pieces.day - first, pieces.known_day - first
    held = known >= 0
    known = known.clip(min=0)
    btc = days.btc_usd[own]
    earned = _hashprice(days.difficulty[own], days.fees_btc_per_day[own], btc, pieces.start)
    difficulty = np.where(held, days.difficulty[known], np.nan)
    fees = np.where(held, days.fees_btc_per_day[known], np.nan)
    return earned, _hashprice(difficulty, fees, btc, pieces.start)


def _from_intervals(
    series: MarketSeries, starts: IntArray, pieces: _Pieces
) -> tuple[FloatArray, FloatArray]:
    """Earned and known hashprice of each piece from each interval's figures; a day's known
    difficulty and fees are those of its last interval (as they stood when it ended)."""
    at = pieces.interval
    btc = series.btc_usd[at]
    earned = _hashprice(series.difficulty[at], series.fees_btc_per_day[at], btc, pieces.start)
    source = np.searchsorted(starts, (pieces.known_day + 1) * _DAY_S, side="left") - 1
    held = source >= 0
    source = source.clip(min=0)
    difficulty = np.where(held, series.difficulty[source], np.nan)
    fees = np.where(held, series.fees_btc_per_day[source], np.nan)
    return earned, _hashprice(difficulty, fees, btc, pieces.start)


def _hashprice(
    difficulty: FloatArray, fees_btc_per_day: FloatArray, btc_usd: FloatArray, starts: IntArray
) -> FloatArray:
    """Hashprice of each piece from its figures and the subsidy at its start (NaN where a
    figure is unknown)."""
    columns = zip(
        difficulty.tolist(),
        fees_btc_per_day.tolist(),
        btc_usd.tolist(),
        starts.tolist(),
        strict=True,
    )
    return np.array(
        [
            math.nan
            if math.isnan(d) or math.isnan(f)
            else hashprice_usd_per_ths_day(d, f, b, datetime.fromtimestamp(at_s, UTC))
            for d, f, b, at_s in columns
        ],
        dtype=np.float64,
    )


def _means(values: FloatArray, pieces: _Pieces, n: int, step_s: int) -> FloatArray:
    """The time-weighted mean of the pieces' `values` over each of the `n` intervals (an
    interval of one piece takes its value as it is)."""
    total = np.bincount(pieces.interval, weights=values * pieces.seconds, minlength=n)
    count = np.bincount(pieces.interval, minlength=n)
    first = np.searchsorted(pieces.interval, np.arange(n))
    means: FloatArray = np.where(count == 1, values[first], total / step_s)
    return means
