"""Pure scheduling core: queue ordering, placement, preemption and one scheduling tick."""

from hcp.scheduling.model import (
    Gpu,
    Placement,
    Preemption,
    PreemptionAction,
    PreemptionReason,
    RunningWorkload,
    SchedulingDecision,
    SchedulingPolicy,
    WorkloadSpec,
)
from hcp.scheduling.placement import FreeGpus, place
from hcp.scheduling.preemption import choose_victims, lost_gpu_hours, shed_for_budget
from hcp.scheduling.queue import DispatchOrder, WorkloadQueue, held_by_customer, queue_position
from hcp.scheduling.scheduler import DEFAULT_POLICY, schedule

__all__ = [
    "DEFAULT_POLICY",
    "DispatchOrder",
    "FreeGpus",
    "Gpu",
    "Placement",
    "Preemption",
    "PreemptionAction",
    "PreemptionReason",
    "RunningWorkload",
    "SchedulingDecision",
    "SchedulingPolicy",
    "WorkloadQueue",
    "WorkloadSpec",
    "choose_victims",
    "held_by_customer",
    "lost_gpu_hours",
    "place",
    "queue_position",
    "schedule",
    "shed_for_budget",
]
