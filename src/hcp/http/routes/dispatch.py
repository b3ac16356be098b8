"""/api/v1/dispatch: every command sent to a device (a miner, or a GPU node for a workload), its
reason and how it was judged; /api/v1/dispatch/status: what the last tick's dispatch left undone
and why."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel, Field

from hcp.domain.errors import NotFound
from hcp.http.deps import PlatformDep, StaffPrincipal

router = APIRouter(prefix="/api/v1", tags=["dispatch"])


class CommandOut(BaseModel):
    command_id: str
    issued_at: datetime
    device_id: str
    address: str | None
    action: str
    profile: str | None
    reason: str
    attempt: int
    confirm_by: datetime | None
    status: str
    outcome_at: datetime | None
    detail: str | None


@router.get("/dispatch", response_model=list[CommandOut])
def dispatch_log(
    platform: PlatformDep,
    _caller: StaffPrincipal,
    device: Annotated[str | None, Query(max_length=64)] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[CommandOut]:
    """Recent commands, newest first: a miner's sent, then confirmed or failed by telemetry;
    a GPU node's judged by the node agent's answer."""
    return [
        CommandOut(
            command_id=c.id,
            issued_at=c.issued_at,
            device_id=c.device_id,
            address=c.address,
            action=c.action,
            profile=c.profile,
            reason=c.reason,
            attempt=c.attempt,
            confirm_by=c.confirm_by,
            status=c.status,
            outcome_at=c.outcome_at,
            detail=c.detail,
        )
        for c in platform.dispatch_log.recent(limit, device)
    ]


class DispatchStatusOut(BaseModel):
    site_id: str = Field(description="The site dispatched.")
    at: datetime = Field(description="When the tick's dispatch planned its commands.")
    commands: int = Field(description="Commands the tick planned.")
    sent: int = Field(description="Commands delivered so far (the rest go out behind the tick).")
    power_increase_w: float = Field(description="What the planned wakes and raises add, W.")
    deferred: list[str] = Field(
        description="Miners whose wake or profile raise waits for room in the site's ramp, "
        "or for sleeps and profile cuts that did not get through to make room for it."
    )
    shortfall: dict[str, int] = Field(
        description="Miners per model the plan wants that no healthy, manageable miner can run."
    )
    unhealthy: dict[str, str] = Field(
        description="Miners put or held asleep for what is wrong with them (device id: why)."
    )
    degraded: dict[str, str] = Field(
        description="Miners the dispatcher cannot manage now (device id: why): in maintenance, "
        "no telemetry, out of attempts, in a degradation, or a command that did not get through."
    )


@router.get("/dispatch/status", response_model=DispatchStatusOut)
def dispatch_status(
    platform: PlatformDep,
    _caller: StaffPrincipal,
    site: Annotated[str | None, Query(max_length=64)] = None,
) -> DispatchStatusOut:
    """A site's last tick of miner dispatch (the most recent of any site without `site`):
    which miners wait for the ramp, which the plan wants but cannot have, and which get no
    work and why. Stored by the process that leads the site, so every API process answers
    alike; 404 before the site's first tick."""
    status = platform.dispatch_status.latest(site)
    if status is None:
        if site is None:
            raise NotFound("dispatch status", "of the last tick")
        raise NotFound("dispatch status of site", site)
    return DispatchStatusOut.model_validate(status, from_attributes=True)
