"""The interruptible tier through the scheduler service: stored, then the first of its class to
give up its GPU when the plan's budget drops."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from hcp.domain.workloads import WorkloadClass, WorkloadState
from tests.integration.schedworld import SITE, world


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
