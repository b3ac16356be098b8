"""The site LP on tiny, hand-checkable cases: what runs at which price, the limits, the
contract, deadlines, and solve outcomes as data."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest

from hcp.domain.catalog import asic_model, gpu_model
from hcp.domain.workloads import WorkloadClass
from hcp.optimizer.checks import check_inputs
from hcp.optimizer.inputs import (
    AsicFleet,
    AsicState,
    GpuFleet,
    JobInputs,
    PpaContract,
    RtContract,
    SiteInputs,
    SiteSpec,
    SiteState,
)
from hcp.optimizer.model import work_needed
from hcp.optimizer.plan import SolveStatus
from hcp.optimizer.planner import plan_site
from hcp.optimizer.solver import HighsSolver

S21 = asic_model("S21")
H100 = gpu_model("H100 SXM")
HASHPRICE = 0.05  # USD/TH/s/day: a stock S21 breaks even near 117 USD/MWh at PUE 1
SITE = SiteSpec(
    name="tiny",
    node="HB_WEST",
    capacity_mw=1.0,
    pue=1.0,
    contract=RtContract(),
    asics=(AsicFleet(S21, 10),),
    gpus=(GpuFleet(H100, 4),),
)


def inputs(prices: list[float], **changes: object) -> SiteInputs:
    """Ten S21 (all on) and four H100 at `prices`, no demand, spot at 0."""
    n = len(prices)
    base = SiteInputs(
        site=SITE,
        state=SiteState(0.035, {"S21": AsicState(10)}),
        step_hours=0.25,
        electricity_usd_per_mwh=np.array(prices, dtype=float),
        hashprice_usd_per_ths_day=np.full(n, HASHPRICE),
        gpu_spot_usd_per_gpu_hour={"H100": np.zeros(n)},
        realtime_gpus={"H100": np.zeros(n)},
        realtime_price_usd_per_gpu_hour={"H100": 4.0},
        jobs=(),
        sla_penalty_usd_per_gpu_hour=10.0,
    )
    return replace(base, **changes)  # type: ignore[arg-type]


def solve(x: SiteInputs):  # type: ignore[no-untyped-def]
    return plan_site(x, HighsSolver())


def test_cheap_power_runs_every_miner_and_dear_power_sleeps_them() -> None:
    plan = solve(inputs([20.0, 500.0]))
    assert plan.status == SolveStatus.OPTIMAL
    assert plan.allocation(0).asics_on("S21") == pytest.approx(10)
    assert plan.allocation(1).asics_on("S21") == pytest.approx(0)


def test_efficient_profile_wins_just_above_the_stock_breakeven() -> None:
    # 120 USD/MWh: stock (17.5 J/TH) loses money, eco-low (15.5 J/TH) earns the most.
    allocation = solve(inputs([120.0])).allocation(0)
    assert allocation.asics["S21"]["eco-low"] == pytest.approx(10)


def test_site_limit_binds_and_grid_includes_pue() -> None:
    site = replace(SITE, capacity_mw=0.02, pue=1.25)
    allocation = solve(inputs([10.0], site=site)).allocation(0)
    assert allocation.grid_mw == pytest.approx(0.02)
    it_w = sum(n * S21.profile(p).power_w for p, n in allocation.asics["S21"].items())
    asleep = 10 - allocation.asics_on("S21")
    assert (it_w + asleep * S21.sleep_power_w) * 1.25 / 1e6 == pytest.approx(0.02)


def test_ramp_limit_slows_a_shutdown() -> None:
    site = replace(SITE, ramp_mw_per_step=0.01)
    plan = solve(inputs([500.0, 500.0, 500.0, 500.0], site=site))
    grid = [plan.allocation(i).grid_mw for i in range(4)]
    assert grid[0] == pytest.approx(0.025) and grid[1] == pytest.approx(0.015)
    assert np.all(np.abs(np.diff([0.035, *grid])) <= 0.01 + 1e-9)


def test_miners_woken_recently_stay_on_through_their_min_on_time() -> None:
    site = replace(SITE, min_on_steps=3, min_off_steps=1)
    state = SiteState(0.035, {"S21": AsicState(10, recent_ups=(0, 6))})
    plan = solve(inputs([500.0, 500.0, 500.0], site=site, state=state))
    # Woken one interval ago with a 3-interval minimum: on now and next, free after.
    on = [plan.allocation(i).asics_on("S21") for i in range(3)]
    assert on == pytest.approx([6, 6, 0])


def test_miners_put_to_sleep_recently_stay_asleep_through_their_min_off_time() -> None:
    site = replace(SITE, min_on_steps=1, min_off_steps=2)
    state = SiteState(0.0, {"S21": AsicState(4, recent_downs=(6,))})
    plan = solve(inputs([0.0, 0.0], site=site, state=state))
    assert plan.allocation(0).asics_on("S21") == pytest.approx(4)
    assert plan.allocation(1).asics_on("S21") == pytest.approx(10)


def test_ppa_sells_back_the_committed_power_when_real_time_is_dear() -> None:
    site = replace(SITE, contract=PpaContract(30.0, committed_mw=0.04, sellback_fee_usd_per_mwh=2))
    plan = solve(inputs([400.0], site=site))
    allocation = plan.allocation(0)
    assert allocation.asics_on("S21") == pytest.approx(0)
    assert allocation.sellback_mw == pytest.approx(0.04 - allocation.grid_mw)
    # Profit: −committed × PPA price + sold × (price − fee), per 15 minutes.
    expected = (-0.04 * 30.0 + allocation.sellback_mw * 398.0) * 0.25
    assert plan.objective_usd == pytest.approx(expected)


def test_a_job_due_inside_the_horizon_waits_for_cheap_power() -> None:
    job = JobInputs("b1", WorkloadClass.AI_INFERENCE_BATCH, "H100", 2, 2, 0, 3, 2.75)
    # A GPU at 9000 USD/MWh costs 1.6 USD per 15 minutes, more than it earns (0.69).
    plan = solve(inputs([9000.0, 9000.0, 20.0], jobs=(job,)))
    used = [plan.allocation(i).gpus["H100 SXM"].batch.get("b1", 0.0) for i in range(3)]
    assert used == pytest.approx([0.0, 0.0, 2.0])


def test_a_deadline_margin_brings_deferred_work_into_the_horizon() -> None:
    # Due at interval 8 with 10 GPU-intervals left on at most 2 GPUs: past a 6-interval
    # horizon its GPUs could still do 4, so at 9000 USD/MWh a plan does only the 6 it must.
    # A margin of one interval leaves it 2 after the horizon, of two or more none.
    job = JobInputs("t1", WorkloadClass.AI_TRAINING, "H100", 2, 10, 0, 8, 2.25)
    for margin, must in ((0, 6.0), (1, 8.0), (2, 10.0), (5, 10.0)):
        plan = solve(inputs([9000.0] * 6, jobs=(job,), deadline_margin_steps=margin))
        done = sum(plan.allocation(i).gpus["H100 SXM"].training.get("t1", 0.0) for i in range(6))
        assert done == pytest.approx(must), margin


def test_jobs_deferred_past_the_horizon_share_the_family_gpus_there() -> None:
    # Four H100 and a 6-interval horizon. `a` is due at interval 10 and `b` at 11, each with
    # 20 GPU-intervals on at most 4 GPUs. Counted alone, `a` leaves 16 past the horizon and
    # `b` all 20, but together they would leave 36 where only 20 fit. Earliest deadline
    # first, `a` takes the 16 of intervals 6-9 and `b` the 4 of interval 10, so `b` must do 16
    # now. At 9000 USD/MWh, where only what must be done is done, the plan does 4 of `a` and
    # 16 of `b`.
    a = JobInputs("a", WorkloadClass.AI_TRAINING, "H100", 4, 20, 0, 10, 2.25)
    b = JobInputs("b", WorkloadClass.AI_TRAINING, "H100", 4, 20, 0, 11, 2.25)
    x = inputs([9000.0] * 6, jobs=(a, b))
    assert list(work_needed(x)) == [4.0, 16.0]
    plan = solve(x)
    done = {
        j: sum(plan.allocation(i).gpus["H100 SXM"].training.get(j, 0.0) for i in range(6))
        for j in ("a", "b")
    }
    assert done == {"a": pytest.approx(4.0), "b": pytest.approx(16.0)}
    # One job alone keeps the old obligation: what its GPUs cannot do after the horizon.
    assert list(work_needed(inputs([9000.0] * 6, jobs=(a,)))) == [4.0]


def test_deadlines_years_away_cost_no_more_than_the_work_they_hold() -> None:
    """The later share was worked out on an array one slot per interval to the last deadline:
    a deadline in year 9999 (the API took it) asked for 6 GiB each tick."""
    far = 10**12  # intervals
    a = JobInputs("a", WorkloadClass.AI_TRAINING, "H100", 4, 20, 0, far, 2.25)
    b = JobInputs("b", WorkloadClass.AI_TRAINING, "H100", 4, 20, 0, far + 1, 2.25)
    assert list(work_needed(inputs([9000.0] * 6, jobs=(a, b)))) == [0.0, 0.0]
    near_a = JobInputs("a", WorkloadClass.AI_TRAINING, "H100", 4, 20, 0, 11, 2.25)
    near_b = JobInputs("b", WorkloadClass.AI_TRAINING, "H100", 4, 20, 0, 12, 2.25)
    assert list(work_needed(inputs([9000.0] * 6, jobs=(near_a, near_b)))) == [0.0, 16.0]


def test_work_that_cannot_fit_is_charged_the_penalty() -> None:
    job = JobInputs("t1", WorkloadClass.AI_TRAINING, "H100", 4, 20, 0, 2, 2.25)
    plan = solve(inputs([20.0, 20.0], jobs=(job,)))
    done = sum(plan.allocation(i).gpus["H100 SXM"].training.get("t1", 0.0) for i in range(2))
    assert done == pytest.approx(8)
    assert plan.objective_usd < 0  # 12 GPU-intervals short at 10 USD/GPU-hour


def test_realtime_demand_is_served_even_at_a_price_spike() -> None:
    demand = {"H100": np.array([3.0])}
    allocation = solve(inputs([9000.0], realtime_gpus=demand)).allocation(0)
    assert allocation.gpus["H100 SXM"].realtime == pytest.approx(3)


def test_integer_plans_hold_whole_devices() -> None:
    site = replace(SITE, capacity_mw=0.0123)
    allocation = solve(inputs([10.0], site=site, integer=True)).allocation(0)
    for count in allocation.asics["S21"].values():
        assert count == pytest.approx(round(count))


def test_bad_inputs_give_a_plan_with_status_and_reason_not_an_exception() -> None:
    plan = solve(inputs([float("nan"), 20.0]))
    assert plan.status == SolveStatus.BAD_INPUT
    assert "electricity_usd_per_mwh" in plan.reason and "interval 0" in plan.reason
    assert not plan.ok and plan.horizon == 0
    with pytest.raises(ValueError, match="no schedule"):
        plan.allocation(0)


def test_check_inputs_lists_every_problem() -> None:
    site = replace(SITE, pue=0.9, asics=(AsicFleet(S21, -1),))
    job = JobInputs("j", WorkloadClass.AI_TRAINING, "A100", 0, 5, 3, 3, 2.0)
    problems = check_inputs(inputs([20.0], site=site, jobs=(job,), pool_fee=1.5))
    fields = {p.field.split(": ")[-1] for p in problems}
    expected = {"site.pue", "site.asics", "jobs[j].max_gpus", "jobs[j].deadline", "jobs[j].family"}
    assert expected | {"pool_fee", "state.asics[S21].on"} <= fields


def test_an_impossible_state_is_reported_infeasible() -> None:
    # 5 MW drawn last interval, the site allows 1 MW and the ramp only 0.1 MW per interval.
    site = replace(SITE, ramp_mw_per_step=0.1)
    plan = solve(inputs([20.0], site=site, state=SiteState(5.0, {"S21": AsicState(10)})))
    assert plan.status == SolveStatus.INFEASIBLE
    assert plan.reason


def test_a_job_runs_on_any_model_of_its_family_only_in_its_window_and_up_to_its_gpus() -> None:
    batch, training = WorkloadClass.AI_INFERENCE_BATCH, WorkloadClass.AI_TRAINING
    l40s, pcie = gpu_model("L40S"), gpu_model("H100 PCIe")
    site = replace(SITE, gpus=(GpuFleet(H100, 2), GpuFleet(pcie, 2), GpuFleet(l40s, 2)))
    jobs = (
        JobInputs("early", batch, "H100", 3, 6, -2, 2, 5.0),  # released before the horizon
        JobInputs("l40s", batch, "L40S", 2, 2, 1, 3, 5.0),  # another family, between them
        JobInputs("late", training, "H100", 3, 100, 3, 99, 5.0),  # due after the horizon
        JobInputs("gone", batch, "H100", 1, 1, -5, 0, 5.0),  # due before it: never runs
    )
    plan = solve(inputs([20.0] * 5, site=site, jobs=jobs))
    assert plan.status == SolveStatus.OPTIMAL

    def gpus(job: str, i: int) -> float:
        use = plan.allocation(i).gpus
        return sum(u.batch.get(job, 0.0) + u.training.get(job, 0.0) for u in use.values())

    # Four H100s (two SXM, two PCIe) but three at most per job: "early" holds three of
    # them in its two intervals, across both models, and "late" three in its two.
    assert [gpus("early", i) for i in range(5)] == pytest.approx([3, 3, 0, 0, 0])
    assert [gpus("late", i) for i in range(5)] == pytest.approx([0, 0, 0, 3, 3])
    assert sum(gpus("l40s", i) for i in range(5)) == pytest.approx(2)
    assert gpus("l40s", 0) == gpus("l40s", 3) == gpus("l40s", 4) == 0
    assert all(gpus("gone", i) == 0 for i in range(5))
    l40s_use = [plan.allocation(i).gpus["L40S"] for i in range(5)]
    assert all("early" not in u.batch and "late" not in u.training for u in l40s_use)
