"""What a strategy may know. `MarketArrays` is a window's prices as arrays by interval;
`DecisionView` is the part of it, and of the sites, known when interval t is decided (the
information rule); `Foresight` is everything, given only to the oracle."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta

import numpy as np

from hcp.domain.market import FloatArray, MarketSeries
from hcp.domain.workloads import WorkloadClass
from hcp.optimizer.hashprice import hashprices
from hcp.optimizer.inputs import SiteNow
from hcp.optimizer.lp import IntArray

# The day-ahead auction publishes tomorrow's prices around noon, so at any moment at least the
# next 11 hours are known; a decision may look that far ahead and no further.
DAY_AHEAD_LEAD = timedelta(hours=11)
_DAY_S = 86_400


@dataclass(frozen=True, slots=True)
class MarketArrays:
    """Prices per interval: interval starts (UTC epoch seconds), real-time and day-ahead
    electricity per node (USD/MWh; day-ahead NaN where unknown), hashprice (USD/TH/s/day)
    and GPU spot per family (USD/GPU-hour).

    `hashprice_usd_per_ths_day` is what mining earned in the interval (each UTC day's
    difficulty, fees and BTC price and each moment's subsidy, time-weighted over the interval);
    `hashprice_known_usd_per_ths_day` what was known of it when the interval ended, which a
    decision sees from the next interval on: a day's fees are a total known only when the day
    ends, and its difficulty may change during it, so both are those of the last UTC day ended
    by then (the day before, or the interval's own day when the interval closes it), with the
    BTC price of the day's opening and the block subsidy of the moment. NaN where the series
    holds no such day (intervals of its first day, warm-up). See `hcp.optimizer.hashprice`."""

    seconds: IntArray
    step_seconds: int
    electricity_usd_per_mwh: Mapping[str, FloatArray]
    day_ahead_usd_per_mwh: Mapping[str, FloatArray]
    hashprice_usd_per_ths_day: FloatArray
    hashprice_known_usd_per_ths_day: FloatArray
    gpu_spot_usd_per_gpu_hour: Mapping[str, FloatArray]

    @classmethod
    def from_series(cls, series: MarketSeries) -> MarketArrays:
        """The arrays of `series`, hashprice computed per interval from its bitcoin columns."""
        step_s = series.step // timedelta(seconds=1)
        start_s = int(series.start.timestamp())
        seconds = start_s + np.arange(len(series), dtype=np.int64) * step_s
        earned, known = hashprices(series)
        return cls(
            seconds=seconds,
            step_seconds=step_s,
            electricity_usd_per_mwh=dict(series.electricity_usd_per_mwh),
            day_ahead_usd_per_mwh=dict(series.day_ahead_usd_per_mwh),
            hashprice_usd_per_ths_day=earned,
            hashprice_known_usd_per_ths_day=known,
            gpu_spot_usd_per_gpu_hour=dict(series.gpu_spot_usd_per_gpu_hour),
        )

    def __len__(self) -> int:
        return len(self.seconds)

    @property
    def step_hours(self) -> float:
        return self.step_seconds / 3600

    @property
    def steps_per_day(self) -> int:
        return _steps_per_day(self.step_seconds)

    def first_decidable(self) -> int:
        """The first interval a decision can be made at: every interval before it but one may
        lack a known hashprice (warm-up), the one just before it may not."""
        unknown = np.flatnonzero(np.isnan(self.hashprice_known_usd_per_ths_day))
        return 1 if unknown.size == 0 else int(unknown[-1]) + 2


def _steps_per_day(step_seconds: int) -> int:
    return max(1, _DAY_S // step_seconds)


@dataclass(frozen=True, slots=True)
class Job:
    """A customer's deferrable GPU job over the window: `gpus` GPUs of `family` for `steps`
    intervals of work (it may run slower, on fewer GPUs), arriving at interval `release` and
    due before interval `deadline` (absolute indices), at `price_usd_per_gpu_hour`."""

    job_id: str
    site: str
    workload_class: WorkloadClass
    family: str
    gpus: int
    steps: int
    release: int
    deadline: int
    price_usd_per_gpu_hour: float

    @property
    def work_gpu_steps(self) -> int:
        """Work to do, in GPU-intervals."""
        return self.gpus * self.steps


@dataclass(frozen=True, slots=True)
class Foresight:
    """Everything about the window, future included: prices, realtime demand per site and
    family (GPUs per interval) and every job. Only the oracle is given it."""

    market: MarketArrays
    realtime_gpus: Mapping[str, Mapping[str, FloatArray]]
    jobs: tuple[Job, ...]


@dataclass(frozen=True, slots=True)
class DecisionView:
    """What is known when interval `t` is decided: real-time prices, hashprice as then known
    (`MarketArrays.hashprice_known_usd_per_ths_day`) and GPU spot of intervals before t only;
    day-ahead prices from t as far as they are published (NaN where the market has none); each
    site's state, demand now and open jobs."""

    t: int
    step_hours: float
    steps_per_day: int
    sites: Mapping[str, SiteNow]
    electricity_usd_per_mwh: Mapping[str, FloatArray]
    hashprice_usd_per_ths_day: FloatArray
    gpu_spot_usd_per_gpu_hour: Mapping[str, FloatArray]
    day_ahead_usd_per_mwh: Mapping[str, FloatArray]


def view_at(market: MarketArrays, t: int, sites: Mapping[str, SiteNow]) -> DecisionView:
    """The view of interval `t` (t >= 1: at least one past interval)."""
    lead = t + DAY_AHEAD_LEAD // timedelta(seconds=market.step_seconds)
    return DecisionView(
        t=t,
        step_hours=market.step_hours,
        steps_per_day=market.steps_per_day,
        sites=sites,
        electricity_usd_per_mwh={k: v[:t] for k, v in market.electricity_usd_per_mwh.items()},
        hashprice_usd_per_ths_day=market.hashprice_known_usd_per_ths_day[:t],
        gpu_spot_usd_per_gpu_hour={k: v[:t] for k, v in market.gpu_spot_usd_per_gpu_hour.items()},
        day_ahead_usd_per_mwh={k: v[t:lead] for k, v in market.day_ahead_usd_per_mwh.items()},
    )
