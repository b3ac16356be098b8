"""Metering bills GPU time only as far as the nodes have vouched for it."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest

from hcp.domain.identity import Principal, Role
from hcp.domain.workloads import Requirements, WorkloadClass
from hcp.services.workloads import Submission
from tests.api.conftest import START
from tests.integration.livesite import LiveSite, live_site


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[LiveSite]:
    async with live_site(tmp_path, site_asics=12, planner="breakeven") as s:
        yield s


async def test_a_tick_that_relies_on_the_polls_follow_bills_no_time_past_completion(
    site: LiveSite,
) -> None:
    """The node finished 3 s before a tick that did not ask it (a poll had, 6 s before):
    that tick billed the 3 s too, and billed time is never taken back."""
    customer = Principal("k", Role.CUSTOMER, "cust-001")
    submission = Submission(WorkloadClass.AI_INFERENCE_BATCH, Requirements("H100", 4, None, 1.0))
    job = (await site.runtime.platform.workloads.submit(customer, submission)).workload.id
    await site.live.control.tick()  # starts it: 4 GPUs for 1 h
    site.clock.advance(timedelta(minutes=59, seconds=57))
    await site.live.control.poll()  # still running, and now followed
    site.clock.advance(timedelta(seconds=6))  # the node finished 3 s ago
    out = await site.live.control.tick()  # relies on the poll's follow
    assert out.errors == []
    site.clock.advance(timedelta(seconds=2))
    await site.live.control.poll()  # stores the completion at the node's instant
    site.clock.advance(timedelta(minutes=5))
    await site.live.control.tick()
    month = START.strftime("%Y-%m")
    usage = await site.api.get(f"/api/v1/billing/usage?month={month}", headers=site.admin)
    shown = await site.api.get(f"/api/v1/workloads/{job}", headers=site.admin)
    assert shown.json()["status"] == "completed"
    assert usage.json()["gpu_hours"] == "4.000000"


async def test_work_that_finished_after_the_last_metering_is_billed_after_a_restart(
    site: LiveSite,
) -> None:
    """A poll stored the job's completion 1 minute after the last metering, and the platform
    restarted before the next tick: that minute was never billed, as the nodes of the new
    loop are not asked about work already known to be finished."""
    customer = Principal("k", Role.CUSTOMER, "cust-001")
    submission = Submission(WorkloadClass.AI_INFERENCE_BATCH, Requirements("H100", 4, None, 0.1))
    job = (await site.runtime.platform.workloads.submit(customer, submission)).workload.id
    await site.live.control.tick()  # starts it: 4 GPUs for 6 minutes
    site.clock.advance(timedelta(minutes=5))
    await site.live.control.tick()  # bills its first 5 minutes
    site.clock.advance(timedelta(minutes=1, seconds=30))
    await site.live.control.poll()  # stores the completion, at the node's instant
    shown = await site.api.get(f"/api/v1/workloads/{job}", headers=site.admin)
    assert shown.json()["status"] == "completed"
    await site.restart()
    site.clock.advance(timedelta(minutes=5))
    await site.live.control.poll()
    assert (await site.live.control.tick()).errors == []
    month = START.strftime("%Y-%m")
    usage = await site.api.get(f"/api/v1/billing/usage?month={month}", headers=site.admin)
    assert usage.json()["gpu_hours"] == "0.400000"  # 4 GPUs for 6 minutes


async def test_work_on_any_gpu_is_billed_at_its_family_after_it_let_its_gpus_go(
    tmp_path: Path,
) -> None:
    """A job for any GPU type ran 6 minutes on an L40S site: the minute after the last
    metering, billed once it had finished and let its GPUs go, was billed as H100."""
    async with live_site(tmp_path, site_asics=12, planner="breakeven", site_gpu_model="L40S") as s:
        customer = Principal("k", Role.CUSTOMER, "cust-001")
        submission = Submission(WorkloadClass.AI_INFERENCE_BATCH, Requirements(None, 1, None, 0.1))
        await s.runtime.platform.workloads.submit(customer, submission)
        await s.live.control.tick()  # starts it on an L40S
        s.clock.advance(timedelta(minutes=5))
        await s.live.control.tick()
        s.clock.advance(timedelta(minutes=2))
        await s.live.control.poll()  # it finished a minute ago
        s.clock.advance(timedelta(minutes=3))
        assert (await s.live.control.tick()).errors == []
        month = START.strftime("%Y-%m")
        issued = await s.api.post(f"/api/v1/billing/invoices?month={month}", headers=s.admin)
        lines = issued.json()[0]["lines"]
        assert [line["description"][:4] for line in lines] == ["L40S"], lines
        [line] = lines
        assert line["description"].startswith("L40S GPU-hours")
        assert line["quantity"] == "0.100000" and line["amount"] == "0.11"  # at 1.10
