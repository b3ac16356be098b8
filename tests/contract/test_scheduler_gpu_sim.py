"""The scheduling tick on stored state, carried out on simulated GPU nodes over HTTP (ASGI)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from tests.api.conftest import START
from tests.integration.schedworld import CUSTOMER, SITE, CommandList, World
from tests.integration.schedworld import world as sched_world

from hcp.adapters.devices.gpu_runner import split_address
from hcp.domain.catalog import gpu_model
from hcp.domain.devices import DeviceKind
from hcp.domain.identity import Customer, Principal, Role
from hcp.domain.workloads import Requirements, WorkloadClass, WorkloadState
from hcp.services.ports import StoredCommand
from hcp.services.scheduler import SchedulerService
from hcp.services.workloads import Submission


@pytest.fixture
async def world(tmp_path: Path) -> AsyncIterator[World]:
    async with sched_world(tmp_path) as built:
        yield built


async def test_queued_work_starts_runs_and_completes(world: World) -> None:
    first = await world.submit(WorkloadClass.AI_INFERENCE_BATCH, gpus=8, hours=2)
    second = await world.submit(WorkloadClass.AI_TRAINING, gpus=2, hours=1)
    report = await world.scheduler.tick({SITE: 10})
    assert set(report.started) == {first, second}, report.errors
    assert world.state(first) is WorkloadState.RUNNING
    busy = sum(g.workload_id is not None for n in world.nodes.values() for g in n.sample())
    assert busy == 10

    world.clock.advance(timedelta(hours=1, minutes=1))
    report = await world.scheduler.tick({SITE: 10})
    assert report.completed == [second]
    world.clock.advance(timedelta(hours=1))
    await world.scheduler.tick({SITE: 10})
    assert world.state(first) is WorkloadState.COMPLETED
    with world.runtime.unit_of_work() as uow:
        events = [c.event.value for c in uow.workloads.history(first)]
    assert events == ["submit", "schedule", "start", "complete"]


async def test_each_tick_stores_the_progress_the_nodes_report(world: World) -> None:
    short = await world.submit(WorkloadClass.AI_INFERENCE_BATCH, gpus=2, hours=1)
    long = await world.submit(WorkloadClass.AI_TRAINING, gpus=2, hours=4)
    report = await world.scheduler.tick({SITE: 10})
    assert set(report.started) == {short, long}, report.errors

    world.clock.advance(timedelta(minutes=30))
    await world.scheduler.tick({SITE: 10})
    with world.runtime.unit_of_work() as uow:
        stored = {w: uow.workloads.get(w) for w in (short, long)}
    progress = {w: s.progress for w, s in stored.items() if s is not None}
    assert progress == {short: pytest.approx(0.5, abs=0.01), long: pytest.approx(0.125, abs=0.01)}


async def test_a_tick_that_would_preempt_on_an_old_poll_asks_the_nodes_first(
    world: World,
) -> None:
    done = await world.submit(WorkloadClass.AI_INFERENCE_BATCH, gpus=2, hours=1)
    assert (await world.scheduler.tick({SITE: 10})).started == [done]
    world.clock.advance(timedelta(minutes=59, seconds=56))
    await world.scheduler.follow()  # still running 4 s before its end
    world.clock.advance(timedelta(seconds=5))

    # No GPUs granted: shedding would stop it, but it finished on its node meanwhile.
    report = await world.scheduler.tick({SITE: 0}, follow=False)
    assert report.preempted == [] and report.completed == [done]
    with world.runtime.unit_of_work() as uow:
        events = [c.event.value for c in uow.workloads.history(done)]
    assert events == ["submit", "schedule", "start", "complete"]


async def test_one_poll_follows_a_gang_across_nodes_and_reports_what_each_node_says(
    world: World,
) -> None:
    gang = await world.submit(WorkloadClass.AI_TRAINING, gpus=9, hours=1)
    report = await world.scheduler.tick({SITE: 10})
    assert report.started == [gang], report.errors
    with world.runtime.unit_of_work() as uow:
        workload = uow.workloads.get(gang)
        gpus = [d for d in uow.fleet.devices(kind=DeviceKind.GPU) if d.id in workload.gpu_ids]
    assert workload is not None and len({split_address(g.address)[0] for g in gpus}) == 2

    world.clock.advance(timedelta(minutes=15))
    status = (await world.runner.poll([(workload, gpus)]))[gang]
    assert (status.state.value, status.progress) == ("running", pytest.approx(0.25))

    second_node = sorted(world.nodes)[1]
    world.nodes[second_node].set_down(True)
    status = (await world.runner.poll([(workload, gpus)]))[gang]
    assert status.state.value == "unknown" and second_node in (status.detail or "")

    world.nodes[second_node].set_down(False)  # it came back having lost the run
    status = (await world.runner.poll([(workload, gpus)]))[gang]
    assert status.state.value == "failed" and status.detail == "node went down"


async def test_a_lower_budget_sheds_training_before_batch(world: World) -> None:
    training = [await world.submit(WorkloadClass.AI_TRAINING, hours=5) for _ in range(5)]
    batch = [await world.submit(WorkloadClass.AI_INFERENCE_BATCH, hours=5) for _ in range(5)]
    started = await world.scheduler.tick({SITE: 10})
    world.clock.advance(timedelta(minutes=30))
    report = await world.scheduler.tick({SITE: 6})
    shed = {p.workload_id for p in report.preempted}
    assert len(shed) == 4 and shed <= set(training)
    # What the site's draw moves by in each tick (busy over idle per GPU): ten started,
    # four stopped.
    model = gpu_model(world.runtime.settings.site_gpu_model)
    rise_w = model.busy_power_w - model.idle_power_w
    assert started.power_added_w == {SITE: pytest.approx(10 * rise_w)}
    assert report.power_added_w == {SITE: pytest.approx(-4 * rise_w)}
    assert all(world.state(w) is WorkloadState.RUNNING for w in batch)
    with world.runtime.unit_of_work() as uow:
        records = uow.workloads.preemptions()
    assert {r.reason for r in records} == {"power_budget"}
    assert all(world.state(w) is WorkloadState.QUEUED for w in shed)


async def test_realtime_preempts_training_past_its_minimum_runtime(world: World) -> None:
    training = [
        await world.submit(WorkloadClass.AI_TRAINING, gpus=5, hours=5, checkpointable=True)
        for _ in range(2)
    ]
    await world.scheduler.tick({SITE: 10})
    realtime = await world.submit(WorkloadClass.AI_INFERENCE_REALTIME, gpus=2)
    report = await world.scheduler.tick({SITE: 10})
    assert report.preempted == []  # both trainings are inside their minimum runtime
    assert world.state(realtime) is WorkloadState.QUEUED
    world.clock.advance(timedelta(minutes=15))
    report = await world.scheduler.tick({SITE: 10})
    assert [p.reason.value for p in report.preempted] == ["realtime_demand"]
    victim = report.preempted[0].workload_id
    assert victim in training
    assert world.state(realtime) is WorkloadState.RUNNING
    # The command log: the victim checkpointed and stopped for the realtime work, then it started.
    # (one command per GPU node the workload spans)
    stops = [c for c in world.commands if c.action == "checkpoint+stop"]
    assert stops and {c.reason.split(" ")[0] for c in stops} == {victim}
    assert all(
        c.reason.endswith(f"preempted (realtime_demand, checkpoint) for {realtime}") for c in stops
    )
    assert {c.status for c in stops} == {"confirmed"}
    started = [c.reason.split(" ")[0] for c in world.commands if c.action == "start"]
    assert started[-1] == realtime and set(started[:-1]) == set(training)


async def test_a_gpu_fault_requeues_its_workload(world: World) -> None:
    victim = await world.submit(WorkloadClass.AI_INFERENCE_BATCH, gpus=1, hours=3)
    await world.scheduler.tick({SITE: 10})
    with world.runtime.unit_of_work() as uow:
        w = uow.workloads.get(victim)
        gpus = {g.id: g for g in uow.fleet.devices(kind=DeviceKind.GPU)}
    assert w is not None
    host, index = split_address(gpus[w.gpu_ids[0]].address)
    world.nodes[host].inject_xid(index, 13)
    world.clock.advance(timedelta(minutes=5))
    report = await world.scheduler.tick({SITE: 10})
    assert victim in report.requeued and victim in report.started
    with world.runtime.unit_of_work() as uow:
        again = uow.workloads.get(victim)
    # Not put back on the GPU it failed on (the node would refuse it: failed for good, as it
    # was before), though no fleet poll has marked that GPU unhealthy yet.
    assert again is not None and again.retries == 1
    assert again.state is WorkloadState.RUNNING and w.gpu_ids[0] not in again.gpu_ids


async def test_cancelling_a_running_workload_stops_it_and_frees_its_gpus(world: World) -> None:
    running = await world.submit(WorkloadClass.AI_TRAINING, gpus=8, hours=5)
    await world.scheduler.tick({SITE: 10})
    world.runtime.platform.workloads.cancel(CUSTOMER, running)
    waiting = await world.submit(WorkloadClass.AI_TRAINING, gpus=8, hours=1)
    report = await world.scheduler.tick({SITE: 10})
    assert report.started == [waiting] and report.errors == []
    assert report.power_added_w == {SITE: pytest.approx(0.0)}  # eight stopped, eight started
    busy = [g.workload_id for n in world.nodes.values() for g in n.sample() if g.workload_id]
    assert len(busy) == 8 and all(w.startswith(waiting) for w in busy)
    with world.runtime.unit_of_work() as uow:
        cancelled = uow.workloads.get(running)
    assert cancelled is not None and cancelled.gpu_ids == ()


async def test_stored_gpu_quotas_cap_a_customer(world: World) -> None:
    with world.runtime.unit_of_work() as uow:
        uow.customers.add(Customer("capped", "Capped", START, gpu_quota=2))
        uow.commit()
    capped = Principal("k2", Role.CUSTOMER, "capped")
    ids = []
    for _ in range(3):
        sub = Submission(WorkloadClass.AI_TRAINING, Requirements("H100", 1, None, 1.0))
        ids.append((await world.runtime.platform.workloads.submit(capped, sub)).workload.id)
        world.clock.advance(timedelta(seconds=1))
    report = await world.scheduler.tick({SITE: 10})
    assert sorted(report.started) == sorted(ids[:2])
    assert world.state(ids[2]) is WorkloadState.QUEUED


class FlakyLog(CommandList):
    """A command log whose first write fails (a locked database)."""

    failures = 1

    def add(self, commands: Sequence[StoredCommand]) -> None:
        if self.failures:
            self.failures -= 1
            raise RuntimeError("database is locked")
        super().add(commands)


async def test_a_command_log_that_fails_a_write_loses_neither_the_tick_nor_the_commands(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    flaky = FlakyLog()
    scheduler = SchedulerService(
        world.runtime.unit_of_work, world.runner, world.clock, commands=flaky
    )
    first = await world.submit(WorkloadClass.AI_INFERENCE_BATCH, gpus=2)
    report = await scheduler.tick({SITE: 10})
    assert report.started == [first]  # the tick's report survives the failed write
    assert "storing 1 GPU node commands failed" in caplog.text and flaky == []
    second = await world.submit(WorkloadClass.AI_INFERENCE_BATCH, gpus=2)
    await scheduler.tick({SITE: 10})
    assert [c.reason.split(" ")[0] for c in flaky] == [first, second]
