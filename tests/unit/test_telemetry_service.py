"""Telemetry use cases on a recording store: query checks, defaults, maintenance, batching."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from hcp.adapters.clock import ManualClock
from hcp.domain.devices import DeviceKind
from hcp.domain.errors import NotFound, ValidationError
from hcp.domain.fleet import Device
from hcp.domain.gpu_telemetry import GpuReading
from hcp.domain.status import UNREACHABLE, DeviceStatus, gpu_status
from hcp.domain.telemetry import Point, Resolution, RetentionPolicy, Sample
from hcp.services.events import ASIC_METRICS, GPU_METRICS, Event
from hcp.services.monitor import status_of, status_payload
from hcp.services.telemetry import (
    MAX_POINTS,
    DeviceKinds,
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
        self, device_ids: Sequence[str] | None = None, until: datetime | None = None
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


def test_an_xid_a_program_raised_leaves_the_gpu_healthy_and_others_do_not() -> None:
    """DCGM keeps reporting the last Xid: 13 (a graphics engine exception in the user's
    program) failed the work, not the GPU; 48 (a double-bit ECC error) needs a reset."""
    for xid, healthy in ((0, True), (13, True), (31, True), (48, False), (79, False)):
        reading = GpuReading("node-1", 0, "GPU-1", "H100 SXM", NOW, 0.0, 70.0, 40.0, 0, 81_000, xid)
        status = gpu_status("site-gpu-00001", reading, NOW)
        assert status.healthy is healthy, xid
        assert status.problems == (() if healthy else (f"XID {xid}",))


def test_a_gpu_records_its_utilisation_and_no_hashrate() -> None:
    reading = GpuReading(
        "node-1", 0, "GPU-1", "H100 SXM", NOW, 87.0, 690.0, 61.0, 70_000, 11_000, 0
    )
    status = gpu_status("site-gpu-00001", reading, NOW)
    assert {s.metric: s.value for s in status_samples(status)} == {
        "reachable": 1.0,
        "healthy": 1.0,
        "power_w": 690.0,
        "temperature_c": 61.0,
        "util_pct": 87.0,
    }
    # ... as the bus carries it to the recorder
    event = Event(GPU_METRICS, status.device_id, NOW, status_payload(status))
    assert status_of(event) == status


async def test_the_recorder_batches_bus_events_into_writes(store: RecordingStore) -> None:
    clock = ManualClock(NOW)
    service = TelemetryService(store, clock)
    recorder = TelemetryRecorder(service, clock, lambda: SampleBuffer(max_samples=8))
    event = Event(ASIC_METRICS, MINING.device_id, NOW, status_payload(MINING))
    await recorder.handle(event)
    assert store.calls == []
    await recorder.handle(event)
    assert [len(call[1]) for call in store.calls] == [10]  # type: ignore[arg-type]
    await recorder.handle(event)
    assert await recorder.commit() == 5
    assert await recorder.commit() == 0
    assert len(store.calls) == 2


def test_a_first_stretch_shorter_than_a_step_is_one_point_from_the_window_start(
    service: TelemetryService, store: RecordingStore
) -> None:
    start = NOW - HOUR + timedelta(seconds=30)  # 11:00:30: minute rollups from 11:01
    series = service.series("m1", "power_w", start, NOW, timedelta(minutes=5))
    first = NOW - HOUR + timedelta(minutes=5)
    assert store.calls == [
        ("query", "m1", "power_w", first - timedelta(minutes=4), first, timedelta(minutes=1)),
        ("query", "m1", "power_w", first, NOW, timedelta(minutes=5)),
    ]
    assert [p.at for p in series.points] == [first - timedelta(minutes=4), first]
    assert series.points[0].at >= start


def test_points_merge_weighted_by_their_sample_counts(store: RecordingStore) -> None:
    class TwoPoints(RecordingStore):
        def query(
            self, device_id: str, metric: str, start: datetime, end: datetime, step: timedelta
        ) -> list[Point]:
            return [Point(start, 1.0, 0.0, 2.0, 3), Point(start, 5.0, 4.0, 9.0, 1)]

    service = TelemetryService(TwoPoints(), ManualClock(NOW))
    start = NOW - timedelta(seconds=45)
    series = service.series("m1", "power_w", start, NOW, timedelta(seconds=30))
    assert series.points[0] == Point(start, 2.0, 0.0, 9.0, 4)


@pytest.mark.parametrize(
    ("start", "step", "points"),
    [
        (NOW - HOUR, timedelta(minutes=1), 60),
        (NOW - HOUR + timedelta(seconds=30), timedelta(minutes=5), 1 + 11),  # 11:01-11:05
        (NOW - HOUR, timedelta(days=999_999_999), 1),
        (NOW - timedelta(seconds=30), timedelta(seconds=30), 1),
        (NOW - timedelta(seconds=30), timedelta(days=1), 0),  # no whole hour rollup within
    ],
)
def test_points_over_a_window(start: datetime, step: timedelta, points: int) -> None:
    assert point_count(start, NOW, step) == points
    if points == 0:
        with pytest.raises(ValidationError, match="none has closed within") as raised:
            check_query("m1", "power_w", start, NOW, step)
        assert raised.value.field == "step"


KINDS = {"m1": DeviceKind.ASIC, "g1": DeviceKind.GPU}


@pytest.mark.parametrize(
    ("device", "metric", "error", "field"),
    [
        ("m1", "voltage", ValidationError, "metric"),
        ("nope", "voltage", ValidationError, "metric"),  # a bad name first: it needs no lookup
        ("nope", "power_w", NotFound, None),
        ("g1", "hashrate_ths", ValidationError, "metric"),
    ],
)
def test_with_the_fleet_at_hand_a_query_names_an_existing_device_and_its_metric(
    service: TelemetryService,
    store: RecordingStore,
    device: str,
    metric: str,
    error: type[Exception],
    field: str | None,
) -> None:
    with pytest.raises(error) as raised:
        service.series(device, metric, kind_of=KINDS.get)
    assert getattr(raised.value, "field", None) == field
    assert store.calls == []
    for device_id, metric_name in (("m1", "hashrate_ths"), ("g1", "temperature_c")):
        service.series(device_id, metric_name, kind_of=KINDS.get)
    service.series("anything", "voltage")  # without the fleet, as the dashboard reads


def test_device_kinds_are_read_once_and_again_for_an_unknown_id_when_stale() -> None:
    reads: list[float] = []
    now = [100.0]
    fleet = [Device("m1", "s", None, "S21", DeviceKind.ASIC, "mining", NOW)]

    def devices() -> list[Device]:
        reads.append(now[0])
        return list(fleet)

    kinds = DeviceKinds(devices, refresh_s=5.0, monotonic=lambda: now[0])
    assert kinds.kind_of("m1") is DeviceKind.ASIC
    assert kinds.kind_of("m1") is DeviceKind.ASIC
    fleet.append(Device("g1", "s", None, "H100", DeviceKind.GPU, "idle", NOW))
    assert kinds.kind_of("g1") is None  # read 0 s ago: not again yet
    now[0] += 5.0
    assert kinds.kind_of("g1") is DeviceKind.GPU
    assert kinds.kind_of("m1") is DeviceKind.ASIC
    assert reads == [100.0, 105.0]


def test_an_hour_step_over_the_last_hour_reads_the_last_closed_hour() -> None:
    """The default window (the last hour) at a 1-hour step holds no whole hour unless `now`
    is on the hour: it reads the hour that holds `from`, closed by `to`; a window shorter
    than an hour still gets none."""
    end = datetime(2025, 6, 1, 12, 17, tzinfo=UTC)
    assert point_count(end - timedelta(hours=1), end, timedelta(hours=1)) == 1
    assert point_count(end - timedelta(hours=1), end, timedelta(days=999_999_999)) == 1
    assert point_count(end - timedelta(minutes=59), end, timedelta(hours=1)) == 0


@pytest.mark.parametrize("microsecond", [1, 123_456, 999_999])
def test_the_last_hour_at_an_hour_step_reads_the_last_closed_hour_at_any_instant(
    microsecond: int,
) -> None:
    """The clock gives microseconds: `from` (an hour before `to`) rounded up to the millisecond
    and `to` rounded down made the window 1 ms short of an hour, and the API answered 422
    ("none has closed") to `?step=1h` with the default window, the case the README names."""
    end = datetime(2025, 6, 1, 12, 17, 5, microsecond, tzinfo=UTC)
    assert point_count(end - timedelta(hours=1), end, timedelta(hours=1)) == 1
