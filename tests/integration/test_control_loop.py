"""The live loop of `hcp up`, in-process: simulated miners over TCP, GPU nodes over HTTP,
the planner, the scheduler and the API reading what they stored."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import datetime, timedelta
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from hcp import bootstrap
from hcp.adapters.clock import ManualClock
from hcp.domain.fleet import Site as FleetSite
from hcp.domain.identity import Principal, Role
from hcp.domain.market import MarketSnapshot
from hcp.domain.status import UNREACHABLE, DeviceStatus
from hcp.domain.workloads import Requirements, WorkloadClass
from hcp.services.control import TickOutcome
from hcp.services.events import ASIC_METRICS, WORKLOAD_EVENTS, Event, PublishFailed
from hcp.services.monitor import status_payload
from hcp.services.planning import StoredHistory
from hcp.services.workloads import Submission
from hcp.simulators.asic.config import Faults
from tests.api.conftest import START
from tests.integration.livesite import LiveSite, live_site

Site = LiveSite


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    """The live site planned by the breakeven rule (these tests pin its plans)."""
    async for running in _live_site(tmp_path, planner="breakeven"):
        yield running


@pytest.fixture
async def mpc_site(tmp_path: Path) -> AsyncIterator[Site]:
    """The live site as `hcp up` runs it by default: planned by the optimizer."""
    async for running in _live_site(tmp_path):
        yield running


async def _live_site(tmp_path: Path, **overrides: object) -> AsyncIterator[Site]:
    async with live_site(tmp_path, **{"site_asics": 12, **overrides}) as site:
        yield site


async def test_poll_reads_every_device_over_its_protocol(site: Site) -> None:
    statuses = await site.live.control.poll()
    await site.live.settle()
    assert len(statuses) == 12 + 10
    resources = (await site.api.get("/api/v1/resources", headers=site.admin)).json()
    assert resources["by_state"] == {"mining": 12, "idle": 10}
    miner = next(d for d in resources["resources"] if d["kind"] == "asic")
    assert miner["power_w"] == pytest.approx(3500, rel=0.05)
    assert miner["address"].startswith("127.0.0.1:")
    window = {
        "device": miner["device_id"],
        "metric": "power_w",
        "step": "1s",
        "from": (START - timedelta(minutes=1)).isoformat(),
        "to": (START + timedelta(minutes=1)).isoformat(),
    }
    series = (await site.api.get("/api/v1/telemetry", params=window, headers=site.admin)).json()
    assert [p["count"] for p in series["points"]] == [1]
    assert series["points"][0]["avg"] == pytest.approx(miner["power_w"])


async def test_tick_plans_and_runs_customer_work(site: Site) -> None:
    await site.live.control.poll()
    customer = Principal("k", Role.CUSTOMER, "cust-001")
    sub = Submission(WorkloadClass.AI_INFERENCE_BATCH, Requirements("H100", 4, None, 1.0))
    submitted = await site.runtime.platform.workloads.submit(customer, sub)
    outcome = await site.live.control.tick()
    assert outcome.errors == []
    assert outcome.plan is not None and outcome.plan.gpu_budget() == 10
    assert outcome.scheduling is not None and outcome.scheduling.started == [submitted.workload.id]

    plan = (await site.api.get("/api/v1/plan/current", headers=site.admin)).json()
    assert plan["strategy"] == "breakeven" and plan["gpu_budget"] == 10
    assert {a["device_model"] for a in plan["allocations"]} == {"S21", "H100 SXM"}
    held = (await site.api.get("/api/v1/allocations", headers=site.admin)).json()["workloads"]
    assert [len(w["gpu_ids"]) for w in held] == [4]

    site.clock.advance(timedelta(hours=1, minutes=5))
    outcome = await site.live.control.tick()
    assert outcome.scheduling is not None
    assert outcome.scheduling.completed == [submitted.workload.id]


async def test_the_fleet_poll_follows_running_work_and_a_tick_just_after_does_not_ask_again(
    site: Site,
) -> None:
    customer = Principal("k", Role.CUSTOMER, "cust-001")
    short, long = [
        await site.runtime.platform.workloads.submit(
            customer,
            Submission(WorkloadClass.AI_INFERENCE_BATCH, Requirements("H100", 2, None, hours)),
        )
        for hours in (1.0, 4.0)
    ]
    started = (await site.live.control.tick()).scheduling
    assert started is not None and set(started.started) == {short.workload.id, long.workload.id}

    site.clock.advance(timedelta(hours=1, minutes=1))
    await site.live.control.poll()  # the node says the short one finished: known now
    polled_at = site.clock.now()
    assert site.live.control.last_follow is not None
    assert site.live.control.last_follow.completed == [short.workload.id]
    shown = await site.api.get(f"/api/v1/workloads/{short.workload.id}", headers=site.admin)
    assert shown.json()["status"] == "completed"
    scheduler = site.live.control._scheduler

    site.clock.advance(timedelta(seconds=site.runtime.settings.poll_seconds))
    outcome = await site.live.control.tick()
    assert outcome.errors == [] and outcome.scheduling is not None
    assert scheduler.followed_at == polled_at  # the tick did not ask the nodes again

    site.clock.advance(timedelta(minutes=10))  # no poll since: the tick follows itself
    await site.live.control.tick()
    assert scheduler.followed_at == site.clock.now()


class _BrokenPlanner:
    name = "broken"

    def plan(self, *args: object, **kwargs: object) -> None:
        raise RuntimeError("planner down")


async def test_a_tick_without_a_plan_keeps_the_customers_work_running(site: Site) -> None:
    await site.live.control.poll()
    customer = Principal("k", Role.CUSTOMER, "cust-001")
    sub = Submission(WorkloadClass.AI_INFERENCE_REALTIME, Requirements("H100", 4, None, None))
    submitted = await site.runtime.platform.workloads.submit(customer, sub)
    outcome = await site.live.control.tick()
    assert outcome.scheduling is not None and outcome.scheduling.started == [submitted.workload.id]

    site.live.control._planner = _BrokenPlanner()  # type: ignore[assignment]
    site.clock.advance(timedelta(minutes=5))
    outcome = await site.live.control.tick()
    assert outcome.plan is None and any("planner down" in e for e in outcome.errors)
    assert outcome.scheduling is not None and outcome.scheduling.preempted == []
    held = (await site.api.get("/api/v1/allocations", headers=site.admin)).json()["workloads"]
    assert [len(w["gpu_ids"]) for w in held] == [4]


class _RecordingPlanner:
    """The site's planner, keeping the site each plan was made for."""

    def __init__(self, planner: Any) -> None:
        self.planner, self.name, self.sites = planner, planner.name, []

    def plan(self, site: FleetSite, *args: Any) -> Any:
        self.sites.append(site)
        return self.planner.plan(site, *args)


async def test_miners_that_stop_answering_keep_their_last_power_out_of_the_plan(
    site: Site,
) -> None:
    """An unreachable miner may well still hash: the plan gets the site's MW less what it drew
    when it last answered, so that the two together stay within the limit."""
    control = site.live.control
    recording = _RecordingPlanner(control._planner)
    control._planner = recording  # type: ignore[assignment]
    await control.poll()
    await control.tick()
    for index in (3, 4):
        await site.live.site.asic_fleet.set_faults(index, Faults(offline=True))
    await control.poll()
    answers = control._monitor.last_answers
    silent = [s.device_id for s in control._monitor.latest.values() if s.state == "unreachable"]
    held_w = sum(answers[d].power_w for d in silent)
    assert len(silent) == 2 and held_w > 2 * 3_000  # both were hashing at stock
    site.clock.advance(timedelta(minutes=5))
    await control.tick()
    full, reduced = recording.sites[0], recording.sites[1]
    assert reduced.capacity_mw == pytest.approx(full.capacity_mw - held_w * full.pue / 1e6)


async def test_a_miner_whose_sleeps_never_land_is_left_out_of_the_plan_with_its_draw(
    site: Site,
) -> None:
    """A miner takes its sleep and hashes on, reading healthy. After three unconfirmed tries
    the dispatcher gives it no more work; the next plan counts on it no more and gets the
    site's MW less what it draws, as for a miner held asleep."""
    control = site.live.control
    recording = _RecordingPlanner(control._planner)
    control._planner = recording  # type: ignore[assignment]
    control._feed = SpikeFeed(site.clock)
    stubborn = "site-west-1-asic-00002"
    device = site.runtime.platform.fleet.device(stubborn)
    driver = site.live.dispatcher.driver
    sleep = driver.sleep

    async def ignored_by_one(address: str) -> None:
        if address != device.address:
            await sleep(address)

    driver.sleep = ignored_by_one  # type: ignore[method-assign]
    for _ in range(4):  # three tries, each failed at the poll past its deadline; then degraded
        await control.poll()
        await control.tick()
        await site.live.dispatcher.delivered()
        site.clock.advance(timedelta(minutes=5))
    assert site.live.dispatcher.degraded() == {stubborn}
    await control.poll()
    drawn_w = control._monitor.latest[stubborn].power_w
    assert control._monitor.latest[stubborn].healthy and drawn_w > 3_000
    outcome = await control.tick()
    assert outcome.plan is not None
    assert sum(a.count for a in outcome.plan.allocations if a.device_model == "S21") == 11
    full, last = recording.sites[0], recording.sites[-1]
    assert last.capacity_mw == pytest.approx(full.capacity_mw - drawn_w * full.pue / 1e6)


async def test_a_dead_miner_is_degraded_and_the_loop_keeps_going(site: Site) -> None:
    await site.live.site.asic_fleet.set_faults(3, Faults(offline=True))
    await site.live.site.asic_fleet.set_faults(5, Faults(malformed_replies=True))
    statuses = {s.device_id: s for s in await site.live.control.poll()}
    bad = [s for s in statuses.values() if not s.healthy]
    assert len(bad) == 2 and all(s.state == "unreachable" for s in bad)
    outcome = await site.live.control.tick()
    assert outcome.errors == []
    assert outcome.plan is not None
    planned = sum(a.count for a in outcome.plan.allocations if a.device_model == "S21")
    assert planned == 10  # the two degraded miners are left out of the plan


async def test_usage_is_metered_each_tick_and_invoiced(site: Site) -> None:
    customer = Principal("k", Role.CUSTOMER, "cust-001")
    sub = Submission(WorkloadClass.AI_INFERENCE_BATCH, Requirements("H100", 4, None, 1.0))
    await site.runtime.platform.workloads.submit(customer, sub)
    await site.live.control.tick()
    site.clock.advance(timedelta(minutes=30))
    await site.live.control.tick()
    site.clock.advance(timedelta(minutes=40))
    outcome = await site.live.control.tick()
    assert outcome.errors == []
    month = START.strftime("%Y-%m")
    usage = (await site.api.get(f"/api/v1/billing/usage?month={month}", headers=site.admin)).json()
    # 4 GPUs for the hour the node ran it, not until the tick that noticed it had finished
    assert [u["gpu_hours"] for u in usage["usage"]] == ["2.000000", "2.000000"]
    assert usage["gpu_hours"] == "4.000000"
    again = await site.live.control.tick()  # nothing new to bill
    assert again.errors == []

    issued = await site.api.post(f"/api/v1/billing/invoices?month={month}", headers=site.admin)
    assert issued.status_code == 201
    invoice = issued.json()[0]
    assert invoice["total"] == "11.00"  # 4 GPU-hours of H100 batch inference at $2.75
    assert invoice["lines"][0]["quantity"] == "4.000000"
    reissued = await site.api.post(f"/api/v1/billing/invoices?month={month}", headers=site.admin)
    assert reissued.json() == issued.json()
    csv = await site.api.get(
        f"/api/v1/billing/invoices/{invoice['invoice_id']}.csv", headers=site.admin
    )
    assert csv.headers["content-type"].startswith("text/csv")
    assert "11.00" in csv.text


async def test_the_default_planner_is_the_optimizer_and_its_plan_is_stored(mpc_site: Site) -> None:
    site = mpc_site
    await site.live.control.poll()
    customer = Principal("k", Role.CUSTOMER, "cust-001")
    realtime = Submission(WorkloadClass.AI_INFERENCE_REALTIME, Requirements("H100", 2, None, 1.0))
    batch = Submission(WorkloadClass.AI_INFERENCE_BATCH, Requirements("H100", 4, None, 1.0))
    for sub in (realtime, batch):
        await site.runtime.platform.workloads.submit(customer, sub)
    outcome = await site.live.control.tick()
    assert outcome.errors == []
    assert outcome.plan is not None
    assert (outcome.plan.strategy, outcome.plan.status) == ("mpc", "optimal")
    assert outcome.plan.gpu_budget() == 6  # the realtime and batch GPUs; the rest to spot
    assert outcome.scheduling is not None and len(outcome.scheduling.started) == 2

    plan = (await site.api.get("/api/v1/plan/current", headers=site.admin)).json()
    assert plan["strategy"] == "mpc" and plan["status"] == "optimal"
    miners = [a for a in plan["allocations"] if a["device_model"] == "S21"]
    assert sum(a["count"] for a in miners) == 12

    site.clock.advance(timedelta(minutes=5))
    again = await site.live.control.tick()  # a stored history and a previous plan now
    assert again.errors == []
    assert again.plan is not None and again.plan.status == "optimal"
    assert again.plan.interval_start > outcome.plan.interval_start


async def test_stored_history_reads_each_snapshot_once_and_only_before_the_interval(
    mpc_site: Site,
) -> None:
    runtime, history = mpc_site.runtime, StoredHistory(mpc_site.runtime.unit_of_work)
    feed = bootstrap.market_feed(runtime.settings, START)
    snapshots = [s for s in (feed.next_snapshot() for _ in range(6)) if s is not None]
    at = [s.at for s in snapshots]
    store(runtime, snapshots[:4])
    site = stored_site(runtime)
    first = history.read(site, at[0], at[3])
    assert [s.at for s in first.snapshots] == at[:3]  # the interval at[3] is not history
    store(runtime, snapshots[4:])
    later = history.read(site, at[1], at[5])
    assert [s.at for s in later.snapshots] == at[1:5]
    assert later.previous is None and later.workloads == []


async def test_stored_history_gives_the_plans_the_minimum_on_time_looks_back_on(
    mpc_site: Site,
) -> None:
    await mpc_site.live.control.poll()
    starts = []
    for _ in range(3):
        outcome = await mpc_site.live.control.tick()
        assert outcome.plan is not None
        starts.append(outcome.plan.interval_start)
        mpc_site.clock.advance(timedelta(minutes=5))
    history = StoredHistory(mpc_site.runtime.unit_of_work)
    site = stored_site(mpc_site.runtime)

    def recent(plans_since: datetime | None) -> list[datetime]:
        known = history.read(site, starts[0], starts[2], plans_since)
        return [p.interval_start for p in known.recent_plans]

    assert recent(starts[0]) == starts[:2]  # oldest first, none from the interval planned
    assert recent(starts[1]) == starts[1:2]
    assert recent(None) == []


def store(runtime: bootstrap.Runtime, snapshots: list[MarketSnapshot]) -> None:
    with runtime.unit_of_work() as uow:
        for snapshot in snapshots:
            uow.market.add(snapshot, "test")
        uow.commit()


def stored_site(runtime: bootstrap.Runtime) -> FleetSite:
    with runtime.unit_of_work() as uow:
        site = uow.fleet.site(runtime.settings.site_id)
    assert site is not None
    return site


class SpikeFeed:
    """A market that sits at a price spike: every miner should sleep."""

    step = timedelta(minutes=5)

    def __init__(self, clock: ManualClock) -> None:
        self._clock = clock

    def next_snapshot(self) -> MarketSnapshot:
        return MarketSnapshot(
            at=self._clock.now(),
            electricity_usd_per_mwh={"HB_WEST": 5_000.0},
            btc_usd=60_000.0,
            difficulty=90e12,
            fees_btc_per_day=8.0,
            gpu_spot_usd_per_gpu_hour={"H100": 2.0},
        )


@pytest.fixture
async def io_worker_site(tmp_path: Path) -> AsyncIterator[Site]:
    """The breakeven site with the miners' exchanges carried by a device I/O worker process."""
    async for running in _live_site(tmp_path, planner="breakeven", device_io_workers=1):
        yield running


async def test_a_price_spike_sleeps_every_miner_confirmed_by_telemetry(site: Site) -> None:
    await _spike_sleeps_every_miner(site)


async def test_device_io_workers_carry_the_same_closed_loop(io_worker_site: Site) -> None:
    device_io = io_worker_site.live.device_io
    assert device_io is not None and len(device_io.pids) == 1
    await io_worker_site.live.control.poll()
    assert device_io.exchanges == 12  # the fleet poll: one read per miner
    await _spike_sleeps_every_miner(io_worker_site)
    # a poll, then for each miner a logon and a sleep; a poll that confirms
    assert device_io.exchanges == 12 + 12 + 2 * 12 + 12


async def _spike_sleeps_every_miner(site: Site) -> None:
    site.live.control._feed = SpikeFeed(site.clock)  # the market is a port: swap it
    await site.live.control.poll()
    outcome = await site.live.control.tick()
    assert outcome.errors == [] and outcome.plan is not None
    assert outcome.plan.asic_target({"S21"}) == {}
    await site.live.dispatcher.delivered()  # the tick planned them; they go out behind it
    sent = (await site.api.get("/api/v1/dispatch", headers=site.admin)).json()
    assert len(sent) == 12 and {c["action"] for c in sent} == {"sleep"}
    assert {c["status"] for c in sent} == {"sent"}
    assert all("price 5000.00 $/MWh" in c["reason"] for c in sent)

    site.clock.advance(timedelta(seconds=30))
    await site.live.control.poll()
    await site.live.settle()
    await site.live.control.tick()
    settled = (await site.api.get("/api/v1/dispatch", headers=site.admin)).json()
    assert {c["status"] for c in settled} == {"confirmed"}
    resources = (await site.api.get("/api/v1/resources?kind=asic", headers=site.admin)).json()
    assert resources["by_state"] == {"sleeping": 12}


async def test_every_workload_transition_is_published_on_the_bus(site: Site) -> None:
    seen: list[tuple[str, str]] = []

    async def listen(event: Event) -> None:
        seen.append((event.key, event.payload["event"]))

    await site.live.bus.subscribe(WORKLOAD_EVENTS, listen)
    customer = Principal("k", Role.CUSTOMER, "cust-001")
    sub = Submission(WorkloadClass.AI_INFERENCE_REALTIME, Requirements("H100", 1, None, 1.0))
    submitted = await site.runtime.platform.workloads.submit(customer, sub)
    await site.live.control.tick()
    await asyncio.to_thread(site.runtime.platform.workloads.cancel, customer, submitted.workload.id)
    for _ in range(50):  # the cancel was announced from a worker thread
        await asyncio.sleep(0.01)
        await site.live.bus.drain()
        if len(seen) == 4:
            break
    wid = submitted.workload.id
    assert seen == [(wid, "submit"), (wid, "schedule"), (wid, "start"), (wid, "cancel")]


async def test_a_bus_that_takes_no_events_stops_neither_polls_nor_ticks(
    site: Site, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """NATS away: the readings, prices and workload events are not stored from the bus, but
    the loop decides with them all the same (they were read, or stored, already)."""

    async def refuse(*_: object) -> None:
        raise PublishFailed(1, 1, "nats: timeout")

    monkeypatch.setattr(site.live.bus, "publish", refuse)
    monkeypatch.setattr(site.live.bus, "publish_many", refuse)
    assert len(await site.live.control.poll()) == 12 + 10
    customer = Principal("k", Role.CUSTOMER, "cust-001")
    sub = Submission(WorkloadClass.AI_INFERENCE_BATCH, Requirements("H100", 2, None, 1.0))
    submitted = await site.runtime.platform.workloads.submit(customer, sub)
    outcome = await site.live.control.tick()
    assert outcome.errors == [] and outcome.plan is not None
    assert outcome.scheduling is not None
    assert outcome.scheduling.started == [submitted.workload.id]
    await asyncio.sleep(0.01)  # the announcements run as tasks
    said = caplog.text
    assert "fleet readings not stored" in said and "is not on the bus" in said
    assert "workload event" in said and "not published" in said


async def test_interruptible_work_is_billed_off_the_real_time_price(site: Site) -> None:
    body = {
        "workload_type": "ai_inference_batch",
        "tier": "interruptible",
        "requirements": {"gpu_type": "H100", "gpu_count": 2, "estimated_duration_hours": 1},
    }
    created = await site.api.post(
        "/api/v1/workloads", json={**body, "customer_id": "cust-001"}, headers=site.admin
    )
    assert created.status_code == 201
    outcome = await site.live.control.tick()  # its price is in force for the next 30 minutes
    assert outcome.snapshot is not None
    await site.live.control.poll()  # the GPUs' power, read once it runs
    await site.live.settle()
    site.clock.advance(timedelta(minutes=30))
    await site.live.control.tick()
    month = START.strftime("%Y-%m")
    usage = (await site.api.get(f"/api/v1/billing/usage?month={month}", headers=site.admin)).json()
    [record] = usage["usage"]
    assert record["tier"] == "interruptible" and record["gpu_hours"] == "1.000000"
    # 2 busy H100s (94-100 % of 700 W each) for half an hour, from their telemetry
    assert record["energy_source"] == "telemetry"
    assert 0.65 <= float(record["energy_kwh"]) <= 0.7
    assert float(record["rt_price_usd_per_mwh"]) == pytest.approx(
        outcome.snapshot.electricity("HB_WEST"), abs=1e-6
    )
    invoice = (
        await site.api.post(f"/api/v1/billing/invoices?month={month}", headers=site.admin)
    ).json()[0]
    [line] = invoice["lines"]
    assert "interruptible" in line["description"]
    assert 1.375 <= float(line["amount"]) < 2.75  # at least half the list price, below it


async def test_a_failure_billing_the_time_no_loop_ran_leaves_the_loops_own_metering(
    site: Site, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Billing the time before this loop started failed (a store error, a conflict with a
    leader that metered on): it was retried before the loop's own metering, failed again,
    and nothing more was billed, tick after tick."""
    customer = Principal("k", Role.CUSTOMER, "cust-001")
    sub = Submission(WorkloadClass.AI_INFERENCE_BATCH, Requirements("H100", 2, None, 1.0))
    await site.runtime.platform.workloads.submit(customer, sub)
    site.live.control.resume_metering()

    def broken() -> None:
        raise RuntimeError("the store did not answer")

    monkeypatch.setattr(site.live.control, "_stored_metered_until", broken)
    first = await site.live.control.tick()
    assert first.errors == []  # logged, not a failed meter step
    site.clock.advance(timedelta(minutes=30))
    outcome = await site.live.control.tick()
    assert outcome.errors == []
    month = START.strftime("%Y-%m")
    usage = (await site.api.get(f"/api/v1/billing/usage?month={month}", headers=site.admin)).json()
    assert usage["gpu_hours"] == "1.000000"  # 2 GPUs for the half hour


async def test_an_invoice_bills_a_workload_at_most_its_max_price(site: Site) -> None:
    """An interruptible job whose customer agreed to at most 1.38 USD a GPU-hour: its price in
    force (half the list price plus the energy at the real-time price) is above that."""
    body = {
        "workload_type": "ai_inference_batch",
        "tier": "interruptible",
        "max_price_usd_per_gpu_hour": "1.38",
        "customer_id": "cust-001",
        "requirements": {"gpu_type": "H100", "gpu_count": 2, "estimated_duration_hours": 1},
    }
    created = await site.api.post("/api/v1/workloads", json=body, headers=site.admin)
    assert created.status_code == 201, created.text
    outcome = await site.live.control.tick()
    assert outcome.snapshot is not None and outcome.snapshot.electricity("HB_WEST") > 5
    await site.live.control.poll()
    await site.live.settle()
    site.clock.advance(timedelta(minutes=30))
    await site.live.control.tick()
    month = START.strftime("%Y-%m")
    invoice = (
        await site.api.post(f"/api/v1/billing/invoices?month={month}", headers=site.admin)
    ).json()[0]
    [line] = invoice["lines"]
    assert line["quantity"] == "1.000000"
    assert line["unit_price"] == "1.3800" and line["amount"] == "1.38"


class PriceFeed(SpikeFeed):
    """A market that sits at one price."""

    def __init__(self, clock: ManualClock, price: float) -> None:
        super().__init__(clock)
        self.price = price

    def next_snapshot(self) -> MarketSnapshot:
        return replace(super().next_snapshot(), electricity_usd_per_mwh={"HB_WEST": self.price})


@pytest.fixture
async def ramped_site(tmp_path: Path) -> AsyncIterator[Site]:
    """The breakeven site with a ramp limit of 16 kW a tick: 14.8 kW at the miners (PUE 1.08),
    room for four wakes of 3,475 W (stock 3,500 W less the 25 W asleep)."""
    async for running in _live_site(tmp_path, planner="breakeven", site_ramp_mw_per_tick=0.016):
        yield running


async def _tick_after_a_poll(site: Site) -> tuple[TickOutcome, int]:
    """Five minutes on: a poll, a tick, its commands sent; the tick and the wakes sent so far."""
    site.clock.advance(timedelta(minutes=5))
    await site.live.control.poll()
    await site.live.settle()
    outcome = await site.live.control.tick()
    assert outcome.errors == []
    await site.live.dispatcher.delivered()
    sent = (await site.api.get("/api/v1/dispatch?limit=500", headers=site.admin)).json()
    return outcome, sum(c["action"] == "wake" for c in sent)


async def test_wakes_are_staggered_within_the_site_ramp_limit(ramped_site: Site) -> None:
    site = ramped_site
    await _spike_sleeps_every_miner(site)  # a fall in draw is not held back
    site.live.control._feed = PriceFeed(site.clock, 20.0)
    woken: list[int] = []
    for _ in range(3):
        outcome, wakes = await _tick_after_a_poll(site)
        assert outcome.plan is not None
        assert outcome.plan.asic_target({"S21"}) == {"S21": {"stock": 12}}
        woken.append(wakes)
    assert woken == [4, 8, 12]


async def test_gpus_started_in_a_tick_take_their_rise_out_of_the_miners_ramp(
    ramped_site: Site,
) -> None:
    site = ramped_site
    await _spike_sleeps_every_miner(site)
    site.live.control._feed = PriceFeed(site.clock, 20.0)
    customer = Principal("k", Role.CUSTOMER, "cust-001")
    sub = Submission(WorkloadClass.AI_INFERENCE_BATCH, Requirements("H100", 2, None, 1.0))
    await site.runtime.platform.workloads.submit(customer, sub)
    woken: list[int] = []
    added_w: list[float] = []
    for _ in range(2):
        outcome, wakes = await _tick_after_a_poll(site)
        assert outcome.scheduling is not None
        added_w.append(outcome.scheduling.power_added_w.get(site.live.control.site.id, 0.0))
        woken.append(wakes)
    # Two H100 SXM going from idle (70 W) to busy (700 W) add 1,260 W: of the 14.8 kW the
    # miners may add in a tick, 13.55 kW are left, room for three wakes of 3,475 W, not four.
    assert added_w == [1260.0, 0.0]
    assert woken == [3, 7]


async def test_the_optimizer_keeps_to_the_site_ramp_limit(tmp_path: Path) -> None:
    async for site in _live_site(tmp_path, site_ramp_mw_per_tick=0.016):
        await site.live.control.poll()
        first = await site.live.control.tick()  # no previous plan: nothing to ramp from
        assert first.plan is not None
        site.live.control._feed = SpikeFeed(site.clock)
        drawn = [first.plan.power_kw * 1.08]
        for _ in range(3):
            site.clock.advance(timedelta(minutes=5))
            outcome = await site.live.control.tick()
            assert outcome.errors == [] and outcome.plan is not None
            assert outcome.plan.status == "optimal"
            drawn.append(outcome.plan.power_kw * 1.08)
        steps = [before - after for before, after in pairwise(drawn)]
        assert drawn[0] > 40  # 12 miners at about 3.5 kW each, PUE 1.08
        assert all(0 < step <= 16.0 + 1e-6 for step in steps[:2]), steps
        assert drawn[-1] < drawn[0] - 40  # three ticks of the spike: down to the sleepers


async def test_the_sites_minimum_on_and_off_time_reach_the_dispatcher(tmp_path: Path) -> None:
    """The optimizer plans counts within them; the dispatcher picks which miners switch."""
    async for site in _live_site(tmp_path, site_min_on_minutes=10, site_min_off_minutes=30):
        policy = site.live.dispatcher.site.dispatcher.policy
        assert (policy.min_on_s, policy.min_off_s) == (600, 1_800)


async def test_gpu_node_commands_are_in_the_dispatch_log_with_reason_and_answer(site: Site) -> None:
    await site.live.control.poll()
    customer = Principal("k", Role.CUSTOMER, "cust-001")
    sub = Submission(WorkloadClass.AI_INFERENCE_BATCH, Requirements("H100", 10, None, 1.0))
    workload = (await site.runtime.platform.workloads.submit(customer, sub)).workload
    await site.live.control.tick()
    sent = (await site.api.get("/api/v1/dispatch", headers=site.admin)).json()
    starts = sorted((c for c in sent if c["action"] == "start"), key=lambda c: c["device_id"])
    # Ten GPUs on nodes of eight: one start to each of the two nodes, each naming its GPUs.
    assert [c["device_id"] for c in starts] == [
        "site-west-1-gpu-node-001",
        "site-west-1-gpu-node-002",
    ]
    assert starts[0]["reason"].startswith(f"{workload.id} (ai_inference_batch, GPUs 0,1,2,")
    assert starts[1]["reason"].endswith(
        "GPUs 0,1): placed on site-west-1-gpu-node-001, site-west-1-gpu-node-002"
    )
    assert {c["status"] for c in starts} == {"confirmed"}

    site.runtime.platform.workloads.cancel(customer, workload.id)
    site.clock.advance(timedelta(minutes=5))
    await site.live.control.tick()
    node = "site-west-1-gpu-node-002"
    log = (await site.api.get(f"/api/v1/dispatch?device={node}", headers=site.admin)).json()
    assert [(c["action"], c["status"]) for c in log] == [
        ("stop", "confirmed"),
        ("start", "confirmed"),
    ]
    assert log[0]["reason"] == f"{workload.id} (ai_inference_batch, GPUs 0,1): cancelled"


async def test_miners_in_maintenance_are_left_alone_and_their_power_kept_out_of_the_plan(
    site: Site,
) -> None:
    """Two miners put in maintenance through the API keep hashing through a price spike that
    sleeps the other ten: no command goes to them, the plan counts on ten miners and on the
    site's MW less what the two draw. Back in service, the next spike sleeps them too."""
    control = site.live.control
    recording = _RecordingPlanner(control._planner)
    control._planner = recording  # type: ignore[assignment]
    control._feed = SpikeFeed(site.clock)
    held = ["site-west-1-asic-00003", "site-west-1-asic-00004"]
    for device_id in held:
        put = await site.api.put(
            f"/api/v1/resources/{device_id}/maintenance",
            json={"reason": "hashboard swap"},
            headers=site.admin,
        )
        assert put.status_code == 200
    await control.poll()
    drawn_w = sum(control._monitor.latest[d].power_w for d in held)
    assert drawn_w > 2 * 3_000  # both hash at stock
    outcome = await control.tick()
    assert outcome.errors == [] and outcome.plan is not None
    await site.live.dispatcher.delivered()
    sent = (await site.api.get("/api/v1/dispatch", headers=site.admin)).json()
    assert len(sent) == 10 and not {c["device_id"] for c in sent} & set(held)
    report = site.live.dispatcher.site.dispatcher.last_report
    assert report is not None
    assert {d: report.degraded[d] for d in held} == dict.fromkeys(
        held, "in maintenance: hashboard swap"
    )
    planned = recording.sites[0]
    assert planned.capacity_mw == pytest.approx(
        site.runtime.settings.site_capacity_mw - drawn_w * planned.pue / 1e6
    )

    for device_id in held:
        back = await site.api.delete(
            f"/api/v1/resources/{device_id}/maintenance", headers=site.admin
        )
        assert back.status_code == 200 and back.json()["maintenance"] is None
    site.clock.advance(timedelta(seconds=30))
    await control.poll()
    await site.live.settle()
    await control.tick()
    await site.live.dispatcher.delivered()
    sent = (await site.api.get("/api/v1/dispatch", headers=site.admin)).json()
    assert sorted(c["device_id"] for c in sent if c["status"] == "sent") == held


async def test_a_miner_put_in_maintenance_while_the_tick_runs_gets_no_command(
    site: Site,
) -> None:
    """The tick reads the fleet in its plan step; an operator flags a miner while its scheduler
    step runs (GPU nodes over HTTP: seconds at scale). The flags are read again before the
    miners' commands are planned: through the price spike the other eleven sleep, it hashes on.
    """
    control = site.live.control
    control._feed = SpikeFeed(site.clock)
    await control.poll()
    flagged = "site-west-1-asic-00007"
    scheduler = control._scheduler
    scheduled = scheduler.tick
    admin = Principal("k", Role.ADMIN, None, "admin")

    async def flag_then_schedule(*args: Any, **kwargs: Any) -> Any:
        site.runtime.platform.fleet.start_maintenance(admin, flagged, "PSU swap")
        return await scheduled(*args, **kwargs)

    scheduler.tick = flag_then_schedule  # type: ignore[method-assign]
    outcome = await control.tick()
    assert outcome.errors == [] and outcome.plan is not None
    await site.live.dispatcher.delivered()
    sent = (await site.api.get("/api/v1/dispatch", headers=site.admin)).json()
    assert len(sent) == 11 and flagged not in {c["device_id"] for c in sent}
    report = site.live.dispatcher.site.dispatcher.last_report
    assert report is not None and report.degraded[flagged] == "in maintenance: PSU swap"


async def test_a_gpu_in_maintenance_takes_no_new_workload_and_its_running_one_drains(
    site: Site,
) -> None:
    await site.live.control.poll()
    customer = Principal("k", Role.CUSTOMER, "cust-001")
    workloads = site.runtime.platform.workloads
    cordoned = "site-west-1-gpu-00001"
    put = await site.api.put(
        f"/api/v1/resources/{cordoned}/maintenance", json={"reason": "reseat"}, headers=site.admin
    )
    assert put.status_code == 200
    one_gpu = Submission(WorkloadClass.AI_INFERENCE_BATCH, Requirements("H100", 1, None, 1.0))
    for _ in range(10):
        await workloads.submit(customer, one_gpu)
    outcome = await site.live.control.tick()
    assert outcome.plan is not None and outcome.plan.gpu_budget() == 9  # the plan counts 9
    assert outcome.scheduling is not None and len(outcome.scheduling.started) == 9
    held = (await site.api.get("/api/v1/allocations", headers=site.admin)).json()["workloads"]
    in_use = {g for w in held for g in w["gpu_ids"]}
    assert len(in_use) == 9 and cordoned not in in_use

    draining = next(w for w in held if w["gpu_ids"] == ["site-west-1-gpu-00002"])
    put = await site.api.put(
        "/api/v1/resources/site-west-1-gpu-00002/maintenance",
        json={"reason": "next"},
        headers=site.admin,
    )
    assert put.status_code == 200
    site.clock.advance(timedelta(minutes=5))
    outcome = await site.live.control.tick()
    assert outcome.scheduling is not None and outcome.scheduling.preempted == []
    held = (await site.api.get("/api/v1/allocations", headers=site.admin)).json()["workloads"]
    assert draining["workload_id"] in {w["workload_id"] for w in held}  # it runs on


async def test_the_last_ticks_dispatch_is_in_the_api_with_what_it_left_undone(
    site: Site,
) -> None:
    status = await site.api.get("/api/v1/dispatch/status", headers=site.admin)
    assert status.status_code == 404  # no tick yet
    put = await site.api.put(
        "/api/v1/resources/site-west-1-asic-00005/maintenance",
        json={"reason": "PSU swap"},
        headers=site.admin,
    )
    assert put.status_code == 200
    site.live.control._feed = SpikeFeed(site.clock)
    await site.live.control.poll()
    await site.live.control.tick()
    await site.live.dispatcher.delivered()
    body = (await site.api.get("/api/v1/dispatch/status", headers=site.admin)).json()
    assert (body["commands"], body["sent"], body["deferred"], body["shortfall"]) == (11, 11, [], {})
    assert body["degraded"] == {"site-west-1-asic-00005": "in maintenance: PSU swap"}
    assert body["at"].startswith(START.strftime("%Y-%m-%dT%H:%M"))
    assert body["site_id"] == "site-west-1"
    of_site = await site.api.get(
        "/api/v1/dispatch/status", params={"site": "site-west-1"}, headers=site.admin
    )
    assert of_site.json() == body
    other = await site.api.get(
        "/api/v1/dispatch/status", params={"site": "site-east-9"}, headers=site.admin
    )
    assert other.status_code == 404 and "site-east-9" in other.json()["message"]
    # Stored, not held by the process that dispatched: a stopped site (shut down, or its lead
    # lost) still shows its last dispatch, and so does any other API process.
    await bootstrap.stop_live(site.live)
    kept = await site.api.get("/api/v1/dispatch/status", headers=site.admin)
    assert kept.json() == body


async def test_a_stopped_site_stores_what_its_last_poll_published(site: Site) -> None:
    """A poll publishes its statuses and the recorders store them at the next poll's flush;
    stopping the site must store what they were handed since, not drop it."""
    miner = "site-west-1-asic-00001"
    await site.live.control.poll()
    await site.live.settle()
    lost_at = START + timedelta(seconds=7)
    lost = DeviceStatus(miner, UNREACHABLE, False, lost_at, problems=("unreachable: timeout",))
    await site.live.bus.publish(Event(ASIC_METRICS, miner, lost_at, status_payload(lost)))
    await bootstrap.stop_live(site.live)
    shown = (await site.api.get(f"/api/v1/resources/{miner}", headers=site.admin)).json()
    assert (shown["state"], shown["problems"]) == (UNREACHABLE, ["unreachable: timeout"])
    newest = site.runtime.platform.telemetry.latest([miner])
    assert newest[miner, "reachable"] == (lost_at, 0.0)
