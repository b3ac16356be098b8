"""The runs billing reads from a workload's history: each stretch it held GPUs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from hcp.domain.workloads import (
    Requirements,
    StateChange,
    Workload,
    WorkloadClass,
    WorkloadEvent,
    WorkloadState,
)
from hcp.services.billing import runs_of

T = datetime(2026, 3, 1, 10, tzinfo=UTC)
RUNNING, QUEUED = WorkloadState.RUNNING, WorkloadState.QUEUED


def workload() -> Workload:
    requirements = Requirements("H100", 2, None, 1.0)
    return Workload(
        "w1", "c1", WorkloadClass.AI_INFERENCE_BATCH, RUNNING, requirements, T, T,
        gpu_ids=("g1", "g2"),
    )  # fmt: skip


def change(minutes: float, event: WorkloadEvent) -> StateChange:
    to = RUNNING if event is WorkloadEvent.START else QUEUED
    return StateChange("w1", T + timedelta(minutes=minutes), event, None, to)


def test_each_start_to_its_end_is_a_run_and_an_open_one_has_no_end() -> None:
    history = [change(0, WorkloadEvent.START), change(30, WorkloadEvent.PREEMPT)]
    history.append(change(40, WorkloadEvent.START))
    runs = runs_of(workload(), history, "H100")
    assert [(r.started_at, r.stopped_at) for r in runs] == [
        (T, T + timedelta(minutes=30)),
        (T + timedelta(minutes=40), None),
    ]


def test_a_run_that_ends_before_it_starts_is_not_billed(caplog: pytest.LogCaptureFixture) -> None:
    """Platform time went back (a restart after a sped-up run): the stretch cannot be billed,
    and the workload's other runs and everyone else's still are."""
    history = [change(120, WorkloadEvent.START), change(5, WorkloadEvent.PREEMPT)]
    history += [change(10, WorkloadEvent.START), change(20, WorkloadEvent.COMPLETE)]
    runs = runs_of(workload(), history, "H100")
    assert [(r.started_at, r.stopped_at) for r in runs] == [
        (T + timedelta(minutes=10), T + timedelta(minutes=20))
    ]
    assert "ends before it starts; not billed" in caplog.text
