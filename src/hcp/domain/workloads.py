"""Workloads: classes, states and the one transition table of their lifecycle."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from enum import StrEnum

from hcp.domain.errors import InvalidTransition


class WorkloadClass(StrEnum):
    """What a customer's workload is; its priority is fixed by the class (1 is served first)."""

    AI_INFERENCE_REALTIME = "ai_inference_realtime"
    AI_INFERENCE_BATCH = "ai_inference_batch"
    AI_TRAINING = "ai_training"

    @property
    def priority(self) -> int:
        return _PRIORITY[self]


_PRIORITY = {
    WorkloadClass.AI_INFERENCE_REALTIME: 1,
    WorkloadClass.AI_INFERENCE_BATCH: 2,
    WorkloadClass.AI_TRAINING: 3,
}
PRIORITIES: tuple[int, ...] = (1, 2, 3)


class WorkloadState(StrEnum):
    QUEUED = "queued"
    SCHEDULED = "scheduled"
    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    CANCELLED = "cancelled"
    PREEMPTED = "preempted"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL_STATES

    @property
    def is_active(self) -> bool:
        """Holds GPUs (or is about to): scheduled or running."""
        return self in (WorkloadState.SCHEDULED, WorkloadState.RUNNING)


TERMINAL_STATES = frozenset(
    {WorkloadState.COMPLETED, WorkloadState.FAILED, WorkloadState.CANCELLED}
)


class WorkloadEvent(StrEnum):
    SUBMIT = "submit"
    SCHEDULE = "schedule"
    START = "start"
    COMPLETE = "complete"
    FAIL = "fail"
    CANCEL = "cancel"
    PREEMPT = "preempt"
    REQUEUE = "requeue"


S, E = WorkloadState, WorkloadEvent
TRANSITIONS: dict[tuple[WorkloadState, WorkloadEvent], WorkloadState] = {
    (S.QUEUED, E.SCHEDULE): S.SCHEDULED,
    (S.QUEUED, E.CANCEL): S.CANCELLED,
    (S.SCHEDULED, E.START): S.RUNNING,
    (S.SCHEDULED, E.FAIL): S.FAILED,
    (S.SCHEDULED, E.CANCEL): S.CANCELLED,
    (S.SCHEDULED, E.PREEMPT): S.PREEMPTED,
    (S.RUNNING, E.COMPLETE): S.COMPLETED,
    (S.RUNNING, E.FAIL): S.FAILED,
    (S.RUNNING, E.CANCEL): S.CANCELLED,
    (S.RUNNING, E.PREEMPT): S.PREEMPTED,
    (S.PREEMPTED, E.REQUEUE): S.QUEUED,
    (S.PREEMPTED, E.CANCEL): S.CANCELLED,
}
del S, E


def transition(state: WorkloadState, event: WorkloadEvent) -> WorkloadState:
    """The state after `event`; InvalidTransition when the table has no such edge."""
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise InvalidTransition(state.value, event.value) from None


@dataclass(frozen=True, slots=True)
class Requirements:
    """What a workload needs: a GPU family (None = any), how many, memory per GPU, duration."""

    gpu_type: str | None
    gpu_count: int
    memory_gb_per_gpu: int | None = None
    estimated_hours: float | None = None


@dataclass(frozen=True, slots=True)
class Workload:
    """A customer's workload as stored: its request plus where it is in its lifecycle."""

    id: str
    customer_id: str
    workload_class: WorkloadClass
    state: WorkloadState
    requirements: Requirements
    submitted_at: datetime
    updated_at: datetime
    deadline: datetime | None = None
    checkpointable: bool = False
    max_price_usd_per_gpu_hour: Decimal | None = None
    site_id: str | None = None
    progress: float = 0.0
    retries: int = 0
    gpu_ids: tuple[str, ...] = ()
    started_at: datetime | None = None
    checkpoint: float = 0.0
    """The progress (0–1) of its last checkpoint known, taken at `checkpointed_at`: where a
    checkpointable run resumes when its nodes are lost before they can checkpoint it again
    (checkpoints are kept off the node, as training frameworks write them to shared storage)."""
    checkpointed_at: datetime | None = None
    interruptible: bool = False
    """Billed at the interruptible tier: a discount priced off the real-time market."""

    @property
    def priority(self) -> int:
        return self.workload_class.priority


@dataclass(frozen=True, slots=True)
class StateChange:
    """One stored transition of a workload's lifecycle."""

    workload_id: str
    at: datetime
    event: WorkloadEvent
    from_state: WorkloadState | None
    to_state: WorkloadState
    reason: str | None = None
    gpu_ids: tuple[str, ...] = ()
    """The GPUs a START began the run on (what billing prices the run at after they are
    released); empty for other events."""


@dataclass(frozen=True, slots=True)
class PreemptionRecord:
    """A stored preemption: which workload stopped, why, what became of it, what it lost."""

    at: datetime
    workload_id: str
    reason: str
    action: str
    lost_gpu_hours: float
    gpu_ids: tuple[str, ...]
    for_workload_id: str | None = None
