"""The FastAPI application factory."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from prometheus_client import CollectorRegistry

import hcp
from hcp.http import dashboard
from hcp.http.errors import api_error_responses, install_error_handlers
from hcp.http.metrics import HttpMetrics, PlatformCollector
from hcp.http.middleware import BodyLimit, RequestMetrics
from hcp.http.routes import (
    billing,
    dispatch,
    health,
    identity,
    market,
    operations,
    plans,
    telemetry,
    workloads,
)
from hcp.services.platform import Platform
from hcp.services.telemetry import DeviceKinds

DESCRIPTION = """HCP decides what each megawatt of a bitcoin-mining site does: mine, serve AI
workloads, rent GPUs, or curtail. Every `/api/v1` call needs an API key:
`Authorization: Bearer hcp_...`."""


def create_app(
    platform: Platform, *, max_body_bytes: int = 64 * 1024, metrics_token: str | None = None
) -> FastAPI:
    """An app serving `platform`; all state lives in the platform's services. `metrics_token`,
    when given, is the bearer token GET /metrics asks for."""
    app = FastAPI(
        title="HCP — hybrid compute platform",
        version=hcp.__version__,
        description=DESCRIPTION,
        # Prometheus metrics are ours (/metrics); FastAPI's OpenTelemetry probe would read the
        # environment on every request for a provider we never configure.
        telemetry={"tracing": False, "metrics": False, "logs": False},
    )
    registry = CollectorRegistry()
    registry.register(PlatformCollector(platform))
    http_metrics = HttpMetrics(registry)
    app.state.platform = platform
    app.state.registry = registry
    app.state.metrics_token = metrics_token
    # Which devices exist, and of what kind: /telemetry checks each query against it.
    app.state.device_kinds = DeviceKinds(lambda: platform.fleet.devices())
    install_error_handlers(app)
    app.include_router(health.router)
    for module in (workloads, market, operations, plans, identity, billing, telemetry, dispatch):
        app.include_router(module.router, responses=api_error_responses())
    app.include_router(dashboard.router)
    app.mount("/static", StaticFiles(directory=dashboard.STATIC_DIR), name="static")
    app.add_middleware(RequestMetrics, requests=http_metrics.requests, latency=http_metrics.latency)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes)
    return app
