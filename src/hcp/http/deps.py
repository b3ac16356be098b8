"""FastAPI dependencies: the platform's services and the authenticated caller."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from hcp.domain.errors import Forbidden
from hcp.domain.identity import Principal
from hcp.services.platform import Platform

_bearer = HTTPBearer(auto_error=False, description="API key: `Authorization: Bearer hcp_...`")


async def get_platform(request: Request) -> Platform:
    platform: Platform = request.app.state.platform
    return platform


PlatformDep = Annotated[Platform, Depends(get_platform)]


async def get_principal(
    platform: PlatformDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> Principal:
    secret = credentials.credentials if credentials is not None else None
    principal = platform.auth.authenticate(secret)
    platform.rate_limiter.check(principal.key_id, platform.auth.now())
    return principal


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_staff(principal: CurrentPrincipal) -> Principal:
    """The caller, who must be staff: the fleet, its plan and its commands are not customers'."""
    if not principal.role.sees_everything:
        raise Forbidden("fleet data is for operators and admins")
    return principal


StaffPrincipal = Annotated[Principal, Depends(get_staff)]
