"""Group commit: concurrent submissions share transactions, positions stay exact, and one bad
row does not sink the others."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from dataclasses import replace
from datetime import timedelta

import pytest
from sqlalchemy import Engine, func, select

from hcp.adapters.db.engine import make_engine, make_session_factory
from hcp.adapters.db.migrate import upgrade
from hcp.adapters.db.repositories import SqlUnitOfWork
from hcp.adapters.db.tables import WorkloadRow
from hcp.adapters.group_commit import GroupCommitWriter
from hcp.domain.identity import Customer
from hcp.domain.workloads import (
    StateChange,
    Workload,
    WorkloadClass,
    WorkloadEvent,
    WorkloadState,
)
from tests.integration.test_persistence import T0, submitted, workload


@pytest.fixture
def engine(database_url: str) -> Iterator[Engine]:
    engine = make_engine(database_url)
    upgrade(engine)
    factory = make_session_factory(engine)
    with SqlUnitOfWork(factory) as uow:
        uow.customers.add(Customer("cust-a", "A", T0))
        uow.commit()
    yield engine
    engine.dispose()


def unit_of_work(engine: Engine) -> SqlUnitOfWork:
    return SqlUnitOfWork(make_session_factory(engine))


async def write_all(writer: GroupCommitWriter, items: list[Workload]) -> list[int | BaseException]:
    tasks = [writer.write(w, submitted(w)) for w in items]
    return list(await asyncio.gather(*tasks, return_exceptions=True))


def test_concurrent_writes_get_exact_positions(engine: Engine) -> None:
    writer = GroupCommitWriter(lambda: unit_of_work(engine), max_batch=16)
    kinds = [WorkloadClass.AI_TRAINING, WorkloadClass.AI_INFERENCE_REALTIME] * 50
    items = [workload(i, kind) for i, kind in enumerate(kinds)]
    positions = asyncio.run(write_all(writer, items))
    writer.close()
    realtime = [p for p, w in zip(positions, items, strict=True) if w.priority == 1]
    assert realtime == list(range(1, 51))  # each realtime is last among realtime
    realtime_before = 0
    training_rank = 0
    for position, w in zip(positions, items, strict=True):
        if w.priority == 1:
            realtime_before += 1
            continue
        training_rank += 1
        # behind every realtime committed by then (at least those submitted before it)
        assert isinstance(position, int)
        assert training_rank + realtime_before <= position <= training_rank + 50
    with unit_of_work(engine) as uow:
        assert uow.workloads.queued_by_priority() == {1: 50, 2: 0, 3: 50}
        assert uow.workloads.count(customer_id=None, state=WorkloadState.QUEUED) == 100


def test_a_bad_row_fails_alone(engine: Engine) -> None:
    writer = GroupCommitWriter(lambda: unit_of_work(engine))
    good = [workload(i) for i in range(5)]
    bad = replace(workload(99), customer_id="nobody")  # breaks the foreign key
    outcomes = asyncio.run(write_all(writer, [*good[:2], bad, *good[2:]]))
    writer.close()
    assert isinstance(outcomes[2], Exception)
    assert [o for i, o in enumerate(outcomes) if i != 2] == [1, 2, 3, 4, 5]
    with engine.connect() as connection:
        assert connection.scalar(select(func.count()).select_from(WorkloadRow)) == 5


def test_counters_follow_every_transition(engine: Engine) -> None:
    items = [workload(i, kind) for i, kind in enumerate(WorkloadClass)]
    with unit_of_work(engine) as uow:
        uow.workloads.add_many([(w, submitted(w)) for w in items])
        uow.commit()
    steps = [
        (WorkloadEvent.SCHEDULE, WorkloadState.QUEUED, WorkloadState.SCHEDULED),
        (WorkloadEvent.PREEMPT, WorkloadState.SCHEDULED, WorkloadState.PREEMPTED),
        (WorkloadEvent.REQUEUE, WorkloadState.PREEMPTED, WorkloadState.QUEUED),
        (WorkloadEvent.CANCEL, WorkloadState.QUEUED, WorkloadState.CANCELLED),
    ]
    expected_queued = [2, 2, 3, 2]
    for (event, before, after), queued in zip(steps, expected_queued, strict=True):
        at = T0 + timedelta(minutes=1)
        w = replace(items[0], state=after, updated_at=at)
        with unit_of_work(engine) as uow:
            uow.workloads.save_transition(w, StateChange(w.id, at, event, before, after))
            uow.commit()
            assert sum(uow.workloads.queued_by_priority().values()) == queued
            assert uow.workloads.count(customer_id=None, state=WorkloadState.QUEUED) == queued
