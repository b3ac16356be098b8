"""The dispatcher service against an in-memory driver: sending, logging, failures, the loop."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from tests.unit.test_dispatch_planning import NOW, REASON, S19, miner, reading

from hcp.adapters.clock import ManualClock
from hcp.adapters.devices.errors import DeviceTimeout, MalformedReply
from hcp.dispatch import (
    DEFAULT_POLICY,
    Action,
    AsicTarget,
    DispatchPolicy,
    MinerView,
    OutcomeStatus,
    plan_commands,
)
from hcp.domain.devices import DeviceKind
from hcp.domain.fleet import Device, FleetMember
from hcp.domain.plans import Allocation, SitePlan
from hcp.domain.status import DeviceStatus
from hcp.domain.telemetry import AsicReading, MinerState
from hcp.services.dispatcher import (
    Dispatcher,
    InMemoryCommandLog,
    SiteDispatcher,
    reading_of,
    status_of,
)

LATER = NOW + timedelta(seconds=10)
CURTAIL = AsicTarget({"S21": {}}, reason=REASON)


class FakeDriver:
    """Records every call; addresses in `broken` raise the given error; counts calls in flight."""

    def __init__(self, broken: dict[str, Exception] | None = None, delay_s: float = 0.0) -> None:
        self.calls: list[tuple[str, str, str | None]] = []
        self.broken = broken or {}
        self.delay_s = delay_s
        self.in_flight = self.most_in_flight = 0

    async def _call(self, verb: str, address: str, profile: str | None = None) -> None:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        try:
            await asyncio.sleep(self.delay_s)
            if address in self.broken:
                raise self.broken[address]
            self.calls.append((verb, address, profile))
        finally:
            self.in_flight -= 1

    async def sleep(self, address: str) -> None:
        await self._call("sleep", address)

    async def wake(self, address: str) -> None:
        await self._call("wake", address)

    async def set_profile(self, address: str, profile: str) -> None:
        await self._call("profile", address, profile)


def asleep(index: int) -> AsicReading:
    return reading(f"127.0.0.{index}:4028", MinerState.SLEEPING, at=LATER)


async def test_a_tick_sends_the_plan_and_logs_each_command_with_its_reason() -> None:
    driver, log = FakeDriver(), InMemoryCommandLog()
    dispatcher = Dispatcher(driver, log)
    report = await dispatcher.tick(CURTAIL, [miner(0), miner(1)], NOW)
    assert dispatcher.last_report is report
    assert sorted(driver.calls) == [
        ("sleep", "127.0.0.0:4028", None),
        ("sleep", "127.0.0.1:4028", None),
    ]
    assert len(report.sent) == 2 and report.errors == {}
    records = log.recent()
    assert [r.command.device_id for r in records] == ["m001", "m000"]
    assert all(r.command.reason.endswith(REASON) and r.outcome is None for r in records)


async def test_telemetry_confirms_the_commands_and_the_log_shows_it() -> None:
    log = InMemoryCommandLog()
    dispatcher = Dispatcher(FakeDriver(), log)
    await dispatcher.tick(CURTAIL, [miner(0)], NOW)
    (outcome,) = await dispatcher.confirm([asleep(0)], LATER)
    assert outcome.status is OutcomeStatus.CONFIRMED
    assert dispatcher.pending() == []
    (record,) = log.recent(device_id="m000")
    assert record.outcome == outcome
    again = await dispatcher.tick(CURTAIL, [miner(0, MinerState.SLEEPING)], LATER)
    assert again.plan.commands == ()


async def test_a_command_replaced_before_telemetry_settled_it_is_logged_superseded() -> None:
    log = InMemoryCommandLog()
    dispatcher = Dispatcher(FakeDriver(), log)
    await dispatcher.tick(CURTAIL, [miner(0)], NOW)
    wake = AsicTarget({"S21": {"stock": 1}}, reason=REASON)  # the target changed meanwhile
    await dispatcher.tick(wake, [miner(0)], LATER)
    sleep, woken = sorted(log.recent(device_id="m000"), key=lambda r: r.command.issued_at)
    assert sleep.outcome is not None and sleep.outcome.status is OutcomeStatus.SUPERSEDED
    assert sleep.outcome.detail == f"superseded by {woken.command.id} before telemetry settled it"
    assert woken.outcome is None and dispatcher.pending() == [woken.command]


async def test_a_device_error_marks_the_miner_degraded_and_the_tick_goes_on() -> None:
    broken = {"127.0.0.1:4028": MalformedReply("127.0.0.1:4028", "reply is not JSON")}
    driver, log = FakeDriver(broken), InMemoryCommandLog()
    report = await Dispatcher(driver, log).tick(CURTAIL, [miner(i) for i in range(3)], NOW)
    assert report.degraded == {"m001": "127.0.0.1:4028: reply is not JSON"}
    assert {c.device_id for c in report.sent} == {"m000", "m002"}
    (failed,) = log.recent(device_id="m001")
    assert failed.outcome is not None and failed.outcome.status is OutcomeStatus.FAILED
    assert failed.outcome.detail.startswith("not delivered: 127.0.0.1:4028")


async def test_an_undelivered_command_is_retried_then_the_miner_is_degraded() -> None:
    broken = {"127.0.0.0:4028": DeviceTimeout("127.0.0.0:4028", "no reply within 2 s")}
    dispatcher = Dispatcher(
        FakeDriver(broken), InMemoryCommandLog(), DispatchPolicy(max_attempts=2)
    )
    first = await dispatcher.tick(CURTAIL, [miner(0)], NOW)
    second = await dispatcher.tick(CURTAIL, [miner(0)], LATER)
    third = await dispatcher.tick(CURTAIL, [miner(0)], LATER + timedelta(seconds=10))
    assert [c.attempt for c in first.plan.commands + second.plan.commands] == [1, 2]
    assert third.plan.commands == ()
    assert third.degraded == {"m000": "sleep unconfirmed after 2 attempts"}


async def test_an_unconfirmed_command_fails_at_its_deadline_and_is_sent_again() -> None:
    driver = FakeDriver()
    dispatcher = Dispatcher(driver, InMemoryCommandLog())
    (command,) = (await dispatcher.tick(CURTAIL, [miner(0)], NOW)).plan.commands
    still_mining = reading("127.0.0.0:4028", at=command.confirm_by)
    (outcome,) = await dispatcher.confirm([still_mining], command.confirm_by)
    assert outcome.status is OutcomeStatus.FAILED
    retry = await dispatcher.tick(CURTAIL, [miner(0)], command.confirm_by)
    assert [c.attempt for c in retry.sent] == [2]
    assert len(driver.calls) == 2


async def test_a_wake_into_another_profile_sets_the_profile_first() -> None:
    driver = FakeDriver()
    wanted = AsicTarget({"S21": {"eco": 1}})
    await Dispatcher(driver, InMemoryCommandLog()).tick(
        wanted, [miner(0, MinerState.SLEEPING, "stock")], NOW
    )
    assert driver.calls == [("profile", "127.0.0.0:4028", "eco"), ("wake", "127.0.0.0:4028", None)]


async def test_commands_in_flight_are_bounded_by_the_concurrency() -> None:
    driver = FakeDriver(delay_s=0.01)
    dispatcher = Dispatcher(driver, InMemoryCommandLog(), concurrency=4)
    report = await dispatcher.tick(CURTAIL, [miner(i) for i in range(20)], NOW)
    assert len(report.sent) == 20 and driver.most_in_flight == 4


SWAP = AsicTarget({"S19 XP": {}, "S21": {"stock": 2}}, reason=REASON)
"""Two S19 XP (2 x 3010 W) asleep for two S21 (2 x 3500 W) awake: 970 W more in all."""


def swap_fleet() -> list[MinerView]:
    return [
        miner(1, model=S19),
        miner(2, model=S19),
        miner(3, MinerState.SLEEPING),
        miner(4, MinerState.SLEEPING),
    ]


async def test_wakes_are_sent_once_the_sleeps_making_room_for_them_are_delivered() -> None:
    class SlowSleeps(FakeDriver):
        async def sleep(self, address: str) -> None:
            await asyncio.sleep(0.05)  # a retry after a timeout, say
            await super().sleep(address)

    driver = SlowSleeps()
    report = await Dispatcher(driver, InMemoryCommandLog()).tick(SWAP, swap_fleet(), NOW)
    assert [verb for verb, _, _ in driver.calls] == ["sleep", "sleep", "wake", "wake"]
    assert len(report.sent) == 4 and report.plan.deferred == ()


async def test_wakes_wait_for_a_later_tick_when_the_sleeps_making_room_fail() -> None:
    broken = {"127.0.0.1:4028": DeviceTimeout("127.0.0.1:4028", "no reply within 2 s")}
    driver = FakeDriver(broken)
    dispatcher = Dispatcher(driver, InMemoryCommandLog())
    first = await dispatcher.tick(SWAP, swap_fleet(), NOW)
    # One S19 still hashes: room for one S21 only (3010 + 20 + 3500 + 25 W, not 10,000 W).
    assert driver.calls == [("sleep", "127.0.0.2:4028", None), ("wake", "127.0.0.3:4028", None)]
    assert first.plan.deferred == ("m004",) and first.errors.keys() == {"m001"}
    assert status_of("s1", first).deferred == ("m004",)
    driver.broken.clear()
    second = await dispatcher.tick(SWAP, swap_fleet(), LATER)  # m002, m003: in flight
    assert [(c.device_id, c.action, c.attempt) for c in second.sent] == [
        ("m001", Action.SLEEP, 2),
        ("m004", Action.WAKE, 1),
    ]
    assert second.plan.deferred == ()


async def test_a_miner_whose_sleeps_never_land_is_degraded_for_the_plan_too() -> None:
    """It takes each sleep and hashes on; out of attempts, the dispatcher tells the plan it
    gives it no work (until the cooldown ends), beside the miners it holds asleep."""
    dispatcher = Dispatcher(FakeDriver(), InMemoryCommandLog())
    now = NOW
    for _ in range(4):  # three tries, each past its deadline at the next tick; then degraded
        assert dispatcher.degraded(now) == set()
        hashing = replace(miner(0), reading=reading("127.0.0.0:4028", at=now))
        await dispatcher.tick(CURTAIL, [hashing], now)
        now += timedelta(minutes=5)
    assert dispatcher.degraded(now) == {"m000"} and dispatcher.held_asleep(now) == set()
    assert dispatcher.degraded(now + timedelta(seconds=DEFAULT_POLICY.degraded_cooldown_s)) == set()


async def test_the_dispatcher_wakes_a_miner_slept_within_its_minimum_off_time_last() -> None:
    """m004, the least efficient, was slept two hours ago; m002 and m003 five minutes ago. With
    a 30-minute minimum off time the next wake goes to m004, not to the better m002."""
    ratios = [1.00, 1.02, 1.20, 1.22, 1.30]
    policy = DispatchPolicy(min_off_s=1_800)
    dispatcher = Dispatcher(FakeDriver(), InMemoryCommandLog(), policy)

    def fleet(asleep: set[int], at: datetime) -> list[MinerView]:
        views = []
        for i, ratio in enumerate(ratios):
            state = MinerState.SLEEPING if i in asleep else MinerState.MINING
            polled = reading(f"127.0.0.{i}:4028", state, j_per_th_ratio=ratio, at=at)
            views.append(replace(miner(i), reading=polled))
        return views

    async def tick(running: int, asleep: set[int], at: datetime) -> set[str]:
        report = await dispatcher.tick(
            AsicTarget({"S21": {"stock": running}}), fleet(asleep, at), at
        )
        after = at + timedelta(seconds=30)
        slept = asleep | {int(c.device_id[1:]) for c in report.sent if c.action is Action.SLEEP}
        await dispatcher.confirm([v.reading for v in fleet(slept, after) if v.reading], after)
        return {c.device_id for c in report.sent}

    assert await tick(4, set(), NOW - timedelta(hours=2)) == {"m004"}
    assert await tick(2, {4}, NOW) == {"m002", "m003"}
    assert await tick(3, {2, 3, 4}, NOW + timedelta(minutes=5)) == {"m004"}


def test_the_in_memory_log_keeps_the_newest_records() -> None:
    log = InMemoryCommandLog(capacity=2)
    for command in plan_commands(CURTAIL, [miner(i) for i in range(3)], NOW).commands:
        log.record(command)
    assert [r.command.device_id for r in log.recent()] == ["m002", "m001"]
    assert log.recent(limit=1)[0].command.device_id == "m002"


# --- the control loop's view ---------------------------------------------------------------


class FakeFleet:
    def __init__(self, devices: list[Device]) -> None:
        self._devices = devices

    def members(self, site_id: str, kind: DeviceKind | None = None) -> list[FleetMember]:
        return [
            FleetMember(d.id, d.site_id, d.model_name, d.kind, d.address, d.maintenance)
            for d in self._devices
            if d.site_id == site_id and kind in (None, d.kind)
        ]

    def in_maintenance(self, site_id: str) -> dict[str, str]:
        return {
            d.id: d.maintenance
            for d in self._devices
            if d.site_id == site_id and d.maintenance is not None
        }


class FakeUnitOfWork:
    def __init__(self, devices: list[Device]) -> None:
        self.fleet = FakeFleet(devices)

    def __enter__(self) -> FakeUnitOfWork:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def stored_miner(index: int, address: str | None = None) -> Device:
    address = address if address is not None else f"127.0.0.{index}:4028"
    return Device(
        f"m{index:03d}", "s1", None, "S21", DeviceKind.ASIC, "mining", NOW, address=address
    )


def status(index: int, state: str = "mining", power_w: float = 3_500.0) -> DeviceStatus:
    return DeviceStatus(f"m{index:03d}", state, True, NOW, "stock", power_w, 200.0, 70.0)


PLAN = SitePlan(
    "p1",
    "s1",
    NOW,
    "breakeven",
    "optimal",
    "price 412 $/MWh above S21 stock breakeven 96",
    0.0,
    NOW,
    (Allocation("S21", "stock", 1, 3.5), Allocation("S21", "sleep", 1, 0.025)),
)


async def test_the_site_dispatcher_runs_a_stored_plan_against_the_latest_statuses() -> None:
    devices = [stored_miner(0), stored_miner(1), stored_miner(2, address="")]
    driver, clock = FakeDriver(), ManualClock(NOW)
    dispatcher = Dispatcher(driver, InMemoryCommandLog())
    site = SiteDispatcher(dispatcher, lambda: FakeUnitOfWork(devices), clock)
    latest = {"m000": status(0, power_w=3_400.0), "m001": status(1), "m002": status(2)}
    await site.dispatch(PLAN, latest)
    report = await site.delivered()  # the commands go out in the background
    # m001 is the less efficient of the two; m002 has no address, so it is not dispatched.
    assert driver.calls == [("sleep", "127.0.0.1:4028", None)]
    assert report is site.dispatcher.last_report
    report = site.dispatcher.last_report
    assert report is not None
    assert report.sent[0].reason.endswith(
        "plan 2025-06-01T12:00Z (breakeven): price 412 $/MWh above S21 stock breakeven 96"
    )
    clock.advance(timedelta(seconds=5))
    asleep = replace(status(1, "sleeping", 25.0), at=clock.now())
    (outcome,) = await site.confirm_latest({"m001": asleep})
    assert outcome.status is OutcomeStatus.CONFIRMED


async def test_a_miner_flagged_after_the_fleet_was_read_gets_no_command() -> None:
    """The control loop hands over the fleet as its plan step read it; an operator put m001 in
    maintenance since. The flags are read again before planning: it is not put to sleep as
    the less efficient of the two, and m000 fills the one place of the plan."""
    read_then = [stored_miner(0), stored_miner(1)]
    stored_now = [read_then[0], replace(read_then[1], maintenance="PSU swap")]
    driver = FakeDriver()
    site = SiteDispatcher(
        Dispatcher(driver, InMemoryCommandLog()),
        lambda: FakeUnitOfWork(stored_now),
        ManualClock(NOW),
    )
    latest = {"m000": status(0, power_w=3_400.0), "m001": status(1)}
    await site.dispatch(PLAN, latest, read_then)
    report = await site.delivered()
    assert driver.calls == []
    assert report is not None and report.degraded == {"m001": "in maintenance: PSU swap"}


async def test_a_miner_flagged_while_the_commands_go_out_gets_no_wake() -> None:
    """The commands go out behind the tick, wakes after the sleeps: the flags are read again
    before the wakes, and a miner put in maintenance meanwhile is passed over."""
    stored = [stored_miner(0), stored_miner(1), stored_miner(2)]
    driver = FakeDriver()
    site = SiteDispatcher(
        Dispatcher(driver, InMemoryCommandLog()),
        lambda: FakeUnitOfWork(stored),
        ManualClock(NOW),
    )
    asleep = [status(i, "sleeping", 25.0) for i in (1, 2)]
    latest = {"m000": status(0), "m001": asleep[0], "m002": asleep[1]}
    two = replace(PLAN, allocations=(Allocation("S21", "stock", 2, 7.0),))
    await site.dispatch(two, latest)  # plans the wake of m001
    planned = site.dispatcher.last_report
    assert planned is not None and [c.device_id for c in planned.plan.commands] == ["m001"]
    stored[1] = replace(stored[1], maintenance="PSU swap")  # before the sends run
    report = await site.delivered()
    assert driver.calls == []
    assert report is not None and report.sent == () and report.plan.commands == ()
    assert report.degraded == {"m001": "in maintenance: PSU swap"}


async def test_a_dispatch_returns_once_planned_and_the_next_waits_for_the_sends() -> None:
    devices = [stored_miner(0), stored_miner(1)]
    driver, clock = FakeDriver(delay_s=0.05), ManualClock(NOW)
    site = SiteDispatcher(
        Dispatcher(driver, InMemoryCommandLog()), lambda: FakeUnitOfWork(devices), clock
    )
    latest = {"m000": status(0, power_w=3_400.0), "m001": status(1)}
    await site.dispatch(PLAN, latest)
    await asyncio.sleep(0.01)  # the tick is over; the sleep is still on its way
    assert driver.in_flight == 1 and driver.calls == []
    report = site.dispatcher.last_report
    assert report is not None and len(report.plan.commands) == 1 and report.sent == ()

    clock.advance(timedelta(seconds=1))
    await site.dispatch(PLAN, latest)  # waits for the first tick's sleep before planning
    assert driver.calls == [("sleep", "127.0.0.1:4028", None)]
    done = await site.delivered()
    assert done is not None and done.plan.commands == ()  # in flight: nothing new to send


async def test_a_send_that_breaks_is_logged_and_the_next_dispatch_goes_ahead(
    caplog: pytest.LogCaptureFixture,
) -> None:
    devices = [stored_miner(0), stored_miner(1)]
    driver, clock = (
        FakeDriver(broken={"127.0.0.1:4028": RuntimeError("driver bug")}),
        ManualClock(NOW),
    )
    site = SiteDispatcher(
        Dispatcher(driver, InMemoryCommandLog()), lambda: FakeUnitOfWork(devices), clock
    )
    latest = {"m000": status(0, power_w=3_400.0), "m001": status(1)}
    await site.dispatch(PLAN, latest)
    assert await site.delivered() is None
    assert "sending dispatch commands failed" in caplog.text
    driver.broken.clear()
    clock.advance(timedelta(minutes=5))
    await site.dispatch(PLAN, latest)  # not held up by the broken send
    report = await site.delivered()
    assert report is not None


def test_a_status_of_an_unreachable_miner_is_no_reading() -> None:
    assert reading_of(DeviceStatus("m000", "unreachable", False, NOW), "127.0.0.1:4028") is None
    assert reading_of(None, "127.0.0.1:4028") is None
    back = reading_of(status(0), "127.0.0.1:4028")
    assert back is not None and back.state is MinerState.MINING and back.device == "127.0.0.1:4028"


async def test_an_overheated_miner_is_held_asleep_longer_after_each_trip() -> None:
    """It cools asleep and reads healthy within minutes; woken at once it would overheat again
    every few ticks. Held 10 minutes after the first spell, 20 after the second."""
    dispatcher = Dispatcher(FakeDriver(), InMemoryCommandLog())
    run = AsicTarget({"S21": {"stock": 1}}, reason=REASON)
    hot = ("overheating: 97 °C >= 90 °C",)

    async def tick(minutes: float, state: MinerState, problems: tuple[str, ...] = ()) -> str:
        at = NOW + timedelta(minutes=minutes)
        polled = reading("127.0.0.0:4028", state, problems=problems, at=at)
        report = await dispatcher.tick(run, [replace(miner(0), reading=polled)], at)
        await dispatcher.confirm([polled], at)
        actions = [c.action.value for c in report.plan.commands]
        return ",".join(actions) or report.plan.unhealthy.get("m000", "")

    assert await tick(0, MinerState.MINING, hot) == "sleep"
    held = await tick(5, MinerState.SLEEPING)
    assert held.startswith("held asleep until 2025-06-01T12:10:00") and "overheating" in held
    assert dispatcher.held_asleep(NOW + timedelta(minutes=9)) == {"m000"}  # the plan's view
    assert dispatcher.held_asleep(NOW + timedelta(minutes=10)) == set()
    assert await tick(11, MinerState.SLEEPING) == "wake"
    assert await tick(20, MinerState.MINING, hot) == "sleep"
    assert await tick(21, MinerState.SLEEPING, hot) == hot[0]  # still hot: the spell goes on
    assert (await tick(35, MinerState.SLEEPING)).startswith(
        "held asleep until 2025-06-01T12:41:00+00:00 (trip 2, "
    )
    assert await tick(42, MinerState.SLEEPING) == "wake"
