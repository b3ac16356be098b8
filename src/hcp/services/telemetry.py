"""Telemetry use cases: record samples in batches (from the fleet topics of the bus), keep the
store rolled up and trimmed, and read one series back at a chosen step, with the query checked
before the store sees it."""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Protocol

from hcp.billing import PowerSample
from hcp.domain.devices import DeviceKind
from hcp.domain.errors import NotFound, ValidationError
from hcp.domain.fleet import Device
from hcp.domain.status import UNREACHABLE, DeviceStatus
from hcp.domain.telemetry import (
    EPOCH,
    Point,
    Resolution,
    RetentionPolicy,
    Sample,
    effective_step_ms,
    floor_ms,
    from_epoch_ms,
    resolution_for,
    to_epoch_ms,
)
from hcp.services.events import Event
from hcp.services.monitor import status_of
from hcp.services.ports import Clock
from hcp.services.recording import TopicRecorder

MAX_POINTS = 10_000
MAX_NAME = 64
DEFAULT_STEP = timedelta(minutes=1)
DEFAULT_WINDOW = timedelta(hours=1)
_STEP = re.compile(r"(\d{1,9})([smhd]?)")
_UNIT_S = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
_ONE_MS = timedelta(milliseconds=1)

RECORDED_METRICS: Mapping[DeviceKind, tuple[str, ...]] = {
    DeviceKind.ASIC: ("reachable", "healthy", "power_w", "hashrate_ths", "temperature_c"),
    DeviceKind.GPU: ("reachable", "healthy", "power_w", "util_pct", "temperature_c"),
}
"""The metrics the platform records for each kind of device (see `status_samples`)."""
_ANY_METRIC = tuple(dict.fromkeys(m for metrics in RECORDED_METRICS.values() for m in metrics))


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
        self, device_ids: Sequence[str] | None = None, until: datetime | None = None
    ) -> dict[tuple[str, str], tuple[datetime, float]]:
        """{(device_id, metric): (at, value)} of the newest sample of each series (at or
        before `until`, when given)."""
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
    `to`, a step of whole seconds, a window holding at least one whole bucket of what the step
    reads (see `Buckets`), and at most MAX_POINTS points over the window. A step longer than
    the window is allowed: its one point covers the window."""
    for name, value in (("device", device_id), ("metric", metric)):
        if not 0 < len(value) <= MAX_NAME:
            raise ValidationError(name, f"must be 1-{MAX_NAME} characters")
    if start.tzinfo is None or end.tzinfo is None:
        raise ValidationError("from" if start.tzinfo is None else "to", "needs a time zone")
    if not start < end:
        raise ValidationError("to", f"must be after from ({start.isoformat()})")
    if step < timedelta(seconds=1) or step % timedelta(seconds=1):
        raise ValidationError("step", "must be a whole number of seconds, at least 1")
    buckets = Buckets.over(start, end, step)
    if buckets.lo >= buckets.hi:
        rollup = resolution_for(step).value
        raise ValidationError(
            "step",
            f"a step of a minute or more reads whole {rollup} rollups and none has closed "
            f"within [from, to): widen the window or take a shorter step",
        )
    if buckets.count > MAX_POINTS:
        raise ValidationError(
            "step",
            f"{buckets.count} points over this window; at most {MAX_POINTS}: widen the step",
        )


def check_metric(metric: str, kind: DeviceKind | None = None) -> None:
    """ValidationError naming `metric` unless the platform records it (for `kind`, if given)."""
    known = RECORDED_METRICS[kind] if kind is not None else _ANY_METRIC
    if metric in known:
        return
    if kind is not None and metric in _ANY_METRIC:
        device = "an ASIC" if kind is DeviceKind.ASIC else "a GPU"
        message = f"{device} does not report {metric}; it reports {', '.join(known)}"
    else:
        message = f"unknown metric {metric!r}; the metrics are {', '.join(_ANY_METRIC)}"
    raise ValidationError("metric", message)


def point_count(start: datetime, end: datetime, step: timedelta) -> int:
    """How many points a query over [start, end) at `step` may answer (see `Buckets`)."""
    return Buckets.over(start, end, step).count


@dataclass(frozen=True, slots=True)
class Buckets:
    """How a window [start, end) is read at one step, in epoch ms: no point covers time
    outside the window, except that a window at least one rollup wide but holding no whole
    one reads the rollup that holds `start` (a 1-hour step over the last hour gives the last
    closed hour).

    The store keeps buckets `width_ms` wide (1 ms for raw samples, else 1-minute or 1-hour
    rollups), and only those wholly inside the window are read: [lo, hi). Points are aligned to
    multiples of the step (since the epoch): whole steps from `first`, the first multiple at or
    after `lo`, up to `hi` (the last one cut short there); the stretch [lo, first) before them,
    shorter than a step, is one more point, starting at `lo`. A step longer than the window
    (even 999999999d) thus gives one or two points that together cover the window."""

    step_ms: int
    width_ms: int
    lo: int
    hi: int
    first: int

    @classmethod
    def over(cls, start: datetime, end: datetime, step: timedelta) -> Buckets:
        step_ms = effective_step_ms(step)
        width = resolution_for(step).width_ms
        start_ms = -(-(start - EPOCH) // _ONE_MS)  # rounded up: no sample before `start`
        lo, hi = _ceil_ms(start_ms, width), floor_ms(to_epoch_ms(end), width)
        # The window's length from the instants themselves: `start` rounded up and `end` down
        # to the millisecond would make the last hour 1 ms short of one.
        if lo >= hi and end - start >= timedelta(milliseconds=width):
            # A window a rollup wide holds no whole one unless aligned (an hour's step over the
            # last hour, say): the rollup that holds `start`, closed by `end`, rather than none.
            lo = floor_ms(start_ms, width)
        return cls(step_ms, width, lo, hi, _ceil_ms(lo, step_ms))

    @property
    def head_end(self) -> int:
        """Where the stretch before the first whole step ends (`lo` when there is none)."""
        return max(self.lo, min(self.first, self.hi))

    @property
    def count(self) -> int:
        """The most points the window can give (buckets without data are left out)."""
        if self.lo >= self.hi:
            return 0
        head = 1 if self.head_end > self.lo else 0
        return head + max(0, -(-(self.hi - self.first) // self.step_ms))


def _ceil_ms(ms: int, width_ms: int) -> int:
    return -(-ms // width_ms) * width_ms


def _merged(points: Sequence[Point], at: datetime) -> Point:
    """Many points as one starting at `at`: the mean weighted by their sample counts."""
    count = sum(p.count for p in points)
    total = sum(p.avg * p.count for p in points)
    return Point(at, total / count, min(p.min for p in points), max(p.max for p in points), count)


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
        kind_of: Callable[[str], DeviceKind | None] | None = None,
    ) -> TelemetrySeries:
        """One series over [start, end) (default: the last hour), a point per `step`; no point
        covers time outside the window (see `Buckets`).

        With `kind_of` (a device id's kind, None for no such device) the metric must be one the
        platform records (else ValidationError), of a device that exists (else NotFound), for
        its kind (else ValidationError); without it any name is read (an unknown one is empty).
        """
        end = end or self._clock.now()
        start = start or end - DEFAULT_WINDOW
        check_query(device_id, metric, start, end, step)
        if kind_of is not None:
            check_metric(metric)
            kind = kind_of(device_id)
            if kind is None:
                raise NotFound("device", device_id)
            check_metric(metric, kind)
        buckets = Buckets.over(start, end, step)
        points: list[Point] = []
        if buckets.head_end > buckets.lo:
            lo, head_end = from_epoch_ms(buckets.lo), from_epoch_ms(buckets.head_end)
            width = timedelta(milliseconds=buckets.width_ms)
            head = self._store.query(device_id, metric, lo, head_end, width)
            if head:
                points.append(_merged(head, lo))
        if buckets.first < buckets.hi:  # `first` may lie past any datetime: compare in ms
            first, hi = from_epoch_ms(buckets.first), from_epoch_ms(buckets.hi)
            points.extend(self._store.query(device_id, metric, first, hi, step))
        step_s = buckets.step_ms // 1000
        return TelemetrySeries(device_id, metric, step_s, resolution_for(step), points)

    def latest(
        self, device_ids: Sequence[str] | None = None
    ) -> dict[tuple[str, str], tuple[datetime, float]]:
        """The newest sample of every series (of `device_ids` only, when given)."""
        return self._store.latest(device_ids)

    def current(self) -> dict[tuple[str, str], tuple[datetime, float]]:
        """What each device's newest status up to now measured: {(device_id, metric): (at,
        value)} of the samples stamped with it. A metric that status did not measure (an
        unreachable device's power, hashrate, temperature) is left out rather than shown at
        an older poll's value; samples stored ahead of now (a sped-up run) are not current."""
        newest = self._store.latest(until=self._clock.now())
        polled: dict[str, datetime] = {}
        for (device_id, _metric), (at, _value) in newest.items():
            if device_id not in polled or at > polled[device_id]:
                polled[device_id] = at
        return {key: sample for key, sample in newest.items() if sample[0] == polled[key[0]]}

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
    (1.0 or 0.0) always; power W, temperature °C and a miner's hashrate TH/s or a GPU's
    utilisation % only from a device that answered (an unreachable one reports zeros that
    were never measured)."""
    reachable = status.state != UNREACHABLE
    values: dict[str, float | None] = {
        "reachable": float(reachable),
        "healthy": float(status.healthy),
    }
    if reachable:
        values |= {"power_w": status.power_w, "temperature_c": status.temperature_c}
        if status.util_pct is None:
            values["hashrate_ths"] = status.hashrate_ths  # a miner
        else:
            values["util_pct"] = status.util_pct  # a GPU: it has no hashrate to record
    at, device = status.at, status.device_id
    return [Sample(device, metric, at, v) for metric, v in values.items() if v is not None]


class TelemetryRecorder(TopicRecorder[list[Sample]]):
    """A bus handler for the fleet topics (`asic-metrics`, `gpu-metrics`): each status event
    becomes samples in its topic's SampleBuffer; a full batch is written at once (in a worker
    thread), the rest by `commit` (see `hcp.services.recording` for when an event counts as
    stored). Call both from the event loop."""

    def __init__(
        self,
        service: TelemetryService,
        clock: Clock,
        buffer: Callable[[], SampleBuffer] = SampleBuffer,
    ) -> None:
        super().__init__()
        self._service = service
        self._clock = clock
        self._new_buffer = buffer
        self._buffers: dict[str, SampleBuffer] = {}

    async def handle(self, event: Event) -> None:
        buffer = self._buffers.get(event.topic)
        if buffer is None:
            buffer = self._buffers[event.topic] = self._new_buffer()
        batch = buffer.add(status_samples(status_of(event)), self._clock.now())
        if batch:
            await self._store(event.topic, batch)

    def _topics(self) -> list[str]:
        return list(self._buffers)

    def _take(self, topic: str) -> list[Sample]:
        buffer = self._buffers.get(topic)
        return buffer.drain() if buffer is not None else []

    def _write(self, batches: Iterable[list[Sample]]) -> int:
        samples = [sample for batch in batches for sample in batch]
        if samples:
            self._service.record(samples)
        return len(samples)


class DeviceKinds:
    """Device id -> kind, for checking telemetry queries: read from the fleet on first use, and
    again when asked for an id it does not hold, at most once every `refresh_s` seconds (a
    device never changes kind; reading every device for each query would cost more than the
    query, 0.1 s at 11,000 devices)."""

    def __init__(
        self,
        devices: Callable[[], Iterable[Device]],
        refresh_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._devices = devices
        self._refresh_s = refresh_s
        self._monotonic = monotonic
        self._kinds: dict[str, DeviceKind] | None = None
        self._read_at = 0.0
        self._lock = threading.Lock()

    def kind_of(self, device_id: str) -> DeviceKind | None:
        kinds = self._kinds
        if kinds is not None and device_id in kinds:
            return kinds[device_id]
        with self._lock:  # one read of the fleet at a time, by whichever request needs it
            kinds = self._kinds
            stale = self._monotonic() - self._read_at >= self._refresh_s
            if kinds is None or (device_id not in kinds and stale):
                kinds = {d.id: d.kind for d in self._devices()}
                self._kinds, self._read_at = kinds, self._monotonic()
            return kinds.get(device_id)
