"""The interruptible tier through the scheduler service: stored, then the first of its class to
give up its GPU when the plan's budget drops."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from hcp.domain.workloads import WorkloadClass, WorkloadState
from tests.integration.schedworld import ADMIN, SITE, world


async def test_a_budget_cut_stops_the_interruptible_workload_not_the_list_price_one(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        cheap = await w.submit(WorkloadClass.AI_INFERENCE_BATCH, hours=10, interruptible=True)
        await w.scheduler.tick({SITE: 1})
        w.clock.advance(timedelta(minutes=5))
        full = await w.submit(WorkloadClass.AI_INFERENCE_BATCH, hours=10)
        await w.scheduler.tick({SITE: 2})
        assert {w.get(cheap).state, w.get(full).state} == {WorkloadState.RUNNING}
        w.clock.advance(timedelta(minutes=30))
        report = await w.scheduler.tick({SITE: 1})  # power got dear: one GPU goes idle
        assert [p.workload_id for p in report.preempted] == [cheap]
        assert w.get(full).state is WorkloadState.RUNNING


async def test_a_checkpointed_victim_is_recorded_as_losing_no_work(tmp_path: Path) -> None:
    """Realtime demand stops a checkpointable training job, checkpointing it first: it resumes
    where it was, so its preemption record says nothing was lost (it said every GPU-hour
    since its start)."""
    async with world(tmp_path) as w:
        train = await w.submit(WorkloadClass.AI_TRAINING, gpus=2, hours=4, checkpointable=True)
        await w.scheduler.tick({SITE: 2})
        w.clock.advance(timedelta(minutes=30))
        await w.submit(WorkloadClass.AI_INFERENCE_REALTIME, gpus=2, hours=1)
        report = await w.scheduler.tick({SITE: 2})
        assert [(p.workload_id, p.action.value) for p in report.preempted] == [
            (train, "checkpoint")
        ]
        assert w.get(train).progress > 0.12  # about 30 of 240 minutes kept
        [record] = w.runtime.platform.workloads.preemptions(ADMIN, train)
        assert record.lost_gpu_hours == 0.0
