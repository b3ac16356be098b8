"""The dispatcher with the LuxOS driver against a simulated fleet over real TCP on loopback.

Time is the simulator's fast-forward clock, shared by the miners, the driver's readings and
the dispatcher, so a test can let a wake ramp for four minutes in one call.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pytest

from hcp.adapters.devices.errors import DeviceError
from hcp.adapters.devices.luxos import RetryPolicy
from hcp.adapters.devices.luxos_driver import LuxosMinerDriver, split_address
from hcp.dispatch import Action, AsicTarget, CommandOutcome, MinerView, OutcomeStatus
from hcp.domain.catalog import asic_model
from hcp.domain.telemetry import AsicReading, MinerState
from hcp.services.dispatcher import Dispatcher, DispatchReport, InMemoryCommandLog
from hcp.simulators.asic import Addressing, AsicFleetSimulator, Faults, uniform_fleet

S21 = asic_model("S21")
MINERS = 50
SLEEP_30 = AsicTarget({"S21": {"stock": MINERS - 30}}, reason="plan: price spike, curtail 30")
POLL_S = 5.0


class FastForwardClock:
    def __init__(self) -> None:
        self._now = datetime(2025, 6, 1, 12, tzinfo=UTC)

    def now(self) -> datetime:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += timedelta(seconds=seconds)


@dataclass
class Site:
    """A simulated fleet, the driver that reaches it and the dispatcher that commands it."""

    fleet: AsicFleetSimulator
    clock: FastForwardClock
    driver: LuxosMinerDriver
    dispatcher: Dispatcher
    log: InMemoryCommandLog

    @property
    def addresses(self) -> list[str]:
        return [f"{host}:{port}" for host, port in self.fleet.addresses]

    async def poll(self) -> list[AsicReading | DeviceError]:
        """Let one poll interval pass, then read every miner."""
        self.clock.advance(POLL_S)
        return await self.driver.read_all(self.addresses)

    async def control(self, target: AsicTarget) -> tuple[list[CommandOutcome], DispatchReport]:
        """One closed-loop tick: poll, confirm what is in flight, plan and send."""
        polled = await self.poll()
        now = self.clock.now()
        outcomes = await self.dispatcher.confirm(readings(polled), now)
        report = await self.dispatcher.tick(target, self.views(polled), now)
        return outcomes, report

    def views(self, polled: Sequence[AsicReading | DeviceError]) -> list[MinerView]:
        return [
            MinerView(f"asic-{i:03d}", S21, address, r if isinstance(r, AsicReading) else None)
            for i, (address, r) in enumerate(zip(self.addresses, polled, strict=True))
        ]

    def index(self, device_id: str) -> int:
        return int(device_id.removeprefix("asic-"))


def readings(polled: Sequence[AsicReading | DeviceError]) -> list[AsicReading]:
    return [r for r in polled if isinstance(r, AsicReading)]


@pytest.fixture
async def site() -> AsyncIterator[Site]:
    clock = FastForwardClock()
    config = uniform_fleet(S21, MINERS, addressing=Addressing.PORTS, first_port=0)
    retry = RetryPolicy(attempts=2, first_delay_s=0.01, max_delay_s=0.02)
    driver = LuxosMinerDriver(timeout_s=0.5, retry=retry, clock=clock)
    log = InMemoryCommandLog()
    async with AsicFleetSimulator(config, clock) as fleet:
        yield Site(fleet, clock, driver, Dispatcher(driver, log), log)
        await driver.close()


async def test_curtailing_30_of_50_miners_is_confirmed_by_telemetry(site: Site) -> None:
    polled = await site.poll()
    report = await site.dispatcher.tick(SLEEP_30, site.views(polled), site.clock.now())
    assert len(report.sent) == 30 and report.errors == {}
    assert {c.action for c in report.sent} == {Action.SLEEP}
    worst_30 = sorted(readings(polled), key=lambda r: r.power_w / r.hashrate_ths)[-30:]
    assert {c.address for c in report.sent} == {r.device for r in worst_30}

    outcomes, again = await site.control(SLEEP_30)
    assert [o.status for o in outcomes] == [OutcomeStatus.CONFIRMED] * 30
    assert again.plan.commands == () and site.dispatcher.pending() == []
    asleep = [m for m in site.fleet.miners if m.state is MinerState.SLEEPING]
    assert len(asleep) == 30
    records = site.log.recent(limit=100)
    assert len(records) == 30 and all(r.outcome in outcomes for r in records)
    assert records[0].command.reason.endswith("plan: price spike, curtail 30")


async def test_a_miner_that_wakes_by_itself_is_put_back_to_sleep_on_the_next_tick(
    site: Site,
) -> None:
    await site.control(SLEEP_30)
    await site.control(SLEEP_30)  # confirms the 30 sleeps
    rogue = next(c for c in site.log.recent() if c.command.action is Action.SLEEP).command
    site.fleet.miners[site.index(rogue.device_id)].wake(site.clock.now())  # a reboot, say

    _, report = await site.control(SLEEP_30)
    (command,) = report.sent
    assert command.device_id == rogue.device_id and command.action is Action.SLEEP
    assert command.reason.startswith("drift: confirmed sleeping, reads mining at stock")
    outcomes, _ = await site.control(SLEEP_30)
    assert [o.status for o in outcomes] == [OutcomeStatus.CONFIRMED]
    assert site.fleet.miners[site.index(rogue.device_id)].state is MinerState.SLEEPING


async def test_broken_miners_are_degraded_and_the_tick_completes(site: Site) -> None:
    await site.fleet.set_faults(0, Faults(malformed_replies=True))
    await site.fleet.set_faults(1, Faults(reset_connections=True))
    polled = await site.poll()
    # These answer the poll, then break before the command reaches them.
    await site.fleet.set_faults(2, Faults(malformed_replies=True))
    await site.fleet.set_faults(3, Faults(reply_delay_s=2.0))
    await site.fleet.set_faults(4, Faults(reset_connections=True))
    started = time.monotonic()
    report = await site.dispatcher.tick(
        AsicTarget({"S21": {}}), site.views(polled), site.clock.now()
    )
    assert time.monotonic() - started < 3.0
    assert report.plan.degraded == {"asic-000": "no telemetry", "asic-001": "no telemetry"}
    assert set(report.errors) == {"asic-002", "asic-003", "asic-004"}
    assert set(report.degraded) == {f"asic-{i:03d}" for i in range(5)}
    assert len(report.sent) == MINERS - 5
    for i in range(2, 5):
        (record,) = site.log.recent(device_id=f"asic-{i:03d}")
        assert record.outcome is not None and record.outcome.status is OutcomeStatus.FAILED


async def test_wakes_are_staggered_by_the_ramp_limit_and_confirmed_once_ramped(
    site: Site,
) -> None:
    await site.control(AsicTarget({"S21": {}}))
    await site.control(AsicTarget({"S21": {}}))  # all 50 asleep, confirmed
    ten_wakes_w = 10 * (S21.stock.power_w - S21.sleep_power_w)
    wake_all = AsicTarget({"S21": {"stock": MINERS}}, max_power_increase_w=ten_wakes_w)
    _, first = await site.control(wake_all)
    assert len(first.sent) == 10 and len(first.plan.deferred) == 40
    assert first.plan.power_increase_w <= ten_wakes_w

    outcomes, second = await site.control(wake_all)  # 5 s later: still ramping
    assert {o.status for o in outcomes} == {OutcomeStatus.IN_PROGRESS}
    assert len(second.sent) == 10
    site.clock.advance(S21.wake_seconds)
    outcomes, _ = await site.control(wake_all)
    assert [o.status for o in outcomes] == [OutcomeStatus.CONFIRMED] * 20


def test_addresses_split_into_host_and_port() -> None:
    assert split_address("127.1.0.7:4028") == ("127.1.0.7", 4028)
    assert split_address("127.1.0.7") == ("127.1.0.7", 4028)
    assert split_address("[::1]:14028") == ("::1", 14028)
    assert split_address("::1") == ("::1", 4028)
