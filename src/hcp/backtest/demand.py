"""The seeded workload-demand generator of a backtest: realtime inference demand per interval
(a daily and weekly profile with autocorrelated noise) and batch and training jobs arriving as
Poisson processes, each with a GPU count, hours of work, a deadline and a price.

The same seed, window and specs give the same demand, for every strategy.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
from scipy.signal import lfilter

from hcp.domain.market import FloatArray
from hcp.domain.workloads import WorkloadClass
from hcp.optimizer.lp import IntArray
from hcp.optimizer.world import Job

_DAY_S = 86_400
_NOISE_CORRELATION_PER_HOUR = 0.7


@dataclass(frozen=True, slots=True)
class RealtimeProfile:
    """Realtime inference demand in GPUs: `base_gpus` at the daily low, `peak_gpus` at
    `peak_hour_utc`, times `weekend_factor` on Saturdays and Sundays (UTC), times a
    log-normal factor with standard deviation `noise` correlated from interval to interval."""

    base_gpus: float
    peak_gpus: float
    price_usd_per_gpu_hour: float
    peak_hour_utc: float = 18.0
    weekend_factor: float = 1.0
    noise: float = 0.0


@dataclass(frozen=True, slots=True)
class JobArrivals:
    """Jobs of one class: `arrivals_per_day` on average, each asking for a GPU count, hours of
    work at that count and a deadline counted from arrival, drawn uniformly from the (low,
    high) ranges; paid `price_usd_per_gpu_hour`."""

    workload_class: WorkloadClass
    arrivals_per_day: float
    gpus: tuple[int, int]
    hours: tuple[float, float]
    deadline_hours: tuple[float, float]
    price_usd_per_gpu_hour: float


@dataclass(frozen=True, slots=True)
class DemandSpec:
    """A site's demand for GPUs of `family`."""

    family: str
    realtime: RealtimeProfile | None = None
    arrivals: tuple[JobArrivals, ...] = ()


@dataclass(frozen=True, slots=True)
class Demand:
    """Generated demand: realtime GPUs per site, family and interval, its price per site and
    family, and every job ordered by arrival."""

    realtime_gpus: Mapping[str, Mapping[str, FloatArray]]
    realtime_price_usd_per_gpu_hour: Mapping[str, Mapping[str, float]]
    jobs: tuple[Job, ...]


def generate_demand(
    specs: Mapping[str, DemandSpec], seconds: IntArray, first: int, seed: int
) -> Demand:
    """Demand of each site over the intervals starting at `seconds` (UTC epoch seconds, a fixed
    step); jobs arrive from interval `first` on (earlier intervals are warm-up).

    Random draws are made for the intervals from `first` on only, so the demand of the window
    depends on the seed, its intervals and the specs, not on how long the warm-up is."""
    step_s = int(seconds[1] - seconds[0]) if len(seconds) > 1 else 900
    streams = iter(np.random.SeedSequence(seed).spawn(2 * len(specs) + 1))
    realtime: dict[str, dict[str, FloatArray]] = {}
    prices: dict[str, dict[str, float]] = {}
    jobs: list[Job] = []
    for site, spec in specs.items():
        rng_realtime, rng_jobs = (np.random.default_rng(next(streams)) for _ in range(2))
        if spec.realtime is not None:
            gpus = realtime_gpus(spec.realtime, seconds, first, rng_realtime)
            realtime[site] = {spec.family: gpus}
            prices[site] = {spec.family: spec.realtime.price_usd_per_gpu_hour}
        for arrivals in spec.arrivals:
            jobs += job_arrivals(site, spec.family, arrivals, len(seconds), first, step_s, rng_jobs)
    jobs.sort(key=lambda job: (job.release, job.job_id))
    return Demand(realtime, prices, tuple(jobs))


def realtime_gpus(
    profile: RealtimeProfile, seconds: IntArray, first: int, rng: np.random.Generator
) -> FloatArray:
    """Whole GPUs of realtime demand per interval: the daily and weekly profile, times the
    noise from interval `first` on. The noise is drawn for those intervals only, in order,
    starting from its stationary spread; the warm-up intervals before `first`, which no one
    serves, hold the profile alone."""
    hours = (seconds % _DAY_S) / 3600
    daily = (1 + np.cos(2 * np.pi * (hours - profile.peak_hour_utc) / 24)) / 2
    level = profile.base_gpus + (profile.peak_gpus - profile.base_gpus) * daily
    weekday = (seconds // _DAY_S + 3) % 7  # 1970-01-01 was a Thursday; Monday = 0
    level = np.where(weekday >= 5, level * profile.weekend_factor, level)
    factor = np.ones(len(seconds))
    factor[first:] = _noise_factor(profile.noise, len(seconds) - first, _step_hours(seconds), rng)
    return np.round(np.maximum(level * factor, 0.0)).astype(np.float64)


def _step_hours(seconds: IntArray) -> float:
    return float(seconds[1] - seconds[0]) / 3600 if len(seconds) > 1 else 0.25


def _noise_factor(sd: float, n: int, step_h: float, rng: np.random.Generator) -> FloatArray:
    """`n` log-normal factors of mean 1 whose log has standard deviation `sd` throughout and is
    correlated `_NOISE_CORRELATION_PER_HOUR` hour to hour (an AR(1) process in steady state)."""
    keep = _NOISE_CORRELATION_PER_HOUR**step_h
    shocks = rng.standard_normal(n) * sd * math.sqrt(1 - keep**2)
    if n:
        shocks[0] /= math.sqrt(1 - keep**2)  # the first value from the stationary spread
    noise = np.asarray(lfilter([1.0], [1.0, -keep], shocks), dtype=np.float64)
    return np.exp(noise - sd**2 / 2)


def job_arrivals(
    site: str,
    family: str,
    arrivals: JobArrivals,
    intervals: int,
    first: int,
    step_s: int,
    rng: np.random.Generator,
) -> list[Job]:
    """Jobs arriving in intervals first .. intervals−1, the work and deadline rounded up to
    whole intervals (a deadline never earlier than the work at full GPU count needs)."""
    step_h = step_s / 3600
    counts = rng.poisson(arrivals.arrivals_per_day * step_s / _DAY_S, intervals - first)
    releases = first + np.repeat(np.arange(intervals - first), counts)
    n = len(releases)
    gpus = rng.integers(arrivals.gpus[0], arrivals.gpus[1] + 1, n)
    steps = np.ceil(rng.uniform(*arrivals.hours, n) / step_h).astype(int).clip(min=1)
    slack = np.ceil(rng.uniform(*arrivals.deadline_hours, n) / step_h).astype(int)
    tag = arrivals.workload_class.value.removeprefix("ai_")
    return [
        Job(
            job_id=f"{site}-{tag}-{k}",
            site=site,
            workload_class=arrivals.workload_class,
            family=family,
            gpus=int(gpus[k]),
            steps=int(steps[k]),
            release=int(releases[k]),
            deadline=int(releases[k] + max(slack[k], steps[k])),
            price_usd_per_gpu_hour=arrivals.price_usd_per_gpu_hour,
        )
        for k in range(n)
    ]
