"""Dispatch use case: turn an ASIC target into device commands and confirm them by telemetry.

One control tick, as the controller runs it:

    readings = ...poll every miner...                      # telemetry, not this module
    await dispatcher.confirm(readings, now)                 # settle commands in flight
    report = await dispatcher.tick(target, miners, now)     # decide and send the next ones

The pure core (`hcp.dispatch`) decides; this module sends through a `MinerDriver`, keeps the
per-miner ledger and records every command and outcome in a `CommandLog`. `SiteDispatcher` keeps
what the ledger remembers in a `DispatchMemoryStore` as it changes, and takes it up again when
a process starts leading the site (`restore_memory`). A miner that fails
(garbage, timeout, reset, refusal) is reported degraded; it never stops the tick.
`SiteDispatcher` is the control loop's view of it: a stored plan and the fleet's latest
statuses in, the same tick out.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from hcp.aio import bounded_map
from hcp.dispatch import (
    DEFAULT_POLICY,
    Action,
    AsicTarget,
    Command,
    CommandOutcome,
    DispatchPlan,
    DispatchPolicy,
    Ledger,
    MinerMemory,
    MinerView,
    OutcomeStatus,
    admit_increases,
    confirm,
    plan_commands,
    set_aside,
)
from hcp.domain.catalog import ASIC_MODELS
from hcp.domain.devices import DeviceKind
from hcp.domain.errors import HcpError
from hcp.domain.fleet import FleetMember, Member
from hcp.domain.plans import SitePlan
from hcp.domain.status import DeviceStatus
from hcp.domain.telemetry import AsicReading, MinerState
from hcp.services.ports import Clock, DispatchMemoryStore, DispatchStatus, UnitOfWorkFactory

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 256
"""Commands in flight at once (the driver may bound its exchanges further)."""


MaintenanceFlags = Callable[[], Awaitable[Mapping[str, str]]]
"""Reads which miners are in maintenance now (device id -> why)."""


class MinerDriver(Protocol):
    """Sends orders to one miner at `address` (`host:port`); raises an HcpError naming it."""

    async def sleep(self, address: str) -> None: ...
    async def wake(self, address: str) -> None: ...
    async def set_profile(self, address: str, profile: str) -> None: ...


class CommandLog(Protocol):
    """Where every command and each final outcome is recorded (the API reads it back)."""

    def record(self, command: Command) -> None: ...
    def record_outcome(self, outcome: CommandOutcome) -> None: ...


@dataclass(frozen=True, slots=True)
class CommandRecord:
    """A command with its latest outcome (None until telemetry or the deadline settles it)."""

    command: Command
    outcome: CommandOutcome | None = None


class InMemoryCommandLog:
    """The last `capacity` commands with their outcomes, newest last."""

    def __init__(self, capacity: int = 100_000) -> None:
        self.capacity = capacity
        self._records: OrderedDict[str, CommandRecord] = OrderedDict()

    def record(self, command: Command) -> None:
        self._records[command.id] = CommandRecord(command)
        while len(self._records) > self.capacity:
            self._records.popitem(last=False)

    def record_outcome(self, outcome: CommandOutcome) -> None:
        key = outcome.command.id
        if key in self._records:
            self._records[key] = CommandRecord(outcome.command, outcome)

    def recent(self, limit: int = 100, device_id: str | None = None) -> list[CommandRecord]:
        """The newest `limit` records (of one device if given), newest first."""
        found: list[CommandRecord] = []
        for record in reversed(self._records.values()):
            if device_id is None or record.command.device_id == device_id:
                found.append(record)
                if len(found) >= limit:
                    break
        return found


@dataclass(frozen=True, slots=True)
class DispatchReport:
    """One tick: the plan, the commands delivered, and those the driver could not deliver
    (device id: error)."""

    at: datetime
    plan: DispatchPlan
    sent: tuple[Command, ...]
    errors: Mapping[str, str] = field(default_factory=dict)

    @property
    def degraded(self) -> dict[str, str]:
        """Miners the dispatcher cannot manage now, and why: no telemetry, out of attempts,
        in a degradation, or a command that did not get through this tick."""
        return {**self.plan.degraded, **self.errors}


def status_of(site_id: str, report: DispatchReport) -> DispatchStatus:
    """What the API shows of a site's dispatch report."""
    plan = report.plan
    return DispatchStatus(
        site_id=site_id,
        at=report.at,
        commands=len(plan.commands),
        sent=len(report.sent),
        power_increase_w=plan.power_increase_w,
        deferred=tuple(plan.deferred),
        shortfall=dict(plan.shortfall),
        unhealthy=dict(plan.unhealthy),
        degraded=report.degraded,
    )


class Dispatcher:
    """Closed-loop dispatch of ASIC miners through `driver`, every command logged in `log`."""

    def __init__(
        self,
        driver: MinerDriver,
        command_log: CommandLog,
        policy: DispatchPolicy = DEFAULT_POLICY,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self.driver = driver
        self.log = command_log
        self.policy = policy
        self.concurrency = concurrency
        self.ledger = Ledger()
        # The last tick's plan and delivery: its shortfall, deferred and degraded miners.
        self.last_report: DispatchReport | None = None

    async def tick(
        self, target: AsicTarget, miners: Iterable[MinerView], now: datetime
    ) -> DispatchReport:
        """Plan and send this tick's commands; device errors are reported, never raised.

        `miners` give identity and the latest reading; the dispatcher adds what it remembers
        (commands in flight, confirmed, failed; degradations).
        """
        return await self.send(self.plan(target, miners, now), now)

    def plan(self, target: AsicTarget, miners: Iterable[MinerView], now: datetime) -> DispatchPlan:
        """This tick's commands (the first half of `tick`); nothing is sent yet."""
        views = [self.ledger.observe(miner) for miner in miners]
        plan = plan_commands(target, views, now, self.policy)
        for degradation in plan.newly_degraded:
            self.ledger.degrade(degradation)
            log.warning("%s degraded: %s", degradation.device_id, degradation.reason)
        self.last_report = DispatchReport(now, plan, ())
        return plan

    async def send(
        self, plan: DispatchPlan, now: datetime, maintenance: MaintenanceFlags | None = None
    ) -> DispatchReport:
        """Deliver `plan`'s commands (the second half of `tick`): the decreases first, then the
        increases as far as the decreases delivered make room (`admit_increases`), but for
        those to miners that `maintenance`, read just before they go, says were put in
        maintenance since the plan (`set_aside`; the decreases may take seconds). The report
        says which the driver could not deliver; its plan defers the increases held back."""
        decreases = plan.decreases
        errors = await self._send_all(decreases, now)
        undelivered = [c for c in decreases if c.device_id in errors]
        admitted = admit_increases(plan, undelivered)
        if held := len(admitted.deferred) - len(plan.deferred):
            log.warning(
                "%d of %d sleeps and profile cuts were not delivered: %d wakes and profile "
                "raises wait for a later tick",
                len(undelivered),
                len(decreases),
                held,
            )
        if maintenance is not None and admitted.increases:
            admitted = set_aside(admitted, await maintenance())
        errors.update(await self._send_all(admitted.increases, now))
        sent = tuple(c for c in admitted.commands if c.device_id not in errors)
        self.last_report = DispatchReport(now, admitted, sent, errors)
        return self.last_report

    async def confirm(self, readings: Iterable[AsicReading], now: datetime) -> list[CommandOutcome]:
        """Settle the commands in flight against `readings`; returns every pending outcome."""
        outcomes = confirm(self.ledger.pending(), readings, now, self.policy)
        for outcome in outcomes:
            if outcome.final:
                self.ledger.settle(outcome)
                self.log.record_outcome(outcome)
        return outcomes

    def pending(self) -> list[Command]:
        """Commands sent and not yet settled."""
        return self.ledger.pending()

    def restore(
        self, memories: Iterable[MinerMemory], addresses: Mapping[str, str] | None = None
    ) -> None:
        """Take up what an earlier dispatcher of the site remembered (`Ledger.restore`): its
        holds, degradations and attempts count here, and its commands in flight are settled
        by `confirm` (telemetry, or their deadline)."""
        self.ledger.restore(memories, addresses)

    def held_asleep(self, now: datetime) -> set[str]:
        """Miners kept asleep at `now` though they may read healthy: after an unhealthy spell."""
        return self.ledger.held(now, self.policy)

    def degraded(self, now: datetime) -> set[str]:
        """Miners given no work at `now` though they may read healthy: out of attempts (a
        sleep that never lands leaves one hashing)."""
        return self.ledger.degraded(now)

    async def _send_all(self, commands: Sequence[Command], now: datetime) -> dict[str, str]:
        async def one(command: Command) -> tuple[str, str] | None:
            return await self._send(command, now)

        failures = await bounded_map(one, commands, self.concurrency)
        return dict(failure for failure in failures if failure is not None)

    async def _send(self, command: Command, now: datetime) -> tuple[str, str] | None:
        """Deliver one command; (device id, error) when it could not be."""
        self.log.record(command)
        try:
            await self._deliver(command)
        except HcpError as error:
            self.ledger.not_delivered(command)
            detail = f"not delivered: {error}"
            self.log.record_outcome(CommandOutcome(command, OutcomeStatus.FAILED, now, detail))
            return command.device_id, str(error)
        replaced = self.ledger.sent(command)
        if replaced is not None:  # settled in the log, or it would read "sent" for ever
            detail = f"superseded by {command.id} before telemetry settled it"
            self.log.record_outcome(CommandOutcome(replaced, OutcomeStatus.SUPERSEDED, now, detail))
        return None

    async def _deliver(self, command: Command) -> None:
        address = command.address
        if command.action is Action.SLEEP:
            await self.driver.sleep(address)
            return
        assert command.profile is not None, "wakes and profile changes name their profile"
        if command.action is Action.PROFILE or command.profile != command.from_profile:
            await self.driver.set_profile(address, command.profile)
        if command.action is Action.WAKE:
            await self.driver.wake(address)


class SiteDispatcher:
    """The control loop's ASIC dispatcher for one site (its `AsicDispatcher` port).

    Each `dispatch` reads the site's miners from the store, turns their latest statuses into
    readings, settles the commands in flight and plans one tick towards the plan's ASIC target;
    the commands then go out in the background, so a tick that moves thousands of miners does
    not wait for thousands of TCP exchanges (`delivered` waits for them; the next `dispatch`
    does, before it plans). Confirmation comes from telemetry either way.
    `max_power_increase_w` is the site's ramp limit per tick in W at the miners. `memory`,
    when given, keeps what the dispatcher remembers of each miner (`store_memory`,
    `restore_memory`).
    """

    def __init__(
        self,
        dispatcher: Dispatcher,
        uow: UnitOfWorkFactory,
        clock: Clock,
        max_power_increase_w: float = math.inf,
        memory: DispatchMemoryStore | None = None,
    ) -> None:
        self.dispatcher = dispatcher
        self._uow = uow
        self._clock = clock
        self.max_power_increase_w = max_power_increase_w
        self._delivery: asyncio.Task[DispatchReport] | None = None
        self._memory = memory
        self._storing = asyncio.Lock()  # one write at a time: a later state never goes first

    async def restore_memory(self, addresses: Mapping[str, str]) -> list[MinerMemory]:
        """Take up the memory stored of the site's miners (`Dispatcher.restore`; `addresses`:
        where each miner is now); what was restored."""
        if self._memory is None:
            return []
        memories = await asyncio.to_thread(self._memory.load)
        self.dispatcher.restore(memories, addresses)
        return memories

    async def store_memory(self) -> int:
        """Store what changed in the dispatcher's memory since the last call (one statement, in
        a worker thread); how many miners' memories were written. A write that fails leaves
        them to the next call (as they are then), and raises."""
        if self._memory is None:
            return 0
        async with self._storing:
            ledger = self.dispatcher.ledger
            changed = ledger.changed()
            if not changed:
                return 0
            try:
                await asyncio.to_thread(self._memory.save, changed)
            except BaseException:
                ledger.unsaved(changed)
                raise
            return len(changed)

    async def dispatch(
        self,
        plan: SitePlan,
        latest: Mapping[str, DeviceStatus],
        devices: Sequence[Member] | None = None,
        others_added_w: float = 0.0,
    ) -> None:
        """Confirm what is in flight, then move the site's miners towards `plan`. `devices`
        is the site's fleet when the caller has just read it (else it is read here);
        `others_added_w` is the power the GPUs were ordered to add this tick, which comes off
        the miners' share of the ramp (power they give back adds nothing to it: sleeps are
        never held back, and a rise is only ever deferred). The maintenance flags are read
        again just before planning, and before the wakes and raises go: a miner an operator
        took out while the tick ran (its scheduler step, say) gets no command, and one taken
        out while the sleeps went gets no wake or raise. Returns once the commands are planned and
        logged; they are sent in the background."""
        await self.delivered()  # the last tick's commands are out before new ones are planned
        site_id = plan.site_id

        async def flags_now() -> dict[str, str]:
            return await asyncio.to_thread(self._maintenance_of, site_id)

        if devices is None:  # read now: their flags are fresh
            devices = await asyncio.to_thread(self._devices_of, site_id)
            flags = {d.id: d.maintenance for d in devices if d.maintenance is not None}
        else:
            flags = await flags_now()
        miners = [
            miner_view(d, latest.get(d.id), flags.get(d.id))
            for d in devices
            if _managed(d, site_id)
        ]
        now = self._clock.now()
        await self.dispatcher.confirm([m.reading for m in miners if m.reading], now)
        planned = self.dispatcher.plan(self.target(plan, others_added_w), miners, now)
        self._delivery = asyncio.create_task(self.dispatcher.send(planned, now, flags_now))
        self._delivery.add_done_callback(_log_failure)

    async def delivered(self) -> DispatchReport | None:
        """Wait until the last dispatch's commands are sent (or failed); its report, or None
        when there was none or the sending itself broke (that is logged, and forgotten so
        that the next dispatch goes ahead). Waiting never cancels the sends."""
        task = self._delivery
        if task is None:
            return None
        await asyncio.wait({task})
        if task.cancelled() or task.exception() is not None:
            self._delivery = None
            return None
        return task.result()

    async def confirm_latest(self, latest: Mapping[str, DeviceStatus]) -> list[CommandOutcome]:
        """Settle commands in flight from a poll between ticks (confirmations come sooner)."""
        in_flight = {command.device_id: command.address for command in self.dispatcher.pending()}
        readings = (reading_of(latest.get(d), address) for d, address in in_flight.items())
        return await self.dispatcher.confirm([r for r in readings if r], self._clock.now())

    def held_asleep(self) -> set[str]:
        """Miners the dispatcher keeps asleep now after an unhealthy spell."""
        return self.dispatcher.held_asleep(self._clock.now())

    def degraded(self) -> set[str]:
        """Miners the dispatcher gives no work now, out of attempts."""
        return self.dispatcher.degraded(self._clock.now())

    def target(self, plan: SitePlan, others_added_w: float = 0.0) -> AsicTarget:
        """What the miners should run, with what is left of the ramp after `others_added_w`."""
        at = plan.interval_start.strftime("%Y-%m-%dT%H:%MZ")
        reason = f"plan {at} ({plan.strategy}): {plan.reason or plan.status}"
        running = plan.asic_target(set(ASIC_MODELS))
        rise_w = max(0.0, self.max_power_increase_w - max(0.0, others_added_w))
        return AsicTarget(running, rise_w, reason)

    def _devices_of(self, site_id: str) -> list[FleetMember]:
        with self._uow() as uow:
            return uow.fleet.members(site_id, DeviceKind.ASIC)

    def _maintenance_of(self, site_id: str) -> dict[str, str]:
        with self._uow() as uow:
            return uow.fleet.in_maintenance(site_id)


def _log_failure(task: asyncio.Task[DispatchReport]) -> None:
    if not task.cancelled() and (error := task.exception()) is not None:
        log.error("sending dispatch commands failed", exc_info=error)


def _managed(device: Member, site_id: str) -> bool:
    """A miner of the site that the dispatcher can reach and knows the model of."""
    return (
        device.kind is DeviceKind.ASIC
        and device.site_id == site_id
        and bool(device.address)
        and device.model_name in ASIC_MODELS
    )


def miner_view(device: Member, status: DeviceStatus | None, maintenance: str | None) -> MinerView:
    """What the dispatcher is told of one stored miner: identity, latest reading and why it
    is in maintenance (`maintenance`, as read just now; None: in service)."""
    address = device.address or ""
    model = ASIC_MODELS[device.model_name]
    reading = reading_of(status, address)
    return MinerView(device.id, model, address, reading, maintenance=maintenance)


_STATES = {state.value: state for state in MinerState}


def reading_of(status: DeviceStatus | None, address: str) -> AsicReading | None:
    """The reading a status was made from (None when the miner did not answer)."""
    if status is None or status.state not in _STATES:
        return None
    return AsicReading(  # by position: 10,000 of these a tick
        address,
        status.at,
        _STATES[status.state],
        status.hashrate_ths,
        status.power_w,
        status.temperature_c,
        status.profile,
        0,  # accepted shares: not kept in a status
        0,  # rejected shares
        status.problems,
    )
