"""The live optimizer planner: its inputs come from what is known at the tick, it plans the
interval from the LP, and it always returns a plan (the breakeven rule when the solve fails)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from hcp.config import Settings
from hcp.domain.fleet import Site
from hcp.domain.market import MarketSnapshot
from hcp.domain.plans import GPU_OFF, GPU_SPOT, GPU_WORKLOADS, SLEEP, Allocation, SitePlan
from hcp.domain.workloads import Requirements, Workload, WorkloadClass, WorkloadState
from hcp.optimizer.forecast import ForecastSettings
from hcp.optimizer.inputs import AsicState, SiteState
from hcp.optimizer.lp import CompiledLp
from hcp.optimizer.plan import SolveStatus
from hcp.optimizer.solver import LpResult
from hcp.services.planning import (
    FleetCounts,
    MpcPlanSettings,
    OptimizerPlanner,
    PlanningHistory,
    RuleOfThumbPlanner,
    electricity_forecast,
    job_of,
    live_inputs,
    planner_named,
    price_grid,
    site_spec,
    site_state,
    with_recent_switches,
)
from hcp.services.ports import UnitOfWork

T = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
STEP = timedelta(minutes=5)
NODE = "HB_WEST"
SITE = Site("site-1", "Site 1", NODE, capacity_mw=1.0, pue=1.08)
FLEET = FleetCounts({"S21": 4}, {"H100 SXM": 4})
REALTIME = WorkloadClass.AI_INFERENCE_REALTIME
BATCH = WorkloadClass.AI_INFERENCE_BATCH
TRAINING = WorkloadClass.AI_TRAINING


def snapshot(at: datetime, price_usd_per_mwh: float) -> MarketSnapshot:
    """Bitcoin at $60k and difficulty 90 T: a hashprice of about 0.043 $/TH/s/day."""
    return MarketSnapshot(at, {NODE: price_usd_per_mwh}, 60_000.0, 90e12, 8.0, {"H100": 2.2})


def days_of(price_usd_per_mwh: float, days: float = 2) -> list[MarketSnapshot]:
    """Stored snapshots at one price for `days` before T."""
    count = round(timedelta(days=days) / STEP)
    return [snapshot(T - i * STEP, price_usd_per_mwh) for i in range(count, 0, -1)]


def workload(
    workload_id: str,
    kind: WorkloadClass,
    gpus: int,
    hours: float = 2.0,
    family: str | None = "H100",
    state: WorkloadState = WorkloadState.QUEUED,
) -> Workload:
    return Workload(
        workload_id, "cust-1", kind, state, Requirements(family, gpus, None, hours), T, T
    )


class FakeHistory:
    """What the store would answer: the snapshots in the window asked for, a previous plan,
    open workloads."""

    def __init__(
        self,
        snapshots: Sequence[MarketSnapshot] = (),
        workloads: Sequence[Workload] = (),
        previous: SitePlan | None = None,
        plans: Sequence[SitePlan] = (),
    ) -> None:
        self.snapshots, self.workloads, self.previous = snapshots, workloads, previous
        self.plans = plans
        self.plans_since: datetime | None = None

    def read(
        self, site: Site, since: datetime, before: datetime, plans_since: datetime | None = None
    ) -> PlanningHistory:
        kept = [s for s in self.snapshots if since <= s.at < before]
        self.plans_since = plans_since
        recent = [p for p in self.plans if plans_since and plans_since <= p.interval_start < before]
        return PlanningHistory(kept, self.previous, self.workloads, recent)


class BrokenHistory:
    def read(
        self, site: Site, since: datetime, before: datetime, plans_since: datetime | None = None
    ) -> PlanningHistory:
        raise RuntimeError("database is locked")


class FailingSolver:
    def solve(self, lp: CompiledLp) -> LpResult:
        return LpResult(SolveStatus.FAILED, "Time limit reached")


def plan_with(
    history: FakeHistory | BrokenHistory,
    price_usd_per_mwh: float,
    site: Site = SITE,
    solver: FailingSolver | None = None,
) -> SitePlan:
    planner = OptimizerPlanner(history, MpcPlanSettings(step=STEP), solver)
    return planner.plan(site, FLEET, snapshot(T, price_usd_per_mwh), T)


def counts(plan: SitePlan, model: str) -> dict[str, int]:
    """Devices of `model` per use."""
    return {a.use: a.count for a in plan.allocations if a.device_model == model}


# --- planning ------------------------------------------------------------------------------


def test_cheap_power_runs_every_miner() -> None:
    plan = plan_with(FakeHistory(days_of(20.0)), 20.0)
    assert (plan.strategy, plan.status, plan.interval_start) == ("mpc", "optimal", T)
    s21 = counts(plan, "S21")
    assert s21[SLEEP] == 0 and sum(s21.values()) == 4
    assert sum(counts(plan, "H100 SXM").values()) == 4
    assert plan.expected_profit_usd > 0


def test_a_price_spike_sleeps_the_miners_and_keeps_realtime_served() -> None:
    demand = [workload("rt", REALTIME, 2), workload("train", TRAINING, 2, hours=8.0)]
    plan = plan_with(FakeHistory(days_of(30.0), demand), 5_000.0)
    assert plan.status == "optimal"
    assert counts(plan, "S21") == {SLEEP: 4}
    # An H100 costs 0.756 kW x $5/kWh = $3.78/h now: worth it for realtime ($4 and the SLA),
    # not for training ($2.25, deferred to cheaper intervals) nor for spot ($2.20).
    assert counts(plan, "H100 SXM") == {GPU_WORKLOADS: 2, GPU_SPOT: 0, GPU_OFF: 2}


def test_when_power_is_short_realtime_is_served_first() -> None:
    # 4 sleeping miners draw 108 W with PUE; 1.8 kW leaves room for two 756 W H100s.
    small = Site("site-1", "Site 1", NODE, capacity_mw=0.0018, pue=1.08)
    demand = [workload("batch", BATCH, 2), workload("rt", REALTIME, 2)]
    plan = plan_with(FakeHistory(days_of(30.0), demand), 30.0, site=small)
    assert plan.status == "optimal"
    assert counts(plan, "S21") == {SLEEP: 4}
    assert counts(plan, "H100 SXM")[GPU_WORKLOADS] == 2
    # Two realtime GPU-hours at $4 (batch would pay $2.75) less 1.62 kW at $30/MWh.
    assert plan.expected_profit_usd == pytest.approx(2 * 4.00 - 1.62 * 0.030, abs=1e-4)


def test_a_solver_failure_falls_back_to_the_breakeven_rule_with_its_status() -> None:
    plan = plan_with(FakeHistory(days_of(30.0)), 30.0, solver=FailingSolver())
    rule = RuleOfThumbPlanner().plan(SITE, FLEET, snapshot(T, 30.0), T)
    assert (plan.strategy, plan.status) == ("mpc", "failed")
    assert plan.reason is not None and plan.reason.startswith("mpc failed: Time limit reached")
    assert "breakeven rule applied" in plan.reason
    assert plan.allocations == rule.allocations


def test_a_site_that_cannot_hold_its_sleeping_miners_is_infeasible_and_still_planned() -> None:
    tiny = Site("site-1", "Site 1", NODE, capacity_mw=0.0001, pue=1.08)
    plan = plan_with(FakeHistory(days_of(30.0)), 30.0, site=tiny)
    assert plan.status == "infeasible"
    assert sum(counts(plan, "S21").values()) == 4


def test_bad_inputs_fall_back_and_say_why() -> None:
    ppa = Site("site-1", "Site 1", NODE, 1.0, 1.08, {"kind": "ppa", "price_usd_per_mwh": 30})
    plan = plan_with(FakeHistory(days_of(30.0)), 30.0, site=ppa)
    assert plan.status == "bad_input"
    assert plan.reason is not None and "rt contracts only" in plan.reason
    nan_price = plan_with(FakeHistory(days_of(30.0)), float("nan"))
    assert nan_price.status == "bad_input"


def test_an_unreadable_history_still_gives_a_plan() -> None:
    plan = plan_with(BrokenHistory(), 30.0)
    assert plan.status == "failed"
    assert plan.reason is not None and "RuntimeError: database is locked" in plan.reason


def test_stored_rows_account_for_every_device_at_catalog_power() -> None:
    demand = [workload("rt", REALTIME, 1)]
    plan = plan_with(FakeHistory(days_of(20.0), demand), 20.0)
    by_model: dict[str, int] = {}
    for a in plan.allocations:
        by_model[a.device_model] = by_model.get(a.device_model, 0) + a.count
    assert by_model == {"S21": 4, "H100 SXM": 4}
    turbo = next(a for a in plan.allocations if a.use == "turbo")
    assert turbo.power_kw == pytest.approx(turbo.count * 4.370)
    served = next(a for a in plan.allocations if a.use == GPU_WORKLOADS)
    assert served.power_kw == pytest.approx(served.count * 0.700)


@settings(max_examples=25, deadline=None)
@given(
    price=st.floats(-250.0, 5_000.0),
    capacity_kw=st.floats(5.0, 60.0),
    realtime=st.integers(0, 6),
)
def test_a_plan_never_draws_more_than_the_site(
    price: float, capacity_kw: float, realtime: int
) -> None:
    site = Site("site-1", "Site 1", NODE, capacity_kw / 1000, 1.08)
    demand = [workload("rt", REALTIME, realtime)] if realtime else []
    plan = plan_with(FakeHistory(days_of(40.0, days=1.5), demand), price, site=site)
    assert plan.status == "optimal"
    assert plan.power_kw * site.pue <= capacity_kw + 1e-6


# --- what the inputs are made of -----------------------------------------------------------


def test_the_first_interval_is_priced_at_the_snapshot_and_a_short_history_is_held_flat() -> None:
    stored = [snapshot(T - i * STEP, 50.0) for i in range(10, 0, -1)]
    prices = electricity_forecast(stored, snapshot(T, 80.0), SITE, MpcPlanSettings(step=STEP))
    assert len(prices) == 24  # two hours of five-minute ticks
    assert prices == pytest.approx(np.full(24, 80.0))


def test_the_forecast_blends_the_price_now_into_the_daily_profile() -> None:
    quarter_day = timedelta(hours=6)
    # Two days of four intervals, 100 $/MWh in the second interval of each day, 0 otherwise.
    stored = [snapshot(T - (8 - i) * quarter_day, 100.0 if i % 4 == 1 else 0.0) for i in range(8)]
    knobs = MpcPlanSettings(quarter_day, timedelta(days=1), forecast=ForecastSettings(0.5, 2))
    prices = electricity_forecast(stored, snapshot(T, 60.0), SITE, knobs)
    # k steps after now: 0.5^k x 60 + (1 − 0.5^k) x the mean at that time of day.
    assert prices == pytest.approx([60.0, 0.5 * 60 + 0.5 * 100, 0.25 * 60, 0.125 * 60])


def test_nothing_stored_at_or_after_the_interval_is_used() -> None:
    knobs = MpcPlanSettings(step=STEP)
    past = days_of(30.0)
    future = [snapshot(T + i * STEP, 4_000.0) for i in range(0, 288)]
    with_future = electricity_forecast(past + future, snapshot(T, 30.0), SITE, knobs)
    assert with_future == pytest.approx(electricity_forecast(past, snapshot(T, 30.0), SITE, knobs))
    assert with_future == pytest.approx(np.full(24, 30.0))


def test_a_missing_interval_repeats_the_price_before_it() -> None:
    stored = [snapshot(T - 4 * STEP, 10.0), snapshot(T - 3 * STEP, 20.0), snapshot(T - STEP, 40.0)]
    grid = price_grid(stored, NODE, T, MpcPlanSettings(step=STEP))
    assert grid == pytest.approx([10.0, 20.0, 20.0, 40.0])
    assert price_grid([], NODE, T, MpcPlanSettings(step=STEP)).size == 0


def test_the_state_is_what_the_previous_plan_ran_within_the_healthy_fleet() -> None:
    rows = (
        Allocation("S21", "stock", 3, 10.5),
        Allocation("S21", SLEEP, 1, 0.025),
        Allocation("H100 SXM", GPU_WORKLOADS, 2, 1.4),
    )
    previous = SitePlan("p", SITE.id, T - STEP, "mpc", "optimal", None, 1.0, T - STEP, rows)
    state = site_state(previous, site_spec(SITE, FleetCounts({"S21": 2}, {"H100 SXM": 8})))
    assert state.asics["S21"].on == 2
    assert state.grid_mw == pytest.approx(11.925 * 1.08 / 1000)
    # With 4 GPUs, 2 miners at turbo (4,370 W) and 4 GPUs busy draw at most 11.54 kW: that.
    fewer = site_state(previous, site_spec(SITE, FleetCounts({"S21": 2}, {"H100 SXM": 4})))
    assert fewer.grid_mw == pytest.approx((2 * 4.37 + 4 * 0.7) * 1.08 / 1000)
    first = site_state(None, site_spec(SITE, FLEET))
    assert first.grid_mw == 0.0 and first.asics["S21"].on == 0


def test_a_job_is_its_work_left_due_at_its_deadline_or_as_soon_as_possible() -> None:
    knobs, now = MpcPlanSettings(step=STEP), snapshot(T, 30.0)
    running = workload("b", BATCH, 4, hours=2.0, state=WorkloadState.RUNNING)
    half_done = replace(running, progress=0.25)
    job = job_of(half_done, "H100", now, knobs)
    assert job.remaining_gpu_steps == 72  # 4 GPUs x 1.5 h left / (1/12 h)
    # 1.5 h of work + one step of slack, in five-minute steps, + the 2 h deadline margin (it
    # guards a customer's deadline; a job without one keeps its one step of slack)
    assert job.deadline == 18 + 1 + 24
    assert (job.max_gpus, job.release, job.price_usd_per_gpu_hour) == (4, 0, 2.75)
    due = replace(running, deadline=T + timedelta(hours=1))
    assert job_of(due, "H100", now, knobs).deadline == 12
    late = replace(running, deadline=T - timedelta(hours=1))
    assert job_of(late, "H100", now, knobs).deadline == 1


def test_demand_counts_realtime_gpus_and_jobs_this_site_can_run() -> None:
    open_now = [
        workload("rt-q", REALTIME, 2),
        workload("rt-r", REALTIME, 1, state=WorkloadState.RUNNING),
        workload("any", TRAINING, 2, family=None),
        workload("a100", BATCH, 1, family="A100"),
    ]
    history = PlanningHistory(days_of(30.0, days=0.5), None, open_now)
    inputs = live_inputs(SITE, FLEET, snapshot(T, 30.0), history, MpcPlanSettings(step=STEP))
    assert inputs.realtime_gpus["H100"] == pytest.approx(np.full(24, 3.0))
    assert inputs.realtime_price_usd_per_gpu_hour == {"H100": 4.0}
    assert [(j.job_id, j.family) for j in inputs.jobs] == [("any", "H100")]
    assert inputs.hashprice_usd_per_ths_day[0] == pytest.approx(0.0427, abs=1e-4)
    assert inputs.gpu_spot_usd_per_gpu_hour["H100"] == pytest.approx(np.full(24, 2.2))
    assert inputs.deadline_margin_steps == 24  # two hours of five-minute steps


def test_short_ticks_keep_the_program_and_the_history_small() -> None:
    five_minutes, one_second = (
        MpcPlanSettings(step=STEP),
        MpcPlanSettings(step=timedelta(seconds=1)),
    )
    assert (five_minutes.horizon_steps, five_minutes.history_steps) == (24, 21 * 288)
    assert (one_second.horizon_steps, one_second.history_steps) == (48, 21 * 288)


# --- choosing the planner ------------------------------------------------------------------


def test_the_optimizer_is_the_default_live_planner(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("HCP_PLANNER", raising=False)
    monkeypatch.delenv("HCP_CONFIG", raising=False)
    assert Settings().planner == "mpc"
    assert planner_named("mpc", no_store, STEP).name == "mpc"
    assert planner_named("breakeven", no_store, STEP).name == "breakeven"
    locked = planner_named("mpc", no_store, STEP, None, timedelta(minutes=15), timedelta(0))
    assert isinstance(locked, OptimizerPlanner)
    assert (locked.settings.min_on_steps, locked.settings.min_off_steps) == (3, 1)
    with pytest.raises(ValueError, match="unknown planner 'oracle'"):
        planner_named("oracle", no_store, STEP)


def no_store() -> UnitOfWork:
    raise AssertionError("choosing a planner reads nothing")


def _plan_with(on: int, at: datetime) -> SitePlan:
    """A previous plan with `on` S21s at stock for the interval starting `at`."""
    allocations = (Allocation("S21", "stock", on, on * 3.5),)
    return SitePlan("p0", SITE.id, at, "mpc", "optimal", None, 0.0, at, allocations)


def test_the_ramp_holds_from_a_draw_the_site_can_still_reach() -> None:
    """The last plan ran 40 miners (151 kW); 36 have since turned unhealthy, or the limit fell
    to 50 kW. The ramp (16 kW a tick) then holds from what can be drawn now, not from 151 kW,
    which no plan could come within 16 kW of (infeasible, then the breakeven fallback)."""
    settings = MpcPlanSettings(step=STEP, ramp_mw_per_step=0.016)
    history = FakeHistory(days_of(20.0), previous=_plan_with(40, T - STEP))
    few = FleetCounts({"S21": 4}, {"H100 SXM": 4})
    plan = OptimizerPlanner(history, settings).plan(SITE, few, snapshot(T, 20.0), T)
    assert plan.status == "optimal" and plan.power_kw == pytest.approx(4 * 3.5 + 4 * 0.7, rel=0.3)
    small = replace(SITE, capacity_mw=0.05)
    many = FleetCounts({"S21": 40}, {"H100 SXM": 4})
    plan = OptimizerPlanner(history, settings).plan(small, many, snapshot(T, 20.0), T)
    assert plan.status == "optimal" and plan.power_kw * SITE.pue <= 50.0 + 1e-6


def test_a_plan_from_before_a_pause_sets_no_ramp() -> None:
    """After a restart the site's draw is not what a plan of hours ago left: no ramp from it."""
    settings = MpcPlanSettings(step=STEP, ramp_mw_per_step=0.001)
    fleet = FleetCounts({"S21": 40}, {"H100 SXM": 4})
    old = FakeHistory(days_of(20.0), previous=_plan_with(0, T - 3 * STEP))
    plan = OptimizerPlanner(old, settings).plan(
        replace(SITE, capacity_mw=1.0), fleet, snapshot(T, 20.0), T
    )
    assert plan.status == "optimal" and plan.power_kw > 100  # every miner at once: no ramp
    last = FakeHistory(days_of(20.0), previous=_plan_with(0, T - STEP))
    plan = OptimizerPlanner(last, settings).plan(
        replace(SITE, capacity_mw=1.0), fleet, snapshot(T, 20.0), T
    )
    assert (
        plan.status == "optimal"
        and plan.power_kw * SITE.pue <= 40 * 25 / 1000 * SITE.pue + 1.0 + 1e-6
    )


def test_miners_woken_by_recent_plans_stay_on_through_the_minimum_on_time() -> None:
    """Minimum on time 15 minutes (three 5-minute ticks): 4 miners woken for the interval
    before this one stay on through a price spike; woken three intervals ago, they may sleep."""
    settings = MpcPlanSettings(step=STEP, min_on=timedelta(minutes=15))
    woken_last_tick = [_plan_with(0, T - 2 * STEP), _plan_with(4, T - STEP)]
    history = FakeHistory(days_of(20.0), previous=woken_last_tick[-1], plans=woken_last_tick)
    plan = OptimizerPlanner(history, settings).plan(SITE, FLEET, snapshot(T, 5_000.0), T)
    assert history.plans_since == T - 2 * STEP  # the two intervals the lock still counts
    assert plan.status == "optimal" and counts(plan, "S21").get(SLEEP, 0) == 0

    woken_before = [_plan_with(0, T - 4 * STEP), *(_plan_with(4, T - k * STEP) for k in (3, 2, 1))]
    history = FakeHistory(days_of(20.0), previous=woken_before[-1], plans=woken_before)
    plan = OptimizerPlanner(history, settings).plan(SITE, FLEET, snapshot(T, 5_000.0), T)
    assert plan.status == "optimal" and counts(plan, "S21") == {SLEEP: 4}


def test_recent_switches_come_from_consecutive_plans_and_a_pause_switched_none() -> None:
    spec = replace(site_spec(SITE, FleetCounts({"S21": 10}, {})), min_on_steps=4, min_off_steps=3)
    state = SiteState(0.0, {"S21": AsicState(6)})
    plans = [_plan_with(2, T - 4 * STEP), _plan_with(8, T - 3 * STEP), _plan_with(6, T - STEP)]
    switched = with_recent_switches(state, plans, spec, T, STEP)
    # T-3: 2 -> 8 (6 woken); T-2: no plan (a pause); T-1: no plan just before it, so none
    assert switched.asics["S21"] == AsicState(6, recent_ups=(6, 0, 0), recent_downs=(0, 0))
    plans = [_plan_with(8, T - 2 * STEP), _plan_with(6, T - STEP)]
    switched = with_recent_switches(state, plans, spec, T, STEP)
    assert switched.asics["S21"] == AsicState(6, recent_ups=(0, 0, 0), recent_downs=(0, 2))
    no_lock = replace(spec, min_on_steps=1, min_off_steps=1)
    assert with_recent_switches(state, plans, no_lock, T, STEP) is state
