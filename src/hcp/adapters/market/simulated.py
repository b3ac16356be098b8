"""A seedable stochastic market: mean-reverting electricity with spikes and negative prices,
a BTC random walk, difficulty steps every ~2016 blocks, daily fees and drifting GPU spot prices.

Every random quantity has its own generator stream (spawned from one seed) and every draw is
made per interval in time order, so producing N intervals at once or one at a time yields the
same numbers: `SimulatedMarketFeed` replays exactly what `simulate_series` returns.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import MappingProxyType

import numpy as np
import numpy.typing as npt
from scipy.signal import lfilter

from hcp.domain.errors import ValidationError
from hcp.domain.market import FloatArray, MarketSeries, MarketSnapshot

IntArray = npt.NDArray[np.int64]

_DAY_S = 86_400
_STREAMS = ("price", "spike", "negative", "btc", "difficulty", "fees", "gpu")


def _default_gpu_spot() -> Mapping[str, float]:
    return MappingProxyType({"H100": 2.2, "A100": 1.3})


@dataclass(frozen=True, slots=True)
class MarketSimulatorConfig:
    """Parameters of the simulated market; the defaults look like West Texas in 2024–2025.

    Electricity per node = mean + daily shape + an Ornstein–Uhlenbeck deviation (stationary
    standard deviation `volatility_usd_per_mwh`, pulled back at `reversion_per_hour`) + decaying
    jumps: system-wide upward spikes (scarcity hits every node) and per-node negative episodes
    (local wind and congestion), clipped to ERCOT's offer floor and cap. Probabilities are
    Poisson rates per hour. BTC and GPU spot are geometric random walks (log drift and
    volatility per day); difficulty changes by a log-normal factor once per `difficulty_epoch`
    from `start`; fees are log-normal, one value per UTC day.
    """

    nodes: tuple[str, ...] = ("HB_WEST",)
    mean_price_usd_per_mwh: float = 40.0
    initial_price_usd_per_mwh: float | None = None
    reversion_per_hour: float = 0.5
    volatility_usd_per_mwh: float = 12.0
    node_correlation: float = 0.8
    daily_amplitude_usd_per_mwh: float = 8.0
    peak_hour_utc: float = 23.0
    spike_probability_per_hour: float = 0.005
    spike_size_usd_per_mwh: float = 300.0
    spike_decay_per_hour: float = 2.0
    negative_probability_per_hour: float = 0.02
    negative_depth_usd_per_mwh: float = 20.0
    negative_decay_per_hour: float = 0.5
    price_floor_usd_per_mwh: float = -250.0
    price_cap_usd_per_mwh: float = 5000.0
    btc_start_usd: float = 60_000.0
    btc_daily_drift: float = 0.0
    btc_daily_volatility: float = 0.03
    difficulty_start: float = 90e12
    difficulty_epoch: timedelta = timedelta(days=14)
    difficulty_drift_per_epoch: float = 0.02
    difficulty_volatility_per_epoch: float = 0.03
    fees_btc_per_day_mean: float = 8.0
    fees_daily_volatility: float = 0.3
    gpu_spot_start_usd_per_gpu_hour: Mapping[str, float] = field(default_factory=_default_gpu_spot)
    gpu_spot_daily_drift: float = -0.001
    gpu_spot_daily_volatility: float = 0.02

    def __post_init__(self) -> None:
        for problem in self.problems():
            raise ValidationError(*problem)

    def problems(self) -> list[tuple[str, str]]:
        """Every rule the parameters break, as (field, message) pairs; empty when valid."""
        checks = [
            ("nodes", bool(self.nodes), "needs at least one node"),
            ("reversion_per_hour", self.reversion_per_hour > 0, "must be > 0"),
            ("node_correlation", 0 <= self.node_correlation <= 1, "must be within 0..1"),
            ("spike_decay_per_hour", self.spike_decay_per_hour > 0, "must be > 0"),
            ("negative_decay_per_hour", self.negative_decay_per_hour > 0, "must be > 0"),
            ("btc_start_usd", self.btc_start_usd > 0, "must be > 0"),
            ("difficulty_start", self.difficulty_start > 0, "must be > 0"),
            ("difficulty_epoch", self.difficulty_epoch >= timedelta(seconds=1), "must be ≥ 1 s"),
            ("fees_btc_per_day_mean", self.fees_btc_per_day_mean >= 0, "must be ≥ 0"),
            (
                "price_cap_usd_per_mwh",
                self.price_cap_usd_per_mwh > self.price_floor_usd_per_mwh,
                "must exceed the floor",
            ),
        ]
        rates = ("spike_probability_per_hour", "negative_probability_per_hour")
        checks += [(name, getattr(self, name) >= 0, "must be ≥ 0") for name in rates]
        prices = self.gpu_spot_start_usd_per_gpu_hour.values()
        checks.append(
            ("gpu_spot_start_usd_per_gpu_hour", min(prices, default=1) > 0, "must be > 0")
        )
        return [(name, message) for name, ok, message in checks if not ok]


def _decay(jumps: FloatArray, factor: float, last: FloatArray) -> FloatArray:
    """x[t] = factor * x[t-1] + jumps[t] along axis 0, continuing from x[-1] = `last`."""
    out, _ = lfilter([1.0], [1.0, -factor], jumps, axis=0, zi=(factor * last)[np.newaxis])
    return np.asarray(out, dtype=np.float64)


def _walk(log_start: FloatArray, increments: FloatArray) -> FloatArray:
    """`log_start` followed by its running sums with `increments` (along axis 0), added one at a
    time so that a walk produced in pieces is bit-for-bit the walk produced at once."""
    return np.cumsum(np.concatenate([log_start[np.newaxis], increments]), axis=0)


class _MarketProcess:
    """The simulator's state; `advance(n)` produces the next n intervals."""

    def __init__(self, config: MarketSimulatorConfig, start: datetime, step: timedelta, seed: int):
        if start.utcoffset() != timedelta(0):
            raise ValueError(f"start must be timezone-aware UTC, got {start!r}")
        if step <= timedelta(0) or step % timedelta(seconds=1):
            raise ValueError(f"step must be a positive whole number of seconds, got {step}")
        self.config, self.start, self.step = config, start, step
        streams = np.random.SeedSequence(seed).spawn(len(_STREAMS))
        self._rng = {
            name: np.random.default_rng(s) for name, s in zip(_STREAMS, streams, strict=True)
        }
        self._step_s = step // timedelta(seconds=1)
        self._start_s = math.floor(start.timestamp())
        self._produced = 0
        initial = config.initial_price_usd_per_mwh
        deviation = 0.0 if initial is None else initial - config.mean_price_usd_per_mwh
        self._deviation = np.full(len(config.nodes), deviation)
        self._spike = np.zeros(1)
        self._negative = np.zeros(len(config.nodes))
        self._log_btc = np.array(math.log(config.btc_start_usd))
        self._log_difficulty_change = np.array(0.0)
        self._epochs = 0
        self._fee_day = -1
        self._fee = math.nan
        self._log_gpu = np.log(list(config.gpu_spot_start_usd_per_gpu_hour.values()))

    def advance(self, steps: int) -> MarketSeries:
        """The next `steps` intervals as a series (steps ≥ 1)."""
        if steps < 1:
            raise ValueError(f"steps must be ≥ 1, got {steps}")
        index = self._produced + np.arange(steps)
        seconds = self._start_s + index * self._step_s
        series = MarketSeries(
            start=self.start + self._produced * self.step,
            step=self.step,
            electricity_usd_per_mwh=dict(
                zip(self.config.nodes, self._electricity(seconds).T, strict=True)
            ),
            btc_usd=self._btc(steps),
            difficulty=self._difficulty(index),
            fees_btc_per_day=self._fees(seconds // _DAY_S),
            gpu_spot_usd_per_gpu_hour=dict(
                zip(self.config.gpu_spot_start_usd_per_gpu_hour, self._gpu(steps).T, strict=True)
            ),
        )
        self._produced += steps
        return series

    def _electricity(self, seconds: IntArray) -> FloatArray:
        """Prices in USD/MWh, shape (intervals, nodes)."""
        c, hours = self.config, self._step_s / 3600
        base = self._base_deviation(len(seconds), hours)
        spikes = self._spikes(len(seconds), hours)
        negatives = self._negatives(len(seconds), hours)
        hour_of_day = (seconds % _DAY_S) / 3600
        shape = c.daily_amplitude_usd_per_mwh * np.cos(
            2 * np.pi * (hour_of_day - c.peak_hour_utc) / 24
        )
        price = c.mean_price_usd_per_mwh + shape[:, np.newaxis] + base + spikes + negatives
        return np.clip(price, c.price_floor_usd_per_mwh, c.price_cap_usd_per_mwh)

    def _base_deviation(self, n: int, hours: float) -> FloatArray:
        """The Ornstein–Uhlenbeck deviation from the mean, exactly discretised per interval."""
        c = self.config
        keep = math.exp(-c.reversion_per_hour * hours)
        # Scale the shocks so the stationary standard deviation is volatility_usd_per_mwh.
        shock_sd = c.volatility_usd_per_mwh * math.sqrt(1 - keep**2)
        z = self._rng["price"].standard_normal((n, 1 + len(c.nodes)))
        rho = c.node_correlation
        shocks = shock_sd * (math.sqrt(rho) * z[:, :1] + math.sqrt(1 - rho) * z[:, 1:])
        deviation = _decay(shocks, keep, self._deviation)
        self._deviation = deviation[-1]
        return deviation

    def _spikes(self, n: int, hours: float) -> FloatArray:
        """System-wide scarcity spikes in USD/MWh, shape (n, 1)."""
        c = self.config
        u = self._rng["spike"].random((n, 2))
        chance = -math.expm1(-c.spike_probability_per_hour * hours)
        size = -np.log1p(-u[:, 1]) * c.spike_size_usd_per_mwh
        jumps = np.where(u[:, 0] < chance, size, 0.0)[:, np.newaxis]
        spikes = _decay(jumps, math.exp(-c.spike_decay_per_hour * hours), self._spike)
        self._spike = spikes[-1]
        return spikes

    def _negatives(self, n: int, hours: float) -> FloatArray:
        """Per-node negative-price episodes in USD/MWh, shape (n, nodes)."""
        c = self.config
        u = self._rng["negative"].random((n, len(c.nodes), 2))
        chance = -math.expm1(-c.negative_probability_per_hour * hours)
        # A jump of the mean plus an exponential depth takes the price below zero by that depth.
        depth = c.mean_price_usd_per_mwh - np.log1p(-u[..., 1]) * c.negative_depth_usd_per_mwh
        jumps = np.where(u[..., 0] < chance, -depth, 0.0)
        negatives = _decay(jumps, math.exp(-c.negative_decay_per_hour * hours), self._negative)
        self._negative = negatives[-1]
        return negatives

    def _btc(self, n: int) -> FloatArray:
        """BTC price in USD: a geometric random walk."""
        c, days = self.config, self._step_s / _DAY_S
        z = self._rng["btc"].standard_normal(n)
        drift = (c.btc_daily_drift - c.btc_daily_volatility**2 / 2) * days
        log_price = _walk(self._log_btc, drift + c.btc_daily_volatility * math.sqrt(days) * z)[1:]
        self._log_btc = np.asarray(log_price[-1])
        return np.exp(log_price)

    def _difficulty(self, index: IntArray) -> FloatArray:
        """Network difficulty: constant within an epoch, one log-normal step at each boundary."""
        c = self.config
        epoch_s = c.difficulty_epoch // timedelta(seconds=1)
        epoch = index * self._step_s // epoch_s
        new = int(epoch[-1]) - self._epochs
        steps = self._rng["difficulty"].normal(
            c.difficulty_drift_per_epoch, c.difficulty_volatility_per_epoch, new
        )
        # Walk the log of the change since start, so the first epoch is exactly difficulty_start.
        changes = _walk(self._log_difficulty_change, steps)
        self._log_difficulty_change = np.asarray(changes[-1])
        change: FloatArray = changes[epoch - self._epochs]
        self._epochs = int(epoch[-1])
        return c.difficulty_start * np.exp(change)

    def _fees(self, day: IntArray) -> FloatArray:
        """Fees in BTC/day: one log-normal draw (mean `fees_btc_per_day_mean`) per UTC day."""
        c = self.config
        first = self._fee_day if self._fee_day >= 0 else int(day[0]) - 1
        sigma = c.fees_daily_volatility
        z = self._rng["fees"].standard_normal(int(day[-1]) - first)
        table = np.concatenate(
            [[self._fee], c.fees_btc_per_day_mean * np.exp(sigma * z - sigma**2 / 2)]
        )
        self._fee_day, self._fee = int(day[-1]), float(table[-1])
        return table[day - first]

    def _gpu(self, n: int) -> FloatArray:
        """GPU spot prices in USD/GPU-hour, shape (n, families): geometric random walks."""
        c, days = self.config, self._step_s / _DAY_S
        z = self._rng["gpu"].standard_normal((n, len(self._log_gpu)))
        drift = (c.gpu_spot_daily_drift - c.gpu_spot_daily_volatility**2 / 2) * days
        sd = c.gpu_spot_daily_volatility * math.sqrt(days)
        log_price = _walk(self._log_gpu, drift + sd * z)[1:]
        self._log_gpu = log_price[-1]
        return np.exp(log_price)


def simulate_series(
    config: MarketSimulatorConfig,
    start: datetime,
    steps: int,
    step: timedelta = timedelta(minutes=15),
    seed: int = 0,
) -> MarketSeries:
    """`steps` simulated intervals of length `step` from `start` (UTC); the same seed gives the
    same series, and the first n intervals do not depend on `steps`."""
    return _MarketProcess(config, start, step, seed).advance(steps)


class SimulatedMarketFeed:
    """An endless `MarketFeed` over the simulator, one interval per `next_snapshot()`.

    It yields exactly the intervals `simulate_series` returns for the same arguments.
    """

    def __init__(
        self,
        config: MarketSimulatorConfig | None = None,
        *,
        start: datetime,
        step: timedelta = timedelta(minutes=5),
        seed: int = 0,
    ) -> None:
        self._process = _MarketProcess(config or MarketSimulatorConfig(), start, step, seed)
        self._current: MarketSnapshot | None = None

    @property
    def step(self) -> timedelta:
        """Length of one interval."""
        return self._process.step

    def next_snapshot(self) -> MarketSnapshot:
        """The next interval's prices; never None (the simulator does not run out)."""
        self._current = self._process.advance(1).snapshot(0)
        return self._current

    def current(self) -> MarketSnapshot:
        """The last snapshot produced; before the first `next_snapshot()`, produces it."""
        return self._current or self.next_snapshot()
