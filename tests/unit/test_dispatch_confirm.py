"""Confirmation by telemetry, and the dispatcher's per-miner memory."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

from tests.unit.test_dispatch_planning import NOW, miner, reading

from hcp.dispatch import (
    AsicTarget,
    Command,
    CommandOutcome,
    Degradation,
    Ledger,
    OutcomeStatus,
    confirm,
    plan_commands,
)
from hcp.domain.telemetry import AsicReading, MinerState

SECOND = timedelta(seconds=1)


def command_for(goal: dict[str, int], state: MinerState = MinerState.MINING) -> Command:
    (command,) = plan_commands(AsicTarget({"S21": goal}), [miner(0, state)], NOW).commands
    return command


SLEEP = command_for({})
WAKE_ECO = command_for({"eco": 1}, MinerState.SLEEPING)
ADDRESS = SLEEP.address


def status_of(command: Command, *readings_: AsicReading, at: timedelta = 10 * SECOND) -> str:
    (result,) = confirm([command], readings_, NOW + at)
    return result.status


def test_a_sleep_is_confirmed_by_a_later_reading_at_sleep_power() -> None:
    asleep = reading(ADDRESS, MinerState.SLEEPING, at=NOW + SECOND)
    (result,) = confirm([SLEEP], [asleep], NOW + 2 * SECOND)
    assert result.status is OutcomeStatus.CONFIRMED and result.final
    assert result.detail == "sleeping, 25 W"


def test_a_reading_taken_before_the_command_confirms_nothing() -> None:
    stale = reading(ADDRESS, MinerState.SLEEPING, at=NOW)
    assert status_of(SLEEP, stale) == OutcomeStatus.IN_PROGRESS


def test_sleeping_at_more_than_sleep_power_is_not_confirmed() -> None:
    drawing = replace(reading(ADDRESS, MinerState.SLEEPING, at=NOW + SECOND), power_w=200.0)
    assert status_of(SLEEP, drawing) == OutcomeStatus.IN_PROGRESS


def test_the_newest_reading_of_a_miner_wins() -> None:
    old = reading(ADDRESS, MinerState.SLEEPING, at=NOW + SECOND)
    new = reading(ADDRESS, MinerState.MINING, at=NOW + 2 * SECOND)
    assert status_of(SLEEP, new, old) == OutcomeStatus.IN_PROGRESS


def test_a_waking_miner_is_in_progress_until_it_mines_at_the_profile() -> None:
    waking = reading(ADDRESS, MinerState.WAKING, "eco", at=NOW + SECOND)
    mining = reading(ADDRESS, MinerState.MINING, "eco", at=NOW + 250 * SECOND)
    assert status_of(WAKE_ECO, waking) == OutcomeStatus.IN_PROGRESS
    assert status_of(WAKE_ECO, mining, at=251 * SECOND) == OutcomeStatus.CONFIRMED


def test_mining_at_another_profile_does_not_confirm_a_profile_order() -> None:
    stock = reading(ADDRESS, MinerState.MINING, "stock", at=NOW + SECOND)
    assert status_of(WAKE_ECO, stock) == OutcomeStatus.IN_PROGRESS


def test_no_confirming_reading_by_the_deadline_is_a_failure_saying_what_was_seen() -> None:
    still_mining = reading(ADDRESS, at=NOW + 30 * SECOND)
    (result,) = confirm([SLEEP], [still_mining], SLEEP.confirm_by)
    assert result.status is OutcomeStatus.FAILED
    assert result.detail == (
        "unconfirmed by 2025-06-01T12:01:00+00:00: mining at stock, 200 TH/s, 3500 W"
    )
    (silent,) = confirm([SLEEP], [], SLEEP.confirm_by)
    assert silent.detail.endswith("no reading since the command")


# --- the ledger --------------------------------------------------------------------------


def test_the_ledger_adds_its_memory_to_the_callers_view() -> None:
    ledger = Ledger()
    ledger.sent(SLEEP)
    view = ledger.observe(miner(0))
    assert view.pending == SLEEP and view.reading is not None
    assert view.last_mining == view.reading  # remembered while it mines
    asleep = ledger.observe(miner(0, MinerState.SLEEPING))
    assert asleep.last_mining == view.reading
    assert ledger.pending() == [SLEEP]


def test_a_confirmation_clears_the_pending_and_failed_commands() -> None:
    ledger = Ledger()
    ledger.not_delivered(replace(SLEEP, id="earlier"))
    ledger.sent(SLEEP)
    ledger.settle(CommandOutcome(SLEEP, OutcomeStatus.CONFIRMED, NOW, "sleeping"))
    view = ledger.observe(miner(0))
    assert (view.pending, view.confirmed, view.failed) == (None, SLEEP, None)


def test_a_failure_is_remembered_for_the_retry_and_other_outcomes_are_ignored() -> None:
    ledger = Ledger()
    ledger.sent(SLEEP)
    ledger.settle(CommandOutcome(WAKE_ECO, OutcomeStatus.FAILED, NOW, "not ours"))
    assert ledger.pending() == [SLEEP]
    ledger.settle(CommandOutcome(SLEEP, OutcomeStatus.FAILED, NOW, "still mining"))
    view = ledger.observe(miner(0))
    assert (view.pending, view.failed) == (None, SLEEP)


def test_a_degradation_forgets_the_failures_so_the_miner_starts_afresh_later() -> None:
    ledger = Ledger()
    ledger.not_delivered(SLEEP)
    ledger.degrade(Degradation("m000", NOW + timedelta(minutes=30), "sleep failed"))
    view = ledger.observe(miner(0))
    assert view.failed is None and view.degraded_until == NOW + timedelta(minutes=30)
