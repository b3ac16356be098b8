"""The dispatcher's memory between ticks, per miner: the command in flight, the last confirmed
and last failed one, a degradation, the last reading taken while mining, its latest spell of
unhealthy readings, and when it was last put to sleep and last woken. No I/O.

The memory outlives the process through plain data: `Ledger.changed` hands out what changed of
each miner since it was last asked (`MinerMemory`), for the caller to store; `Ledger.restore`
takes it back into the ledger of a controller that starts leading the site (a restart, or a
standby taking over from a dead leader), so a miner held asleep stays asleep, a degraded one
stays degraded, attempts count on, and the commands in flight are settled by telemetry or
their deadline as if nothing had happened.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, fields, replace
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
    hashing: bool = False  # the last reading was mining: `last_mining` moves with every poll
    # Restored in the middle of a spell: how long it went on while no ledger read the miner is
    # not known (see `Ledger`).
    spell_restored: bool = False


@dataclass(frozen=True, slots=True)
class MinerMemory:
    """What the ledger remembers of one miner, as plain data (see `Memory`; `troubled`: the
    last reading was unhealthy, so a further one is the same spell, not another trip)."""

    device_id: str
    pending: Command | None = None
    confirmed: Command | None = None
    failed: Command | None = None
    degraded_until: datetime | None = None
    last_mining: AsicReading | None = None
    trouble: Trouble | None = None
    troubled: bool = False
    slept_at: datetime | None = None
    woken_at: datetime | None = None


TRIP_MEMORY = timedelta(days=1)
"""A spell of unhealthy readings that starts within this of the last one is one more trip."""


class Ledger:
    """Per-miner memory keyed by device id. A new ledger knows nothing until it is given what
    an earlier one remembered (`restore`); without that the closed loop works from telemetry
    alone.

    Every change to a miner's memory marks it changed, but two that come with every reading:
    the last mining reading of a hashing miner is marked when the miner stops hashing (only
    then does it stand for the miner's efficiency), and a spell of unhealthy readings when it
    starts and when it ends, not at each reading in between (a miner with a dead board reads
    unhealthy for weeks). Both go along with any other change of the miner (a sleep sent, say).
    So a tick in which nothing starts or ends changes nothing.

    A spell still going on when the memory was stored is not known to have ended before the
    first reading the restored ledger takes: its miner is held until that reading, and, if it
    reads healthy, as if the spell ended then (never sooner than it may have)."""

    def __init__(self) -> None:
        self._memory: dict[str, Memory] = {}
        self._changed: set[str] = set()

    def observe(self, miner: MinerView) -> MinerView:
        """`miner` (identity and reading, from the caller) with what the ledger remembers."""
        device_id = miner.device_id
        memory = self._memory.get(device_id)
        if memory is None:
            memory = self._memory[device_id] = Memory()
        reading = miner.reading
        if miner.maintenance is not None:  # repairs: back in service, a miner starts afresh
            if memory.trouble is not None or memory.troubled:
                memory.trouble, memory.troubled, memory.spell_restored = None, False, False
                self._changed.add(device_id)
        elif reading is not None:
            if reading.problems:
                if _note_trouble(memory, reading):
                    self._changed.add(device_id)
                memory.troubled, memory.spell_restored = True, False
            elif memory.troubled:
                if memory.spell_restored and memory.trouble is not None:
                    last = memory.trouble
                    memory.trouble = Trouble(
                        last.problems, max(last.last_seen, reading.at), last.trips
                    )
                memory.troubled, memory.spell_restored = False, False
                self._changed.add(device_id)
        if reading is not None and reading.mining:
            memory.last_mining = reading
            memory.hashing = True
        elif memory.hashing:
            memory.hashing = False
            self._changed.add(device_id)
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
        """Miners held asleep at `now` after an unhealthy spell (`DispatchPolicy.held_until`),
        or in one restored unended (no reading since says it is over)."""
        return {
            device_id
            for device_id, memory in self._memory.items()
            if memory.trouble is not None
            and (memory.spell_restored or now < policy.held_until(memory.trouble))
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

    def changed(self) -> list[MinerMemory]:
        """What changed of each miner since the last call (or the ledger was made), to store;
        the next call hands out only what changes after this one."""
        changed, self._changed = self._changed, set()
        return [_frozen(device_id, self._memory[device_id]) for device_id in changed]

    def unsaved(self, memories: Iterable[MinerMemory]) -> None:
        """Those memories could not be stored: hand these miners out again with the next
        `changed` (as they are then)."""
        self._changed.update(memory.device_id for memory in memories)

    def snapshot(self) -> list[MinerMemory]:
        """What the ledger remembers of every miner it knows."""
        return [_frozen(device_id, memory) for device_id, memory in self._memory.items()]

    def restore(
        self, memories: Iterable[MinerMemory], addresses: Mapping[str, str] | None = None
    ) -> None:
        """Remember `memories` (from an earlier ledger) in place of what this one knows of
        those miners; nothing of them counts as changed. A command in flight goes on to the
        miner's address in `addresses` (device id -> `host:port`) when it has one there: a
        miner may have moved since (a restarted simulated site listens on new ports), and
        telemetry is matched to commands by address."""
        for remembered in memories:
            pending = remembered.pending
            address = addresses.get(remembered.device_id) if addresses is not None else None
            if pending is not None and address and address != pending.address:
                pending = replace(pending, address=address)
            kept = {name: getattr(remembered, name) for name in _REMEMBERED}
            self._memory[remembered.device_id] = Memory(
                **{**kept, "pending": pending},
                spell_restored=remembered.troubled and remembered.trouble is not None,
            )
            self._changed.discard(remembered.device_id)

    def sent(self, command: Command) -> Command | None:
        """`command` is in flight (a sleep or wake: the miner was switched when it was issued);
        the one it replaces, unsettled, if any (it is superseded)."""
        memory = self._memory.setdefault(command.device_id, Memory())
        self._changed.add(command.device_id)
        replaced, memory.pending = memory.pending, command
        if command.action is Action.SLEEP:
            memory.slept_at = command.issued_at
        elif command.action is Action.WAKE:
            memory.woken_at = command.issued_at
        return replaced if replaced is not None and replaced.id != command.id else None

    def not_delivered(self, command: Command) -> None:
        """The command never reached the miner: a failed try, retried by the next plan."""
        memory = self._memory.setdefault(command.device_id, Memory())
        self._changed.add(command.device_id)
        memory.failed = command
        if memory.pending is not None and memory.pending.id == command.id:
            memory.pending = None

    def settle(self, outcome: CommandOutcome) -> None:
        """Record a final outcome of the command in flight (others are ignored)."""
        memory = self._memory.get(outcome.command.device_id)
        if memory is None or memory.pending is None or memory.pending.id != outcome.command.id:
            return
        memory.pending = None
        self._changed.add(outcome.command.device_id)
        if outcome.status is OutcomeStatus.CONFIRMED:
            memory.confirmed, memory.failed = outcome.command, None
        elif outcome.status is OutcomeStatus.FAILED:
            memory.failed = outcome.command

    def degrade(self, degradation: Degradation) -> None:
        """No work until `degradation.until`; then the miner starts again from attempt 1."""
        memory = self._memory.setdefault(degradation.device_id, Memory())
        self._changed.add(degradation.device_id)
        memory.degraded_until = degradation.until
        memory.failed = memory.pending = None


_REMEMBERED = tuple(f.name for f in fields(MinerMemory) if f.name != "device_id")
"""The fields of `Memory` that `MinerMemory` hands out and takes back, by name."""


def _frozen(device_id: str, memory: Memory) -> MinerMemory:
    return MinerMemory(device_id, **{name: getattr(memory, name) for name in _REMEMBERED})


def _note_trouble(memory: Memory, reading: AsicReading) -> bool:
    """An unhealthy reading: the spell goes on, or a new one starts (a trip, counted on from
    the last spell when that was seen within `TRIP_MEMORY`). True for a new spell."""
    problems = "; ".join(reading.problems)
    last = memory.trouble
    if last is not None and memory.troubled:
        memory.trouble = Trouble(problems, max(last.last_seen, reading.at), last.trips)
        return False
    recent = last is not None and reading.at - last.last_seen <= TRIP_MEMORY
    memory.trouble = Trouble(problems, reading.at, last.trips + 1 if recent and last else 1)
    return True
