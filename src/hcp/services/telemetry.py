"""Telemetry use cases: record samples in batches (from the fleet topics of the bus), keep the
store rolled up and trimmed, and read one series back at a chosen step, with the query checked
before the store sees it."""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from hcp.billing import PowerSample
from hcp.domain.errors import ValidationError
from hcp.domain.status import UNREACHABLE, DeviceStatus
from hcp.domain.telemetry import (
    Point,
    Resolution,
    RetentionPolicy,
    Sample,
    effective_step_ms,
    floor_ms,
    resolution_for,
    to_epoch_ms,
)
from hcp.services.events import Event
from hcp.services.monitor import status_of
from hcp.services.ports import Clock

MAX_POINTS = 10_000
MAX_NAME = 64
DEFAULT_STEP = timedelta(minutes=1)
DEFAULT_WINDOW = timedelta(hours=1)
_STEP = re.compile(r"(\d{1,9})([smhd]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}


class TelemetryStorePort(Protocol):
    """Where samples are kept (the SQL implementation: `hcp.adapters.db.telemetry`)."""

    def write(self, samples: Iterable[Sample]) -> None:
        """Store `samples` durably in one transaction."""
        ...

    def rollup(self, until: datetime) -> int:
        """Compute the 1-minute and 1-hour rollups closed by `until`; rows written."""
        ...

    def apply_retention(self, now: datetime, policy: RetentionPolicy) -> dict[Resolution, int]:
        """Delete what `policy` no longer keeps; rows deleted per resolution."""
        ...

    def query(
        self, device_id: str, metric: str, start: datetime, end: datetime, step: timedelta
    ) -> list[Point]:
        """One point per `step` bucket with data over [start, end)."""
        ...

    def raw_averages(
        self,
        device_ids: Sequence[str],
        metric: str,
        start: datetime,
        end: datetime,
        step: timedelta = ...,
    ) -> dict[str, list[tuple[datetime, float]]]:
        """Raw samples of many devices' `metric` over [start, end), averaged per `step`
        bucket: {device_id: [(bucket start, mean)]}, devices without samples left out."""
        ...

    def latest(
        self, device_ids: Sequence[str] | None = None
    ) -> dict[tuple[str, str], tuple[datetime, float]]:
        """{(device_id, metric): (at, value)} of the newest sample of each series."""
        ...


@dataclass(frozen=True, slots=True)
class TelemetrySeries:
    """A queried series: `step_s` is the step actually used (whole buckets of `resolution`)."""

    device_id: str
    metric: str
    step_s: int
    resolution: Resolution
    points: list[Point]


@dataclass(frozen=True, slots=True)
class Maintenance:
    """What one maintenance pass did: rollup rows written, rows deleted per resolution."""

    rollup_rows: int
    deleted: dict[Resolution, int]


def parse_step(text: str) -> timedelta:
    """A step written as seconds (`90`) or with a unit (`90s`, `5m`, `1h`, `1d`)."""
    match = _STEP.fullmatch(text.strip().lower())
    if match is None:
        raise ValidationError("step", f"{text!r} is not a step: use seconds or 60s, 5m, 1h, 1d")
    return timedelta(seconds=int(match[1]) * _UNIT_S[match[2]])


def check_query(
    device_id: str, metric: str, start: datetime, end: datetime, step: timedelta
) -> None:
    """ValidationError naming the first bad field: names of 1-64 characters, `from` before
    `to`, a step of whole seconds, and at most MAX_POINTS points over the window."""
    for name, value in (("device", device_id), ("metric", metric)):
        if not 0 < len(value) <= MAX_NAME:
            raise ValidationError(name, f"must be 1-{MAX_NAME} characters")
    if start.tzinfo is None or end.tzinfo is None:
        raise ValidationError("from" if start.tzinfo is None else "to", "needs a time zone")
    if not start < end:
        raise ValidationError("to", f"must be after from ({start.isoformat()})")
    if step < timedelta(seconds=1) or step % timedelta(seconds=1):
        raise ValidationError("step", "must be a whole number of seconds, at least 1")
    points = point_count(start, end, step)
    if points > MAX_POINTS:
        raise ValidationError(
            "step", f"{points} points over this window; at most {MAX_POINTS}: widen the step"
        )


def point_count(start: datetime, end: datetime, step: timedelta) -> int:
    """Buckets the store's query spans: from `start` rounded down to a step to `end`."""
    step_ms = effective_step_ms(step)
    span_ms = to_epoch_ms(end) - floor_ms(to_epoch_ms(start), step_ms)
    return -(-span_ms // step_ms)


class TelemetryService:
    def __init__(
        self,
        store: TelemetryStorePort,
        clock: Clock,
        policy: RetentionPolicy | None = None,
    ) -> None:
        self._store = store
        self._clock = clock
        self._policy = policy or RetentionPolicy()

    def record(self, samples: Iterable[Sample]) -> None:
        """Store one batch of samples (one transaction: batch them, see SampleBuffer)."""
        self._store.write(samples)

    def maintain(self) -> Maintenance:
        """Roll up what has closed by now, then apply the retention policy."""
        now = self._clock.now()
        rows = self._store.rollup(now)
        return Maintenance(rows, self._store.apply_retention(now, self._policy))

    def series(
        self,
        device_id: str,
        metric: str,
        start: datetime | None = None,
        end: datetime | None = None,
        step: timedelta = DEFAULT_STEP,
    ) -> TelemetrySeries:
        """One series over [start, end) (default: the last hour), a point per `step`."""
        end = end or self._clock.now()
        start = start or end - DEFAULT_WINDOW
        check_query(device_id, metric, start, end, step)
        points = self._store.query(device_id, metric, start, end, step)
        step_s = effective_step_ms(step) // 1000
        return TelemetrySeries(device_id, metric, step_s, resolution_for(step), points)

    def latest(
        self, device_ids: Sequence[str] | None = None
    ) -> dict[tuple[str, str], tuple[datetime, float]]:
        """The newest sample of every series (of `device_ids` only, when given)."""
        return self._store.latest(device_ids)

    def power_samples(
        self, device_ids: Sequence[str], start: datetime, end: datetime
    ) -> dict[str, list[PowerSample]]:
        """Raw wall-power readings (W) of each device in [start, end), for metering energy."""
        series = self._store.raw_averages(device_ids, "power_w", start, end, timedelta(seconds=1))
        return {d: [PowerSample(at, w) for at, w in points] for d, points in series.items()}


@dataclass(slots=True)
class SampleBuffer:
    """Gathers samples from many small events into store-sized batches: `add` hands back a
    batch once `max_samples` are held or the oldest has waited `max_wait`; `due` checks the
    wait alone (call it from a timer); `drain` empties the buffer (on shutdown)."""

    max_samples: int = 10_000
    max_wait: timedelta = timedelta(seconds=1)
    _held: list[Sample] = field(default_factory=list)
    _since: datetime | None = None

    def add(self, samples: Iterable[Sample], now: datetime) -> list[Sample] | None:
        self._held.extend(samples)
        if self._since is None and self._held:
            self._since = now
        return self.drain() if len(self._held) >= self.max_samples else self.due(now)

    def due(self, now: datetime) -> list[Sample] | None:
        if self._since is None or now - self._since < self.max_wait:
            return None
        return self.drain()

    def drain(self) -> list[Sample]:
        held, self._held, self._since = self._held, [], None
        return held


def status_samples(status: DeviceStatus) -> list[Sample]:
    """The samples of one device status as the fleet topics carry it: `reachable` and `healthy`
    (1.0 or 0.0) always; power W, hashrate TH/s and temperature °C only from a device that
    answered (an unreachable one reports zeros that were never measured)."""
    reachable = status.state != UNREACHABLE
    values: dict[str, float | None] = {
        "reachable": float(reachable),
        "healthy": float(status.healthy),
    }
    if reachable:
        values |= {
            "power_w": status.power_w,
            "hashrate_ths": status.hashrate_ths,
            "temperature_c": status.temperature_c,
        }
    at, device = status.at, status.device_id
    return [Sample(device, metric, at, v) for metric, v in values.items() if v is not None]


class TelemetryRecorder:
    """A bus handler for the fleet topics (`asic-metrics`, `gpu-metrics`): each status event
    becomes samples in a SampleBuffer; a full batch is written at once (in a worker thread),
    the rest by `flush`. Call both from the event loop."""

    def __init__(
        self, service: TelemetryService, clock: Clock, buffer: SampleBuffer | None = None
    ) -> None:
        self._service = service
        self._clock = clock
        self._buffer = buffer or SampleBuffer()

    async def handle(self, event: Event) -> None:
        batch = self._buffer.add(status_samples(status_of(event)), self._clock.now())
        if batch:
            await asyncio.to_thread(self._service.record, batch)

    async def flush(self) -> int:
        """Write whatever is buffered; returns how many samples."""
        batch = self._buffer.drain()
        if batch:
            await asyncio.to_thread(self._service.record, batch)
        return len(batch)
