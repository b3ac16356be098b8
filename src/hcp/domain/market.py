"""Market data: every price the optimizer and the economics need at one instant
(`MarketSnapshot`) and over a window (`MarketSeries`, columnar, numpy)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from types import MappingProxyType

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True, slots=True)
class MarketSnapshot:
    """Prices at one instant (`at`, UTC, the start of the interval they apply to).

    Electricity is the real-time price per market node in USD/MWh (it may be negative);
    `day_ahead_usd_per_mwh` holds day-ahead prices for the same interval where known.
    Bitcoin figures are network-wide: difficulty, fees paid to miners in BTC per day, price.
    GPU spot is USD per GPU-hour per GPU family (`H100`, `A100`, ...).
    """

    at: datetime
    electricity_usd_per_mwh: Mapping[str, float]
    btc_usd: float
    difficulty: float
    fees_btc_per_day: float
    gpu_spot_usd_per_gpu_hour: Mapping[str, float]
    day_ahead_usd_per_mwh: Mapping[str, float] = field(default_factory=dict)

    def electricity(self, node: str) -> float:
        """Real-time price at `node` in USD/MWh; KeyError names the node and the known ones."""
        try:
            return self.electricity_usd_per_mwh[node]
        except KeyError:
            known = ", ".join(sorted(self.electricity_usd_per_mwh))
            raise KeyError(f"no electricity price for node {node!r} (known: {known})") from None

    def gpu_spot(self, family: str) -> float:
        """Spot rental price for a GPU family in USD/GPU-hour, 0.0 when the market quotes none."""
        return self.gpu_spot_usd_per_gpu_hour.get(family, 0.0)


FloatArray = npt.NDArray[np.float64]


def _frozen(values: npt.ArrayLike, name: str) -> FloatArray:
    """`values` as a read-only 1-D float64 array (copied unless it already is one)."""
    if isinstance(values, np.ndarray) and values.dtype == np.float64 and not values.flags.writeable:
        array: FloatArray = values
    else:
        array = np.array(values, dtype=np.float64)
        array.flags.writeable = False
    if array.ndim != 1:
        raise ValueError(f"{name}: expected a 1-D array, got shape {array.shape}")
    return array


def _frozen_map(values: Mapping[str, npt.ArrayLike], name: str) -> Mapping[str, FloatArray]:
    return MappingProxyType({key: _frozen(v, f"{name}[{key}]") for key, v in values.items()})


_DAY = timedelta(days=1)


@dataclass(frozen=True, slots=True)
class BitcoinDays:
    """Bitcoin's daily figures by UTC date: entry `k` is the day `first + k days`. Difficulty,
    fees (the day's total, BTC/day) and price (USD) as in `MarketSnapshot`. Read-only."""

    first: date
    difficulty: FloatArray
    fees_btc_per_day: FloatArray
    btc_usd: FloatArray

    def __post_init__(self) -> None:
        set_ = object.__setattr__
        for name in ("difficulty", "fees_btc_per_day", "btc_usd"):
            set_(self, name, _frozen(getattr(self, name), name))
        lengths = {len(self.difficulty), len(self.fees_btc_per_day), len(self.btc_usd)}
        if len(lengths) != 1 or not len(self):
            raise ValueError(f"bitcoin days: columns of one length ≥ 1, got {sorted(lengths)}")

    def __len__(self) -> int:
        return len(self.btc_usd)

    @property
    def last(self) -> date:
        return self.first + (len(self) - 1) * _DAY

    def covers(self, start: datetime, end: datetime) -> bool:
        """Whether every UTC day of [start, end) is here."""
        last_day = (end - timedelta(microseconds=1)).astimezone(UTC).date()
        return self.first <= start.astimezone(UTC).date() and last_day <= self.last


# The per-node / per-family columns of a MarketSeries.
_MAPPED = ("electricity_usd_per_mwh", "gpu_spot_usd_per_gpu_hour", "day_ahead_usd_per_mwh")


@dataclass(frozen=True, slots=True)
class MarketSeries:
    """A market over a window with a fixed step: one column of values per quantity, one row per
    interval. Interval `i` starts at `start + i * step` (UTC); `times` gives them as
    numpy `datetime64[s]` (UTC, zone-less as numpy requires).

    Units as in `MarketSnapshot`: electricity and day-ahead in USD/MWh per node (day-ahead is NaN
    where unknown), `btc_usd` in USD, `difficulty` dimensionless, `fees_btc_per_day` in BTC/day,
    GPU spot in USD/GPU-hour per family. An interval's daily bitcoin figures are those of the
    UTC date it starts on. The arrays are read-only; the series is immutable.

    `bitcoin_days`, where the figures come from a daily table (replayed files), is that table
    over every UTC day the intervals touch: a step longer than an hour can end on a later day
    than it starts, and mining earns each day's figures for the part of it in that day.
    """

    start: datetime
    step: timedelta
    electricity_usd_per_mwh: Mapping[str, FloatArray]
    btc_usd: FloatArray
    difficulty: FloatArray
    fees_btc_per_day: FloatArray
    gpu_spot_usd_per_gpu_hour: Mapping[str, FloatArray] = field(default_factory=dict)
    day_ahead_usd_per_mwh: Mapping[str, FloatArray] = field(default_factory=dict)
    bitcoin_days: BitcoinDays | None = None

    def __post_init__(self) -> None:
        if self.start.utcoffset() != timedelta(0):
            raise ValueError(f"start must be timezone-aware UTC, got {self.start!r}")
        if self.step <= timedelta(0) or self.step % timedelta(seconds=1):
            raise ValueError(f"step must be a positive whole number of seconds, got {self.step}")
        set_ = object.__setattr__
        set_(self, "start", self.start.astimezone(UTC))
        set_(self, "btc_usd", _frozen(self.btc_usd, "btc_usd"))
        set_(self, "difficulty", _frozen(self.difficulty, "difficulty"))
        set_(self, "fees_btc_per_day", _frozen(self.fees_btc_per_day, "fees_btc_per_day"))
        for name in _MAPPED:
            set_(self, name, _frozen_map(getattr(self, name), name))
        self._check_lengths()
        days = self.bitcoin_days
        if days is not None and not days.covers(self.start, self.end):
            raise ValueError(
                f"bitcoin_days {days.first}..{days.last} do not cover the series {self._coverage()}"
            )

    def _check_lengths(self) -> None:
        n = len(self.btc_usd)
        columns = {"difficulty": self.difficulty, "fees_btc_per_day": self.fees_btc_per_day}
        for name in _MAPPED:
            columns.update({f"{name}[{k}]": v for k, v in getattr(self, name).items()})
        for name, values in columns.items():
            if len(values) != n:
                raise ValueError(f"{name} has {len(values)} values, btc_usd has {n}")

    def __len__(self) -> int:
        return len(self.btc_usd)

    @property
    def end(self) -> datetime:
        """End of the last interval (exclusive), UTC."""
        return self.start + len(self) * self.step

    @property
    def nodes(self) -> tuple[str, ...]:
        """The market nodes with a real-time electricity price, in insertion order."""
        return tuple(self.electricity_usd_per_mwh)

    @property
    def times(self) -> npt.NDArray[np.datetime64]:
        """Interval starts as numpy `datetime64[s]` (UTC)."""
        first = np.datetime64(self.start.replace(tzinfo=None), "s")
        return first + np.arange(len(self)) * np.timedelta64(self.step // timedelta(seconds=1), "s")

    def time_at(self, i: int) -> datetime:
        """Start (UTC) of interval `i`; negative `i` counts from the end."""
        return self.start + self._position(i) * self.step

    def index_of(self, at: datetime) -> int:
        """The interval that starts at `at`; ValueError when `at` is off the grid or outside."""
        offset = self._offset_steps(at, "at")
        if not 0 <= offset < len(self):
            raise ValueError(f"{at.isoformat()} is outside the series {self._coverage()}")
        return offset

    def snapshot(self, i: int) -> MarketSnapshot:
        """Every price of interval `i` (negative counts from the end); day-ahead where known."""
        i = self._position(i)
        day_ahead = {
            k: float(v[i]) for k, v in self.day_ahead_usd_per_mwh.items() if not math.isnan(v[i])
        }
        return MarketSnapshot(
            at=self.start + i * self.step,
            electricity_usd_per_mwh={
                k: float(v[i]) for k, v in self.electricity_usd_per_mwh.items()
            },
            btc_usd=float(self.btc_usd[i]),
            difficulty=float(self.difficulty[i]),
            fees_btc_per_day=float(self.fees_btc_per_day[i]),
            gpu_spot_usd_per_gpu_hour={
                k: float(v[i]) for k, v in self.gpu_spot_usd_per_gpu_hour.items()
            },
            day_ahead_usd_per_mwh=day_ahead,
        )

    def window(self, start: datetime, end: datetime) -> MarketSeries:
        """The intervals in [start, end) as a series sharing this one's (read-only) arrays.

        ValueError when the bounds are off the step grid, empty, or outside this series.
        """
        first, stop = self._offset_steps(start, "start"), self._offset_steps(end, "end")
        if not 0 <= first < stop <= len(self):
            raise ValueError(
                f"window {start.isoformat()}..{end.isoformat()} is empty or outside "
                f"the series {self._coverage()}"
            )
        cut = slice(first, stop)
        return MarketSeries(
            start=self.start + first * self.step,
            step=self.step,
            electricity_usd_per_mwh={k: v[cut] for k, v in self.electricity_usd_per_mwh.items()},
            btc_usd=self.btc_usd[cut],
            difficulty=self.difficulty[cut],
            fees_btc_per_day=self.fees_btc_per_day[cut],
            gpu_spot_usd_per_gpu_hour={
                k: v[cut] for k, v in self.gpu_spot_usd_per_gpu_hour.items()
            },
            day_ahead_usd_per_mwh={k: v[cut] for k, v in self.day_ahead_usd_per_mwh.items()},
            bitcoin_days=self.bitcoin_days,
        )

    def _position(self, i: int) -> int:
        if not -len(self) <= i < len(self):
            raise IndexError(f"interval {i} out of range for a series of {len(self)}")
        return i % len(self)

    def _offset_steps(self, at: datetime, name: str) -> int:
        if at.utcoffset() is None:
            raise ValueError(f"{name} must be timezone-aware, got {at!r}")
        steps, rest = divmod(at - self.start, self.step)
        if rest:
            raise ValueError(
                f"{name} {at.isoformat()} is not on the {self.step} grid of the "
                f"series starting {self.start.isoformat()}"
            )
        return steps

    def _coverage(self) -> str:
        return f"{self.start.isoformat()}..{self.end.isoformat()}"
