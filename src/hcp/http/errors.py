"""Map domain errors and malformed requests to JSON error bodies. Nothing else maps errors."""

from __future__ import annotations

import math
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.routing import iter_route_contexts
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.routing import Match

from hcp.domain.errors import (
    Conflict,
    Forbidden,
    HcpError,
    NotFound,
    RateLimited,
    Unauthenticated,
    ValidationError,
)
from hcp.http.schemas import ErrorOut
from hcp.services.market import NoMarketData

_STATUS: list[tuple[type[HcpError], int, str]] = [
    (ValidationError, 422, "invalid_request"),
    (NotFound, 404, "not_found"),
    (Unauthenticated, 401, "unauthenticated"),
    (Forbidden, 403, "forbidden"),
    (Conflict, 409, "conflict"),
    (NoMarketData, 503, "not_ready"),
    (RateLimited, 429, "rate_limited"),
]


# Statuses the HTTP layer answers itself, beside those of _STATUS.
_HTTP_ERRORS = {400: "malformed_json", 413: "payload_too_large", 422: "invalid_request"}


def api_error_responses() -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` for every error an /api/v1 call may answer, each with the JSON
    error body, drawn from the same table the handlers use."""
    codes = {**_HTTP_ERRORS, **{status: code for _, status, code in _STATUS}}
    # `model` puts ErrorOut in the components, but under the route's own media type (text/csv
    # for a CSV route); errors are JSON everywhere, so say so explicitly.
    json = {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorOut"}}}
    return {
        status: {"model": ErrorOut, "description": f"`{code}`", "content": json}
        for status, code in sorted(codes.items())
    }


def error_body(
    error: str, message: str, fields: list[dict[str, str]] | None = None
) -> dict[str, Any]:
    return {"error": error, "message": message, "fields": fields or []}


def _field_of(loc: tuple[Any, ...] | list[Any]) -> str:
    parts = [str(p) for p in loc if p not in ("body", "query", "path", "header")]
    return ".".join(parts) or "body"


async def _hcp_error(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, HcpError)
    status, code = next(((s, c) for k, s, c in _STATUS if isinstance(exc, k)), (400, "bad_request"))
    fields = (
        [{"field": exc.field, "message": exc.message}] if isinstance(exc, ValidationError) else []
    )
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    message = str(exc)
    if isinstance(exc, RateLimited):
        wait = max(1, math.ceil(exc.retry_after_s))  # whole seconds, as Retry-After has them
        headers = {"Retry-After": str(wait)}
        message = f"rate limit exceeded; retry in {wait} s"
    return JSONResponse(error_body(code, message, fields), status_code=status, headers=headers)


async def _request_invalid(_request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    if any(e.get("type") == "json_invalid" for e in errors):
        detail = next(e for e in errors if e.get("type") == "json_invalid")
        message = f"malformed JSON body: {detail.get('ctx', {}).get('error', 'cannot parse')}"
        return JSONResponse(
            error_body("malformed_json", message, [{"field": "body", "message": message}]), 400
        )
    fields = [{"field": _field_of(e["loc"]), "message": _message_of(e)} for e in errors]
    summary = "; ".join(f"{f['field']}: {f['message']}" for f in fields)
    return JSONResponse(error_body("invalid_request", summary, fields), status_code=422)


def _message_of(error: Any) -> str:
    if tuple(error["loc"]) == ("body",) and error.get("type") == "model_attributes_type":
        return "must be a JSON object (send Content-Type: application/json)"
    return str(error["msg"])


async def _http_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = {404: "not_found", 405: "method_not_allowed", 413: "payload_too_large"}.get(
        exc.status_code, "error"
    )
    headers = exc.headers
    if exc.status_code == 405:
        headers = {**(headers or {}), "Allow": _allowed_methods(request)}
    return JSONResponse(
        error_body(code, str(exc.detail)), status_code=exc.status_code, headers=headers
    )


def _allowed_methods(request: Request) -> str:
    """Every method some route serves at the request's path: Starlette's 405 names only
    those of the first route there (GET on /keys, not POST too)."""
    methods: set[str] = set()
    for route in iter_route_contexts(request.app.routes):
        match, _scope = route.matches(request.scope)
        if match is not Match.NONE:
            methods |= route.methods or set()
    return ", ".join(sorted(methods))


def install_error_handlers(app: FastAPI) -> None:
    app.add_exception_handler(HcpError, _hcp_error)
    app.add_exception_handler(RequestValidationError, _request_invalid)
    app.add_exception_handler(StarletteHTTPException, _http_error)
