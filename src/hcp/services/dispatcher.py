"""Dispatch use case: turn an ASIC target into device commands and confirm them by telemetry.

One control tick, as the controller runs it:

    readings = ...poll every miner...                      # telemetry, not this module
    await dispatcher.confirm(readings, now)                 # settle commands in flight
    report = await dispatcher.tick(target, miners, now)     # decide and send the next ones

The pure core (`hcp.dispatch`) decides; this module sends through a `MinerDriver`, keeps the
per-miner ledger and records every command and outcome in a `CommandLog`. A miner that fails
(garbage, timeout, reset, refusal) is reported degraded; it never stops the tick.
"""

from __future__ import annotations

import asyncio
import logging
from collections import OrderedDict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from hcp.dispatch import (
    DEFAULT_POLICY,
    Action,
    AsicTarget,
    Command,
    CommandOutcome,
    DispatchPlan,
    DispatchPolicy,
    Ledger,
    MinerView,
    OutcomeStatus,
    confirm,
    plan_commands,
)
from hcp.domain.errors import HcpError
from hcp.domain.telemetry import AsicReading

log = logging.getLogger(__name__)

DEFAULT_CONCURRENCY = 256
"""Commands in flight at once (the driver may bound its exchanges further)."""


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

    async def tick(
        self, target: AsicTarget, miners: Iterable[MinerView], now: datetime
    ) -> DispatchReport:
        """Plan and send this tick's commands; device errors are reported, never raised.

        `miners` give identity and the latest reading; the dispatcher adds what it remembers
        (commands in flight, confirmed, failed; degradations).
        """
        views = [self.ledger.observe(miner) for miner in miners]
        plan = plan_commands(target, views, now, self.policy)
        for degradation in plan.newly_degraded:
            self.ledger.degrade(degradation)
            log.warning("%s degraded: %s", degradation.device_id, degradation.reason)
        errors = await self._send_all(plan.commands, now)
        sent = tuple(c for c in plan.commands if c.device_id not in errors)
        return DispatchReport(now, plan, sent, errors)

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

    async def _send_all(self, commands: Sequence[Command], now: datetime) -> dict[str, str]:
        limiter = asyncio.Semaphore(self.concurrency)

        async def one(command: Command) -> tuple[str, str] | None:
            async with limiter:
                return await self._send(command, now)

        failures = await asyncio.gather(*(one(command) for command in commands))
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
        self.ledger.sent(command)
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
