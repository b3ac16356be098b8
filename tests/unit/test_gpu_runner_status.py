"""A workload's status from its nodes' answers (`gpu_runner._status_of`)."""

from __future__ import annotations

from datetime import UTC, datetime

from hcp.adapters.devices.gpu_runner import _status_of
from hcp.domain.workloads import Requirements, Workload, WorkloadClass, WorkloadState
from hcp.services.scheduler import RunState

T0 = datetime(2025, 1, 1, tzinfo=UTC)
RUN = Workload(
    "w-1",
    "cust-a",
    WorkloadClass.AI_TRAINING,
    WorkloadState.RUNNING,
    Requirements("H100", 8),
    T0,
    T0,
    checkpointable=True,
    progress=0.7,
    checkpoint=0.5,
)


def test_a_node_that_no_longer_knows_the_run_stops_it_at_its_last_checkpoint() -> None:
    """A node that forgot the run may have restarted: the work past the last checkpoint the
    scheduler saw is gone (before, the run resumed at its last progress, 0.7 here)."""
    status = _status_of(RUN, [{}])
    assert (status.state, status.progress, status.checkpoint) == (RunState.STOPPED, 0.7, 0.5)


def test_a_node_that_cannot_be_asked_leaves_the_run_unknown() -> None:
    status = _status_of(RUN, ["node-2: connection refused"])
    assert status.state is RunState.UNKNOWN and status.detail == "node-2: connection refused"
