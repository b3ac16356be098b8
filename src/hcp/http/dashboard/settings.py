"""Settings: the viewer's API keys; for admins also users and the price sheet."""

from __future__ import annotations

from typing import Any

import pydantic
from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from hcp.domain.catalog import gpu_families
from hcp.domain.errors import Forbidden, ValidationError
from hcp.domain.identity import Role
from hcp.domain.workloads import WorkloadClass
from hcp.http.dashboard.web import (
    PageRoute,
    Posted,
    PostedDep,
    Viewer,
    ViewerDep,
    page,
    redirect,
    sources_of,
)
from hcp.http.deps import PlatformDep
from hcp.http.routes.billing import PriceIn
from hcp.http.schemas import KeyIn, UserIn
from hcp.services.platform import Platform

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/settings")
def settings(request: Request, platform: PlatformDep, viewer: ViewerDep) -> HTMLResponse:
    return settings_page(request, platform, viewer)


@router.post("/settings/keys", response_model=None)
def create_key(request: Request, platform: PlatformDep, posted: PostedDep) -> HTMLResponse:
    """Create a key and show its secret this once; the form again with a message if refused."""
    viewer = posted.viewer
    try:
        body = KeyIn.model_validate(form_body(posted, ("name", "role", "customer_id")))
        issued = platform.identity.create_key(
            viewer.principal, name=body.name, role=body.role, customer_id=body.customer_id
        )
    except (pydantic.ValidationError, ValidationError, Forbidden) as exc:
        return settings_page(request, platform, viewer, 422, key_error=message_of(exc))
    return settings_page(request, platform, viewer, 201, new_key=issued)


@router.post("/settings/keys/{key_id}/revoke", response_model=None)
def revoke_key(platform: PlatformDep, posted: PostedDep, key_id: str) -> Response:
    platform.identity.revoke_key(posted.viewer.principal, key_id)
    return redirect("/settings")


@router.post("/settings/users", response_model=None)
def create_user(
    request: Request, platform: PlatformDep, posted: PostedDep
) -> HTMLResponse | Response:
    """Create a dashboard user (admins only)."""
    viewer = posted.viewer
    fields = ("email", "name", "role", "customer_id", "password")
    try:
        body = UserIn.model_validate(form_body(posted, fields))
        platform.identity.create_user(
            viewer.principal,
            email=body.email,
            name=body.name,
            role=body.role,
            password=body.password,
            customer_id=body.customer_id,
        )
    except (pydantic.ValidationError, ValidationError) as exc:
        values = {f: posted.get(f) for f in fields if f != "password"}
        return settings_page(
            request, platform, viewer, 422, user_error=message_of(exc), user_values=values
        )
    return redirect("/settings#users")


@router.post("/settings/prices", response_model=None)
def set_price(
    request: Request, platform: PlatformDep, posted: PostedDep
) -> HTMLResponse | Response:
    """Set one list price (admins); the form again with the reason when it is refused."""
    viewer = posted.viewer
    try:
        body = PriceIn.model_validate(
            form_body(posted, ("workload_type", "gpu_type", "usd_per_gpu_hour"))
        )
        platform.billing.set_price(
            viewer.principal, body.workload_type, body.gpu_type, body.usd_per_gpu_hour
        )
    except (pydantic.ValidationError, ValidationError) as exc:
        return settings_page(request, platform, viewer, 422, price_error=message_of(exc))
    return redirect("/settings#prices")


def form_body(posted: Posted, fields: tuple[str, ...]) -> dict[str, str]:
    """The named inputs that were filled in (empty ones take the schema's default)."""
    return {f: posted.get(f) for f in fields if posted.get(f)}


def message_of(exc: Exception) -> str:
    if isinstance(exc, pydantic.ValidationError):
        return "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or 'form'}: {e['msg']}" for e in exc.errors()
        )
    return str(exc)


def settings_page(
    request: Request, platform: Platform, viewer: Viewer, status_code: int = 200, **extra: Any
) -> HTMLResponse:
    admin = viewer.admin
    context: dict[str, Any] = {
        "keys": platform.identity.keys(viewer.principal),
        "users": platform.identity.users(viewer.principal) if admin else [],
        "customers": platform.identity.customers(viewer.principal) if admin else [],
        "prices": platform.dashboard.price_rows(sources_of(platform)) if admin else [],
        "roles": [r.value for r in Role],
        "workload_types": [c.value for c in WorkloadClass],
        "gpu_families": sorted(gpu_families()),
        "price_error": None,
        "new_key": None,
        "key_error": None,
        "user_error": None,
        "user_values": {},
    }
    return page(request, viewer, "settings.html", status_code, **(context | extra))
