"""The seeded workload generator: reproducible, shaped like its spec, jobs always feasible."""

from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from hcp.backtest.demand import DemandSpec, JobArrivals, RealtimeProfile, generate_demand
from hcp.domain.workloads import WorkloadClass

DAY = 96
SECONDS = 1_704_067_200 + 900 * np.arange(14 * DAY, dtype=np.int64)  # 2024-01-01 (Monday)
BATCH = JobArrivals(WorkloadClass.AI_INFERENCE_BATCH, 8.0, (8, 64), (1.0, 6.0), (8.0, 24.0), 2.75)
SPEC = DemandSpec(
    "H100", RealtimeProfile(96, 224, 4.0, peak_hour_utc=20.0, weekend_factor=0.5), (BATCH,)
)


def test_the_same_seed_gives_the_same_demand_and_another_seed_does_not() -> None:
    a, b = (generate_demand({"s": SPEC}, SECONDS, DAY, seed) for seed in (1, 1))
    c = generate_demand({"s": SPEC}, SECONDS, DAY, 2)
    assert a.jobs == b.jobs
    assert np.array_equal(a.realtime_gpus["s"]["H100"], b.realtime_gpus["s"]["H100"])
    assert a.jobs != c.jobs


def test_realtime_follows_the_daily_and_weekly_profile() -> None:
    gpus = generate_demand({"s": SPEC}, SECONDS, DAY, 0).realtime_gpus["s"]["H100"]
    assert gpus[20 * 4] == 224 and gpus[8 * 4] == 96  # Monday 20:00 peak, 08:00 low (no noise)
    assert gpus[5 * DAY + 20 * 4] == 112  # Saturday: half
    assert np.all(gpus == np.round(gpus))


@given(st.integers(0, 10_000))
def test_jobs_arrive_after_warm_up_with_a_deadline_their_work_fits_before(seed: int) -> None:
    jobs = generate_demand({"s": SPEC}, SECONDS, DAY, seed).jobs
    assert [j.release for j in jobs] == sorted(j.release for j in jobs)
    for job in jobs:
        assert job.release >= DAY and job.release + job.steps <= job.deadline
        assert 8 <= job.gpus <= 64 and 4 <= job.steps <= 24 and job.site == "s"
    assert 13 * 8 * 0.5 < len(jobs) < 13 * 8 * 1.6
