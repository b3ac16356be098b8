"""Invariants of one dispatch tick over random fleets (two models, every state, commands in
flight, failed, confirmed, degradations), targets and ramp limits: never more miners running
than wanted, no work for unhealthy miners, the ramp limit holds, a repeated plan adds nothing,
and the least efficient sleep first while the most efficient wake first."""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, replace
from datetime import timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.unit.test_dispatch_planning import NOW, S19, S21, reading

from hcp.dispatch import (
    DEFAULT_POLICY,
    Action,
    AsicTarget,
    Command,
    DispatchPlan,
    MinerView,
    Slot,
    plan_commands,
)
from hcp.dispatch.planning import recent_orders
from hcp.dispatch.state import (
    current_slot,
    drift,
    in_degradation,
    live_pending,
    stock_equivalent_j_per_th,
)
from hcp.domain.devices import AsicModel
from hcp.domain.telemetry import MinerState

MODELS = (S21, S19)
STATES = (None, MinerState.SLEEPING, MinerState.MINING, MinerState.WAKING, MinerState.FAULT)
MEMORIES = ("none", "none", "pending", "failed", "confirmed", "degraded")


@dataclass(frozen=True)
class World:
    fleet: list[MinerView]
    target: AsicTarget


def slots_of(model: AsicModel) -> st.SearchStrategy[Slot]:
    return st.sampled_from([None, *(p.name for p in model.profiles)])


@st.composite
def orders(draw: st.DrawFn, view: MinerView) -> Command:
    """A command as the dispatcher could have sent it to `view` some minutes ago."""
    slot = draw(slots_of(view.model))
    issued_at = NOW - timedelta(seconds=draw(st.sampled_from([0, 30, 120, 600])))
    action = Action.SLEEP if slot is None else draw(st.sampled_from([Action.WAKE, Action.PROFILE]))
    return Command(
        id=f"{view.device_id}:{issued_at.isoformat()}",
        device_id=view.device_id,
        address=view.address,
        action=action,
        profile=slot,
        reason="earlier",
        issued_at=issued_at,
        attempt=draw(st.integers(1, 3)),
        confirm_by=issued_at + timedelta(seconds=draw(st.sampled_from([60, 300]))),
        expected_power_w=0.0,
        power_increase_w=draw(st.sampled_from([0.0, 3_000.0])),
    )


@st.composite
def miners(draw: st.DrawFn, index: int) -> MinerView:
    model = draw(st.sampled_from(MODELS))
    state = draw(st.sampled_from(STATES))
    profile = draw(st.sampled_from([p.name for p in model.profiles]))
    ratio = draw(st.floats(0.8, 1.4))
    sick = state is MinerState.FAULT or draw(st.integers(0, 6)) == 0
    address = f"127.0.1.{index}:4028"
    polled = None
    if state is not None:
        problems = ("board 2 dead",) if sick else ()
        polled = reading(address, state, profile, model=model, j_per_th_ratio=ratio,
                         problems=problems)  # fmt: skip
    view = MinerView(f"m{index:03d}", model, address, polled)
    if draw(st.booleans()):
        view = replace(view, last_mining=reading(address, model=model, j_per_th_ratio=ratio))
    return _remembering(draw, view, draw(st.sampled_from(MEMORIES)))


def _remembering(draw: st.DrawFn, view: MinerView, memory: str) -> MinerView:
    if memory == "degraded":
        minutes = draw(st.sampled_from([-5, 5]))
        return replace(view, degraded_until=NOW + timedelta(minutes=minutes))
    if memory == "none":
        return view
    return replace(view, **{memory: draw(orders(view))})


@st.composite
def worlds(draw: st.DrawFn) -> World:
    fleet = [draw(miners(i)) for i in range(draw(st.integers(0, 24)))]
    running = {
        model.name: {p.name: draw(st.integers(0, 6)) for p in model.profiles}
        for model in MODELS
        if draw(st.booleans())
    }
    ramp_w = draw(st.sampled_from([0.0, 3_000.0, 10_000.0, 40_000.0, math.inf]))
    return World(fleet, AsicTarget(running, ramp_w, "random plan"))


def commands_by_device(plan: DispatchPlan) -> dict[str, Command]:
    return {command.device_id: command for command in plan.commands}


def slot_after(plan: DispatchPlan, view: MinerView) -> Slot:
    command = commands_by_device(plan).get(view.device_id)
    return command.slot if command is not None else current_slot(view, NOW)


def steady(view: MinerView) -> bool:
    """Available, not drifting and with nothing in flight: ranked by efficiency alone."""
    reading_ = view.reading
    return (
        reading_ is not None
        and reading_.healthy
        and live_pending(view, NOW) is None
        and drift(view, NOW) is None
    )


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_no_model_runs_more_miners_than_the_target_wants(world: World) -> None:
    plan = plan_commands(world.target, world.fleet, NOW)
    for model in MODELS:
        group = [m for m in world.fleet if m.model is model]
        # A degraded miner that hashes fills a place only if the plan counted on it (it reads
        # healthy and ran out of attempts only now): the plan takes what an unhealthy or
        # silent one, or one already in a degradation, draws off the MW instead.
        stuck = sum(
            current_slot(m, NOW) is not None
            and m.reading is not None
            and m.reading.healthy
            and not in_degradation(m, NOW)
            for m in group
            if m.device_id in plan.degraded
        )
        managed = [m for m in group if m.device_id not in plan.degraded]
        running = sum(slot_after(plan, m) is not None for m in managed)
        wanted = sum(world.target.wanted(model.name).values())
        assert running <= max(0, wanted - stuck)


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_unhealthy_or_unmanageable_miners_never_get_wakes_or_profiles(world: World) -> None:
    plan = plan_commands(world.target, world.fleet, NOW)
    views = {m.device_id: m for m in world.fleet}
    assert len(commands_by_device(plan)) == len(plan.commands)  # one command per miner at most
    for command in plan.commands:
        view = views[command.device_id]
        assert view.reading is not None and command.device_id not in plan.degraded
        if command.action is not Action.SLEEP:
            assert view.reading.healthy and command.device_id not in plan.unhealthy


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_one_tick_never_adds_more_power_than_the_ramp_allows(world: World) -> None:
    plan = plan_commands(world.target, world.fleet, NOW)
    sent = commands_by_device(plan)
    earlier = recent_orders({"all": world.fleet}, NOW, DEFAULT_POLICY)
    still_coming_w = sum(o.power_increase_w for d, o in earlier.items() if d not in sent)
    added_w = sum(command.power_increase_w for command in plan.commands)
    assert added_w == plan.power_increase_w
    limit_w = world.target.max_power_increase_w
    assert added_w == 0 or added_w + still_coming_w <= limit_w + 1e-6


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_planning_again_after_sending_adds_no_command(world: World) -> None:
    plan = plan_commands(world.target, world.fleet, NOW)
    degraded = {d.device_id: d.until for d in plan.newly_degraded}
    sent = commands_by_device(plan)
    after: list[MinerView] = []
    stuck: Counter[str] = Counter()
    for view in world.fleet:
        if view.device_id in degraded:
            stuck[view.model.name] += _filled_a_place(view)
            view = replace(view, degraded_until=degraded[view.device_id], failed=None, pending=None)
        after.append(replace(view, pending=sent.get(view.device_id, view.pending)))
    # The next target leaves the miners now in a degradation out, as the control loop's does
    # (it counts on none of them, and takes their draw off the MW): the places they filled go.
    target = _without_places(world.target, stuck)
    assert plan_commands(target, after, NOW).commands == ()


def _filled_a_place(view: MinerView) -> bool:
    """Whether a miner that has just run out of attempts fills a place of the target: the
    target counted on it (it read healthy and was in no degradation) and it hashes."""
    counted = view.reading is not None and view.reading.healthy and not in_degradation(view, NOW)
    return counted and current_slot(view, NOW) is not None


def _without_places(target: AsicTarget, stuck: Counter[str]) -> AsicTarget:
    """`target` less `stuck[model]` places per model, the least efficient profile's first."""
    running: dict[str, dict[str, int]] = {}
    for name, wanted in target.running.items():
        model = next(m for m in MODELS if m.name == name)
        cut, places = stuck[name], dict(wanted)
        for profile in sorted(places, key=lambda p: -model.profile(p).efficiency_j_per_th):
            taken = min(cut, places[profile])
            places[profile], cut = places[profile] - taken, cut - taken
        running[name] = places
    return replace(target, running=running)


@settings(max_examples=200, deadline=None)
@given(worlds())
def test_the_least_efficient_sleep_first_and_the_most_efficient_wake_first(world: World) -> None:
    plan = plan_commands(world.target, world.fleet, NOW)
    sent, deferred = commands_by_device(plan), set(plan.deferred)
    for model in MODELS:
        group = [m for m in world.fleet if m.model is model and steady(m)]
        group = [m for m in group if m.device_id not in plan.degraded]
        for profile in {current_slot(m, NOW) for m in group} - {None}:
            at_profile = [m for m in group if current_slot(m, NOW) == profile]
            kept = [
                m for m in at_profile if m.device_id not in sent and m.device_id not in deferred
            ]
            slept = [m for m in at_profile if _action(sent, m) is Action.SLEEP]
            _assert_ordered(kept, slept)
        asleep = [m for m in group if current_slot(m, NOW) is None]
        woken = [m for m in asleep if m.device_id in sent or m.device_id in deferred]
        _assert_ordered(woken, [m for m in asleep if m not in woken])


def _action(sent: dict[str, Command], view: MinerView) -> Action | None:
    command = sent.get(view.device_id)
    return command.action if command is not None else None


def _assert_ordered(better: list[MinerView], worse: list[MinerView]) -> None:
    """Every miner in `better` is at least as efficient as every miner in `worse`."""
    if better and worse:
        best_of_worse = min(stock_equivalent_j_per_th(m) for m in worse)
        assert max(stock_equivalent_j_per_th(m) for m in better) <= best_of_worse


def test_the_random_worlds_cover_every_kind_of_command() -> None:
    seen: Counter[Action] = Counter()

    @settings(max_examples=200, deadline=None)
    @given(worlds())
    def collect(world: World) -> None:
        seen.update(c.action for c in plan_commands(world.target, world.fleet, NOW).commands)

    collect()
    assert all(seen[action] > 0 for action in Action)
