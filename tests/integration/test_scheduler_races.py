"""A tick awaits the GPU nodes; API calls are served meanwhile. A customer's cancel landing in
that window must cost the tick nothing but that workload."""

from __future__ import annotations

import asyncio
from dataclasses import replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from hcp.adapters.devices.errors import DeviceTimeout
from hcp.domain.workloads import (
    StateChange,
    WorkloadClass,
    WorkloadEvent,
    WorkloadState,
    transition,
)
from hcp.services import scheduler as scheduler_module
from hcp.services import workloads as workloads_module
from tests.integration.schedworld import ADMIN, CUSTOMER, SITE, World, world


async def test_a_cancel_while_the_nodes_start_work_spoils_no_other_start(
    tmp_path: Path,
) -> None:
    """Before: the cancelled workload's START failed its transition, the transaction holding
    every start of the tick rolled back, and the other workload ran on its node while the
    store said `scheduled`: never billed, and every tick after its end failed."""
    async with world(tmp_path) as w:
        a = await w.submit(WorkloadClass.AI_INFERENCE_BATCH, gpus=1, hours=2)
        b = await w.submit(WorkloadClass.AI_INFERENCE_BATCH, gpus=1, hours=2)
        w.runner.after_start = lambda started: _cancel(w, a) if started.id == a else None
        await w.scheduler.tick({SITE: 10})
        assert w.runs_on_a_node(b)
        assert w.get(b).state is WorkloadState.RUNNING
        assert w.get(a).state is WorkloadState.CANCELLED
        assert ("start", "running") not in w.history(a)

        await w.scheduler.tick({SITE: 10})  # the cancelled one is stopped on its node
        assert not w.runs_on_a_node(a) and w.get(a).gpu_ids == ()

        w.clock.advance(timedelta(hours=2, minutes=5))
        for _ in range(2):
            await w.scheduler.tick({SITE: 10})
            w.clock.advance(timedelta(minutes=5))
        assert w.get(b).state is WorkloadState.COMPLETED
        billing = w.runtime.platform.billing
        billing.meter(w.clock.now() - timedelta(hours=3), w.clock.now(), 30.0)
        usage = billing.usage(ADMIN, w.clock.now().strftime("%Y-%m"))
        assert sum(r.gpu_hours for r in usage if r.workload_id == b) == 2


async def test_a_workload_cancelled_after_the_decision_is_not_started(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        first = await w.submit(WorkloadClass.AI_INFERENCE_BATCH, gpus=1, hours=2)
        second = await w.submit(WorkloadClass.AI_INFERENCE_BATCH, gpus=1, hours=2)
        decide = w.scheduler._decide

        def decide_then_cancel(*args, **kwargs):  # type: ignore[no-untyped-def]
            decided = decide(*args, **kwargs)
            _cancel(w, second)  # the DELETE lands between the decision and the writes
            return decided

        w.scheduler._decide = decide_then_cancel  # type: ignore[method-assign]
        await w.scheduler.tick({SITE: 10})
        assert w.get(first).state is WorkloadState.RUNNING
        assert w.get(second).state is WorkloadState.CANCELLED
        assert not w.runs_on_a_node(second)


def _cancel(w: World, workload_id: str) -> None:
    w.runtime.platform.workloads.cancel(CUSTOMER, workload_id)


def _cancel_while_polled(w: World, workload_id: str) -> Any:
    """Make the runner's polls cancel `workload_id` while the tick awaits the nodes (the
    DELETE lands then); returns the runner's own poll, to put back."""
    poll = w.runner.poll

    async def poll_then_cancel(running):  # type: ignore[no-untyped-def]
        statuses = await poll(running)
        _cancel(w, workload_id)
        return statuses

    w.runner.poll = poll_then_cancel  # type: ignore[method-assign]
    return poll


async def _a_cancel_lands_while_polled(
    w: World, gpu_budget: int, then_gpus: int
) -> tuple[str, str, Any]:
    """Workload a (8 GPUs) runs; b (`then_gpus`) is queued; a's cancel lands while the next
    tick (on `gpu_budget` GPUs) polls the nodes. Returns a, b and the runner's own poll."""
    a = await w.submit(WorkloadClass.AI_INFERENCE_BATCH, gpus=8, hours=2)
    await w.scheduler.tick({SITE: gpu_budget})
    assert w.get(a).state is WorkloadState.RUNNING
    b = await w.submit(WorkloadClass.AI_INFERENCE_BATCH, gpus=then_gpus, hours=2)
    poll = _cancel_while_polled(w, a)
    w.clock.advance(timedelta(minutes=5))
    await w.scheduler.tick({SITE: gpu_budget})
    return a, b, poll


async def test_a_start_the_node_fails_is_tried_again_not_failed_for_good(tmp_path: Path) -> None:
    """A node that times out on a start fails it like any node failure: back to the queue
    with a retry counted, and failed only past the retry limit."""
    async with world(tmp_path) as w:
        job = await w.submit(WorkloadClass.AI_INFERENCE_BATCH, gpus=1, hours=1)
        w.runner.fail_start = DeviceTimeout("gpu-node-001", "no reply within 3 s")
        report = await w.scheduler.tick({SITE: 10})
        assert report.requeued == [job] and report.failed == []
        stored = w.get(job)
        assert (stored.state, stored.retries, stored.gpu_ids) == (WorkloadState.QUEUED, 1, ())
        w.clock.advance(timedelta(minutes=5))
        await w.scheduler.tick({SITE: 10})
        assert w.get(job).state is WorkloadState.RUNNING and w.runs_on_a_node(job)


async def test_a_start_that_keeps_failing_fails_past_the_retry_limit(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        job = await w.submit(WorkloadClass.AI_INFERENCE_BATCH, gpus=1, hours=1)
        states = []
        for _ in range(5):
            w.runner.fail_start = DeviceTimeout("gpu-node-001", "no reply within 3 s")
            await w.scheduler.tick({SITE: 10})
            states.append(w.get(job).state)
            w.clock.advance(timedelta(minutes=5))
        assert states == [WorkloadState.QUEUED] * 3 + [WorkloadState.FAILED] * 2


async def test_a_cancel_while_the_nodes_are_polled_frees_no_gpu_it_still_runs_on(
    tmp_path: Path,
) -> None:
    """A cancel landing while the tick polls the nodes (after it released what was cancelled
    before) leaves the workload running on its GPUs until the next tick stops it: those GPUs
    are not free for this tick's placements."""
    async with world(tmp_path) as w:
        a, b, poll = await _a_cancel_lands_while_polled(w, gpu_budget=10, then_gpus=8)
        assert w.get(a).state is WorkloadState.CANCELLED
        shared = set(w.get(a).gpu_ids) & set(w.get(b).gpu_ids)
        assert shared == set(), f"GPUs {sorted(shared)} booked by both"
        assert w.get(b).retries == 0

        w.runner.poll = poll  # type: ignore[method-assign]
        w.clock.advance(timedelta(minutes=5))
        await w.scheduler.tick({SITE: 10})  # a is stopped and its GPUs freed ...
        w.clock.advance(timedelta(minutes=5))
        await w.scheduler.tick({SITE: 10})  # ... and b gets them
        assert w.get(b).state is WorkloadState.RUNNING and w.runs_on_a_node(b)
        assert not w.runs_on_a_node(a)


async def test_a_cancel_landing_as_the_tick_stores_a_preemption_is_not_undone(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The tick reads the workload as running, the customer's cancel commits, then the tick
    writes its preemption: the cancel (answered 200) must stand, not be overwritten by a
    requeue that runs and bills the workload again."""
    async with world(tmp_path) as w:
        job = await w.submit(WorkloadClass.AI_INFERENCE_BATCH, gpus=1, hours=2)
        await w.scheduler.tick({SITE: 10})
        assert w.get(job).state is WorkloadState.RUNNING
        fired = []

        def cancel_first(state: WorkloadState, event: WorkloadEvent) -> WorkloadState:
            if event is WorkloadEvent.PREEMPT and not fired:
                fired.append(event)
                _cancel(w, job)  # the DELETE commits between the tick's read and its write
            return transition(state, event)

        monkeypatch.setattr(scheduler_module, "transition", cancel_first)
        w.clock.advance(timedelta(minutes=15))
        await w.scheduler.tick({SITE: 0})  # the budget is cut: the job is shed
        assert fired
        assert w.get(job).state is WorkloadState.CANCELLED
        assert w.history(job)[-1] == ("cancel", "cancelled")

        w.clock.advance(timedelta(minutes=5))
        await w.scheduler.tick({SITE: 10})
        assert w.get(job).state is WorkloadState.CANCELLED
        assert not w.runs_on_a_node(job)


async def test_a_cancel_that_read_a_workload_before_the_tick_placed_it_keeps_its_gpus(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The cancel reads the workload queued, the tick commits its placement, then the cancel
    writes: it cancels the placed workload (its GPUs kept, so the next tick stops it there),
    and its history says so (before: a cancel "from queued" after the placement)."""
    async with world(tmp_path) as w:
        job = await w.submit(WorkloadClass.AI_INFERENCE_BATCH, gpus=1, hours=2)
        fired = []

        def placed_first(state: WorkloadState, event: WorkloadEvent) -> WorkloadState:
            if not fired:
                fired.append(event)
                with w.runtime.unit_of_work() as uow:  # the tick's write, committed meanwhile
                    queued = uow.workloads.get(job)
                    assert queued is not None
                    now = w.clock.now()
                    placed = replace(
                        queued, state=WorkloadState.SCHEDULED, gpu_ids=("gpu-x",), started_at=now
                    )
                    change = StateChange(
                        job, now, WorkloadEvent.SCHEDULE, queued.state, placed.state
                    )
                    uow.workloads.save_transition(placed, change)
                    uow.commit()
            return transition(state, event)

        monkeypatch.setattr(workloads_module, "transition", placed_first)
        _cancel(w, job)
        stored = w.get(job)
        assert (stored.state, stored.gpu_ids) == (WorkloadState.CANCELLED, ("gpu-x",))
        with w.runtime.unit_of_work() as uow:
            changes = uow.workloads.history(job)
        assert [(c.event.value, c.from_state, c.to_state.value) for c in changes] == [
            ("submit", None, "queued"),
            ("schedule", "queued", "scheduled"),
            ("cancel", "scheduled", "cancelled"),
        ]


async def test_a_run_left_scheduled_by_an_interrupted_tick_is_followed_to_its_end(
    tmp_path: Path,
) -> None:
    """A tick cancelled (shutdown, leadership lost) after a node started a run but before the
    start was stored leaves the workload `scheduled` while it runs: the next ticks follow it
    as running, and its completion is stored, rather than failing every tick after."""
    async with world(tmp_path) as w:
        job = await w.submit(WorkloadClass.AI_INFERENCE_BATCH, gpus=1, hours=1)
        start = w.runner.start

        async def start_then_interrupted(workload, gpus):  # type: ignore[no-untyped-def]
            await start(workload, gpus)
            raise asyncio.CancelledError

        w.runner.start = start_then_interrupted  # type: ignore[method-assign]
        with pytest.raises(asyncio.CancelledError):
            await w.scheduler.tick({SITE: 10})
        w.runner.start = start  # type: ignore[method-assign]
        assert w.get(job).state is WorkloadState.SCHEDULED and w.runs_on_a_node(job)

        w.clock.advance(timedelta(minutes=5))
        await w.scheduler.tick({SITE: 10})
        assert w.get(job).state is WorkloadState.RUNNING
        w.clock.advance(timedelta(hours=1))
        await w.scheduler.tick({SITE: 10})
        assert w.get(job).state is WorkloadState.COMPLETED


async def test_gpus_a_cancelled_run_still_holds_count_against_the_budget(tmp_path: Path) -> None:
    """The run cancelled while the tick polled the nodes draws power until the next tick
    stops it: the GPU budget (the power the plan gave the GPUs) has that much less room for
    new work in this tick."""
    async with world(tmp_path) as w:
        a, b, poll = await _a_cancel_lands_while_polled(w, gpu_budget=8, then_gpus=2)
        assert w.runs_on_a_node(a)  # stopped only by the next tick
        assert w.get(b).state is WorkloadState.QUEUED  # 8 + 2 GPUs would run on a budget of 8

        w.runner.poll = poll  # type: ignore[method-assign]
        w.clock.advance(timedelta(minutes=5))
        await w.scheduler.tick({SITE: 8})
        assert not w.runs_on_a_node(a)
        assert w.get(b).state is WorkloadState.RUNNING and w.runs_on_a_node(b)
