"""Whether telemetry confirms a command: success is read, never assumed.

A command is confirmed by the first reading taken after it was issued that shows its outcome: a
sleep reads as sleeping at about the model's sleep power, a wake or profile change as mining at
the commanded profile (a miner still ramping up is in progress). Without such a reading by the
command's deadline it has failed, and the next plan retries it.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from hcp.dispatch.model import (
    DEFAULT_POLICY,
    Action,
    Command,
    CommandOutcome,
    DispatchPolicy,
    OutcomeStatus,
)
from hcp.domain.telemetry import AsicReading, MinerState


def confirm(
    commands: Iterable[Command],
    readings: Iterable[AsicReading],
    now: datetime,
    policy: DispatchPolicy = DEFAULT_POLICY,
) -> list[CommandOutcome]:
    """The outcome of each command given the readings (matched by address, newest wins)."""
    latest = latest_by_device(readings)
    return [outcome(c, latest.get(c.address), now, policy) for c in commands]


def latest_by_device(readings: Iterable[AsicReading]) -> dict[str, AsicReading]:
    """The newest reading of each device (`host:port`)."""
    latest: dict[str, AsicReading] = {}
    for reading in readings:
        seen = latest.get(reading.device)
        if seen is None or reading.at > seen.at:
            latest[reading.device] = reading
    return latest


def outcome(
    command: Command, reading: AsicReading | None, now: datetime, policy: DispatchPolicy
) -> CommandOutcome:
    """Confirmed, in progress or failed, with what the miner reads as."""
    fresh = reading if reading is not None and reading.at > command.issued_at else None
    detail = "no reading since the command" if fresh is None else reads_as(fresh)
    if fresh is not None and shows_done(command, fresh, policy):
        status = OutcomeStatus.CONFIRMED
    elif now >= command.confirm_by:
        status = OutcomeStatus.FAILED
        detail = f"unconfirmed by {command.confirm_by.isoformat()}: {detail}"
    else:
        status = OutcomeStatus.IN_PROGRESS
    return CommandOutcome(command, status, now, detail)


def shows_done(command: Command, reading: AsicReading, policy: DispatchPolicy) -> bool:
    """Whether `reading` shows the command carried out."""
    if command.action is Action.SLEEP:
        ceiling_w = command.expected_power_w * (1 + policy.sleep_power_tolerance)
        return reading.state is MinerState.SLEEPING and reading.power_w <= ceiling_w
    return reading.state is MinerState.MINING and reading.profile == command.profile


def reads_as(reading: AsicReading) -> str:
    """`sleeping, 25 W` or `mining at stock, 201 TH/s, 3498 W`."""
    if reading.state is MinerState.SLEEPING:
        return f"sleeping, {reading.power_w:.0f} W"
    return (
        f"{reading.state} at {reading.profile or '?'}, "
        f"{reading.hashrate_ths:.0f} TH/s, {reading.power_w:.0f} W"
    )
