"""The dispatcher's memory of unhealthy spells (trips) and how long each holds a miner asleep."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest
from tests.unit.test_dispatch_planning import NOW, miner, reading

from hcp.dispatch import DispatchPolicy, Ledger, Trouble
from hcp.domain.errors import ValidationError
from hcp.domain.telemetry import MinerState

HOT = ("overheating: 97 °C >= 90 °C",)


def observe(ledger: Ledger, minutes: float, problems: tuple[str, ...] = ()) -> Trouble | None:
    at = NOW + timedelta(minutes=minutes)
    polled = reading("127.0.0.0:4028", MinerState.SLEEPING, problems=problems, at=at)
    return ledger.observe(replace(miner(0), reading=polled)).trouble


def test_a_spell_is_one_trip_however_many_readings_and_a_new_spell_counts_on() -> None:
    ledger = Ledger()
    assert observe(ledger, 0) is None
    assert observe(ledger, 1, HOT) == Trouble(HOT[0], NOW + timedelta(minutes=1), 1)
    assert observe(ledger, 2, HOT) == Trouble(HOT[0], NOW + timedelta(minutes=2), 1)
    assert observe(ledger, 2, HOT) == Trouble(HOT[0], NOW + timedelta(minutes=2), 1)  # same poll
    healthy = observe(ledger, 3)
    assert healthy == Trouble(HOT[0], NOW + timedelta(minutes=2), 1)  # remembered while healthy
    again = observe(ledger, 60, ("board 1 dead",))
    assert again == Trouble("board 1 dead", NOW + timedelta(minutes=60), 2)


def test_a_spell_more_than_a_day_after_the_last_starts_the_count_again() -> None:
    ledger = Ledger()
    observe(ledger, 0, HOT)
    observe(ledger, 1)
    observe(ledger, 30, HOT)
    observe(ledger, 31)
    trouble = observe(ledger, 30 + 24 * 60 + 1, HOT)
    assert trouble is not None and trouble.trips == 1


def test_the_hold_doubles_with_each_trip_up_to_its_cap() -> None:
    policy = DispatchPolicy(unhealthy_hold_s=600.0, unhealthy_hold_max_s=3_600.0)
    held = [policy.held_until(Trouble("hot", NOW, trips)) - NOW for trips in (1, 2, 3, 4, 5000)]
    assert held == [timedelta(seconds=s) for s in (600, 1_200, 2_400, 3_600, 3_600)]


def test_a_hold_longer_than_its_cap_is_refused() -> None:
    with pytest.raises(ValidationError, match="unhealthy_hold_s"):
        DispatchPolicy(unhealthy_hold_s=7_200.0, unhealthy_hold_max_s=3_600.0)


def test_spells_in_maintenance_are_no_trips_and_a_repaired_miner_starts_afresh() -> None:
    ledger = Ledger()
    observe(ledger, 0, HOT)
    observe(ledger, 1)
    assert observe(ledger, 2, HOT) == Trouble(HOT[0], NOW + timedelta(minutes=2), 2)
    for minute in range(3, 30):  # boards pulled and power cycled while in maintenance
        at = NOW + timedelta(minutes=minute)
        problems = ("board 2 dead",) if minute % 2 else ()
        polled = reading("127.0.0.0:4028", MinerState.SLEEPING, problems=problems, at=at)
        view = ledger.observe(replace(miner(0), reading=polled, maintenance="repair"))
        assert view.trouble is None
    assert observe(ledger, 31) is None  # back in service and healthy: no hold
    assert observe(ledger, 32, HOT) == Trouble(HOT[0], NOW + timedelta(minutes=32), 1)
