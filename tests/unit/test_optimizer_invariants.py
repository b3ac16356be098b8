"""Invariants of the optimizer, for any small site: a plan never exceeds the site's MW or the
devices that exist, and when power is short realtime is served before batch before training;
`dispatchable` keeps every decision inside the same limits."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hcp.domain.catalog import asic_model, gpu_model
from hcp.domain.workloads import WorkloadClass
from hcp.optimizer.dispatchable import dispatchable
from hcp.optimizer.inputs import (
    AsicFleet,
    AsicState,
    GpuFleet,
    JobInputs,
    RtContract,
    SiteInputs,
    SiteNow,
    SiteSpec,
    SiteState,
)
from hcp.optimizer.plan import GpuUse, Plan, SiteAllocation
from hcp.optimizer.planner import plan_site
from hcp.optimizer.solver import HighsSolver

S21, H100 = asic_model("S21"), gpu_model("H100 SXM")
PRICES = {WorkloadClass.AI_INFERENCE_BATCH: 2.75, WorkloadClass.AI_TRAINING: 2.25}
TOLERANCE = 1e-6


@st.composite
def site_inputs(draw: st.DrawFn) -> SiteInputs:
    """A site with a few miners and GPUs, often short of power, over a few intervals."""
    horizon = draw(st.integers(1, 6))
    miners, gpus = draw(st.integers(0, 12)), draw(st.integers(1, 8))
    site = SiteSpec(
        name="s",
        node="N",
        capacity_mw=draw(st.floats(0.0005, 0.05)),
        pue=draw(st.floats(1.0, 1.5)),
        contract=RtContract(draw(st.floats(0, 10))),
        asics=(AsicFleet(S21, miners),),
        gpus=(GpuFleet(H100, gpus),),
        min_on_steps=draw(st.integers(1, 3)),
        min_off_steps=draw(st.integers(1, 3)),
    )
    prices = st.lists(st.floats(-50, 3000), min_size=horizon, max_size=horizon)
    demand = st.lists(st.integers(0, 10), min_size=horizon, max_size=horizon)
    return SiteInputs(
        site=site,
        state=SiteState(0.0, {"S21": AsicState(draw(st.integers(0, miners)))}),
        step_hours=0.25,
        electricity_usd_per_mwh=np.array(draw(prices)),
        hashprice_usd_per_ths_day=np.full(horizon, draw(st.floats(0.03, 0.3))),
        gpu_spot_usd_per_gpu_hour={"H100": np.full(horizon, draw(st.floats(0, 3)))},
        realtime_gpus={"H100": np.array(draw(demand), dtype=float)},
        realtime_price_usd_per_gpu_hour={"H100": 4.0},
        jobs=tuple(draw(st.lists(jobs(horizon), max_size=4, unique_by=lambda j: j.job_id))),
        sla_penalty_usd_per_gpu_hour=10.0,
        integer=draw(st.booleans()),
    )


@st.composite
def jobs(draw: st.DrawFn, horizon: int) -> JobInputs:
    workload_class = draw(st.sampled_from(sorted(PRICES)))
    release = draw(st.integers(0, horizon - 1))
    return JobInputs(
        job_id=f"{workload_class.value}-{draw(st.integers(0, 99))}",
        workload_class=workload_class,
        family="H100",
        max_gpus=draw(st.integers(1, 6)),
        remaining_gpu_steps=draw(st.integers(0, 20)),
        release=release,
        deadline=draw(st.integers(release + 1, horizon + 3)),
        price_usd_per_gpu_hour=PRICES[workload_class],
    )


def solved(x: SiteInputs) -> Plan:
    plan = plan_site(x, HighsSolver())
    assert plan.ok, plan.reason
    return plan


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(site_inputs())
def test_a_plan_never_exceeds_the_site_mw_or_the_devices_that_exist(x: SiteInputs) -> None:
    plan = solved(x)
    for i in range(x.horizon):
        allocation = plan.allocation(i)
        assert allocation.grid_mw <= x.site.capacity_mw + TOLERANCE
        assert allocation.asics_on("S21") <= x.site.asics[0].count + TOLERANCE
        assert min(allocation.asics["S21"].values()) >= 0
        assert allocation.gpus["H100 SXM"].busy <= x.site.gpus[0].count + TOLERANCE


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(site_inputs())
def test_realtime_is_served_before_batch_before_training(x: SiteInputs) -> None:
    plan = solved(x)
    for i in range(x.horizon):
        use = plan.allocation(i).gpus["H100 SXM"]
        if use.realtime < x.realtime_gpus["H100"][i] - TOLERANCE:
            lower = use.spot + sum(use.batch.values()) + sum(use.training.values())
            assert lower <= TOLERANCE, "a GPU served batch/training/spot, realtime went short"
    for job in x.jobs:
        if job.workload_class == WorkloadClass.AI_INFERENCE_BATCH and _short(plan, job, x):
            for i in _room_for(plan, job, x):
                assert sum(plan.allocation(i).gpus["H100 SXM"].training.values()) <= TOLERANCE


def _short(plan: Plan, job: JobInputs, x: SiteInputs) -> bool:
    """True when `job` is due inside the horizon and left work undone."""
    done = sum(
        plan.allocation(i).gpus["H100 SXM"].batch.get(job.job_id, 0.0) for i in range(x.horizon)
    )
    return job.deadline <= x.horizon and done < job.remaining_gpu_steps - TOLERANCE


def _room_for(plan: Plan, job: JobInputs, x: SiteInputs) -> list[int]:
    """Intervals where `job` could have had another GPU: open, below its cap."""
    return [
        i
        for i in range(job.release, min(job.deadline, x.horizon))
        if plan.allocation(i).gpus["H100 SXM"].batch.get(job.job_id, 0.0) < job.max_gpus - 0.5
    ]


@st.composite
def wishes(draw: st.DrawFn) -> tuple[SiteAllocation, SiteNow]:
    """Any wished-for allocation, however wrong, and a site state to apply it to."""
    x = draw(site_inputs())
    profiles = {p.name: draw(st.floats(0, 30)) for p in S21.profiles}
    job_gpus = {j.job_id: draw(st.floats(0, 9)) for j in x.jobs}
    use = GpuUse(draw(st.floats(0, 12)), draw(st.floats(0, 12)), job_gpus, {})
    ramp = draw(st.none() | st.floats(0.001, 0.05))
    now = SiteNow(
        site=replace(x.site, ramp_mw_per_step=ramp),
        state=SiteState(draw(st.floats(0, 0.05)), {"S21": _asic_state(draw, x)}),
        realtime_gpus={"H100": int(x.realtime_gpus["H100"][0])},
        jobs=tuple(j for j in x.jobs if j.release == 0),
    )
    return SiteAllocation("s", {"S21": profiles}, {"H100 SXM": use}), now


def _asic_state(draw: st.DrawFn, x: SiteInputs) -> AsicState:
    count = x.site.asics[0].count
    on = draw(st.integers(0, count))
    up = draw(st.integers(0, on))
    down = draw(st.integers(0, count - on))
    return AsicState(on, (up,), (down,))


@settings(max_examples=200, deadline=None)
@given(wishes())
def test_dispatchable_stays_within_every_limit(case: tuple[SiteAllocation, SiteNow]) -> None:
    wished, now = case
    got = dispatchable(wished, now)
    fleet, use = now.site.asics[0], got.gpus["H100 SXM"]
    fewest, most = now.asics_on_range(fleet)
    assert fewest <= got.asics_on("S21") <= most
    assert use.busy <= now.site.gpus[0].count
    assert use.realtime <= now.realtime_gpus["H100"]
    open_jobs = {j.job_id: j for j in now.jobs}
    for job_id, gpus in use.jobs().items():
        job = open_jobs[job_id]
        assert gpus == int(gpus) and gpus <= min(job.max_gpus, job.remaining_gpu_steps)
    locked_on_mw = fewest * min(p.power_w for p in S21.profiles) * now.site.pue / 1e6
    if locked_on_mw + fleet.count * S21.sleep_power_w * now.site.pue / 1e6 < now.site.capacity_mw:
        assert got.grid_mw <= now.site.capacity_mw + 1e-9
    if use.realtime < now.realtime_gpus["H100"]:
        assert use.busy == use.realtime
