"""The EventBus contract, held against both buses: in-process and NATS JetStream (the real
server; each test gets its own stream and subject prefix, deleted afterwards). Then what only one
of them promises: JetStream's durable consumers and redelivery, the in-process overflow rules."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Protocol

import nats
import nats.js.errors
import pytest

from hcp.adapters.bus.memory import InMemoryBus
from hcp.adapters.bus.nats import JetStreamSettings, NatsJetStreamBus
from hcp.services.events import (
    ASIC_METRICS,
    DISPATCH,
    GPU_METRICS,
    PRICE_DATA,
    WORKLOAD_EVENTS,
    BusClosed,
    BusUnavailable,
    Event,
    EventBus,
)

T0 = datetime(2025, 3, 1, 12, tzinfo=UTC)
FAST = JetStreamSettings(nak_delay_s=0.05, max_deliver=3, fetch_wait_s=1.0, close_grace_s=1.0)


def make_event(topic: str, key: str, n: int) -> Event:
    return Event(topic, key, T0 + timedelta(seconds=n), {"n": n, "power_w": 3500.0 + n})


@dataclass
class Recorder:
    """A handler that remembers the events it was given."""

    events: list[Event] = field(default_factory=list)

    async def __call__(self, event: Event) -> None:
        self.events.append(event)

    def numbers(self, key: str | None = None) -> list[int]:
        return [e.payload["n"] for e in self.events if key is None or e.key == key]


async def eventually(predicate: Callable[[], bool], timeout_s: float = 5.0) -> None:
    """Wait until `predicate()` holds; fail after `timeout_s`."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not predicate():
        if loop.time() > deadline:
            pytest.fail(f"condition not met within {timeout_s} s")
        await asyncio.sleep(0.005)


class World(Protocol):
    async def bus(self) -> EventBus: ...
    async def cleanup(self) -> None: ...


class MemoryWorld:
    """In-process buses that hand subscribers decoded wire copies, as a broker would."""

    def __init__(self) -> None:
        self.buses: list[InMemoryBus] = []

    async def bus(self) -> InMemoryBus:
        bus = InMemoryBus(serialize=True)
        self.buses.append(bus)
        return bus

    async def cleanup(self) -> None:
        for bus in self.buses:
            await bus.close()


class NatsWorld:
    """JetStream buses on one private stream and subject prefix; the stream goes at cleanup."""

    def __init__(self, url: str) -> None:
        tag = uuid.uuid4().hex[:12]
        self.url = url
        self.stream = f"HCP_TEST_{tag}"
        self.prefix = f"hcptest{tag}."
        self.buses: list[NatsJetStreamBus] = []

    async def bus(self, settings: JetStreamSettings = FAST) -> NatsJetStreamBus:
        bus = NatsJetStreamBus(self.url, stream=self.stream, prefix=self.prefix, settings=settings)
        self.buses.append(await bus.connect())
        return bus

    async def stream_messages(self) -> int:
        """How many messages the stream holds."""
        nc = await nats.connect(self.url)
        try:
            info = await nc.jetstream().stream_info(self.stream)
            return int(info.state.messages)
        finally:
            await nc.close()

    async def cleanup(self) -> None:
        for bus in self.buses:
            await bus.close()
        nc = await nats.connect(self.url)
        try:
            with contextlib.suppress(nats.js.errors.NotFoundError):
                await nc.jetstream().delete_stream(self.stream)
        finally:
            await nc.close()


@pytest.fixture(params=["memory", pytest.param("nats", marks=pytest.mark.nats)])
async def world(request: pytest.FixtureRequest) -> AsyncIterator[World]:
    """Where buses come from: one test runs once per implementation."""
    made: World = (
        MemoryWorld()
        if request.param == "memory"
        else NatsWorld(request.getfixturevalue("nats_url"))
    )
    yield made
    await made.cleanup()


@pytest.fixture
async def bus(world: World) -> EventBus:
    return await world.bus()


@pytest.fixture
async def nats_world(nats_url: str) -> AsyncIterator[NatsWorld]:
    made = NatsWorld(nats_url)
    yield made
    await made.cleanup()


# --- the contract: both buses --------------------------------------------------------------


async def test_subscriber_receives_events_in_order_per_key(bus: EventBus) -> None:
    seen = Recorder()
    await bus.subscribe(ASIC_METRICS, seen)
    for n in range(20):
        await bus.publish(make_event(ASIC_METRICS, "miner-a" if n % 2 else "miner-b", n))
    await eventually(lambda: len(seen.events) == 20)
    assert seen.numbers("miner-a") == list(range(1, 20, 2))
    assert seen.numbers("miner-b") == list(range(0, 20, 2))


async def test_delivered_event_equals_published_one(bus: EventBus) -> None:
    seen = Recorder()
    await bus.subscribe(PRICE_DATA, seen)
    sent = Event(PRICE_DATA, "HB_WEST", T0, {"usd_per_mwh": -12.5, "tags": ["rt", None]})
    await bus.publish(sent)
    await eventually(lambda: len(seen.events) == 1)
    assert seen.events == [sent]


async def test_publish_many_delivers_every_event_in_order(bus: EventBus) -> None:
    seen = Recorder()
    await bus.subscribe(WORKLOAD_EVENTS, seen)
    sent = [make_event(WORKLOAD_EVENTS, f"wl-{n % 7}", n) for n in range(500)]
    await bus.publish_many(sent)
    await eventually(lambda: len(seen.events) == 500)
    assert [e.id for e in seen.events] == [e.id for e in sent]
    assert bus.stats.published == 500


async def test_every_subscriber_gets_every_event_of_its_topic_only(bus: EventBus) -> None:
    recorders = [Recorder() for _ in range(3)]
    for recorder in recorders:
        await bus.subscribe(DISPATCH, recorder)
    other = Recorder()
    await bus.subscribe(GPU_METRICS, other)
    await bus.publish_many(make_event(DISPATCH, "site-1", n) for n in range(10))
    await eventually(lambda: all(len(r.events) == 10 for r in recorders))
    assert all(r.numbers() == list(range(10)) for r in recorders)
    assert other.events == []


async def test_failing_handler_stops_neither_other_subscribers_nor_itself(bus: EventBus) -> None:
    steady = Recorder()
    flaky_seen: list[int] = []

    async def flaky(event: Event) -> None:
        flaky_seen.append(event.payload["n"])
        if event.payload["n"] == 2:
            raise RuntimeError("store unavailable")

    await bus.subscribe(ASIC_METRICS, flaky)
    await bus.subscribe(ASIC_METRICS, steady)
    for n in range(5):
        await bus.publish(make_event(ASIC_METRICS, "miner-a", n))
    await eventually(lambda: len(steady.events) == 5 and 4 in flaky_seen)
    assert {0, 1, 2, 3, 4} <= set(flaky_seen)
    assert bus.stats.handler_errors >= 1
    await bus.publish(make_event(ASIC_METRICS, "miner-a", 5))
    await eventually(lambda: 5 in flaky_seen and len(steady.events) == 6)


async def test_handler_may_publish_to_another_topic(bus: EventBus) -> None:
    dispatched = Recorder()

    async def plan_to_dispatch(event: Event) -> None:
        await bus.publish(Event(DISPATCH, event.key, event.at, {"cause": event.id}))

    await bus.subscribe(WORKLOAD_EVENTS, plan_to_dispatch)
    await bus.subscribe(DISPATCH, dispatched)
    cause = make_event(WORKLOAD_EVENTS, "wl-1", 0)
    await bus.publish(cause)
    await eventually(lambda: len(dispatched.events) == 1)
    assert dispatched.events[0].payload == {"cause": cause.id}


async def test_unsubscribed_handler_gets_nothing_more(bus: EventBus) -> None:
    gone, staying = Recorder(), Recorder()
    subscription = await bus.subscribe(GPU_METRICS, gone, durable="dashboard")
    await bus.subscribe(GPU_METRICS, staying)
    await bus.publish(make_event(GPU_METRICS, "gpu-1", 0))
    await eventually(lambda: len(gone.events) == 1 and len(staying.events) == 1)
    await subscription.unsubscribe()
    await subscription.unsubscribe()  # a second time is harmless
    await bus.publish(make_event(GPU_METRICS, "gpu-1", 1))
    await eventually(lambda: len(staying.events) == 2)
    await asyncio.sleep(0.05)
    assert gone.numbers() == [0]


async def test_durable_names_are_checked(bus: EventBus) -> None:
    await bus.subscribe(DISPATCH, Recorder(), durable="controller")
    for topic in (DISPATCH, WORKLOAD_EVENTS):
        with pytest.raises(ValueError, match="already has a live subscription"):
            await bus.subscribe(topic, Recorder(), durable="controller")
    with pytest.raises(ValueError, match="durable name"):
        await bus.subscribe(DISPATCH, Recorder(), durable="has.dot")
    with pytest.raises(ValueError, match="topic"):
        await bus.subscribe("no spaces", Recorder())


async def test_close_is_clean(bus: EventBus) -> None:
    seen = Recorder()
    await bus.subscribe(ASIC_METRICS, seen)
    await bus.subscribe(WORKLOAD_EVENTS, seen, durable="metering")
    await bus.publish(make_event(ASIC_METRICS, "miner-a", 0))
    await eventually(lambda: len(seen.events) == 1)
    await bus.close()
    await bus.close()
    leftover = [t for t in asyncio.all_tasks() if t is not asyncio.current_task()]
    assert leftover == []
    with pytest.raises(BusClosed):
        await bus.publish(make_event(ASIC_METRICS, "miner-a", 1))
    with pytest.raises(BusClosed):
        await bus.subscribe(ASIC_METRICS, seen)


async def test_drain_returns_once_every_event_and_what_it_caused_is_handled(
    bus: EventBus,
) -> None:
    handled, dispatched = Recorder(), Recorder()

    async def slow_then_dispatch(event: Event) -> None:
        await asyncio.sleep(0.001)
        await handled(event)
        await bus.publish(Event(DISPATCH, event.key, event.at, {"n": event.payload["n"]}))

    await bus.subscribe(ASIC_METRICS, slow_then_dispatch)
    await bus.subscribe(DISPATCH, dispatched, durable="dispatch-log")
    await bus.publish_many(make_event(ASIC_METRICS, "miner-a", n) for n in range(100))
    await bus.drain()
    assert handled.numbers() == list(range(100))
    assert dispatched.numbers() == list(range(100))
    await bus.drain()  # nothing left: returns at once


@dataclass
class Batching:
    """A handler that holds what it is given until its commit stores it, as the fleet
    recorders do; `failures` commits fail first."""

    failures: int = 0
    held: list[Event] = field(default_factory=list)
    stored: list[Event] = field(default_factory=list)
    commits: int = 0

    async def handle(self, event: Event) -> None:
        self.held.append(event)

    async def commit(self) -> None:
        self.commits += 1
        if self.commits <= self.failures:
            self.held.clear()  # what a failed write took is gone
            raise RuntimeError("database restarting")
        self.stored.extend(self.held)
        self.held.clear()

    def stored_numbers(self) -> list[int]:
        return sorted(e.payload["n"] for e in self.stored)


async def test_drain_returns_once_what_was_delivered_is_committed(bus: EventBus) -> None:
    recorder = Batching()
    await bus.subscribe(ASIC_METRICS, recorder.handle, durable="store", commit=recorder.commit)
    await bus.publish_many(make_event(ASIC_METRICS, "miner-a", n) for n in range(300))
    await bus.drain()
    assert recorder.stored_numbers() == list(range(300))
    assert recorder.held == []


# --- JetStream only ------------------------------------------------------------------------


@pytest.mark.nats
async def test_durable_consumer_gets_what_was_published_while_it_was_away(
    nats_world: NatsWorld,
) -> None:
    publisher = await nats_world.bus()
    first_life, second_life = Recorder(), Recorder()
    store = await nats_world.bus()
    await store.subscribe(ASIC_METRICS, first_life, durable="store")
    await publisher.publish(make_event(ASIC_METRICS, "miner-a", 0))
    await eventually(lambda: len(first_life.events) == 1)
    await store.close()
    await publisher.publish_many(make_event(ASIC_METRICS, "miner-a", n) for n in (1, 2, 3))
    restarted = await nats_world.bus()
    await restarted.subscribe(ASIC_METRICS, second_life, durable="store")
    await eventually(lambda: len(second_life.events) == 3)
    assert second_life.numbers() == [1, 2, 3]


@pytest.mark.nats
async def test_closing_mid_stream_loses_nothing_for_a_durable_consumer(
    nats_world: NatsWorld,
) -> None:
    publisher = await nats_world.bus()
    seen = Recorder()

    async def slow(event: Event) -> None:
        await asyncio.sleep(0.001)
        await seen(event)

    first = await nats_world.bus()
    await first.subscribe(GPU_METRICS, slow, durable="rollups")
    await publisher.publish_many(make_event(GPU_METRICS, "gpu-1", n) for n in range(300))
    await eventually(lambda: len(seen.events) >= 30)
    await first.close()
    second = await nats_world.bus()
    await second.subscribe(GPU_METRICS, seen, durable="rollups")
    await eventually(lambda: set(seen.numbers()) == set(range(300)))
    numbers = seen.numbers()
    assert numbers == sorted(numbers)  # redeliveries may repeat an event, never reorder


@pytest.mark.nats
async def test_buses_sharing_a_durable_name_share_its_events(nats_world: NatsWorld) -> None:
    """Two processes storing the same topic under one durable name (a leader and the one taking
    over from it) store each event once between them: a work queue, not a copy each."""
    publisher = await nats_world.bus()
    first, second = Recorder(), Recorder()
    await (await nats_world.bus()).subscribe(ASIC_METRICS, first, durable="telemetry")
    other = await nats_world.bus()
    await other.subscribe(ASIC_METRICS, second, durable="telemetry")
    await publisher.publish_many(make_event(ASIC_METRICS, f"miner-{n % 5}", n) for n in range(300))
    await other.drain()
    assert sorted(first.numbers() + second.numbers()) == list(range(300))


@pytest.mark.nats
async def test_handler_error_is_redelivered_until_it_succeeds(nats_world: NatsWorld) -> None:
    bus = await nats_world.bus()
    attempts: list[int] = []

    async def fails_once(event: Event) -> None:
        attempts.append(event.payload["n"])
        if len(attempts) == 1:
            raise RuntimeError("database restarting")

    await bus.subscribe(WORKLOAD_EVENTS, fails_once, durable="metering")
    await bus.publish(make_event(WORKLOAD_EVENTS, "wl-1", 7))
    await eventually(lambda: len(attempts) == 2)
    await asyncio.sleep(3 * FAST.nak_delay_s)
    assert attempts == [7, 7]
    stats = bus.stats
    assert (stats.handler_errors, stats.redelivered, stats.delivered) == (1, 1, 1)


@pytest.mark.nats
async def test_a_failed_commit_takes_its_events_back_until_one_succeeds(
    nats_world: NatsWorld,
) -> None:
    """Nothing is acknowledged before its commit: the events of a batch whose commit failed
    come again, and are stored by the next commit that succeeds."""
    bus = await nats_world.bus()
    recorder = Batching(failures=1)
    await bus.subscribe(ASIC_METRICS, recorder.handle, durable="store", commit=recorder.commit)
    await bus.publish_many(make_event(ASIC_METRICS, "miner-a", n) for n in range(5))
    await eventually(lambda: recorder.stored_numbers() == list(range(5)))
    await bus.drain()
    stats = bus.stats
    assert (stats.handler_errors, stats.delivered, len(recorder.stored)) == (1, 5, 5)
    assert stats.redelivered >= 1


@pytest.mark.nats
async def test_nothing_is_acknowledged_while_its_commit_runs(nats_world: NatsWorld) -> None:
    bus = await nats_world.bus()
    recorder, gate = Batching(), asyncio.Event()

    async def commit_when_let() -> None:
        await gate.wait()
        await recorder.commit()

    await bus.subscribe(ASIC_METRICS, recorder.handle, durable="store", commit=commit_when_let)
    await bus.publish_many(make_event(ASIC_METRICS, "miner-a", n) for n in range(3))
    await eventually(lambda: len(recorder.held) >= 1)
    await asyncio.sleep(0.2)  # time enough for an ack to reach the server, were one sent
    nc = await nats.connect(nats_world.url)
    try:
        consumer = await nc.jetstream().consumer_info(nats_world.stream, "store")
    finally:
        await nc.close()
    assert consumer.num_ack_pending == len(recorder.held)
    assert recorder.stored == []
    gate.set()
    await bus.drain()
    assert recorder.stored_numbers() == [0, 1, 2]


@pytest.mark.nats
async def test_redelivery_stops_after_max_deliver(nats_world: NatsWorld) -> None:
    bus = await nats_world.bus()
    attempts: list[int] = []

    async def always_fails(event: Event) -> None:
        attempts.append(event.payload["n"])
        raise RuntimeError("poison")

    await bus.subscribe(DISPATCH, always_fails)
    await bus.publish(make_event(DISPATCH, "site-1", 1))
    await eventually(lambda: len(attempts) == FAST.max_deliver)
    await asyncio.sleep(3 * FAST.nak_delay_s)
    assert len(attempts) == FAST.max_deliver


@pytest.mark.nats
async def test_undecodable_message_is_dropped_and_counted(nats_world: NatsWorld) -> None:
    bus = await nats_world.bus()
    seen = Recorder()
    await bus.subscribe(PRICE_DATA, seen)
    nc = await nats.connect(nats_world.url)
    try:
        await nc.jetstream().publish(bus.subject(PRICE_DATA), b"not an event")
    finally:
        await nc.close()
    await bus.publish(make_event(PRICE_DATA, "HB_WEST", 1))
    await eventually(lambda: len(seen.events) == 1)
    assert bus.stats.malformed == 1


@pytest.mark.nats
async def test_publish_stores_before_returning_and_ids_deduplicate(nats_world: NatsWorld) -> None:
    bus = await nats_world.bus()
    events = [make_event(ASIC_METRICS, "miner-a", n) for n in range(1000)]
    await bus.publish_many(events)
    assert await nats_world.stream_messages() == 1000
    await bus.publish(events[0])  # a retried publish
    await bus.publish_many(events[:10])
    assert await nats_world.stream_messages() == 1000


@pytest.mark.nats
async def test_stream_and_consumers_are_configured(nats_world: NatsWorld) -> None:
    bus = await nats_world.bus(replace(FAST, max_age_s=600.0))
    ephemeral = await bus.subscribe(GPU_METRICS, Recorder())
    await bus.subscribe(GPU_METRICS, Recorder(), durable="store")
    nc = await nats.connect(nats_world.url)
    try:
        js = nc.jetstream()
        info = await js.stream_info(nats_world.stream)
        assert info.config.subjects == [f"{nats_world.prefix}>"]
        assert (info.config.storage, info.config.max_age) == ("file", 600.0)
        assert len(await js.consumers_info(nats_world.stream)) == 2
        await ephemeral.unsubscribe()
        names = [c.name for c in await js.consumers_info(nats_world.stream)]
        assert names == ["store"]
    finally:
        await nc.close()


@pytest.mark.nats
async def test_a_durable_name_belongs_to_one_topic(nats_world: NatsWorld) -> None:
    bus = await nats_world.bus()
    subscription = await bus.subscribe(DISPATCH, Recorder(), durable="controller")
    await subscription.unsubscribe()
    with pytest.raises(ValueError, match="consumes"):
        await bus.subscribe(WORKLOAD_EVENTS, Recorder(), durable="controller")
    await bus.subscribe(DISPATCH, Recorder(), durable="controller")


async def test_connecting_to_nothing_fails_fast() -> None:
    bus = NatsJetStreamBus("nats://127.0.0.1:1", settings=replace(FAST, connect_timeout_s=0.3))
    with pytest.raises(ConnectionError, match=r"127\.0\.0\.1:1"):
        await bus.connect()


async def test_a_bus_that_does_not_answer_is_named_without_its_password() -> None:
    url = "nats://hcp:hunter2@127.0.0.1:1"
    bus = NatsJetStreamBus(url, settings=replace(FAST, connect_timeout_s=0.3))
    with pytest.raises(BusUnavailable) as refused:
        await bus.connect()
    assert refused.value.url == "nats://hcp:***@127.0.0.1:1"
    assert str(refused.value).startswith("the event bus at nats://hcp:***@127.0.0.1:1 does not")
    assert "hunter2" not in str(refused.value)


@pytest.mark.nats
async def test_one_of_several_servers_answering_is_enough(nats_world: NatsWorld) -> None:
    servers = f"nats://127.0.0.1:1, {nats_world.url}"
    bus = NatsJetStreamBus(servers, stream=nats_world.stream, prefix=nats_world.prefix)
    nats_world.buses.append(await bus.connect())
    seen = Recorder()
    await bus.subscribe(PRICE_DATA, seen)
    await bus.publish(make_event(PRICE_DATA, "HB_WEST", 1))
    await bus.drain()
    assert seen.numbers() == [1]


# --- in-process only -----------------------------------------------------------------------


class Gate:
    """A handler that records events and holds each one until the gate opens."""

    def __init__(self) -> None:
        self.started = asyncio.Event()
        self.opened = asyncio.Event()
        self.seen = Recorder()

    async def __call__(self, event: Event) -> None:
        self.started.set()
        await self.opened.wait()
        await self.seen(event)


async def test_full_queue_on_a_metrics_topic_drops_the_oldest() -> None:
    async with InMemoryBus(queue_size=2) as bus:
        gate = Gate()
        await bus.subscribe(ASIC_METRICS, gate)
        await bus.publish(make_event(ASIC_METRICS, "miner-a", 0))
        await gate.started.wait()
        for n in range(1, 5):
            await bus.publish(make_event(ASIC_METRICS, "miner-a", n))
        gate.opened.set()
        await bus.drain()
        assert gate.seen.numbers() == [0, 3, 4]
        assert (bus.stats.dropped, bus.stats.delivered) == (2, 3)


async def test_full_queue_on_a_lifecycle_topic_makes_the_publisher_wait() -> None:
    async with InMemoryBus(queue_size=1) as bus:
        gate = Gate()
        await bus.subscribe(WORKLOAD_EVENTS, gate)
        await bus.publish(make_event(WORKLOAD_EVENTS, "wl-1", 0))
        await gate.started.wait()
        await bus.publish(make_event(WORKLOAD_EVENTS, "wl-1", 1))
        blocked = asyncio.create_task(bus.publish(make_event(WORKLOAD_EVENTS, "wl-1", 2)))
        await asyncio.sleep(0.02)
        assert not blocked.done()
        gate.opened.set()
        await blocked
        await bus.drain()
        assert gate.seen.numbers() == [0, 1, 2]
        assert bus.stats.dropped == 0


async def test_close_delivers_what_was_accepted() -> None:
    bus = InMemoryBus()
    seen = Recorder()
    await bus.subscribe(DISPATCH, seen)
    await bus.publish_many(make_event(DISPATCH, "site-1", n) for n in range(100))
    await bus.close()
    assert seen.numbers() == list(range(100))


async def test_close_gives_up_on_a_stuck_handler() -> None:
    bus = InMemoryBus(close_timeout=0.05)
    await bus.subscribe(DISPATCH, Gate())
    await bus.publish_many(make_event(DISPATCH, "site-1", n) for n in range(3))
    await bus.close()
    assert bus.stats.dropped == 2
    assert [t for t in asyncio.all_tasks() if t is not asyncio.current_task()] == []


async def test_a_failed_commit_at_drain_is_logged_and_counted() -> None:
    async with InMemoryBus() as bus:
        recorder = Batching(failures=1)
        await bus.subscribe(GPU_METRICS, recorder.handle, commit=recorder.commit)
        await bus.publish(make_event(GPU_METRICS, "gpu-1", 1))
        await bus.drain()
        assert (bus.stats.handler_errors, recorder.stored) == (1, [])
        await bus.publish(make_event(GPU_METRICS, "gpu-1", 2))
        await bus.drain()
        assert recorder.stored_numbers() == [2]


async def test_serialize_hands_subscribers_the_wire_copy() -> None:
    async with InMemoryBus(serialize=True) as bus:
        seen = Recorder()
        await bus.subscribe(WORKLOAD_EVENTS, seen)
        await bus.publish(Event(WORKLOAD_EVENTS, "wl-1", T0, {"since": T0}))
        await bus.drain()
        assert seen.events[0].payload == {"since": T0.isoformat()}
        with pytest.raises(TypeError, match="not JSON"):
            await bus.publish(Event(WORKLOAD_EVENTS, "wl-1", T0, {"gpus": {1, 2}}))
