"""/api/v1/plan/current, /api/v1/allocations and /api/v1/preemptions."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

from hcp.domain.errors import NotFound
from hcp.domain.plans import SitePlan
from hcp.http.deps import CurrentPrincipal, PlatformDep, StaffPrincipal

router = APIRouter(prefix="/api/v1", tags=["plan"])


class AllocationOut(BaseModel):
    device_model: str
    use: str
    count: int
    power_kw: float


class PlanOut(BaseModel):
    plan_id: str
    site_id: str
    interval_start: datetime
    strategy: str
    status: str
    reason: str | None
    expected_profit_usd: float
    power_kw: float
    gpu_budget: int
    allocations: list[AllocationOut]


class WorkloadAllocationOut(BaseModel):
    workload_id: str
    customer_id: str
    site_id: str | None
    gpu_ids: list[str]
    started_at: datetime | None


class AllocationsOut(BaseModel):
    plan: PlanOut | None
    workloads: list[WorkloadAllocationOut]


class PreemptionOut(BaseModel):
    at: datetime
    workload_id: str
    reason: str
    action: str
    lost_gpu_hours: float
    gpu_ids: list[str]
    for_workload_id: str | None


@router.get("/plan/current", response_model=PlanOut)
def current_plan(
    platform: PlatformDep,
    _caller: StaffPrincipal,
    site: Annotated[str | None, Query(max_length=64)] = None,
) -> PlanOut:
    """The newest plan: how many devices of each model do what, and the power it draws."""
    return plan_out(platform.fleet.current_plan(site))


@router.get("/allocations", response_model=AllocationsOut)
def allocations(platform: PlatformDep, caller: CurrentPrincipal) -> AllocationsOut:
    """The current plan's allocations and which GPUs each running workload holds."""
    plan: PlanOut | None = None
    if caller.role.sees_everything:  # the site's plan is staff's; a customer sees its GPUs
        try:
            plan = plan_out(platform.fleet.current_plan())
        except NotFound:  # before the first tick there is no plan yet: data, not an error
            plan = None
    held = [
        WorkloadAllocationOut(
            workload_id=w.id,
            customer_id=w.customer_id,
            site_id=w.site_id,
            gpu_ids=list(w.gpu_ids),
            started_at=w.started_at,
        )
        for w in platform.workloads.running(caller)
    ]
    return AllocationsOut(plan=plan, workloads=held)


@router.get("/preemptions", response_model=list[PreemptionOut])
def preemptions(
    platform: PlatformDep,
    caller: CurrentPrincipal,
    workload_id: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[PreemptionOut]:
    """Recent preemptions, newest first, each with its reason and the work it lost."""
    return [
        PreemptionOut(
            at=r.at,
            workload_id=r.workload_id,
            reason=r.reason,
            action=r.action,
            lost_gpu_hours=r.lost_gpu_hours,
            gpu_ids=list(r.gpu_ids),
            for_workload_id=r.for_workload_id,
        )
        for r in platform.workloads.preemptions(caller, workload_id, limit)
    ]


def plan_out(plan: SitePlan) -> PlanOut:
    return PlanOut(
        plan_id=plan.id,
        site_id=plan.site_id,
        interval_start=plan.interval_start,
        strategy=plan.strategy,
        status=plan.status,
        reason=plan.reason,
        expected_profit_usd=plan.expected_profit_usd,
        power_kw=round(plan.power_kw, 3),
        gpu_budget=plan.gpu_budget(),
        allocations=[
            AllocationOut(
                device_model=a.device_model, use=a.use, count=a.count, power_kw=a.power_kw
            )
            for a in plan.allocations
        ],
    )
