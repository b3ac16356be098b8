"""The seeded workload generator: reproducible, shaped like its spec, jobs always feasible."""

from __future__ import annotations

from dataclasses import replace

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


TRAINING = JobArrivals(WorkloadClass.AI_TRAINING, 1.0, (8, 16), (12.0, 36.0), (48.0, 96.0), 2.25)


@given(st.integers(0, 10_000))
def test_the_window_demand_does_not_depend_on_the_warm_up(seed: int) -> None:
    """The same seven days after one and after three days of warm-up: the same realtime GPUs
    (noise included) and the same jobs, at the same times."""
    noisy = replace(SPEC, realtime=replace(SPEC.realtime, noise=0.3), arrivals=(BATCH, TRAINING))
    short = generate_demand({"s": noisy}, SECONDS[2 * DAY : 10 * DAY], DAY, seed)
    long = generate_demand({"s": noisy}, SECONDS[: 10 * DAY], 3 * DAY, seed)
    gpus = [d.realtime_gpus["s"]["H100"] for d in (short, long)]
    assert np.array_equal(gpus[0][DAY:], gpus[1][3 * DAY :])
    assert len(short.jobs) == len(long.jobs) > 0
    for a, b in zip(short.jobs, long.jobs, strict=True):
        assert replace(a, release=a.release + 2 * DAY, deadline=a.deadline + 2 * DAY) == b


def test_realtime_noise_has_its_spread_from_the_first_interval_of_the_window() -> None:
    """The first interval's noise is as spread as any later one's (not damped to start)."""
    noisy = replace(SPEC, realtime=RealtimeProfile(100, 100, 4.0, noise=0.3))
    firsts = [
        generate_demand({"s": noisy}, SECONDS[: 2 * DAY], DAY, seed).realtime_gpus["s"]["H100"]
        for seed in range(400)
    ]
    spread = np.std(np.log([gpus[DAY] for gpus in firsts]))
    assert 0.25 < spread < 0.35
    assert all(np.all(gpus[:DAY] == 100) for gpus in firsts)  # the warm-up: the profile alone
