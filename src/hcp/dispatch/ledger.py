"""The dispatcher's memory between ticks, per miner: the command in flight, the last confirmed
and last failed one, a degradation, the last reading taken while mining, its latest spell of
unhealthy readings, and when it was last put to sleep and last woken. No I/O."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from hcp.dispatch.model import (
    Action,
    Command,
    CommandOutcome,
    Degradation,
    DispatchPolicy,
    MinerView,
    OutcomeStatus,
    Trouble,
)
from hcp.domain.telemetry import AsicReading


@dataclass(slots=True)
class Memory:
    """What the ledger keeps of one miner."""

    pending: Command | None = None
    confirmed: Command | None = None
    failed: Command | None = None
    degraded_until: datetime | None = None
    last_mining: AsicReading | None = None
    trouble: Trouble | None = None
    troubled: bool = False  # the last reading was unhealthy: a spell is going on
    slept_at: datetime | None = None
    woken_at: datetime | None = None


TRIP_MEMORY = timedelta(days=1)
"""A spell of unhealthy readings that starts within this of the last one is one more trip."""


class Ledger:
    """Per-miner memory keyed by device id. A new ledger (a restarted controller) knows nothing;
    the closed loop then works from telemetry alone."""

    def __init__(self) -> None:
        self._memory: dict[str, Memory] = {}

    def observe(self, miner: MinerView) -> MinerView:
        """`miner` (identity and reading, from the caller) with what the ledger remembers."""
        memory = self._memory.setdefault(miner.device_id, Memory())
        reading = miner.reading
        if miner.maintenance is not None:  # repairs: back in service, a miner starts afresh
            memory.trouble, memory.troubled = None, False
        elif reading is not None:
            if reading.problems:
                _note_trouble(memory, reading)
            memory.troubled = bool(reading.problems)
        if reading is not None and reading.mining:
            memory.last_mining = reading
        # Built field by field: `dataclasses.replace` costs several times more, for every
        # miner on every tick.
        return MinerView(
            miner.device_id,
            miner.model,
            miner.address,
            miner.reading,
            pending=memory.pending,
            confirmed=memory.confirmed,
            failed=memory.failed,
            degraded_until=memory.degraded_until,
            last_mining=memory.last_mining,
            trouble=memory.trouble,
            maintenance=miner.maintenance,
            slept_at=memory.slept_at,
            woken_at=memory.woken_at,
        )

    def held(self, now: datetime, policy: DispatchPolicy) -> set[str]:
        """Miners held asleep at `now` after an unhealthy spell (`DispatchPolicy.held_until`)."""
        return {
            device_id
            for device_id, memory in self._memory.items()
            if memory.trouble is not None and now < policy.held_until(memory.trouble)
        }

    def degraded(self, now: datetime) -> set[str]:
        """Miners in a degradation at `now`: out of attempts, they get no work until it ends."""
        return {
            device_id
            for device_id, memory in self._memory.items()
            if memory.degraded_until is not None and now < memory.degraded_until
        }

    def pending(self) -> list[Command]:
        """Every command sent and not yet confirmed or failed."""
        return [m.pending for m in self._memory.values() if m.pending is not None]

    def sent(self, command: Command) -> Command | None:
        """`command` is in flight (a sleep or wake: the miner was switched when it was issued);
        the one it replaces, unsettled, if any (it is superseded)."""
        memory = self._memory.setdefault(command.device_id, Memory())
        replaced, memory.pending = memory.pending, command
        if command.action is Action.SLEEP:
            memory.slept_at = command.issued_at
        elif command.action is Action.WAKE:
            memory.woken_at = command.issued_at
        return replaced if replaced is not None and replaced.id != command.id else None

    def not_delivered(self, command: Command) -> None:
        """The command never reached the miner: a failed try, retried by the next plan."""
        memory = self._memory.setdefault(command.device_id, Memory())
        memory.failed = command
        if memory.pending is not None and memory.pending.id == command.id:
            memory.pending = None

    def settle(self, outcome: CommandOutcome) -> None:
        """Record a final outcome of the command in flight (others are ignored)."""
        memory = self._memory.get(outcome.command.device_id)
        if memory is None or memory.pending is None or memory.pending.id != outcome.command.id:
            return
        memory.pending = None
        if outcome.status is OutcomeStatus.CONFIRMED:
            memory.confirmed, memory.failed = outcome.command, None
        elif outcome.status is OutcomeStatus.FAILED:
            memory.failed = outcome.command

    def degrade(self, degradation: Degradation) -> None:
        """No work until `degradation.until`; then the miner starts again from attempt 1."""
        memory = self._memory.setdefault(degradation.device_id, Memory())
        memory.degraded_until = degradation.until
        memory.failed = memory.pending = None


def _note_trouble(memory: Memory, reading: AsicReading) -> None:
    """An unhealthy reading: the spell goes on, or a new one starts (a trip, counted on from
    the last spell when that was seen within `TRIP_MEMORY`)."""
    problems = "; ".join(reading.problems)
    last = memory.trouble
    if last is not None and memory.troubled:
        memory.trouble = Trouble(problems, max(last.last_seen, reading.at), last.trips)
        return
    recent = last is not None and reading.at - last.last_seen <= TRIP_MEMORY
    memory.trouble = Trouble(problems, reading.at, last.trips + 1 if recent and last else 1)
