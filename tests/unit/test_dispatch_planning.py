"""Which miners sleep, wake or change profile: hand-built fleets of a few miners."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from hcp.dispatch import (
    Action,
    AsicTarget,
    Command,
    DispatchPlan,
    DispatchPolicy,
    MinerView,
    Trouble,
    admit_increases,
    plan_commands,
)
from hcp.dispatch.planning import confirm_within
from hcp.domain.catalog import asic_model
from hcp.domain.devices import AsicModel
from hcp.domain.errors import ValidationError
from hcp.domain.telemetry import AsicReading, MinerState

NOW = datetime(2025, 6, 1, 12, tzinfo=UTC)
S21 = asic_model("S21")
S19 = asic_model("S19 XP")
REASON = "plan 2025-06-01T12:00Z: price 412 $/MWh above S21 stock breakeven 96"
WAKE_STOCK_W = 3_500.0 - 25.0


def reading(
    address: str,
    state: MinerState = MinerState.MINING,
    profile: str = "stock",
    *,
    model: AsicModel = S21,
    j_per_th_ratio: float = 1.0,
    problems: tuple[str, ...] = (),
    at: datetime = NOW - timedelta(seconds=5),
) -> AsicReading:
    """A poll of a miner at `profile`; `j_per_th_ratio` scales its power (1.0: as the catalog)."""
    spec = model.profile(profile)
    ramp = {MinerState.MINING: 1.0, MinerState.WAKING: 0.5}.get(state, 0.0)
    power_w = model.sleep_power_w + (spec.power_w * j_per_th_ratio - model.sleep_power_w) * ramp
    return AsicReading(
        device=address,
        at=at,
        state=state,
        hashrate_ths=spec.hashrate_ths * ramp,
        power_w=power_w,
        temperature_c=70.0 * ramp or None,
        profile=profile,
        accepted_shares=0,
        rejected_shares=0,
        problems=problems,
    )


def miner(
    index: int,
    state: MinerState | None = MinerState.MINING,
    profile: str = "stock",
    *,
    model: AsicModel = S21,
    ratio: float = 1.0,
    problems: tuple[str, ...] = (),
    pending: Command | None = None,
    confirmed: Command | None = None,
    failed: Command | None = None,
    degraded_until: datetime | None = None,
    last_mining: AsicReading | None = None,
) -> MinerView:
    """Miner `m<index>` at 127.0.0.<index>; `state` None: it did not answer the last poll."""
    address = f"127.0.0.{index}:4028"
    polled = None
    if state is not None:
        polled = reading(
            address, state, profile, model=model, j_per_th_ratio=ratio, problems=problems
        )
    return MinerView(
        f"m{index:03d}",
        model,
        address,
        polled,
        pending,
        confirmed,
        failed,
        degraded_until,
        last_mining,
    )


def target(counts: dict[str, dict[str, int]], ramp_w: float = math.inf) -> AsicTarget:
    return AsicTarget(counts, ramp_w, REASON)


def by_action(plan: DispatchPlan) -> dict[Action, list[str]]:
    found: dict[Action, list[str]] = {action: [] for action in Action}
    for command in plan.commands:
        found[command.action].append(command.device_id)
    return found


def sent(plan: DispatchPlan, view: MinerView) -> MinerView:
    """`view` after the dispatcher sent it this plan's command (if any)."""
    command = next((c for c in plan.commands if c.device_id == view.device_id), None)
    return view if command is None else replace(view, pending=command)


# --- who sleeps and who wakes ------------------------------------------------------------


def test_a_curtailment_sleeps_the_least_efficient_miners_first() -> None:
    ratios = [1.00, 1.20, 0.90, 1.10, 1.05]
    fleet = [miner(i, ratio=r) for i, r in enumerate(ratios)]
    plan = plan_commands(target({"S21": {"stock": 2}}), fleet, NOW)
    assert sorted(by_action(plan)[Action.SLEEP]) == ["m001", "m003", "m004"]
    assert all(c.profile is None and c.attempt == 1 for c in plan.commands)
    assert plan.commands[0].reason.startswith("sleep: S21 over target (2 running wanted)")
    assert plan.commands[0].reason.endswith(REASON)


def test_wakes_go_to_the_most_efficient_miners_by_their_last_measurement() -> None:
    ratios = [1.10, 0.95, 1.30, 1.00]
    fleet = [
        miner(i, MinerState.SLEEPING, last_mining=reading(f"127.0.0.{i}:4028", j_per_th_ratio=r))
        for i, r in enumerate(ratios)
    ]
    plan = plan_commands(target({"S21": {"stock": 2}}), fleet, NOW)
    assert sorted(by_action(plan)[Action.WAKE]) == ["m001", "m003"]
    assert {c.profile for c in plan.commands} == {"stock"}
    assert plan.power_increase_w == pytest.approx(2 * WAKE_STOCK_W)


def test_miners_at_a_wanted_profile_keep_it_and_the_fewest_are_reassigned() -> None:
    fleet = [miner(i, profile="stock") for i in range(4)] + [
        miner(i, profile="eco") for i in range(4, 6)
    ]
    plan = plan_commands(target({"S21": {"stock": 2, "eco": 4}}), fleet, NOW)
    actions = by_action(plan)
    assert len(actions[Action.PROFILE]) == 2
    assert not actions[Action.SLEEP] and not actions[Action.WAKE]
    assert {c.profile for c in plan.commands} == {"eco"}
    assert {c.from_profile for c in plan.commands} == {"stock"}


def test_a_curtailment_keeps_the_most_efficient_miner_even_at_an_unwanted_profile() -> None:
    """m000 runs turbo at 10 % better J/TH than m001 at stock; one stock place is wanted: m000
    moves to stock and m001 sleeps (keeping m001's profile would sleep the better miner)."""
    fleet = [miner(0, profile="turbo", ratio=0.9), miner(1, profile="stock")]
    plan = plan_commands(target({"S21": {"stock": 1}}), fleet, NOW)
    actions = by_action(plan)
    assert actions[Action.SLEEP] == ["m001"] and actions[Action.PROFILE] == ["m000"]
    [change] = [c for c in plan.commands if c.action is Action.PROFILE]
    assert (change.from_profile, change.profile) == ("turbo", "stock")


def test_as_many_places_as_miners_hashing_wakes_or_sleeps_none_of_them() -> None:
    """Measured efficiencies are noisy: a sleeping miner measured better last time does not
    swap places with a hashing one while the count stays the same."""
    better_asleep = reading("127.0.0.2:4028", j_per_th_ratio=0.8)
    fleet = [
        miner(0, ratio=1.1),
        miner(1, ratio=1.2),
        miner(2, MinerState.SLEEPING, last_mining=better_asleep),
    ]
    plan = plan_commands(target({"S21": {"stock": 2}}), fleet, NOW)
    assert plan.commands == ()


def test_a_sleeping_miner_wakes_into_the_wanted_profile() -> None:
    fleet = [miner(0, MinerState.SLEEPING, profile="stock")]
    (command,) = plan_commands(target({"S21": {"eco": 1}}), fleet, NOW).commands
    assert (command.action, command.profile, command.from_profile) == (Action.WAKE, "eco", "stock")
    assert command.expected_power_w == 2_805.0
    assert command.power_increase_w == pytest.approx(2_805.0 - 25.0)


def test_models_the_target_does_not_name_sleep() -> None:
    fleet = [miner(0), miner(1, model=S19)]
    plan = plan_commands(target({"S21": {"stock": 1}}), fleet, NOW)
    assert by_action(plan)[Action.SLEEP] == ["m001"]


def test_when_fewer_miners_than_wanted_the_least_efficient_profile_is_cut() -> None:
    fleet = [miner(i, MinerState.SLEEPING) for i in range(3)]
    plan = plan_commands(target({"S21": {"eco": 2, "turbo": 2}}), fleet, NOW)
    assert sorted(c.profile or "" for c in plan.commands) == ["eco", "eco", "turbo"]
    assert plan.shortfall == {"S21": 1}


def test_a_target_for_a_model_with_no_miners_is_all_shortfall() -> None:
    plan = plan_commands(target({"S21 Hydro": {"stock": 5}}), [], NOW)
    assert plan.commands == () and plan.shortfall == {"S21 Hydro": 5}


def test_an_unknown_profile_in_the_target_names_the_model() -> None:
    with pytest.raises(KeyError, match="S21 has no profile 'overdrive'"):
        plan_commands(target({"S21": {"overdrive": 1}}), [miner(0)], NOW)


# --- unhealthy and unreachable miners ----------------------------------------------------


def test_unhealthy_and_silent_miners_get_no_work_and_the_lack_is_reported() -> None:
    fleet = [
        miner(0, MinerState.SLEEPING, problems=("board 2 dead",)),
        miner(1, None),
        miner(2, MinerState.SLEEPING),
    ]
    plan = plan_commands(target({"S21": {"stock": 3}}), fleet, NOW)
    assert by_action(plan)[Action.WAKE] == ["m002"]
    assert plan.shortfall == {"S21": 2}
    assert plan.unhealthy == {"m000": "board 2 dead"}
    assert plan.degraded == {"m001": "no telemetry"}


def test_an_unhealthy_miner_that_hashes_is_put_to_sleep() -> None:
    hot = ("overheating: 97 °C >= 90 °C",)
    plan = plan_commands(target({"S21": {"stock": 1}}), [miner(0, problems=hot)], NOW)
    (command,) = plan.commands
    assert command.action is Action.SLEEP
    assert command.reason.startswith("unhealthy: overheating")


def test_a_miner_held_asleep_after_a_spell_is_passed_over_and_an_awake_one_is_slept() -> None:
    trouble = Trouble("overheating: 97 °C >= 90 °C", NOW - timedelta(minutes=4))
    held = replace(miner(0, MinerState.SLEEPING, ratio=0.8), trouble=trouble)
    woken_meanwhile = replace(miner(1), trouble=trouble)
    fleet = [held, woken_meanwhile, miner(2, MinerState.SLEEPING)]
    plan = plan_commands(target({"S21": {"stock": 2}}), fleet, NOW)
    assert by_action(plan) == {Action.SLEEP: ["m001"], Action.WAKE: ["m002"], Action.PROFILE: []}
    assert plan.shortfall == {"S21": 1}
    assert plan.unhealthy["m000"] == (
        "held asleep until 2025-06-01T12:06:00+00:00 (last: overheating: 97 °C >= 90 °C)"
    )
    later = plan_commands(target({"S21": {"stock": 1}}), [held], NOW + timedelta(minutes=7))
    assert by_action(later)[Action.WAKE] == ["m000"]


def test_a_miner_in_maintenance_gets_no_command_and_fills_no_place_of_the_target() -> None:
    """The plan counts on no miner in maintenance and takes what one that hashes draws off the
    site's MW: filling a place of the target with it too would keep a wanted miner asleep."""
    fleet = [
        replace(miner(0), maintenance="fan swap"),
        replace(miner(1, MinerState.SLEEPING), maintenance="PSU out"),
        miner(2, MinerState.SLEEPING),
        miner(3, MinerState.SLEEPING),
    ]
    plan = plan_commands(target({"S21": {"stock": 2}}), fleet, NOW)
    assert by_action(plan) == {Action.SLEEP: [], Action.WAKE: ["m002", "m003"], Action.PROFILE: []}
    assert plan.shortfall == {}
    assert plan.degraded == {"m000": "in maintenance: fan swap", "m001": "in maintenance: PSU out"}
    curtail = plan_commands(target({"S21": {}}), fleet, NOW)
    assert curtail.commands == ()


def test_a_degraded_miner_the_plan_left_out_fills_no_place_though_it_hashes() -> None:
    """Held asleep or unhealthy, the plan counted on neither and took their draw off the MW:
    a place filled by them too would keep a wanted miner asleep."""
    until = NOW + timedelta(minutes=10)
    trouble = Trouble("overheating: 97 °C >= 90 °C", NOW - timedelta(minutes=2))
    held = replace(miner(0), degraded_until=until, trouble=trouble)
    hot = miner(1, problems=("overheating: 97 °C >= 90 °C",), degraded_until=until)
    fleet = [held, hot, miner(2, MinerState.SLEEPING), miner(3, MinerState.SLEEPING)]
    plan = plan_commands(target({"S21": {"stock": 2}}), fleet, NOW)
    assert by_action(plan)[Action.WAKE] == ["m002", "m003"] and plan.shortfall == {}


def test_a_miner_out_of_attempts_now_that_still_hashes_takes_a_place_of_the_target() -> None:
    """The plan was made before it ran out of attempts: it counted on it, and it draws."""
    sleep = plan_commands(target({"S21": {}}), [miner(0)], NOW).commands[0]
    stuck = miner(0, failed=replace(sleep, attempt=3))
    fleet = [stuck, miner(1, MinerState.SLEEPING), miner(2, MinerState.SLEEPING)]
    plan = plan_commands(target({"S21": {"stock": 2}}), fleet, NOW)
    assert by_action(plan)[Action.WAKE] == ["m001"] and plan.shortfall == {}
    assert plan.degraded["m000"] == "sleep unconfirmed after 3 attempts"


def test_a_miner_in_a_degradation_fills_no_place_though_it_hashes() -> None:
    """The plan leaves out the miners in a degradation, as those held asleep, and takes what
    they draw off the site's MW: a place filled by one too would keep a wanted miner asleep."""
    stuck = miner(0, degraded_until=NOW + timedelta(minutes=10))
    fleet = [stuck, miner(1, MinerState.SLEEPING), miner(2, MinerState.SLEEPING)]
    plan = plan_commands(target({"S21": {"stock": 2}}), fleet, NOW)
    assert by_action(plan)[Action.WAKE] == ["m001", "m002"] and plan.shortfall == {}
    assert plan.degraded["m000"].startswith("degraded until 2025-06-01T12:10")


# --- minimum on and off time --------------------------------------------------------------

WINDOWS = DispatchPolicy(min_on_s=1_800, min_off_s=1_800)


def test_a_miner_slept_within_its_minimum_off_time_is_woken_only_when_no_other_can_be() -> None:
    slept = replace(miner(0, MinerState.SLEEPING), slept_at=NOW - timedelta(minutes=5))
    worse = miner(1, MinerState.SLEEPING, last_mining=reading("127.0.0.1:4028", j_per_th_ratio=1.3))
    fleet = [slept, worse]
    one = plan_commands(target({"S21": {"stock": 1}}), fleet, NOW, WINDOWS)
    assert by_action(one)[Action.WAKE] == ["m001"]
    two = plan_commands(target({"S21": {"stock": 2}}), fleet, NOW, WINDOWS)
    assert sorted(by_action(two)[Action.WAKE]) == ["m000", "m001"]
    later = plan_commands(
        target({"S21": {"stock": 1}}), fleet, NOW + timedelta(minutes=25), WINDOWS
    )
    assert by_action(later)[Action.WAKE] == ["m000"]  # 30 minutes asleep: the better again
    no_minimum = plan_commands(target({"S21": {"stock": 1}}), fleet, NOW)
    assert by_action(no_minimum)[Action.WAKE] == ["m000"]


def test_a_miner_woken_within_its_minimum_on_time_is_slept_only_when_no_other_can_be() -> None:
    woken = replace(miner(0, ratio=1.3), woken_at=NOW - timedelta(minutes=5))
    fleet = [woken, miner(1)]
    one = plan_commands(target({"S21": {"stock": 1}}), fleet, NOW, WINDOWS)
    assert by_action(one)[Action.SLEEP] == ["m001"]
    none = plan_commands(target({"S21": {}}), fleet, NOW, WINDOWS)
    assert sorted(by_action(none)[Action.SLEEP]) == ["m000", "m001"]
    # Woken, then slept again since: its off time runs, not its on time.
    slept_since = replace(woken, slept_at=NOW - timedelta(minutes=1))
    again = plan_commands(target({"S21": {"stock": 1}}), [slept_since, miner(1)], NOW, WINDOWS)
    assert by_action(again)[Action.SLEEP] == ["m000"]


@pytest.mark.parametrize("times", [{"min_on_s": -1.0}, {"min_off_s": math.nan}])
def test_a_negative_minimum_on_or_off_time_is_refused(times: dict[str, float]) -> None:
    with pytest.raises(ValidationError, match="min_on_s"):
        DispatchPolicy(**times)


# --- the ramp limit ----------------------------------------------------------------------


def test_wakes_are_staggered_within_the_ramp_limit() -> None:
    fleet = [miner(i, MinerState.SLEEPING) for i in range(10)]
    plan = plan_commands(target({"S21": {"stock": 10}}, 3 * WAKE_STOCK_W + 1), fleet, NOW)
    assert len(plan.commands) == 3 and len(plan.deferred) == 7
    assert plan.power_increase_w <= 3 * WAKE_STOCK_W + 1


def test_sleeps_and_profile_cuts_are_never_held_back_by_the_ramp() -> None:
    fleet = [miner(0), miner(1, profile="turbo")]
    plan = plan_commands(target({"S21": {"eco": 1}}, ramp_w=0.0), fleet, NOW)
    assert {c.action for c in plan.commands} == {Action.SLEEP, Action.PROFILE}
    assert plan.power_increase_w == 0.0


def test_a_second_plan_in_the_same_tick_does_not_spend_the_ramp_again() -> None:
    fleet = [miner(i, MinerState.SLEEPING) for i in range(4)]
    wanted = target({"S21": {"stock": 4}}, 2 * WAKE_STOCK_W)
    first = plan_commands(wanted, fleet, NOW)
    again = plan_commands(wanted, [sent(first, m) for m in fleet], NOW)
    later = plan_commands(wanted, [sent(first, m) for m in fleet], NOW + timedelta(minutes=5))
    assert len(first.commands) == 2 and again.commands == ()
    assert len(later.commands) == 2


def test_increases_go_only_as_far_as_the_delivered_decreases_make_room() -> None:
    """Two S19 XP swapped for two S21: the wakes add 970 W more than the sleeps take off, all
    the room the site has before a sleep lands (the target fits its limit once all is done)."""
    fleet = [
        miner(0, model=S19),
        miner(1, model=S19),
        miner(2, MinerState.SLEEPING),
        miner(3, MinerState.SLEEPING),
    ]
    plan = plan_commands(target({"S19 XP": {}, "S21": {"stock": 2}}), fleet, NOW)
    sleeps = plan.decreases
    assert [(c.device_id, c.power_decrease_w) for c in sleeps] == [("m000", 2990), ("m001", 2990)]
    assert [c.device_id for c in plan.increases] == ["m002", "m003"]
    assert plan.room_w == pytest.approx(2 * WAKE_STOCK_W - 2 * 2990)
    assert admit_increases(plan, []) is plan
    one_lost = admit_increases(plan, sleeps[:1])  # 970 + 2990 W: room for one wake
    assert one_lost.commands == (*sleeps, plan.increases[0]) and one_lost.deferred == ("m003",)
    assert one_lost.power_increase_w == WAKE_STOCK_W
    both_lost = admit_increases(plan, sleeps)
    assert both_lost.commands == sleeps and both_lost.deferred == ("m002", "m003")
    assert both_lost.power_increase_w == 0.0


def test_increases_the_site_has_room_for_go_though_a_decrease_fails() -> None:
    """Waking two S21 while an S19 XP sleeps: the target adds 3960 W beyond the sleep, so one
    wake fits whether the sleep lands or not."""
    fleet = [miner(0, model=S19), *(miner(i, MinerState.SLEEPING) for i in (1, 2, 3))]
    plan = plan_commands(target({"S19 XP": {}, "S21": {"stock": 2}}), fleet, NOW)
    assert plan.room_w == pytest.approx(2 * WAKE_STOCK_W - 2990)
    admitted = admit_increases(plan, plan.decreases)
    assert [c.device_id for c in admitted.increases] == ["m001"]
    assert admitted.deferred == ("m002",)


# --- the closed loop ---------------------------------------------------------------------


def test_a_command_in_flight_is_not_repeated_until_its_deadline() -> None:
    fleet = [miner(0)]
    wanted = target({"S21": {}})
    first = plan_commands(wanted, fleet, NOW)
    (command,) = first.commands
    in_flight = [sent(first, m) for m in fleet]
    assert (
        plan_commands(wanted, in_flight, command.confirm_by - timedelta(seconds=1)).commands == ()
    )
    (retry,) = plan_commands(wanted, in_flight, command.confirm_by).commands
    assert retry.attempt == 2 and retry.reason.startswith("sleep: S21 over target")
    assert "(attempt 2)" in retry.reason


def test_a_changed_target_overrides_a_command_in_flight() -> None:
    first = plan_commands(target({"S21": {}}), [miner(0)], NOW)
    view = sent(first, miner(0))
    (wake,) = plan_commands(target({"S21": {"stock": 1}}), [view], NOW).commands
    assert wake.action is Action.WAKE and wake.attempt == 1


def test_a_miner_raised_in_this_tick_is_not_raised_again_in_it() -> None:
    first = plan_commands(target({"S21": {"eco": 1}}), [miner(0, MinerState.SLEEPING)], NOW)
    view = sent(first, miner(0, MinerState.SLEEPING))
    again = plan_commands(target({"S21": {"turbo": 1}}), [view], NOW)
    later = plan_commands(target({"S21": {"turbo": 1}}), [view], NOW + timedelta(seconds=1))
    assert again.commands == () and again.deferred == ("m000",)
    assert [(c.action, c.from_profile) for c in later.commands] == [(Action.PROFILE, "eco")]


def test_a_miner_out_of_attempts_is_degraded_for_the_cooldown() -> None:
    policy = DispatchPolicy(max_attempts=3, degraded_cooldown_s=600)
    failed = plan_commands(target({"S21": {}}), [miner(0)], NOW).commands[0]
    view = miner(0, failed=replace(failed, attempt=3))
    plan = plan_commands(target({"S21": {}}), [view], NOW, policy)
    assert plan.commands == ()
    (degradation,) = plan.newly_degraded
    assert degradation.until == NOW + timedelta(seconds=600)
    assert degradation.reason == "sleep unconfirmed after 3 attempts"


def test_a_miner_that_woke_by_itself_is_put_back_to_sleep_as_drift() -> None:
    confirmed = plan_commands(target({"S21": {}}), [miner(0)], NOW).commands[0]
    view = miner(0, confirmed=confirmed)  # it reads mining again
    (command,) = plan_commands(target({"S21": {}}), [view], NOW).commands
    assert command.action is Action.SLEEP
    assert command.reason.startswith("drift: confirmed sleeping, reads mining at stock; sleep")


def test_a_miner_that_got_to_a_failed_commands_goal_late_is_not_drifting() -> None:
    slept = plan_commands(target({"S21": {}}), [miner(0)], NOW).commands[0]
    woke = plan_commands(target({"S21": {"stock": 1}}), [miner(0, MinerState.SLEEPING)], NOW)
    view = miner(0, confirmed=slept, failed=woke.commands[0])  # it reads mining now
    (command,) = plan_commands(target({"S21": {}}), [view], NOW).commands
    assert command.reason.startswith("sleep: S21 over target")


def test_the_drifting_miner_is_the_one_put_back_even_if_it_is_the_most_efficient() -> None:
    sleep_order = plan_commands(target({"S21": {}}), [miner(2)], NOW).commands[0]
    fleet = [miner(0), miner(1), miner(2, ratio=0.8, confirmed=sleep_order)]
    plan = plan_commands(target({"S21": {"stock": 2}}), fleet, NOW)
    assert by_action(plan)[Action.SLEEP] == ["m002"]


def test_deadlines_follow_the_policy_and_the_models_wake_time() -> None:
    policy = DispatchPolicy(poll_interval_s=30, confirm_polls=2, profile_settle_s=60)
    assert confirm_within(Action.SLEEP, S21, policy) == timedelta(seconds=60)
    assert confirm_within(Action.WAKE, S21, policy) == timedelta(seconds=240 + 60)
    assert confirm_within(Action.PROFILE, S19, policy) == timedelta(seconds=60 + 60)


def test_command_ids_are_unique_per_device_action_attempt_and_instant() -> None:
    plan = plan_commands(target({"S21": {}}), [miner(0), miner(1)], NOW)
    assert [c.id for c in plan.commands] == [
        "m000:sleep:1@2025-06-01T12:00:00+00:00",
        "m001:sleep:1@2025-06-01T12:00:00+00:00",
    ]


# --- the target --------------------------------------------------------------------------


def test_a_target_from_lp_counts_rounds_down() -> None:
    made = AsicTarget.from_counts({"S21": {"stock": 2.9999999, "eco": 1.6}}, 1e6, "why")
    assert made.running == {"S21": {"stock": 3, "eco": 1}}
    assert made.wanted("S21") == {"stock": 3, "eco": 1} and made.wanted("S19 XP") == {}


def test_a_target_refuses_negative_counts_and_ramps() -> None:
    with pytest.raises(ValidationError, match=r"running\.S21\.eco"):
        AsicTarget({"S21": {"eco": -1}})
    with pytest.raises(ValidationError, match="max_power_increase_w"):
        AsicTarget({}, max_power_increase_w=-1.0)


def test_commands_are_frozen_values() -> None:
    command = plan_commands(target({"S21": {}}), [miner(0)], NOW).commands[0]
    assert isinstance(command, Command)
    with pytest.raises(AttributeError):
        command.attempt = 2  # type: ignore[misc]
