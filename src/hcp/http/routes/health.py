"""/health (liveness with component status), /ready (readiness) and /metrics."""

from __future__ import annotations

import hmac

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

import hcp
from hcp.http.deps import PlatformDep
from hcp.http.errors import error_body

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


@router.get("/metrics", include_in_schema=False, response_model=None)
def metrics(request: Request) -> Response:
    """Prometheus text exposition; behind the scraper's bearer token when one is set."""
    token: str | None = request.app.state.metrics_token
    if token is not None and not _bears(request.headers.get("authorization", ""), token):
        message = "GET /metrics needs 'Authorization: Bearer <HCP_METRICS_TOKEN>'"
        return JSONResponse(
            error_body("unauthenticated", message),
            status_code=401,
            headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
        )
    return Response(generate_latest(request.app.state.registry), media_type=CONTENT_TYPE_LATEST)


def _bears(header: str, token: str) -> bool:
    """Whether an Authorization header carries `token` as its bearer token (compared in
    constant time, so the comparison leaks no prefix). An empty token matches nothing."""
    scheme, _, given = header.partition(" ")
    given = given.strip()
    return (
        bool(token)
        and scheme.lower() == "bearer"
        and hmac.compare_digest(given.encode(), token.encode())
    )
