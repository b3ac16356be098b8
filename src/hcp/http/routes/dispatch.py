"""/api/v1/dispatch: every command sent to a device (a miner, or a GPU node for a workload), its
reason and how it was judged."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Query
from pydantic import BaseModel

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
