"""Scheduling vocabulary: what a customer asks for, the GPUs that exist, what runs on them,
and what one scheduling tick decides. Plain frozen data; every time is passed in."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import StrEnum
from types import MappingProxyType

from hcp.domain.errors import ValidationError
from hcp.domain.workloads import WorkloadClass

DEADLINE_URGENCY = timedelta(hours=24)
"""How long before its latest start a deadline's workload counts as waiting (`queued_since_ts`)."""


@dataclass(frozen=True, slots=True)
class WorkloadSpec:
    """A customer's request: `gpu_count` GPUs of `gpu_family` (None = any family), each with at
    least `memory_gb_per_gpu` GB, for about `estimated_hours` hours.

    `retries` counts the requeues caused by GPU or node failures (not by preemption).
    """

    id: str
    customer_id: str
    workload_class: WorkloadClass
    gpu_family: str | None
    gpu_count: int
    memory_gb_per_gpu: float
    estimated_hours: float
    submitted_at: datetime
    deadline: datetime | None = None
    checkpointable: bool = False
    max_price_usd_per_gpu_hour: float | None = None
    retries: int = 0
    interruptible: bool = False
    """Billed at the interruptible tier: within its class, the first to give up its GPUs."""

    @property
    def queued_since_ts(self) -> float:
        """Where it stands in the queue, as POSIX seconds of waiting: its submission, or for
        a deadline that comes close, DEADLINE_URGENCY before the latest start that still
        meets it when that is earlier. So, within its customer's workloads of its class, it
        goes before work with no such deadline, and it earns the aging credit of that wait
        against other customers' (fixed at submission: the queue's order never changes by
        itself). A deadline its estimate cannot meet even from submission counts as one whose
        latest start is the submission: the customer's own estimate must not buy more credit
        than the most urgent deadline that can be met."""
        submitted = self.submitted_at.timestamp()
        if self.deadline is None:
            return submitted
        try:
            latest_start = max(
                self.submitted_at, self.deadline - timedelta(hours=self.estimated_hours)
            )
        except OverflowError:  # a deadline no estimate fits before
            latest_start = self.submitted_at
        return min(submitted, (latest_start - DEADLINE_URGENCY).timestamp())

    def __post_init__(self) -> None:
        if self.gpu_count < 1:
            raise ValidationError("gpu_count", f"must be at least 1, got {self.gpu_count}")
        if self.memory_gb_per_gpu < 0:
            raise ValidationError("memory_gb_per_gpu", "must not be negative")
        if self.estimated_hours <= 0:
            raise ValidationError("estimated_hours", "must be positive")
        if self.retries < 0:
            raise ValidationError("retries", "must not be negative")


@dataclass(frozen=True, slots=True)
class Gpu:
    """One GPU as the scheduler sees it: where it is, what it is, and whether it may get work.

    A cordoned GPU is in maintenance: it gets no new work, while the workload already on it
    drains (runs until it ends or is preempted for an ordinary reason). Cordoning is not a
    failure; a GPU that is cordoned and unhealthy counts as unhealthy.
    """

    id: str
    node: str
    site: str
    family: str
    memory_gb: float
    healthy: bool = True
    cordoned: bool = False

    @property
    def schedulable(self) -> bool:
        """Whether new work may be placed on it: healthy and not cordoned."""
        return self.healthy and not self.cordoned


@dataclass(frozen=True, slots=True)
class RunningWorkload:
    """A workload holding GPUs since `started_at`; `checkpointed_at` is its last saved checkpoint
    in this run (None: nothing saved, a stop loses everything since `started_at`)."""

    spec: WorkloadSpec
    gpu_ids: tuple[str, ...]
    started_at: datetime
    checkpointed_at: datetime | None = None

    def __post_init__(self) -> None:
        if not self.gpu_ids:
            raise ValidationError("gpu_ids", f"running workload {self.spec.id} holds no GPU")

    @property
    def id(self) -> str:
        return self.spec.id


@dataclass(frozen=True, slots=True)
class Placement:
    """Start workload `workload_id` on `gpu_ids` (all at `site`, on `nodes`)."""

    workload_id: str
    site: str
    gpu_ids: tuple[str, ...]
    nodes: tuple[str, ...]


class PreemptionReason(StrEnum):
    REALTIME_DEMAND = "realtime_demand"
    BATCH_DEMAND = "batch_demand"
    POWER_BUDGET = "power_budget"
    GPU_FAILURE = "gpu_failure"
    NODE_FAILURE = "node_failure"


class PreemptionAction(StrEnum):
    """What happens to a stopped workload.

    CHECKPOINT: back to the queue, resumes from its last checkpoint (checkpointable).
    PAUSE: stopped to cut power, resumes from its last checkpoint later (checkpointable).
    REQUEUE: back to the queue, restarts from the beginning.
    FAIL: its GPUs failed once too often (retry limit spent); it ends failed.
    """

    CHECKPOINT = "checkpoint"
    PAUSE = "pause"
    REQUEUE = "requeue"
    FAIL = "fail"


@dataclass(frozen=True, slots=True)
class Preemption:
    """One stopped workload, why, what becomes of it, and the GPU-hours of work it loses."""

    workload_id: str
    reason: PreemptionReason
    action: PreemptionAction
    lost_gpu_hours: float
    gpu_ids: tuple[str, ...]
    for_workload_id: str | None = None


@dataclass(frozen=True, slots=True)
class SchedulingDecision:
    """The outcome of one tick, to apply in this order: preemptions (stop, free the GPUs),
    requeues (back to the queue; not placed before the next tick), then placements."""

    placements: tuple[Placement, ...] = ()
    preemptions: tuple[Preemption, ...] = ()
    requeues: tuple[WorkloadSpec, ...] = ()
    failed: tuple[str, ...] = ()


_C = WorkloadClass
DEFAULT_PREEMPTS: Mapping[WorkloadClass, frozenset[WorkloadClass]] = MappingProxyType(
    {
        _C.AI_INFERENCE_REALTIME: frozenset({_C.AI_INFERENCE_BATCH, _C.AI_TRAINING}),
        _C.AI_INFERENCE_BATCH: frozenset({_C.AI_TRAINING}),
    }
)
del _C


@dataclass(frozen=True, slots=True)
class SchedulingPolicy:
    """The knobs of scheduling.

    - `min_runtime`: a workload younger than this is never preempted for demand (power and
      failures still stop it).
    - `max_retries`: failure requeues allowed; the next failure fails the workload (a run its
      node stopped or forgot is a disruption, not a failure, and is not counted).
    - `customer_weights`: fair-share weight per customer (absent: 1.0).
    - `gpu_quotas`: most GPUs a customer may hold at once (absent: no quota).
    - `aging_share_per_hour`: fair-share credit a waiting workload earns per hour waited, in
      GPUs per unit of weight; it lets an old workload of a heavy user pass new ones of light users.
    - `starvation_wait`: a workload waiting this long that still does not fit reserves the GPU
      pools it could use: later workloads of its class or lower may not take free GPUs there.
    - `preempts`: which classes each class may preempt for its own demand.
    - `checkpoint_every`: a checkpointable workload running this long past its last checkpoint
      (or its start) is checkpointed where it runs, so a node lost costs it at most about this
      much work (None: only when it is preempted).
    """

    min_runtime: timedelta = timedelta(minutes=10)
    max_retries: int = 3
    customer_weights: Mapping[str, float] = field(default_factory=dict)
    gpu_quotas: Mapping[str, int] = field(default_factory=dict)
    aging_share_per_hour: float = 1.0
    starvation_wait: timedelta = timedelta(hours=2)
    preempts: Mapping[WorkloadClass, frozenset[WorkloadClass]] = field(
        default_factory=lambda: DEFAULT_PREEMPTS
    )
    checkpoint_every: timedelta | None = timedelta(hours=1)

    def __post_init__(self) -> None:
        if self.min_runtime < timedelta(0):
            raise ValidationError("min_runtime", "must not be negative")
        if self.max_retries < 0:
            raise ValidationError("max_retries", "must not be negative")
        if self.checkpoint_every is not None and self.checkpoint_every <= timedelta(0):
            raise ValidationError("checkpoint_every", "must be positive (or None)")
        if self.aging_share_per_hour < 0:
            raise ValidationError("aging_share_per_hour", "must not be negative")
        if any(w <= 0 for w in self.customer_weights.values()):
            raise ValidationError("customer_weights", "every weight must be positive")

    def weight(self, customer_id: str) -> float:
        return self.customer_weights.get(customer_id, 1.0)
