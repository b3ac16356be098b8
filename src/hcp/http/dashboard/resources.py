"""Resource pages (staff only): devices with health, filtered; a device with telemetry charts."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from hcp.domain.errors import Forbidden
from hcp.http.dashboard.present import metric_chart
from hcp.http.dashboard.web import PageRoute, Viewer, ViewerDep, page, sources_of
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
