"""Logging in and out of the dashboard: an HttpOnly, SameSite=Lax session cookie."""

from __future__ import annotations

import math
from typing import Annotated

from fastapi import APIRouter, Form, Request, Response
from fastapi.responses import HTMLResponse

from hcp.domain.errors import RateLimited, Unauthenticated
from hcp.http.dashboard.web import (
    COOKIE,
    PageRoute,
    PostedDep,
    page,
    redirect,
    safe_next,
    same_origin,
)
from hcp.http.deps import PlatformDep

router = APIRouter(route_class=PageRoute, include_in_schema=False)
MAX_FIELD = 1024


@router.get("/", response_model=None)
def home() -> Response:
    return redirect("/dashboard")


@router.get("/login", response_model=None)
def login_form(
    request: Request, platform: PlatformDep, next: str | None = None
) -> HTMLResponse | Response:
    """The login form; a browser that is logged in already goes straight on."""
    try:
        platform.identity.session(request.cookies.get(COOKIE))
    except Unauthenticated:
        return page(request, None, "login.html", next=safe_next(next), email="", error=None)
    return redirect(safe_next(next))


@router.post("/login", response_model=None)
def login(
    request: Request,
    platform: PlatformDep,
    email: Annotated[str, Form()] = "",
    password: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> HTMLResponse | Response:
    """Check the credentials and set the session cookie; the form again with a message if wrong.
    A login posted from another site is refused: it would log the browser into the account of
    whoever wrote that page (login CSRF; the session's cookie is not there yet to carry a
    token, so the browser's Origin, or Referer, decides)."""
    email, target = email[:MAX_FIELD], safe_next(next)
    if not same_origin(request):
        error = "this login form was posted from another site; log in from this page"
        return page(request, None, "login.html", 403, next=target, email="", error=error)
    try:
        secret, session = platform.identity.login(email, password[:MAX_FIELD])
    except Unauthenticated as exc:
        return page(request, None, "login.html", 401, next=target, email=email, error=str(exc))
    except RateLimited as exc:
        wait = max(1, math.ceil(exc.retry_after_s))
        refused = page(
            request,
            None,
            "login.html",
            429,
            next=target,
            email=email,
            error=f"too many attempts for this email; try again in {wait} s",
        )
        refused.headers["Retry-After"] = str(wait)
        return refused
    response = redirect(target)
    response.set_cookie(
        COOKIE,
        secret,
        max_age=int((session.expires_at - session.created_at).total_seconds()),
        path="/",
        httponly=True,
        samesite="lax",
        secure=platform.dashboard.secure_cookies,
    )
    return response


@router.post("/logout", response_model=None)
def logout(request: Request, platform: PlatformDep, _posted: PostedDep) -> Response:
    """End the session (server side too) and forget the cookie."""
    platform.identity.logout(request.cookies.get(COOKIE))
    response = redirect("/login")
    response.delete_cookie(
        COOKIE, path="/", httponly=True, samesite="lax", secure=platform.dashboard.secure_cookies
    )
    return response
