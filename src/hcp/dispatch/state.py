"""What a miner is doing, is about to do, and how good it is at it: pure reads of a `MinerView`."""

from __future__ import annotations

from datetime import datetime, timedelta

from hcp.dispatch.model import Action, Command, DispatchPolicy, MinerView, Slot
from hcp.domain.devices import AsicModel
from hcp.domain.telemetry import AsicReading, MinerState


def describe(slot: Slot) -> str:
    """`sleeping` or `mining at <profile>`."""
    return "sleeping" if slot is None else f"mining at {slot}"


def reading_slot(reading: AsicReading, model: AsicModel) -> Slot:
    """What a reading shows: None while asleep, else the profile (the model's stock if unsaid).

    A waking miner already counts as running at its profile: it draws more each second.
    """
    if reading.state is MinerState.SLEEPING:
        return None
    return reading.profile or model.stock_profile


def live_pending(miner: MinerView, now: datetime) -> Command | None:
    """The command in flight whose confirmation deadline has not passed."""
    pending = miner.pending
    return pending if pending is not None and now < pending.confirm_by else None


def in_degradation(miner: MinerView, now: datetime) -> bool:
    """Whether the miner gets no work at `now` after running out of attempts."""
    return miner.degraded_until is not None and now < miner.degraded_until


def last_failure(miner: MinerView, now: datetime) -> Command | None:
    """The command that failed last: one in flight past its deadline, else the recorded one."""
    pending = miner.pending
    if pending is not None and now >= pending.confirm_by:
        return pending
    return miner.failed


def current_slot(miner: MinerView, now: datetime) -> Slot:
    """Where the miner is or is going: a live command's outcome, else what it reads as (None,
    as if asleep, for a miner that did not answer: nothing is known of it)."""
    pending = live_pending(miner, now)
    if pending is not None:
        return pending.slot
    return None if miner.reading is None else reading_slot(miner.reading, miner.model)


def switch_window(miner: MinerView, now: datetime, policy: DispatchPolicy) -> Action | None:
    """WAKE while the miner is within its minimum on time after the last wake sent to it, SLEEP
    within its minimum off time after the last sleep (whichever was sent last); else None."""
    slept, woken = miner.slept_at, miner.woken_at
    if slept is not None and (woken is None or slept >= woken):
        return Action.SLEEP if now - slept < timedelta(seconds=policy.min_off_s) else None
    if woken is not None and now - woken < timedelta(seconds=policy.min_on_s):
        return Action.WAKE
    return None


def drift(miner: MinerView, now: datetime) -> str | None:
    """How the miner strays from its last confirmed command (None when it does not, or when it
    does what a later, unconfirmed command asked: that one only came late)."""
    confirmed, reading = miner.confirmed, miner.reading
    if confirmed is None or reading is None or live_pending(miner, now) is not None:
        return None
    seen = reading_slot(reading, miner.model)
    failed = miner.failed
    if seen == confirmed.slot or (failed is not None and seen == failed.slot):
        return None
    return f"drift: confirmed {describe(confirmed.slot)}, reads {describe(seen)}"


def power_w(miner: MinerView, slot: Slot) -> float:
    """Catalog wall power of the miner in `slot`; its measured power for an unknown profile."""
    if slot is None:
        return miner.model.sleep_power_w
    profile = miner.model.find_profile(slot)
    if profile is not None:
        return profile.power_w
    return miner.reading.power_w if miner.reading is not None else miner.model.stock.power_w


def stock_equivalent_j_per_th(miner: MinerView) -> float:
    """Measured J/TH scaled to the stock profile, so miners at different profiles compare by
    their chips; the catalog's stock J/TH for a miner never seen mining. Lower is better."""
    reading = miner.reading
    seen = reading if reading is not None and reading.mining else miner.last_mining
    stock = miner.model.stock.efficiency_j_per_th
    if seen is None or seen.hashrate_ths <= 0:
        return stock
    measured = seen.power_w / seen.hashrate_ths
    profile = miner.model.find_profile(seen.profile or miner.model.stock_profile)
    if profile is None:
        return measured
    return measured * stock / profile.efficiency_j_per_th
