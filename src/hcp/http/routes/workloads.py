"""/api/v1/workloads: submit, list, show, cancel."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from hcp.domain.workloads import Requirements, StateChange, Workload, WorkloadState
from hcp.http.deps import CurrentPrincipal, PlatformDep
from hcp.http.schemas import (
    RequirementsOut,
    StateChangeOut,
    WorkloadCreated,
    WorkloadDetail,
    WorkloadIn,
    WorkloadList,
    WorkloadOut,
)
from hcp.services.workloads import Submission

router = APIRouter(prefix="/api/v1/workloads", tags=["workloads"])
MAX_OFFSET = 2**31 - 1
"""Far past any real list; unbounded, an offset of 2**63 overflowed the database driver (500)."""


@router.post("", status_code=status.HTTP_201_CREATED, response_model=WorkloadCreated)
async def submit_workload(
    body: WorkloadIn, platform: PlatformDep, caller: CurrentPrincipal
) -> WorkloadCreated:
    """Queue a workload for the caller's customer (an admin names the customer)."""
    req = body.requirements
    submission = Submission(
        workload_class=body.workload_type,
        requirements=Requirements(
            gpu_type=req.gpu_type,
            gpu_count=req.gpu_count,
            memory_gb_per_gpu=req.memory_gb,
            estimated_hours=req.estimated_duration_hours,
        ),
        customer_id=body.customer_id,
        priority=body.priority,
        deadline=body.deadline,
        checkpointable=body.checkpointable,
        max_price_usd_per_gpu_hour=body.max_price_usd_per_gpu_hour,
        interruptible=body.tier == "interruptible",
    )
    submitted = await platform.workloads.submit(caller, submission)
    w = submitted.workload
    return WorkloadCreated(
        workload_id=w.id,
        status=w.state,
        priority=w.priority,
        queue_position=submitted.queue_position,
        customer_id=w.customer_id,
        workload_type=w.workload_class,
        submitted_at=w.submitted_at,
    )


@router.get("", response_model=WorkloadList)
def list_workloads(
    platform: PlatformDep,
    caller: CurrentPrincipal,
    status_: Annotated[WorkloadState | None, Query(alias="status")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    offset: Annotated[int, Query(ge=0, le=MAX_OFFSET)] = 0,
) -> WorkloadList:
    """The caller's workloads (all of them for admins and operators), newest first."""
    items, total = platform.workloads.find(caller, status_, limit, offset)
    return WorkloadList(
        workloads=[workload_out(w) for w in items], total=total, limit=limit, offset=offset
    )


@router.get("/{workload_id}", response_model=WorkloadDetail)
def get_workload(
    workload_id: str, platform: PlatformDep, caller: CurrentPrincipal
) -> WorkloadDetail:
    """One workload with its state history; 404 when it is not the caller's."""
    workload, history = platform.workloads.get(caller, workload_id)
    return WorkloadDetail(
        **workload_out(workload).model_dump(), history=[_change_out(c) for c in history]
    )


@router.delete("/{workload_id}", response_model=WorkloadOut)
def cancel_workload(
    workload_id: str, platform: PlatformDep, caller: CurrentPrincipal
) -> WorkloadOut:
    """Cancel a workload. Idempotent; 409 when it has already completed or failed."""
    return workload_out(platform.workloads.cancel(caller, workload_id))


def workload_out(w: Workload) -> WorkloadOut:
    req = w.requirements
    return WorkloadOut(
        workload_id=w.id,
        customer_id=w.customer_id,
        workload_type=w.workload_class,
        priority=w.priority,
        status=w.state,
        requirements=RequirementsOut(
            gpu_type=req.gpu_type,
            gpu_count=req.gpu_count,
            memory_gb=req.memory_gb_per_gpu,
            estimated_duration_hours=req.estimated_hours,
        ),
        submitted_at=w.submitted_at,
        updated_at=w.updated_at,
        deadline=w.deadline,
        checkpointable=w.checkpointable,
        max_price_usd_per_gpu_hour=w.max_price_usd_per_gpu_hour,
        site_id=w.site_id,
        progress=w.progress,
        checkpoint_progress=w.checkpoint,
        checkpointed_at=w.checkpointed_at,
        retries=w.retries,
        tier="interruptible" if w.interruptible else "standard",
    )


def _change_out(c: StateChange) -> StateChangeOut:
    return StateChangeOut(
        at=c.at, event=c.event.value, from_state=c.from_state, to_state=c.to_state, reason=c.reason
    )
