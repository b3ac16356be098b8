"""The dispatcher's memory outlives its process: the ledger hands out what changed of each miner
(to be stored) and takes it back when the next process leads the site (a restarted controller,
a standby taking over from a dead leader). Each restart here builds a new Dispatcher from what
the last one handed out, as `hcp controller` does from the store."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from tests.unit.test_dispatch_planning import NOW, REASON, miner, reading
from tests.unit.test_dispatch_service import FakeDriver

from hcp.adapters.clock import ManualClock
from hcp.dispatch import (
    DEFAULT_POLICY,
    Action,
    AsicTarget,
    DispatchPolicy,
    Ledger,
    MinerMemory,
    MinerView,
    OutcomeStatus,
    Trouble,
)
from hcp.domain.telemetry import AsicReading, MinerState
from hcp.services.dispatcher import Dispatcher, InMemoryCommandLog, SiteDispatcher
from hcp.services.ports import UnitOfWork

HOT = ("overheating: 95 °C >= 90 °C",)
TWO = AsicTarget({"S21": {"stock": 2}}, reason=REASON)
NONE = AsicTarget({"S21": {}}, reason=REASON)


class Store:
    """What a site's store holds: the last memory handed out of each miner."""

    def __init__(self) -> None:
        self.rows: dict[str, MinerMemory] = {}

    def keep(self, dispatcher: Dispatcher) -> list[str]:
        """Store what changed since the last call; the miners written."""
        changed = dispatcher.ledger.changed()
        self.rows.update((m.device_id, m) for m in changed)
        return sorted(m.device_id for m in changed)

    def restart(self, before: Dispatcher, addresses: dict[str, str] | None = None) -> Dispatcher:
        """A new process's dispatcher, given what `before` stored (its last changes too)."""
        self.keep(before)
        after = Dispatcher(FakeDriver(), InMemoryCommandLog(), before.policy)
        after.restore(self.rows.values(), addresses)
        return after


def at(view: MinerView, when: datetime, **fields: object) -> MinerView:
    """`view` as polled at `when` (its reading changed by `fields`)."""
    assert view.reading is not None
    return replace(view, reading=replace(view.reading, at=when, **fields))  # type: ignore[arg-type]


def polled(*views: MinerView) -> list[AsicReading]:
    return [view.reading for view in views if view.reading is not None]


def hashing(index: int, when: datetime, problems: tuple[str, ...] = ()) -> MinerView:
    return at(miner(index, problems=problems), when)


def asleep(index: int, when: datetime) -> MinerView:
    view = miner(index, MinerState.SLEEPING)
    return replace(view, reading=reading(view.address, MinerState.SLEEPING, at=when))


async def test_a_miner_held_asleep_stays_asleep_after_a_restart() -> None:
    """The audit's case: m000 overheats and is slept; three minutes on it has cooled and reads
    healthy, held until ten minutes after its last hot reading. A restarted controller woke
    it at once, and the plan counted on it."""
    store = Store()
    before = Dispatcher(FakeDriver(), InMemoryCommandLog())
    report = await before.tick(TWO, [hashing(0, NOW, HOT), hashing(1, NOW)], NOW)
    assert [(c.device_id, c.action) for c in report.sent] == [("m000", Action.SLEEP)]
    cooled = NOW + timedelta(minutes=3)
    await before.confirm(polled(asleep(0, cooled), hashing(1, cooled)), cooled)
    assert (await before.tick(TWO, [asleep(0, cooled), hashing(1, cooled)], cooled)).sent == ()

    after = store.restart(before)
    restarted = cooled + timedelta(minutes=1)
    assert after.held_asleep(restarted) == {"m000"}  # the plan does not count on it
    kept = await after.tick(TWO, [asleep(0, restarted), hashing(1, restarted)], restarted)
    assert kept.sent == ()
    assert kept.plan.unhealthy["m000"].startswith("held asleep until 2025-06-01T12:10:00")
    free = NOW + timedelta(minutes=10)
    assert after.held_asleep(free) == set()
    woken = await after.tick(TWO, [asleep(0, free), hashing(1, free)], free)
    assert [(c.device_id, c.action) for c in woken.sent] == [("m000", Action.WAKE)]


async def test_a_spell_going_on_at_the_restart_holds_the_miner_until_a_reading_ends_it() -> None:
    """Nothing read m000 between its last hot reading and the restart: for all the new
    dispatcher knows it stayed hot until its first reading. It is held until then, and ten
    minutes from there when that reads healthy; still hot, the spell goes on (no new trip)."""
    store = Store()
    before = Dispatcher(FakeDriver(), InMemoryCommandLog())
    await before.tick(TWO, [hashing(0, NOW, HOT), hashing(1, NOW)], NOW)

    after = store.restart(before)
    later = NOW + timedelta(hours=1)
    assert after.held_asleep(later) == {"m000"}
    report = await after.tick(TWO, [asleep(0, later), hashing(1, later)], later)
    assert report.plan.unhealthy["m000"].startswith("held asleep until 2025-06-01T13:10:00")
    assert after.held_asleep(later + timedelta(minutes=10)) == set()

    again = store.restart(before)
    still_hot = at(asleep(0, later), later, problems=HOT)
    assert (await again.tick(TWO, [still_hot, hashing(1, later)], later)).sent == ()
    (memory,) = [m for m in again.ledger.snapshot() if m.device_id == "m000"]
    assert memory.trouble == Trouble(HOT[0], later, 1)
    assert again.held_asleep(later + timedelta(minutes=9)) == {"m000"}


async def test_trips_count_on_after_a_restart_and_the_hold_doubles() -> None:
    store = Store()
    before = Dispatcher(FakeDriver(), InMemoryCommandLog())
    await before.tick(TWO, [hashing(0, NOW, HOT), hashing(1, NOW)], NOW)
    later = NOW + timedelta(minutes=30)  # cooled, woken, hashing healthy again
    await before.tick(TWO, [hashing(0, later), hashing(1, later)], later)

    after = store.restart(before)
    hot_again = NOW + timedelta(hours=1)
    report = await after.tick(TWO, [hashing(0, hot_again, HOT), hashing(1, hot_again)], hot_again)
    assert [(c.device_id, c.action) for c in report.sent] == [("m000", Action.SLEEP)]
    (memory,) = [m for m in after.ledger.snapshot() if m.device_id == "m000"]
    assert memory.trouble == Trouble(HOT[0], hot_again, 2)
    assert after.held_asleep(hot_again + timedelta(minutes=19)) == {"m000"}  # 20, not 10


async def test_a_restart_keeps_the_attempts_and_the_degradation() -> None:
    """m000 takes each sleep and hashes on. The attempts count on across a restart (the third
    try is the last), and the degradation it ends in outlives a second restart."""
    store = Store()
    dispatcher = Dispatcher(FakeDriver(), InMemoryCommandLog())
    now, attempts = NOW, []
    for _ in range(4):
        view = hashing(0, now)
        await dispatcher.confirm(polled(view), now)
        report = await dispatcher.tick(NONE, [view], now)
        attempts += [c.attempt for c in report.sent]
        now += timedelta(minutes=5)
        dispatcher = store.restart(dispatcher)
    assert attempts == [1, 2, 3]
    until = NOW + timedelta(minutes=15, seconds=DEFAULT_POLICY.degraded_cooldown_s)
    assert dispatcher.degraded(now) == {"m000"}
    assert dispatcher.degraded(until) == set()
    report = await dispatcher.tick(NONE, [hashing(0, now)], now)
    assert report.sent == () and report.degraded["m000"] == f"degraded until {until.isoformat()}"


async def test_a_command_in_flight_is_confirmed_by_the_first_reading_after_a_restart() -> None:
    """The miner listens elsewhere now (a restarted simulated site, a new DHCP lease): the
    restored command goes on to its address there, where telemetry reads it."""
    store = Store()
    before = Dispatcher(FakeDriver(), InMemoryCommandLog())
    (sleep,) = (await before.tick(NONE, [hashing(0, NOW)], NOW)).sent

    moved = "127.0.0.99:4028"
    after = store.restart(before, {"m000": moved, "m001": "127.0.0.98:4028"})
    assert [(c.id, c.address) for c in after.pending()] == [(sleep.id, moved)]
    later = NOW + timedelta(seconds=30)
    polled = reading(moved, MinerState.SLEEPING, at=later)
    (outcome,) = await after.confirm([polled], later)
    assert outcome.status is OutcomeStatus.CONFIRMED and outcome.command.id == sleep.id
    assert after.pending() == []
    again = await after.tick(NONE, [replace(asleep(0, later), address=moved)], later)
    assert again.plan.commands == ()  # asleep as confirmed: nothing more to say to it


async def test_a_command_in_flight_times_out_after_a_restart_and_is_tried_again() -> None:
    store = Store()
    before = Dispatcher(FakeDriver(), InMemoryCommandLog())
    (sleep,) = (await before.tick(NONE, [hashing(0, NOW)], NOW)).sent

    after = store.restart(before)
    deadline = sleep.confirm_by
    (outcome,) = await after.confirm(polled(hashing(0, deadline)), deadline)
    assert outcome.status is OutcomeStatus.FAILED
    retry = await after.tick(NONE, [hashing(0, deadline)], deadline)
    assert [(c.action, c.attempt) for c in retry.sent] == [(Action.SLEEP, 2)]


async def test_the_minimum_off_time_counts_from_a_sleep_sent_before_the_restart() -> None:
    """m000 was slept five minutes ago, m001 two hours ago; with a 30-minute minimum off time
    the restarted dispatcher wakes m001, though m000 is the more efficient."""
    store = Store()
    policy = DispatchPolicy(min_off_s=1_800)
    before = Dispatcher(FakeDriver(), InMemoryCommandLog(), policy)
    long_ago = NOW - timedelta(hours=2)
    await before.tick(NONE, [at(miner(1, ratio=1.2), long_ago)], long_ago)
    recently = NOW - timedelta(minutes=5)
    await before.tick(NONE, [hashing(0, recently)], recently)

    after = store.restart(before)
    fleet = [asleep(0, NOW), asleep(1, NOW)]
    report = await after.tick(AsicTarget({"S21": {"stock": 1}}), fleet, NOW)
    assert [(c.device_id, c.action) for c in report.sent] == [("m001", Action.WAKE)]


def test_only_what_changed_is_handed_out() -> None:
    """A poll that changes nothing but the readings of hashing miners hands out nothing: 10,000
    miners a tick would cost a write of every row. A miner that stops hashing is handed out
    (its last mining reading ranks it by efficiency while asleep); an unhealthy spell when it
    starts and when it ends (the hold runs from its last unhealthy reading), not at each
    reading between (a miner with a dead board reads unhealthy for weeks)."""
    ledger = Ledger()
    for minute in range(3):
        when = NOW + timedelta(minutes=minute)
        for i in range(3):
            ledger.observe(hashing(i, when))
        assert ledger.changed() == []

    when = NOW + timedelta(minutes=3)
    ledger.observe(asleep(0, when))
    ledger.observe(hashing(1, when, HOT))
    ledger.observe(hashing(2, when))
    changed = {m.device_id: m for m in ledger.changed()}
    assert changed.keys() == {"m000", "m001"}
    last = changed["m000"].last_mining
    assert last is not None and last.at == NOW + timedelta(minutes=2)
    assert changed["m001"].trouble == Trouble(HOT[0], when, 1) and changed["m001"].troubled

    for minute in range(1, 4):  # still asleep, still hot: nothing new to store
        ledger.observe(asleep(0, when + timedelta(minutes=minute)))
        ledger.observe(hashing(1, when + timedelta(minutes=minute), HOT))
        assert ledger.changed() == []
    ledger.observe(hashing(1, when + timedelta(minutes=4)))
    (ended,) = ledger.changed()
    assert ended.trouble == Trouble(HOT[0], when + timedelta(minutes=3), 1)
    assert not ended.troubled

    ledger.unsaved([ended])  # the store did not take it: handed out again, as it is then
    ledger.observe(hashing(1, when + timedelta(minutes=5), HOT))
    (again,) = ledger.changed()
    assert again.device_id == "m001" and again.troubled
    assert again.trouble == Trouble(HOT[0], when + timedelta(minutes=5), 2)


def test_a_restored_ledger_remembers_what_the_last_one_did_and_nothing_is_changed() -> None:
    ledger = Ledger()
    ledger.observe(hashing(0, NOW, HOT))
    ledger.observe(hashing(0, NOW + timedelta(minutes=1)))  # the spell is over
    ledger.observe(asleep(1, NOW))
    snapshot = ledger.snapshot()
    restored = Ledger()
    restored.restore(snapshot)
    assert restored.snapshot() == snapshot
    assert restored.changed() == []
    for view in (hashing(0, NOW + timedelta(minutes=2)), asleep(1, NOW + timedelta(minutes=2))):
        assert restored.observe(view) == ledger.observe(view)


class BrokenStore:
    """A store that is down until `up`; what it was given once up."""

    def __init__(self) -> None:
        self.up = False
        self.saved: list[list[MinerMemory]] = []

    def save(self, memories: Sequence[MinerMemory]) -> None:
        if not self.up:
            raise ConnectionError("the store did not answer")
        self.saved.append(list(memories))

    def load(self) -> list[MinerMemory]:
        return [m for batch in self.saved for m in batch]


async def test_memory_the_store_did_not_take_is_written_with_the_next_changes() -> None:
    store = BrokenStore()
    dispatcher = Dispatcher(FakeDriver(), InMemoryCommandLog())
    site = SiteDispatcher(dispatcher, _no_store, ManualClock(NOW), memory=store)
    await dispatcher.tick(NONE, [hashing(0, NOW)], NOW)
    with pytest.raises(ConnectionError):
        await site.store_memory()
    await dispatcher.tick(NONE, [hashing(1, NOW)], NOW)
    store.up = True
    assert await site.store_memory() == 2
    assert await site.store_memory() == 0  # nothing changed since
    assert sorted(m.device_id for m in store.saved[0]) == ["m000", "m001"]

    after = SiteDispatcher(
        Dispatcher(FakeDriver(), InMemoryCommandLog()), _no_store, ManualClock(NOW), memory=store
    )
    restored = await after.restore_memory({})
    assert {m.pending.device_id for m in restored if m.pending} == {"m000", "m001"}
    assert {c.device_id for c in after.dispatcher.pending()} == {"m000", "m001"}


def _no_store() -> UnitOfWork:
    raise AssertionError("the fleet is not read here")
