"""Which miners sleep, wake or change profile so that each model runs what the target wants.

Per model: miners in maintenance get nothing and fill no place of the target (the plan counts on
none of them, and takes what they draw off the site's MW). Miners without telemetry, in a
degradation, or out of attempts get no work (one that still hashes fills a place of the target,
since it draws power whatever we say, if the plan counted on it: it reads healthy, is not held
asleep, and ran out of attempts only now; the plan leaves out the miners in a degradation as it does
those held asleep); unhealthy miners are put to sleep, and held asleep for a while after they read
healthy again, twice as long after each further trip (an overheated miner cools asleep, and would
overheat again if woken at once). Of the others, those that hash are the most efficient of the
miners hashing now when there are fewer places than them, else all of those and the most efficient
sleeping ones (a wake): the least efficient sleep first, and a count that stays the same swaps
nobody. They keep what they do when it is wanted (fewest changes); the open places go to them in
rank order, hashing ones first (a profile change). A miner that strayed from its confirmed command
ranks last, so it is the first put back. Before all that, a miner within its minimum on time
(`DispatchPolicy.min_on_s` since its last wake) ranks first, so it is slept only when no other can
be, and one within its minimum off time (`min_off_s` since its last sleep) last, so it is woken
only when no other can be. Sleeps and profile cuts are always sent; increases (wakes,
profile raises) are admitted in order while they fit in the tick's ramp limit beside the increases
already ordered within the ramp window (a miner raised in the window is not raised again in it), and
the rest wait for a later tick. The decreases are sent first: the increases then go only as far as
the power the delivered decreases free, beside what the target adds beyond what it takes off
(`admit_increases`), so a sleep that does not get through never leaves the site drawing old and new
load at once. A miner whose command is in flight and still wanted gets nothing new until that
command's deadline passes.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from hcp.dispatch.model import (
    DEFAULT_POLICY,
    Action,
    AsicTarget,
    Command,
    Degradation,
    DispatchPlan,
    DispatchPolicy,
    MinerView,
    Slot,
)
from hcp.dispatch.state import (
    current_slot,
    drift,
    in_degradation,
    last_failure,
    live_pending,
    power_w,
    reading_slot,
    stock_equivalent_j_per_th,
    switch_window,
)
from hcp.domain.devices import AsicModel

Rank = tuple[int, bool, float, str]
_WINDOW_RANK: dict[Action | None, int] = {Action.WAKE: 0, None: 1, Action.SLEEP: 2}
"""Where a miner's switch window puts it: kept on after a wake, left off after a sleep."""


@dataclass(frozen=True, slots=True)
class Change:
    """A miner that should move from `current` to `goal`, why, and the power it adds or takes
    off in W (by the catalog)."""

    miner: MinerView
    current: Slot
    goal: Slot
    why: str
    increase_w: float
    decrease_w: float


@dataclass(slots=True)
class _Sorting:
    """Miners sorted by what they may do this tick, and the changes decided for them."""

    available: list[MinerView] = field(default_factory=list)
    stuck_running: int = 0
    unhealthy: dict[str, str] = field(default_factory=dict)
    degraded: dict[str, str] = field(default_factory=dict)
    newly_degraded: list[Degradation] = field(default_factory=list)
    changes: list[Change] = field(default_factory=list)

    def absorb(self, other: _Sorting) -> None:
        self.unhealthy.update(other.unhealthy)
        self.degraded.update(other.degraded)
        self.newly_degraded.extend(other.newly_degraded)
        self.changes.extend(other.changes)


def plan_commands(
    target: AsicTarget,
    miners: Iterable[MinerView],
    now: datetime,
    policy: DispatchPolicy = DEFAULT_POLICY,
) -> DispatchPlan:
    """The commands that move the fleet towards `target` this tick (see the module docstring)."""
    by_model = _group(miners)
    fleet = _Sorting()
    shortfall = _models_without_miners(target, by_model)
    for name, group in by_model.items():
        sorting = _sort(group, now, policy)
        missing = _plan_model(target.wanted(name), group[0].model, sorting, now, policy)
        if missing:
            shortfall[name] = missing
        fleet.absorb(sorting)
    recent = recent_orders(by_model, now, policy)
    admitted, waiting = stagger(fleet.changes, target.max_power_increase_w, recent)
    issuer = _Issuer(target.reason, now, policy)
    commands = tuple(issuer.command(change) for change in admitted)
    return DispatchPlan(
        commands=commands,
        deferred=tuple(change.miner.device_id for change in waiting),
        shortfall=shortfall,
        unhealthy=fleet.unhealthy,
        degraded=fleet.degraded,
        newly_degraded=tuple(fleet.newly_degraded),
        power_increase_w=sum(command.power_increase_w for command in commands),
        room_w=room_before_decreases(fleet.changes),
    )


def room_before_decreases(changes: Sequence[Change]) -> float:
    """W the increases may add before any decrease lands: what all the changes add beyond what
    they take off (0 when they take off more). The target fits the site's limit with every
    change made, so the site has at least this much room now."""
    added_w = sum(change.increase_w for change in changes)
    return max(0.0, added_w - sum(change.decrease_w for change in changes))


def admit_increases(plan: DispatchPlan, undelivered: Iterable[Command]) -> DispatchPlan:
    """`plan` once its decreases are sent, `undelivered` those that did not get through: its
    increases, in order, as far as they fit in `plan.room_w` and what the delivered decreases
    free; the rest are deferred to a later tick. With every decrease delivered, `plan` as it
    is."""
    lost_w = sum(command.power_decrease_w for command in undelivered)
    if lost_w <= 0:
        return plan
    decreases = plan.decreases
    room_w = plan.room_w + sum(c.power_decrease_w for c in decreases) - lost_w
    admitted: list[Command] = []
    waiting: list[str] = []
    spent_w = 0.0
    for command in plan.increases:
        if spent_w + command.power_increase_w <= room_w:
            spent_w += command.power_increase_w
            admitted.append(command)
        else:
            waiting.append(command.device_id)
    return replace(
        plan,
        commands=decreases + tuple(admitted),
        deferred=plan.deferred + tuple(waiting),
        power_increase_w=spent_w,
    )


def _group(miners: Iterable[MinerView]) -> dict[str, list[MinerView]]:
    groups: dict[str, list[MinerView]] = defaultdict(list)
    for miner in miners:
        groups[miner.model.name].append(miner)
    return groups


def _models_without_miners(target: AsicTarget, by_model: Mapping[str, object]) -> dict[str, int]:
    missing = {name: sum(target.wanted(name).values()) for name in target.running}
    return {name: n for name, n in missing.items() if n and name not in by_model}


def recent_orders(
    by_model: Mapping[str, Sequence[MinerView]], now: datetime, policy: DispatchPolicy
) -> dict[str, Command]:
    """Live commands issued within the ramp window, by device id: this tick's earlier orders."""
    since = now - timedelta(seconds=policy.ramp_window_s)
    pending = (live_pending(m, now) for group in by_model.values() for m in group)
    return {p.device_id: p for p in pending if p is not None and p.issued_at >= since}


# --- who may get work ---------------------------------------------------------------------


def _sort(miners: Sequence[MinerView], now: datetime, policy: DispatchPolicy) -> _Sorting:
    """Split a model's miners into available, unhealthy (put to sleep) and degraded."""
    sorting = _Sorting()
    for miner in miners:
        if miner.maintenance is not None:
            # Out of the plan altogether: it counts on none such, and takes their draw off
            # the site's MW; one that hashes fills no place of the target.
            sorting.degraded[miner.device_id] = f"in maintenance: {miner.maintenance}"
            continue
        why = _degraded_because(miner, now, policy, sorting)
        if why is not None:
            sorting.degraded[miner.device_id] = why
            # It fills a place only if the plan counted on it: one the plan leaves out
            # (unhealthy, held asleep, silent, already in a degradation) has its draw taken
            # off the MW already.
            counted = (
                miner.reading is not None
                and miner.reading.healthy
                and _held_because(miner, now, policy) is None
                and not in_degradation(miner, now)
            )
            sorting.stuck_running += counted and current_slot(miner, now) is not None
        elif miner.reading is not None and not miner.reading.healthy:
            sorting.unhealthy[miner.device_id] = "; ".join(miner.reading.problems)
            _sleep_unhealthy(miner, now, sorting)
        elif (held := _held_because(miner, now, policy)) is not None:
            sorting.unhealthy[miner.device_id] = held
            _sleep_unhealthy(miner, now, sorting)
        else:
            sorting.available.append(miner)
    return sorting


def _held_because(miner: MinerView, now: datetime, policy: DispatchPolicy) -> str | None:
    """Why a miner that reads healthy is still kept asleep: it read unhealthy too recently."""
    trouble = miner.trouble
    if trouble is None:
        return None
    until = policy.held_until(trouble)
    if now >= until:
        return None
    trip = f"trip {trouble.trips}, " if trouble.trips > 1 else ""
    return f"held asleep until {until.isoformat()} ({trip}last: {trouble.problems})"


def _degraded_because(
    miner: MinerView, now: datetime, policy: DispatchPolicy, sorting: _Sorting
) -> str | None:
    """Why the miner cannot be managed now (None when it can); notes a new degradation."""
    if miner.degraded_until is not None and now < miner.degraded_until:
        return f"degraded until {miner.degraded_until.isoformat()}"
    if miner.reading is None:
        return "no telemetry"
    failure = last_failure(miner, now)
    if failure is None or failure.attempt < policy.max_attempts:
        return None
    if reading_slot(miner.reading, miner.model) == failure.slot:
        return None  # it got there after all, only late
    reason = f"{failure.action} unconfirmed after {failure.attempt} attempts"
    until = now + timedelta(seconds=policy.degraded_cooldown_s)
    sorting.newly_degraded.append(Degradation(miner.device_id, until, reason))
    return reason


def _sleep_unhealthy(miner: MinerView, now: datetime, sorting: _Sorting) -> None:
    current = current_slot(miner, now)
    if current is not None:
        why = f"unhealthy: {sorting.unhealthy[miner.device_id]}"
        decrease_w = max(0.0, power_w(miner, current) - power_w(miner, None))
        sorting.changes.append(Change(miner, current, None, why, 0.0, decrease_w))


# --- who does what ------------------------------------------------------------------------


def _plan_model(
    wanted: Mapping[str, int],
    model: AsicModel,
    sorting: _Sorting,
    now: datetime,
    policy: DispatchPolicy,
) -> int:
    """Add the model's changes to `sorting`; return how many wanted miners it lacks."""
    places, missing = fit(wanted, len(sorting.available), sorting.stuck_running, model)
    ranked = sorted(sorting.available, key=lambda miner: rank(miner, now, policy))
    currents = {miner.device_id: current_slot(miner, now) for miner in ranked}
    goals = assign(places, ranked, currents)
    running = sum(places.values())
    for miner in ranked:
        current, goal = currents[miner.device_id], goals[miner.device_id]
        if goal != current:
            sorting.changes.append(_change(miner, current, goal, running, now))
    return missing


def rank(miner: MinerView, now: datetime, policy: DispatchPolicy) -> Rank:
    """Sort key, best first: within its minimum on time, then neither within that nor its
    minimum off time, then within its minimum off time (`switch_window`); within each, not
    drifting, then lowest stock-equivalent J/TH, then id."""
    return (
        _WINDOW_RANK[switch_window(miner, now, policy)],
        drift(miner, now) is not None,
        stock_equivalent_j_per_th(miner),
        miner.device_id,
    )


def fit(
    wanted: Mapping[str, int], available: int, stuck_running: int, model: AsicModel
) -> tuple[dict[str, int], int]:
    """Places per profile for `available` miners beside `stuck_running` unmanageable ones that
    hash anyway, cut from the least efficient profile first; and how many miners are lacking.

    The places come back most efficient profile first.
    """
    total = sum(wanted.values())
    room = min(available, max(0, total - stuck_running))
    cut = total - room
    places: dict[str, int] = {}
    for name in sorted(wanted, key=lambda p: -model.profile(p).efficiency_j_per_th):
        taken = min(cut, wanted[name])
        places[name], cut = wanted[name] - taken, cut - taken
    return dict(reversed(places.items())), max(0, total - stuck_running - available)


def assign(
    places: Mapping[str, int], ranked: Sequence[MinerView], currents: Mapping[str, Slot]
) -> dict[str, Slot]:
    """Each miner's goal. Who hashes: with fewer places than miners hashing now, the best
    ranked of those; with more, all of them and the best ranked sleeping ones. So the least
    efficient sleep first, and a count that does not change wakes or sleeps nobody (measured
    efficiencies are noisy). Of those, a miner keeps a wanted profile while places last (fewest
    changes); the open places go to the others, hashing ones first, in rank order; the rest
    sleep."""
    hashing = [m for m in ranked if currents[m.device_id] is not None]
    asleep = [m for m in ranked if currents[m.device_id] is None]
    chosen = (hashing + asleep)[: sum(places.values())]
    open_places = dict(places)
    goals: dict[str, Slot] = dict.fromkeys((m.device_id for m in ranked), None)
    movers: list[str] = []
    for miner in chosen:
        slot = currents[miner.device_id]
        if slot is not None and open_places.get(slot, 0) > 0:
            open_places[slot] -= 1
            goals[miner.device_id] = slot
        else:
            movers.append(miner.device_id)
    free = (name for name, count in open_places.items() for _ in range(count))
    for device_id in movers:
        goals[device_id] = next(free, None)
    return goals


def _change(miner: MinerView, current: Slot, goal: Slot, running: int, now: datetime) -> Change:
    model = miner.model.name
    if goal is None:
        why = f"sleep: {model} over target ({running} running wanted)"
    elif current is None:
        why = f"wake at {goal}: {model} under target ({running} running wanted)"
    else:
        why = f"profile {current} -> {goal}: {model} target"
    strayed = drift(miner, now)
    if strayed is not None:
        why = f"{strayed}; {why}"
    added_w = power_w(miner, goal) - power_w(miner, current)
    increase_w = 0.0 if goal is None else max(0.0, added_w)
    return Change(miner, current, goal, why, increase_w, max(0.0, -added_w))


# --- the ramp and the commands ------------------------------------------------------------


def stagger(
    changes: Sequence[Change], limit_w: float, recent: Mapping[str, Command]
) -> tuple[list[Change], list[Change]]:
    """The changes to make now, and the increases that must wait.

    Every decrease goes; increases (profile raises before wakes, most efficient first) go while
    they fit in `limit_w` beside the `recent` orders' increases, except those this tick cuts.
    A miner raised within the ramp window is not raised again in it.
    """
    admitted = [change for change in changes if change.increase_w <= 0]
    cut = {change.miner.device_id for change in admitted}
    spent_w = sum(order.power_increase_w for d, order in recent.items() if d not in cut)
    raised = {d for d, order in recent.items() if order.power_increase_w > 0}
    waiting: list[Change] = []
    for change in sorted((c for c in changes if c.increase_w > 0), key=_increase_order):
        fits = spent_w + change.increase_w <= limit_w
        if fits and change.miner.device_id not in raised:
            spent_w += change.increase_w
            admitted.append(change)
        else:
            waiting.append(change)
    return admitted, waiting


def _increase_order(change: Change) -> tuple[bool, float, str]:
    miner = change.miner
    return change.current is None, stock_equivalent_j_per_th(miner), miner.device_id


def set_aside(plan: DispatchPlan, maintenance: Mapping[str, str]) -> DispatchPlan:
    """`plan` without its increases to miners put in maintenance since it was made
    (`maintenance`: device id -> why), which are reported degraded as at planning."""
    flagged = {c.device_id for c in plan.increases if c.device_id in maintenance}
    if not flagged:
        return plan
    kept = tuple(c for c in plan.commands if c.device_id not in flagged)
    why = {device_id: f"in maintenance: {maintenance[device_id]}" for device_id in flagged}
    return replace(
        plan,
        commands=kept,
        degraded={**plan.degraded, **why},
        power_increase_w=sum(c.power_increase_w for c in kept),
    )


@dataclass(slots=True)
class _Issuer:
    """Turns admitted changes into commands stamped with this tick's instant and reason."""

    reason: str
    now: datetime
    policy: DispatchPolicy
    stamp: str = ""
    deadlines: dict[tuple[Action, str], datetime] = field(default_factory=dict)
    reasons: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.stamp = self.now.isoformat()

    def command(self, change: Change) -> Command:
        miner, goal = change.miner, change.goal
        action = _action(change.current, goal)
        attempt = _attempt(miner, goal, self.now)
        why = change.why if attempt == 1 else f"{change.why} (attempt {attempt})"
        return Command(
            id=f"{miner.device_id}:{_ACTION_NAMES[action]}:{attempt}@{self.stamp}",
            device_id=miner.device_id,
            address=miner.address,
            action=action,
            profile=goal,
            reason=self.reason_for(why),
            issued_at=self.now,
            attempt=attempt,
            confirm_by=self.deadline(action, miner.model),
            expected_power_w=power_w(miner, goal),
            power_increase_w=change.increase_w,
            from_profile=_profile_before(change),
            power_decrease_w=change.decrease_w,
        )

    def reason_for(self, why: str) -> str:
        """`why` and the target's reason; made once per distinct `why` (a tick that sleeps
        100,000 miners gives them all the same one)."""
        reason = self.reasons.get(why)
        if reason is None:
            reason = self.reasons[why] = f"{why}; {self.reason}" if self.reason else why
        return reason

    def deadline(self, action: Action, model: AsicModel) -> datetime:
        key = (action, model.name)
        if key not in self.deadlines:
            self.deadlines[key] = self.now + confirm_within(action, model, self.policy)
        return self.deadlines[key]


def _action(current: Slot, goal: Slot) -> Action:
    if goal is None:
        return _SLEEP
    return _WAKE if current is None else _PROFILE


# Looked up once: on Python 3.11 an enum member read through its class is several times
# slower than a global, and these run per command.
_SLEEP, _WAKE, _PROFILE = Action.SLEEP, Action.WAKE, Action.PROFILE
_ACTION_NAMES = {action: action.value for action in Action}


def _attempt(miner: MinerView, goal: Slot, now: datetime) -> int:
    """1 for a new order; one more than the last failed try of the same order."""
    failure = last_failure(miner, now)
    return failure.attempt + 1 if failure is not None and failure.slot == goal else 1


def _profile_before(change: Change) -> str | None:
    if change.current is not None:
        return change.current
    reading = change.miner.reading
    return reading.profile if reading is not None else None


def confirm_within(action: Action, model: AsicModel, policy: DispatchPolicy) -> timedelta:
    """How long telemetry has to confirm `action`: a sleep `confirm_polls` polls, a wake the
    model's wake time more, a profile change the profile settle time more."""
    polls_s = policy.confirm_polls * policy.poll_interval_s
    extra_s = {
        Action.SLEEP: 0.0,
        Action.WAKE: model.wake_seconds,
        Action.PROFILE: policy.profile_settle_s,
    }[action]
    return timedelta(seconds=polls_s + extra_s)
