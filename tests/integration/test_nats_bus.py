"""The live site of `hcp up` on NATS JetStream (HCP_BUS_URL set): readings and prices travel
through the real server (127.0.0.1:4222; each test on a stream and subject prefix of its own,
deleted afterwards), the recorders store them from durable consumers, a restarted control loop
stores what was published while it was down, and two processes of the site store each reading
once between them."""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import nats
import nats.js.errors
import pytest

from hcp import bootstrap
from hcp.adapters.bus.nats import NatsJetStreamBus
from hcp.domain.status import DeviceStatus
from hcp.services.events import ASIC_METRICS, Event
from hcp.services.monitor import StatusRecorder, status_payload
from hcp.services.telemetry import TelemetryRecorder
from tests.api.conftest import START
from tests.integration.livesite import LiveSite, live_site

pytestmark = pytest.mark.nats

ASICS, GPUS = 4, 8
RECORDERS = {
    f"{kind}-{topic}" for kind in ("status", "telemetry") for topic in bootstrap.FLEET_TOPICS
}


@pytest.fixture
async def prefix(nats_url: str) -> AsyncIterator[str]:
    """HCP_BUS_PREFIX of one test: its stream (and consumers) are deleted afterwards."""
    name = f"hcptest-{uuid.uuid4().hex[:12]}"
    yield name
    nc = await nats.connect(nats_url)
    try:
        with contextlib.suppress(nats.js.errors.NotFoundError):
            await nc.jetstream().delete_stream(name)
    finally:
        await nc.close()


@pytest.fixture
async def site(
    tmp_path: Path,
    database_url: str,
    nats_url: str,
    prefix: str,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[LiveSite]:
    """The live site as `hcp up` builds it, on SQLite or PostgreSQL, its bus named by the
    environment as an operator would name it."""
    monkeypatch.setenv("HCP_BUS_URL", nats_url)
    monkeypatch.setenv("HCP_BUS_PREFIX", prefix)
    overrides = {"site_asics": ASICS, "site_gpus": GPUS, "planner": "breakeven"}
    async with live_site(tmp_path, database_url, **overrides) as running:
        yield running


async def subjects(url: str, stream: str) -> dict[str, int]:
    """How many messages the stream holds per subject."""
    nc = await nats.connect(url)
    try:
        info = await nc.jetstream().stream_info(stream, subjects_filter=">")
        return dict(info.state.subjects or {})
    finally:
        await nc.close()


def power_samples(site: LiveSite, device_id: str) -> list[int]:
    """How many power samples the store holds for `device_id`, per second around START."""
    series = site.runtime.platform.telemetry.series(
        device_id,
        "power_w",
        START - timedelta(minutes=1),
        START + timedelta(hours=1),
        step=timedelta(seconds=1),
    )
    return [point.count for point in series.points if point.count]


async def test_readings_and_prices_travel_through_nats_and_are_stored(
    site: LiveSite, nats_url: str, prefix: str
) -> None:
    bus = site.live.bus
    assert isinstance(bus, NatsJetStreamBus)
    assert (bus.stream, bus.prefix) == (prefix, f"{prefix}.")
    ticks = 2
    for _ in range(ticks):
        await site.live.control.poll()
        outcome = await site.live.control.tick()
        assert outcome.errors == []
        site.clock.advance(timedelta(minutes=5))
    await site.live.settle()

    held = await subjects(nats_url, prefix)
    assert held[f"{prefix}.asic-metrics"] == ticks * ASICS
    assert held[f"{prefix}.gpu-metrics"] == ticks * GPUS
    assert held[f"{prefix}.price-data"] == ticks

    nc = await nats.connect(nats_url)
    try:
        consumers = await nc.jetstream().consumers_info(prefix)
    finally:
        await nc.close()
    assert {c.name for c in consumers} == RECORDERS
    assert all(c.config.durable_name == c.name for c in consumers)
    assert all((c.num_pending, c.num_ack_pending) == (0, 0) for c in consumers)

    # Stored from what the consumers delivered: every device's status, each poll's samples.
    resources = (await site.api.get("/api/v1/resources", headers=site.admin)).json()
    assert len(resources["resources"]) == ASICS + GPUS
    assert all(r["power_w"] is not None for r in resources["resources"])
    for device in resources["resources"]:
        assert power_samples(site, device["device_id"]) == [1] * ticks


async def test_a_restarted_controller_stores_what_was_published_while_it_was_down(
    site: LiveSite, nats_url: str, prefix: str
) -> None:
    await site.live.control.poll()
    await site.live.settle()
    resources = (await site.api.get("/api/v1/resources", headers=site.admin)).json()
    miner = next(r["device_id"] for r in resources["resources"] if r["kind"] == "asic")
    await bootstrap.stop_live(site.live)
    # The last leader's readings, published as it died: its recorders never took them.
    late = [
        DeviceStatus(miner, "mining", True, START + timedelta(seconds=n), power_w=3400.0 + n)
        for n in range(1, 4)
    ]
    async with NatsJetStreamBus(nats_url, stream=prefix, prefix=f"{prefix}.") as dying:
        await dying.publish_many(
            Event(ASIC_METRICS, s.device_id, s.at, status_payload(s)) for s in late
        )

    site.live = await bootstrap.start_live(site.runtime)
    await site.live.settle()
    assert power_samples(site, miner) == [1, 1, 1, 1]  # the poll's and the three left


async def test_two_processes_of_a_site_store_each_reading_once_between_them(
    site: LiveSite, nats_url: str, prefix: str
) -> None:
    """A leader stopping while the next one starts both have the recorders subscribed for a
    moment: they share the durable consumers, so each reading reaches one recorder of each
    kind, not one in each process."""
    runtime = site.runtime
    async with NatsJetStreamBus(nats_url, stream=prefix, prefix=f"{prefix}.") as other:
        samples = TelemetryRecorder(runtime.platform.telemetry, runtime.clock)
        await bootstrap.subscribe_recorders(other, StatusRecorder(runtime.unit_of_work), samples)
        polls = 5
        for _ in range(polls):
            await site.live.control.poll()
            site.clock.advance(timedelta(seconds=5))
        await site.live.settle()
        await other.drain()
        readings = polls * (ASICS + GPUS)
        # Two recorders (status, telemetry) per reading, in one process or the other.
        assert site.live.bus.stats.delivered + other.stats.delivered == 2 * readings
        await samples.commit()


async def test_what_a_killed_leader_had_acknowledged_is_stored(
    site: LiveSite, nats_url: str, prefix: str
) -> None:
    """NATS acknowledges a reading only once its recorders' commits have stored it, so a
    leader killed the moment its consumers have nothing left to acknowledge (no poll after,
    no orderly stop, nothing flushed) has lost nothing the broker let go of."""
    await site.live.control.poll()
    await site.live.settle()
    resources = (await site.api.get("/api/v1/resources", headers=site.admin)).json()
    miner = next(r["device_id"] for r in resources["resources"] if r["kind"] == "asic")
    await bootstrap.stop_live(site.live)  # the recorders below are the site's only ones
    runtime = site.runtime
    readings = [
        DeviceStatus(miner, "mining", True, START + timedelta(seconds=n), power_w=3400.0 + n)
        for n in range(1, 4)
    ]
    async with NatsJetStreamBus(nats_url, stream=prefix, prefix=f"{prefix}.") as leader:
        recorders = StatusRecorder(runtime.unit_of_work)
        samples = TelemetryRecorder(runtime.platform.telemetry, runtime.clock)
        await bootstrap.subscribe_recorders(leader, recorders, samples)
        async with NatsJetStreamBus(nats_url, stream=prefix, prefix=f"{prefix}.") as monitor:
            await monitor.publish_many(
                Event(ASIC_METRICS, s.device_id, s.at, status_payload(s)) for s in readings
            )
        await leader.drain()  # every reading acknowledged; the leader is "killed" here

        assert power_samples(site, miner) == [1, 1, 1, 1]  # the poll's and the three
        with runtime.unit_of_work() as uow:
            device = uow.fleet.device(miner)
        assert device is not None and device.power_w == 3403.0
    site.live = await bootstrap.start_live(runtime)  # for the fixture to stop
