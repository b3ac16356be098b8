"""The dashboard: server-rendered pages (Jinja2), inline SVG charts, a small vanilla-JS poller."""

from fastapi import APIRouter

from hcp.http.dashboard import auth, billing, overview, resources, settings, workloads
from hcp.http.dashboard.web import STATIC_DIR

router = APIRouter()
for _module in (auth, overview, workloads, resources, billing, settings):
    router.include_router(_module.router)

__all__ = ["STATIC_DIR", "router"]
