"""Telemetry: what a device reported at one instant (readings), the samples a reading is stored
as, and the pure rules of the telemetry store (epoch-ms time, resolutions, retention)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import NamedTuple

from hcp.domain.gpu_telemetry import GpuReading


class MinerState(StrEnum):
    """What an ASIC is doing: hashing, asleep (curtailed), ramping up after a wake, or broken."""

    MINING = "mining"
    SLEEPING = "sleeping"
    WAKING = "waking"
    FAULT = "fault"


@dataclass(frozen=True, slots=True)
class AsicReading:
    """One poll of one ASIC miner.

    `device` is how the driver reached it (`host:port`); `at` is when the poll finished (UTC).
    Hashrate in TH/s and wall power in W as the miner reports them; `temperature_c` is the hottest
    hashboard in °C (None when no board reports one). `problems` lists what is wrong in words
    ("board 2 dead", "overheating: 97 °C >= 90 °C"); a reading without problems is healthy.
    """

    device: str
    at: datetime
    state: MinerState
    hashrate_ths: float
    power_w: float
    temperature_c: float | None
    profile: str | None
    accepted_shares: int
    rejected_shares: int
    problems: tuple[str, ...] = ()

    @property
    def healthy(self) -> bool:
        return not self.problems

    @property
    def mining(self) -> bool:
        """True only while hashing at its profile (a waking miner is not mining yet)."""
        return self.state is MinerState.MINING


# --- Samples: the stored form of every reading -------------------------------------------------

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_ONE_MS = timedelta(milliseconds=1)
MINUTE_MS = 60_000
HOUR_MS = 3_600_000


class Sample(NamedTuple):
    """One value of one metric of one device at one instant (timezone-aware).

    The metric's name carries its unit (`power_w` in W, `temp_c` in °C, ...). A NamedTuple, not a
    dataclass: the ingest path builds and unpacks hundreds of thousands of these a second.
    """

    device_id: str
    metric: str
    at: datetime
    value: float


def asic_samples(reading: AsicReading, device_id: str | None = None) -> list[Sample]:
    """The samples of one ASIC poll; `device_id` names the device (default: the poll address).

    `healthy` and `mining` are 1.0 or 0.0; the temperature is left out when no board reports one.
    """
    device = device_id or reading.device
    values = {
        "hashrate_ths": reading.hashrate_ths,
        "power_w": reading.power_w,
        "temperature_c": reading.temperature_c,
        "accepted_shares": float(reading.accepted_shares),
        "rejected_shares": float(reading.rejected_shares),
        "healthy": float(reading.healthy),
        "mining": float(reading.mining),
    }
    return _samples(device, reading.at, values)


def gpu_samples(reading: GpuReading, device_id: str | None = None) -> list[Sample]:
    """The samples of one GPU scrape; `device_id` defaults to `host/gpuN` (the fleet address)."""
    device = device_id or f"{reading.host}/gpu{reading.gpu_index}"
    values = {
        "util_pct": reading.util_pct,
        "power_w": reading.power_w,
        "temp_c": reading.temp_c,
        "fb_used_mib": float(reading.fb_used_mib),
        "fb_free_mib": float(reading.fb_free_mib),
        "xid_last": float(reading.xid_errors),
    }
    return _samples(device, reading.at, values)


def _samples(device: str, at: datetime, values: Mapping[str, float | None]) -> list[Sample]:
    return [Sample(device, name, at, v) for name, v in values.items() if v is not None]


# --- Time as integer epoch milliseconds (how the store keeps it) --------------------------------


def to_epoch_ms(at: datetime) -> int:
    """Milliseconds since 1970-01-01 UTC, rounded down (exact: no float on the way)."""
    if at.tzinfo is None:
        raise ValueError(f"naive datetime {at!r}: telemetry times must be timezone-aware")
    return (at - EPOCH) // _ONE_MS


def from_epoch_ms(ms: int) -> datetime:
    """The UTC instant `ms` milliseconds after the epoch."""
    return EPOCH + timedelta(milliseconds=ms)


def floor_ms(ms: int, width_ms: int) -> int:
    """Start of the `width_ms`-long bucket (aligned to the epoch) that holds `ms`."""
    return ms - ms % width_ms


# --- Resolutions, query points and retention ---------------------------------------------------


class Resolution(StrEnum):
    """Where a series is read from: raw samples, or the 1-minute or 1-hour rollups."""

    RAW = "raw"
    MINUTE = "1m"
    HOUR = "1h"

    @property
    def width_ms(self) -> int:
        """Bucket width in ms (1 for raw: samples are kept to the millisecond)."""
        return _WIDTH_MS[self]


_WIDTH_MS = {Resolution.RAW: 1, Resolution.MINUTE: MINUTE_MS, Resolution.HOUR: HOUR_MS}


def resolution_for(step: timedelta) -> Resolution:
    """Raw samples for steps under a minute, 1-minute rollups under an hour, else 1-hour ones."""
    if step < timedelta(minutes=1):
        return Resolution.RAW
    return Resolution.MINUTE if step < timedelta(hours=1) else Resolution.HOUR


def effective_step_ms(step: timedelta) -> int:
    """`step` in ms, rounded up to a whole number of its resolution's buckets (a 90 s step reads
    1-minute rollups and becomes 120 s): a point never splits a stored bucket."""
    width = resolution_for(step).width_ms
    step_ms = max(1, -(-step // _ONE_MS))
    return -(-step_ms // width) * width


@dataclass(frozen=True, slots=True)
class Point:
    """One step of a queried series: the bucket's start and its samples' mean, min, max, count."""

    at: datetime
    avg: float
    min: float
    max: float
    count: int


@dataclass(frozen=True, slots=True)
class RetentionPolicy:
    """How long each resolution is kept: raw samples, 1-minute and 1-hour rollups."""

    raw: timedelta = timedelta(hours=24)
    minute: timedelta = timedelta(days=7)
    hour: timedelta = timedelta(days=365)

    def __post_init__(self) -> None:
        if not timedelta(0) < self.raw <= self.minute <= self.hour:
            # Rollups are recomputed from the finer level: that level must outlive them.
            raise ValueError(f"retention must satisfy 0 < raw <= minute <= hour, got {self}")

    def cutoffs_ms(self, now: datetime) -> dict[Resolution, int]:
        """Per resolution, the epoch ms before which data is deleted, floored to a whole hour
        (so every hour a rollup may recompute still has all of its finer rows)."""
        now_ms = to_epoch_ms(now)
        kept = {
            Resolution.RAW: self.raw,
            Resolution.MINUTE: self.minute,
            Resolution.HOUR: self.hour,
        }
        return {r: floor_ms(now_ms - age // _ONE_MS, HOUR_MS) for r, age in kept.items()}
