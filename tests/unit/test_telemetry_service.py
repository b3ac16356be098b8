"""Telemetry use cases on a recording store: query checks, defaults, maintenance, batching."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from hcp.adapters.clock import ManualClock
from hcp.domain.errors import ValidationError
from hcp.domain.status import UNREACHABLE, DeviceStatus
from hcp.domain.telemetry import Point, Resolution, RetentionPolicy, Sample
from hcp.services.events import ASIC_METRICS, Event
from hcp.services.monitor import status_payload
from hcp.services.telemetry import (
    MAX_POINTS,
    Maintenance,
    SampleBuffer,
    TelemetryRecorder,
    TelemetryService,
    check_query,
    parse_step,
    point_count,
    status_samples,
)

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)


@dataclass
class RecordingStore:
    """A TelemetryStorePort that remembers its calls and answers with one point."""

    calls: list[tuple[object, ...]] = field(default_factory=list)

    def write(self, samples: Iterable[Sample]) -> None:
        self.calls.append(("write", list(samples)))

    def rollup(self, until: datetime) -> int:
        self.calls.append(("rollup", until))
        return 3

    def apply_retention(self, now: datetime, policy: RetentionPolicy) -> dict[Resolution, int]:
        self.calls.append(("retention", now, policy))
        return dict.fromkeys(Resolution, 1)

    def query(
        self, device_id: str, metric: str, start: datetime, end: datetime, step: timedelta
    ) -> list[Point]:
        self.calls.append(("query", device_id, metric, start, end, step))
        return [Point(start, 1.0, 1.0, 1.0, 1)]

    def raw_averages(
        self,
        device_ids: Sequence[str],
        metric: str,
        start: datetime,
        end: datetime,
        step: timedelta = timedelta(seconds=1),
    ) -> dict[str, list[tuple[datetime, float]]]:
        self.calls.append(("raw_averages", list(device_ids), metric, start, end, step))
        return {d: [(start, 1.0)] for d in device_ids}

    def latest(
        self, device_ids: Sequence[str] | None = None
    ) -> dict[tuple[str, str], tuple[datetime, float]]:
        self.calls.append(("latest", device_ids))
        return {}


@pytest.fixture
def store() -> RecordingStore:
    return RecordingStore()


@pytest.fixture
def service(store: RecordingStore) -> TelemetryService:
    return TelemetryService(store, ManualClock(NOW))


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("90", 90), ("60s", 60), ("5m", 300), ("1h", 3600), (" 2D ", 172_800), ("0", 0)],
)
def test_steps_are_seconds_or_carry_a_unit(text: str, seconds: int) -> None:
    assert parse_step(text) == timedelta(seconds=seconds)


@pytest.mark.parametrize("text", ["", "5 m", "1.5s", "-60", "1w", "1234567890"])
def test_a_malformed_step_names_the_step(text: str) -> None:
    with pytest.raises(ValidationError) as raised:
        parse_step(text)
    assert raised.value.field == "step"


@pytest.mark.parametrize(
    ("device", "metric", "start", "end", "step", "field"),
    [
        ("", "power_w", NOW - HOUR, NOW, HOUR, "device"),
        ("m1", "p" * 65, NOW - HOUR, NOW, HOUR, "metric"),
        ("m1", "power_w", NOW, NOW, HOUR, "to"),
        ("m1", "power_w", NOW, NOW - HOUR, HOUR, "to"),
        ("m1", "power_w", NOW - HOUR, NOW, timedelta(0), "step"),
        ("m1", "power_w", NOW - HOUR, NOW, timedelta(milliseconds=1500), "step"),
        ("m1", "power_w", NOW - timedelta(days=365), NOW, timedelta(seconds=1), "step"),
        ("m1", "power_w", NOW.replace(tzinfo=None), NOW, HOUR, "from"),
    ],
)
def test_a_bad_query_names_its_field(
    device: str, metric: str, start: datetime, end: datetime, step: timedelta, field: str
) -> None:
    with pytest.raises(ValidationError) as raised:
        check_query(device, metric, start, end, step)
    assert raised.value.field == field


def test_the_point_limit_counts_whole_steps_from_a_rounded_start() -> None:
    step = timedelta(seconds=10)
    end = NOW + step * MAX_POINTS
    assert point_count(NOW, end, step) == MAX_POINTS
    check_query("m1", "power_w", NOW, end, step)
    with pytest.raises(ValidationError, match="10001 points"):
        check_query("m1", "power_w", NOW - timedelta(seconds=1), end, step)


def test_a_series_defaults_to_the_last_hour_and_reports_the_step_used(
    service: TelemetryService, store: RecordingStore
) -> None:
    series = service.series("m1", "power_w", step=timedelta(seconds=90))
    assert store.calls == [("query", "m1", "power_w", NOW - HOUR, NOW, timedelta(seconds=90))]
    assert (series.step_s, series.resolution) == (120, Resolution.MINUTE)
    assert series.points == [Point(NOW - HOUR, 1.0, 1.0, 1.0, 1)]


def test_a_bad_query_never_reaches_the_store(
    service: TelemetryService, store: RecordingStore
) -> None:
    with pytest.raises(ValidationError):
        service.series("m1", "power_w", NOW, NOW - HOUR)
    assert store.calls == []


def test_maintenance_rolls_up_then_applies_the_policy(store: RecordingStore) -> None:
    policy = RetentionPolicy(raw=timedelta(hours=2))
    service = TelemetryService(store, ManualClock(NOW), policy)
    assert service.maintain() == Maintenance(3, dict.fromkeys(Resolution, 1))
    assert store.calls == [("rollup", NOW), ("retention", NOW, policy)]


def sample(n: int) -> Sample:
    return Sample("m1", "power_w", NOW, float(n))


def test_the_buffer_hands_back_a_full_batch() -> None:
    buffer = SampleBuffer(max_samples=3)
    assert buffer.add([sample(1), sample(2)], NOW) is None
    assert buffer.add([sample(3), sample(4)], NOW) == [sample(n) for n in (1, 2, 3, 4)]
    assert buffer.drain() == []


def test_the_buffer_hands_back_samples_that_waited_long_enough() -> None:
    buffer = SampleBuffer(max_samples=100, max_wait=timedelta(seconds=1))
    assert buffer.due(NOW) is None
    assert buffer.add([sample(1)], NOW) is None
    assert buffer.due(NOW + timedelta(milliseconds=999)) is None
    assert buffer.add([sample(2)], NOW + timedelta(seconds=1)) == [sample(1), sample(2)]
    assert buffer.add([], NOW + timedelta(seconds=5)) is None


MINING = DeviceStatus("site-asic-00001", "mining", True, NOW, "stock", 3500.0, 200.0, 70.0)


def test_a_status_becomes_samples_and_unmeasured_values_are_left_out() -> None:
    assert {s.metric: s.value for s in status_samples(MINING)} == {
        "reachable": 1.0,
        "healthy": 1.0,
        "power_w": 3500.0,
        "hashrate_ths": 200.0,
        "temperature_c": 70.0,
    }
    lost = DeviceStatus("site-gpu-00001", UNREACHABLE, False, NOW, problems=("no answer",))
    assert status_samples(lost) == [
        Sample("site-gpu-00001", "reachable", NOW, 0.0),
        Sample("site-gpu-00001", "healthy", NOW, 0.0),
    ]


async def test_the_recorder_batches_bus_events_into_writes(store: RecordingStore) -> None:
    clock = ManualClock(NOW)
    service = TelemetryService(store, clock)
    recorder = TelemetryRecorder(service, clock, SampleBuffer(max_samples=8))
    event = Event(ASIC_METRICS, MINING.device_id, NOW, status_payload(MINING))
    await recorder.handle(event)
    assert store.calls == []
    await recorder.handle(event)
    assert [len(call[1]) for call in store.calls] == [10]  # type: ignore[arg-type]
    await recorder.handle(event)
    assert await recorder.flush() == 5
    assert await recorder.flush() == 0
    assert len(store.calls) == 2
