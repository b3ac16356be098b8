"""When the fleet recorders count an event as stored (`hcp.services.recording`): a commit waits
for the write that took its topic's events, and a failed write fails the next commit of each
topic it held, so the bus takes those events back instead of acknowledging them."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import pytest

from hcp.adapters.clock import ManualClock
from hcp.domain.status import DeviceStatus
from hcp.domain.telemetry import Sample
from hcp.services.events import ASIC_METRICS, GPU_METRICS, Event
from hcp.services.monitor import StatusRecorder, status_payload
from hcp.services.recording import EventsNotStored
from hcp.services.telemetry import TelemetryRecorder, TelemetryService

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
MINER = DeviceStatus("s21-001", "mining", True, NOW, power_w=3500.0, hashrate_ths=200.0)
GPU = DeviceStatus("h100-001", "busy", True, NOW, power_w=690.0, util_pct=97.0)
MINER_SAMPLES = 4  # reachable, healthy, power, hashrate (no temperature given)


def event(topic: str, status: DeviceStatus) -> Event:
    return Event(topic, status.device_id, status.at, status_payload(status))


@dataclass
class SlowStore:
    """The samples a telemetry store was given; a write can be held at a gate, or fail."""

    written: list[Sample] = field(default_factory=list)
    started: threading.Event = field(default_factory=threading.Event)
    gate: threading.Event = field(default_factory=threading.Event)
    failures: int = 0
    writing: int = 0
    most_at_once: int = 0

    def __post_init__(self) -> None:
        self.gate.set()

    def write(self, samples: Iterable[Sample]) -> None:
        self.writing += 1
        self.most_at_once = max(self.most_at_once, self.writing)
        try:
            self.started.set()
            assert self.gate.wait(5)
            if self.failures:
                self.failures -= 1
                raise OSError("database restarting")
            self.written.extend(samples)
        finally:
            self.writing -= 1

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"the recorder only writes, it called {name}")


@pytest.fixture
def store() -> SlowStore:
    return SlowStore()


@pytest.fixture
def samples(store: SlowStore) -> TelemetryRecorder:
    clock = ManualClock(NOW)
    return TelemetryRecorder(TelemetryService(store, clock), clock)


async def test_a_commit_waits_for_the_write_that_took_its_events(
    store: SlowStore, samples: TelemetryRecorder
) -> None:
    """The poll's write took the events a subscription is about to commit: the commit, finding
    nothing held, returns only once that write has finished (or the bus would acknowledge
    events still on their way to the store)."""
    await samples.handle(event(ASIC_METRICS, MINER))
    store.gate.clear()
    poll = asyncio.create_task(samples.commit())
    assert await asyncio.to_thread(store.started.wait, 5)
    subscription = asyncio.create_task(samples.commit(ASIC_METRICS))
    await asyncio.sleep(0.05)
    assert not subscription.done()
    store.gate.set()
    assert await poll == MINER_SAMPLES
    assert await subscription == 0
    assert len(store.written) == MINER_SAMPLES


async def test_a_failed_write_fails_the_next_commit_of_each_topic_it_held(
    store: SlowStore, samples: TelemetryRecorder
) -> None:
    await samples.handle(event(ASIC_METRICS, MINER))
    await samples.handle(event(GPU_METRICS, GPU))
    store.failures = 1
    with pytest.raises(OSError, match="restarting"):
        await samples.commit()  # the poll's write, holding both topics
    for topic in (ASIC_METRICS, GPU_METRICS):
        with pytest.raises(EventsNotStored, match=topic):
            await samples.commit(topic)
    # Once said, it is over: redelivered events are committed as usual.
    await samples.handle(event(ASIC_METRICS, MINER))
    assert await samples.commit(ASIC_METRICS) == MINER_SAMPLES
    assert await samples.commit(GPU_METRICS) == 0


async def test_a_failed_write_marks_only_the_topics_it_held_events_of(
    store: SlowStore, samples: TelemetryRecorder
) -> None:
    await samples.handle(event(GPU_METRICS, GPU))
    assert await samples.commit(GPU_METRICS) > 0  # its buffer stays, empty
    await samples.handle(event(ASIC_METRICS, MINER))
    store.failures = 1
    with pytest.raises(OSError):
        await samples.commit()
    await samples.handle(event(GPU_METRICS, GPU))
    assert await samples.commit(GPU_METRICS) > 0
    with pytest.raises(EventsNotStored):
        await samples.commit(ASIC_METRICS)


async def test_a_subscriptions_own_failed_commit_marks_nothing(
    store: SlowStore, samples: TelemetryRecorder
) -> None:
    """The bus takes that batch back as it is: the next one must not be taken back too."""
    await samples.handle(event(ASIC_METRICS, MINER))
    store.failures = 1
    with pytest.raises(OSError):
        await samples.commit(ASIC_METRICS)
    await samples.handle(event(ASIC_METRICS, MINER))
    assert await samples.commit(ASIC_METRICS) == MINER_SAMPLES


async def test_a_lost_topics_commit_writes_what_it_holds_before_it_says_so(
    store: SlowStore, samples: TelemetryRecorder
) -> None:
    """On the in-process bus nothing comes again: what arrived after the failed write is
    stored all the same, however many polls later the commit comes."""
    await samples.handle(event(ASIC_METRICS, MINER))
    store.failures = 1
    with pytest.raises(OSError):
        await samples.commit()  # the poll's write fails: the first reading is gone
    await samples.handle(event(ASIC_METRICS, MINER))
    assert await samples.commit() == MINER_SAMPLES  # the next poll's write
    await samples.handle(event(ASIC_METRICS, MINER))
    with pytest.raises(EventsNotStored):
        await samples.commit(ASIC_METRICS)  # as at drain
    assert len(store.written) == 2 * MINER_SAMPLES
    assert await samples.commit(ASIC_METRICS) == 0  # said once


async def test_a_cancelled_commit_keeps_the_turn_until_its_write_is_done(
    store: SlowStore, samples: TelemetryRecorder
) -> None:
    """A write's thread cannot be stopped: the next write waits for it, rather than run a
    second transaction beside it."""
    await samples.handle(event(ASIC_METRICS, MINER))
    store.gate.clear()
    first = asyncio.create_task(samples.commit())
    assert await asyncio.to_thread(store.started.wait, 5)
    first.cancel()
    await asyncio.sleep(0.01)
    await samples.handle(event(GPU_METRICS, GPU))
    second = asyncio.create_task(samples.commit(GPU_METRICS))
    await asyncio.sleep(0.05)
    assert not first.done() and not second.done()
    store.gate.set()
    with pytest.raises(asyncio.CancelledError):
        await first
    assert await second > 0
    assert len(store.written) > MINER_SAMPLES  # both written...
    assert store.most_at_once == 1  # ... one after the other


@dataclass
class Fleet:
    updates: list[list[DeviceStatus]] = field(default_factory=list)
    failures: int = 0

    def update_statuses(self, statuses: Sequence[DeviceStatus]) -> None:
        if self.failures:
            self.failures -= 1
            raise OSError("database restarting")
        self.updates.append(list(statuses))


@dataclass
class UnitOfWork:
    fleet: Fleet

    def commit(self) -> None:
        pass


async def test_the_status_recorder_keeps_each_topics_newest_status_under_the_same_rules() -> None:
    fleet = Fleet()

    @contextmanager
    def unit_of_work() -> Iterator[UnitOfWork]:
        yield UnitOfWork(fleet)

    statuses = StatusRecorder(unit_of_work)  # type: ignore[arg-type]
    later = DeviceStatus(MINER.device_id, "sleeping", True, NOW, power_w=25.0)
    await statuses.handle(event(ASIC_METRICS, MINER))
    await statuses.handle(event(ASIC_METRICS, later))
    await statuses.handle(event(GPU_METRICS, GPU))
    assert await statuses.commit(ASIC_METRICS) == 1
    assert fleet.updates == [[later]]

    fleet.failures = 1
    with pytest.raises(OSError):
        await statuses.commit()
    with pytest.raises(EventsNotStored):
        await statuses.commit(GPU_METRICS)
    await statuses.handle(event(GPU_METRICS, GPU))
    assert await statuses.commit(GPU_METRICS) == 1
    assert fleet.updates == [[later], [GPU]]
