"""Checkpoints outlive their nodes: a checkpointable run whose node is lost resumes from the
last checkpoint the scheduler saw, not from the start, and is charged only the work since."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path

import pytest

from hcp.adapters.devices.errors import DeviceTimeout
from hcp.adapters.devices.gpu_runner import run_id, split_address
from hcp.domain.devices import DeviceKind
from hcp.domain.fleet import Device
from hcp.domain.status import DeviceStatus
from hcp.domain.workloads import Workload, WorkloadClass, WorkloadState
from tests.integration.schedworld import SITE, World, world


def _node_of(w: World, workload_id: str) -> str:
    with w.runtime.unit_of_work() as uow:
        gpus = {d.id: d for d in uow.fleet.devices(kind=DeviceKind.GPU)}
    hosts = {split_address(gpus[g].address or "")[0] for g in w.get(workload_id).gpu_ids}
    assert len(hosts) == 1
    return hosts.pop()


def _mark_node_unreachable(w: World, host: str) -> None:
    """What the fleet poll stores for a node that stopped answering."""
    with w.runtime.unit_of_work() as uow:
        gpus = [
            d
            for d in uow.fleet.devices(kind=DeviceKind.GPU)
            if split_address(d.address or "")[0] == host
        ]
        uow.fleet.update_statuses(
            [DeviceStatus(d.id, "unreachable", False, w.clock.now()) for d in gpus]
        )
        uow.commit()


async def test_a_run_on_a_lost_node_resumes_from_its_last_checkpoint(tmp_path: Path) -> None:
    """Before: the stop on the dead node failed, and the run went back to the queue at 0 %."""
    async with world(tmp_path) as w:
        job = await w.submit(WorkloadClass.AI_TRAINING, gpus=2, hours=10, checkpointable=True)
        await w.scheduler.tick({SITE: 10})
        host = _node_of(w, job)

        w.clock.advance(timedelta(hours=4))
        w.nodes[host].checkpoint(run_id(w.get(job)))  # the framework saves its state
        saved_at = w.clock.now()
        await w.scheduler.tick({SITE: 10})
        stored = w.get(job)
        assert stored.checkpoint == pytest.approx(0.4)
        assert stored.checkpointed_at == saved_at

        w.clock.advance(timedelta(hours=1))
        w.nodes[host].set_down(True)
        _mark_node_unreachable(w, host)
        report = await w.scheduler.tick({SITE: 10})
        assert [p.workload_id for p in report.preempted] == [job]
        assert any(host in e for e in report.errors)  # the stop could not reach the node
        with w.runtime.unit_of_work() as uow:
            (record,) = uow.workloads.preemptions()
        assert record.lost_gpu_hours == pytest.approx(2 * 1.0)  # the hour since the checkpoint
        assert w.get(job).state is WorkloadState.QUEUED

        await w.scheduler.tick({SITE: 10})  # placed again, on a node that answers
        again = w.get(job)
        assert again.state is WorkloadState.RUNNING and _node_of(w, job) != host
        assert again.progress == pytest.approx(0.4)
        on_node = w.nodes[_node_of(w, job)].workload(run_id(again))
        assert on_node.checkpoint_progress == pytest.approx(0.4)

        w.clock.advance(timedelta(hours=6, minutes=1))
        await w.scheduler.tick({SITE: 10})
        assert w.get(job).state is WorkloadState.COMPLETED


async def test_a_run_that_cannot_checkpoint_starts_again_from_zero(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        job = await w.submit(WorkloadClass.AI_TRAINING, gpus=2, hours=10)
        await w.scheduler.tick({SITE: 10})
        host = _node_of(w, job)
        w.clock.advance(timedelta(hours=4))
        await w.scheduler.tick({SITE: 10})
        assert w.get(job).progress == pytest.approx(0.4)

        w.nodes[host].set_down(True)
        _mark_node_unreachable(w, host)
        await w.scheduler.tick({SITE: 10})
        await w.scheduler.tick({SITE: 10})
        again = w.get(job)
        assert again.state is WorkloadState.RUNNING and again.progress == 0.0
        assert again.checkpoint == 0.0
        with w.runtime.unit_of_work() as uow:
            (record,) = uow.workloads.preemptions()
        assert record.lost_gpu_hours == pytest.approx(2 * 4.0)


async def test_a_checkpoint_taken_as_a_run_is_preempted_is_where_it_resumes(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        job = await w.submit(WorkloadClass.AI_TRAINING, gpus=10, hours=10, checkpointable=True)
        await w.scheduler.tick({SITE: 10})
        w.clock.advance(timedelta(hours=2))
        await w.scheduler.tick({SITE: 0})  # the power budget sheds it: paused, checkpointed
        paused = w.get(job)
        assert paused.state is WorkloadState.QUEUED
        assert paused.checkpoint == paused.progress == pytest.approx(0.2)
        assert paused.checkpointed_at == w.clock.now()


async def test_a_long_run_is_checkpointed_every_hour_and_resumes_from_there(
    tmp_path: Path,
) -> None:
    """No framework checkpoints on its own here: the scheduler asks, every hour of run."""
    async with world(tmp_path) as w:
        job = await w.submit(WorkloadClass.AI_TRAINING, gpus=2, hours=10, checkpointable=True)
        plain = await w.submit(WorkloadClass.AI_TRAINING, gpus=2, hours=10)
        await w.scheduler.tick({SITE: 10})
        started = w.clock.now()

        w.clock.advance(timedelta(minutes=50))
        await w.scheduler.tick({SITE: 10})
        assert w.get(job).checkpointed_at is None  # not due yet
        w.clock.advance(timedelta(minutes=15))
        report = await w.scheduler.tick({SITE: 10})
        assert report.errors == []
        first = w.get(job)
        assert first.checkpoint == pytest.approx(65 / 600)
        assert first.checkpointed_at == w.clock.now()
        assert w.get(plain).checkpointed_at is None
        asked = [c for c in w.commands if c.action == "checkpoint"]
        assert [c.reason.split(" ")[0] for c in asked] == [job]
        assert {c.status for c in asked} == {"confirmed"}

        w.clock.advance(timedelta(minutes=30))
        await w.scheduler.follow()  # a poll between ticks asks too, when one is due
        assert w.get(job).checkpoint == pytest.approx(65 / 600)
        w.clock.advance(timedelta(minutes=31))
        await w.scheduler.follow()
        assert w.get(job).checkpoint == pytest.approx(126 / 600)
        assert w.clock.now() - started == timedelta(minutes=126)

        host = _node_of(w, job)
        w.clock.advance(timedelta(minutes=20))
        w.nodes[host].set_down(True)
        _mark_node_unreachable(w, host)
        await w.scheduler.tick({SITE: 10})
        assert w.get(job).progress == pytest.approx(126 / 600)


async def test_a_checkpoint_a_node_fails_leaves_the_run_going(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        job = await w.submit(WorkloadClass.AI_TRAINING, gpus=2, hours=10, checkpointable=True)
        await w.scheduler.tick({SITE: 10})
        w.clock.advance(timedelta(hours=1, minutes=5))
        inner = w.runner.checkpoint

        async def timing_out(workload: Workload, gpus: Sequence[Device]) -> float:
            raise DeviceTimeout("node-1", "no answer within 5 s")

        w.runner.checkpoint = timing_out  # type: ignore[method-assign]
        report = await w.scheduler.tick({SITE: 10})
        assert w.get(job).state is WorkloadState.RUNNING
        assert w.get(job).checkpointed_at is None
        assert any(e.startswith(f"checkpoint {job}") for e in report.errors)
        (failed,) = [c for c in w.commands if c.action == "checkpoint"]
        assert failed.status == "failed"

        w.runner.checkpoint = inner  # type: ignore[method-assign]
        w.clock.advance(timedelta(minutes=5))
        await w.scheduler.tick({SITE: 10})  # asked again at the next follow
        assert w.get(job).checkpoint == pytest.approx(70 / 600)


async def test_a_run_whose_nodes_do_not_answer_is_not_asked_to_checkpoint(
    tmp_path: Path,
) -> None:
    async with world(tmp_path) as w:
        job = await w.submit(WorkloadClass.AI_TRAINING, gpus=2, hours=10, checkpointable=True)
        await w.scheduler.tick({SITE: 10})
        host = _node_of(w, job)
        w.clock.advance(timedelta(hours=1, minutes=5))
        w.nodes[host].set_down(True)
        report = await w.scheduler.tick({SITE: 10})
        assert job in report.unanswered
        assert w.get(job).state is WorkloadState.RUNNING
        assert [c for c in w.commands if c.action == "checkpoint"] == []

        w.nodes[host].set_down(False)  # back, but the run failed with it
        report = await w.scheduler.tick({SITE: 10})
        assert job in report.requeued
        assert w.get(job).progress == 0.0  # no checkpoint was ever taken
        with w.runtime.unit_of_work() as uow:
            (record,) = uow.workloads.preemptions()
        assert record.lost_gpu_hours == pytest.approx(2 * (65 / 60))  # all of its run


def _forget(w: World, host: str, workload_id: str) -> None:
    """The node agent restarted: it no longer knows the run, its GPUs are free."""
    node = w.nodes[host]
    rid = run_id(w.get(workload_id))
    node._workloads.pop(rid)
    for g in node._gpus:
        if g.workload_id == rid:
            g.workload_id, g.fb_used_mib = None, 0


async def _checkpointed_at_four_hours(w: World) -> tuple[str, str]:
    """A 10 h, 2-GPU checkpointable job its framework checkpointed at 4 h (0.4), seen."""
    job = await w.submit(WorkloadClass.AI_TRAINING, gpus=2, hours=10, checkpointable=True)
    await w.scheduler.tick({SITE: 10})
    host = _node_of(w, job)
    w.clock.advance(timedelta(hours=4))
    w.nodes[host].checkpoint(run_id(w.get(job)))
    await w.scheduler.tick({SITE: 10})
    assert w.get(job).checkpoint == pytest.approx(0.4)
    assert w.get(job).checkpointed_at == w.clock.now()  # asked by the hourly checkpoint
    return job, host


async def test_a_run_its_node_forgot_before_the_stop_keeps_its_checkpoint(
    tmp_path: Path,
) -> None:
    """The node agent restarted between the tick's poll and its stop. Before, the stop's
    empty answer counted as a checkpoint at 0: the stored 0.4 was wiped, nothing lost."""
    async with world(tmp_path) as w:
        job, host = await _checkpointed_at_four_hours(w)
        w.clock.advance(timedelta(minutes=30))
        inner = w.runner.stop

        async def stop_after_restart(
            workload: Workload, gpus: Sequence[Device], checkpoint: bool
        ) -> float | None:
            _forget(w, host, workload.id)
            return await inner(workload, gpus, checkpoint)

        w.runner.stop = stop_after_restart  # type: ignore[method-assign]
        report = await w.scheduler.tick({SITE: 0})
        assert [p.workload_id for p in report.preempted] == [job]
        stored = w.get(job)
        assert (stored.progress, stored.checkpoint) == (pytest.approx(0.4), pytest.approx(0.4))
        with w.runtime.unit_of_work() as uow:
            (record,) = uow.workloads.preemptions()
        assert record.lost_gpu_hours == pytest.approx(2 * 0.5)


async def test_a_run_its_node_forgot_records_the_work_it_loses(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        job, host = await _checkpointed_at_four_hours(w)
        w.clock.advance(timedelta(minutes=30))
        _forget(w, host, job)
        report = await w.scheduler.tick({SITE: 10})
        assert job in report.requeued
        assert w.get(job).progress == pytest.approx(0.4)
        with w.runtime.unit_of_work() as uow:
            (record,) = uow.workloads.preemptions()
        assert record.lost_gpu_hours == pytest.approx(2 * 0.5)  # 30 min on 2 GPUs


async def test_a_checkpoint_first_seen_in_a_poll_counts_from_the_poll_before(
    tmp_path: Path,
) -> None:
    """It was taken at some time since the last follow; counting from the one that saw it
    would understate the work a node's loss costs."""
    async with world(tmp_path) as w:
        job = await w.submit(WorkloadClass.AI_TRAINING, gpus=2, hours=10, checkpointable=True)
        await w.scheduler.tick({SITE: 10})
        host = _node_of(w, job)
        w.clock.advance(timedelta(minutes=40))
        await w.scheduler.tick({SITE: 10})
        followed = w.clock.now()
        w.clock.advance(timedelta(minutes=5))
        w.nodes[host].checkpoint(run_id(w.get(job)))
        w.clock.advance(timedelta(minutes=5))
        await w.scheduler.tick({SITE: 10})
        stored = w.get(job)
        assert stored.checkpoint == pytest.approx(45 / 600)
        assert stored.checkpointed_at == followed


async def test_a_checkpoint_a_failed_run_kept_unseen_gets_its_own_time(tmp_path: Path) -> None:
    async with world(tmp_path) as w:
        job, host = await _checkpointed_at_four_hours(w)
        w.clock.advance(timedelta(minutes=30))
        w.nodes[host].checkpoint(run_id(w.get(job)))  # the framework saves 0.45 ...
        w.clock.advance(timedelta(minutes=1))
        index = w.nodes[host].workload(run_id(w.get(job))).gpu_indices[0]
        w.nodes[host].inject_xid(index)  # ... and the run fails before a poll sees it
        await w.scheduler.tick({SITE: 10})
        stored = w.get(job)
        assert stored.checkpoint == pytest.approx(0.45)
        assert stored.checkpointed_at == w.clock.now()
        with w.runtime.unit_of_work() as uow:
            (record,) = uow.workloads.preemptions()
        # the work since 0.45 by progress (the last poll saw 0.4): none counted, not 31 min
        assert record.lost_gpu_hours == 0.0


async def test_runs_their_nodes_forget_count_no_retry(tmp_path: Path) -> None:
    """A node that no longer knows a run (its agent restarted, or the platform whose
    simulated nodes died with it did) is a disruption, not the workload's failure: requeued
    as often as it happens, never failed for the retry limit (a GPU fault still counts)."""
    async with world(tmp_path) as w:
        job = await w.submit(WorkloadClass.AI_TRAINING, gpus=2, hours=10, checkpointable=True)
        await w.scheduler.tick({SITE: 10})
        for _ in range(w.scheduler._policy.max_retries + 2):
            w.clock.advance(timedelta(minutes=30))
            _forget(w, _node_of(w, job), job)
            report = await w.scheduler.tick({SITE: 10})
            assert job in report.requeued and job in report.started, report
            assert report.failed == []
        stored = w.get(job)
        assert (stored.state, stored.retries) == (WorkloadState.RUNNING, 0)
