"""/health (liveness with component status), /ready (readiness) and /metrics."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

import hcp
from hcp.http.deps import PlatformDep

router = APIRouter(tags=["health"])


@router.get("/health")
def health(platform: PlatformDep) -> dict[str, object]:
    """Liveness: the process answers; each component's status is reported, not required."""
    components = platform.health()
    overall = "ok" if all(v == "ok" for v in components.values()) else "degraded"
    return {"status": overall, "version": hcp.__version__, "components": components}


@router.get("/ready", response_model=None)
def ready(platform: PlatformDep) -> JSONResponse:
    """Readiness: 200 only when every component is ok (database, schema, market data)."""
    components = platform.health()
    is_ready = all(v == "ok" for v in components.values())
    body = {"status": "ready" if is_ready else "not_ready", "components": components}
    return JSONResponse(body, status_code=200 if is_ready else 503)


@router.get("/metrics", include_in_schema=False)
def metrics(request: Request) -> Response:
    """Prometheus text exposition."""
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)
