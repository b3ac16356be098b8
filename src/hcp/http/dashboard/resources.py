"""Resource pages (staff only): devices with health, filtered; a device with telemetry charts,
put in maintenance and back in service from its page."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from hcp.domain.errors import Forbidden, ValidationError
from hcp.http.dashboard.present import metric_chart
from hcp.http.dashboard.web import (
    PageRoute,
    PostedDep,
    Viewer,
    ViewerDep,
    page,
    redirect,
    sources_of,
)
from hcp.http.deps import PlatformDep
from hcp.services.platform import Platform

router = APIRouter(route_class=PageRoute, include_in_schema=False)


def require_staff(viewer: Viewer) -> None:
    if not viewer.staff:
        raise Forbidden("the fleet pages are for operators and admins")


@router.get("/resources")
def resources(
    request: Request,
    platform: PlatformDep,
    viewer: ViewerDep,
    site: str = "",
    model: str = "",
    state: str = "",
) -> HTMLResponse:
    """Every device with its state and health, filtered by site, model and state."""
    require_staff(viewer)
    listing = platform.dashboard.devices(site or None, model or None, state or None)
    chosen = {"site": site, "model": model, "state": state}
    return page(request, viewer, "resources.html", listing=listing, chosen=chosen)


@router.get("/resources/{device_id}")
def device(
    request: Request, platform: PlatformDep, viewer: ViewerDep, device_id: str, window: str = "1h"
) -> HTMLResponse:
    """One device and its telemetry charts over the last hour (or 6 h, 24 h)."""
    return page(
        request, viewer, "device.html", **device_context(platform, viewer, device_id, window)
    )


@router.post("/resources/{device_id}/maintenance", response_model=None)
def start_maintenance(
    request: Request, platform: PlatformDep, posted: PostedDep, device_id: str
) -> Response:
    """Put the device in maintenance with the reason typed; a blank one is shown again
    with its message (422)."""
    reason = posted.get("reason")
    try:
        platform.fleet.start_maintenance(posted.viewer.principal, device_id, reason)
    except ValidationError as exc:
        context = device_context(platform, posted.viewer, device_id, "1h")
        return page(
            request,
            posted.viewer,
            "device.html",
            status_code=422,
            maintenance_error=exc.message,
            reason=reason,
            **context,
        )
    return redirect(f"/resources/{quote(device_id, safe='')}")


@router.post("/resources/{device_id}/maintenance/end", response_model=None)
def end_maintenance(platform: PlatformDep, posted: PostedDep, device_id: str) -> Response:
    """Put the device back in service."""
    platform.fleet.end_maintenance(posted.viewer.principal, device_id)
    return redirect(f"/resources/{quote(device_id, safe='')}")


@router.get("/dashboard/live/resources/{device_id}")
def device_live(
    request: Request, platform: PlatformDep, viewer: ViewerDep, device_id: str, window: str = "1h"
) -> HTMLResponse:
    context = device_context(platform, viewer, device_id, window)
    return page(request, viewer, "_device_live.html", **context)


def device_context(
    platform: Platform, viewer: Viewer, device_id: str, window: str
) -> dict[str, Any]:
    require_staff(viewer)
    detail = platform.dashboard.device(device_id, window, sources_of(platform))
    charts = [metric_chart(m) for m in detail.metrics.data or []]
    return {"detail": detail, "charts": charts}
