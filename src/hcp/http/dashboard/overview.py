"""/dashboard: the site overview for staff, a customer's own overview for customers."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse

from hcp.http.dashboard.present import power_chart, price_chart
from hcp.http.dashboard.web import PageRoute, Viewer, ViewerDep, page, sources_of
from hcp.http.deps import PlatformDep
from hcp.services.platform import Platform

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/dashboard")
def dashboard(request: Request, platform: PlatformDep, viewer: ViewerDep) -> HTMLResponse:
    return page(request, viewer, "dashboard.html", **overview(platform, viewer))


@router.get("/dashboard/live/overview")
def dashboard_live(request: Request, platform: PlatformDep, viewer: ViewerDep) -> HTMLResponse:
    """The dashboard's live part alone, for the poller."""
    name = "_admin_live.html" if viewer.staff else "_customer_live.html"
    return page(request, viewer, name, **overview(platform, viewer))


def overview(platform: Platform, viewer: Viewer) -> dict[str, Any]:
    sources = sources_of(platform)
    if not viewer.staff:
        return {"customer": platform.dashboard.customer(viewer.principal, sources)}
    admin = platform.dashboard.admin(sources)
    chart, legend = power_chart(admin.power)
    return {
        "admin": admin,
        "power_chart": chart,
        "legend": legend,
        "price_chart": price_chart(admin.price_history),
    }
