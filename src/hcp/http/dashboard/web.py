"""What every dashboard page shares: templates, the logged-in viewer, CSRF, and HTML errors."""

from __future__ import annotations

import secrets
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import quote, urlsplit

import jinja2
from fastapi import Depends, Request, Response
from fastapi.responses import HTMLResponse, RedirectResponse
from fastapi.routing import APIRoute
from fastapi.templating import Jinja2Templates

from hcp.domain.errors import Conflict, Forbidden, HcpError, NotFound, Unauthenticated
from hcp.domain.errors import ValidationError as DomainValidationError
from hcp.domain.identity import Principal, User
from hcp.http.deps import PlatformDep
from hcp.services.dashboard import Sources
from hcp.services.platform import Platform

COOKIE = "hcp_session"
LIVE_HEADER = "x-hcp-live"
TEMPLATES_DIR = Path(__file__).parent / "templates"
STATIC_DIR = Path(__file__).parent / "static"
SECURITY_HEADERS = {
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "same-origin",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
}
_STATUS = {NotFound: 404, Forbidden: 403, DomainValidationError: 422, Conflict: 409}


def usd(value: float | Decimal | None, decimals: int = 2) -> str:
    """`$1,234.56`, `-$3.20`, or an em dash for None."""
    if value is None:
        return "—"
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.{decimals}f}"


def num(value: float | Decimal | None, decimals: int = 0) -> str:
    return "—" if value is None else f"{value:,.{decimals}f}"


def when(at: datetime | None) -> str:
    return "—" if at is None else at.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S UTC")


def clock(at: datetime | None) -> str:
    return "—" if at is None else at.astimezone(UTC).strftime("%H:%M:%S")


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES_DIR),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(usd=usd, num=num, when=when, clock=clock)
    return env


templates = Jinja2Templates(env=_environment())


@dataclass(frozen=True, slots=True)
class Viewer:
    """The logged-in person behind a page request."""

    principal: Principal
    user: User
    csrf_token: str

    @property
    def staff(self) -> bool:
        return self.principal.role.sees_everything

    @property
    def admin(self) -> bool:
        return self.principal.manages_users


def get_viewer(request: Request, platform: PlatformDep) -> Viewer:
    """The session behind the cookie; Unauthenticated (a redirect to /login) without one."""
    principal, session, user = platform.identity.session(request.cookies.get(COOKIE))
    return Viewer(principal, user, session.csrf_token)


ViewerDep = Annotated[Viewer, Depends(get_viewer)]


@dataclass(frozen=True, slots=True)
class Posted:
    """A form posted by a logged-in viewer whose CSRF token matched."""

    viewer: Viewer
    form: Mapping[str, str]

    def get(self, name: str) -> str:
        return self.form.get(name, "").strip()


async def get_posted(request: Request, viewer: ViewerDep) -> Posted:
    """The viewer and the form's text fields; Forbidden (403) when the CSRF token is wrong."""
    form = await request.form()
    fields = {k: v for k, v in form.items() if isinstance(v, str)}
    if not secrets.compare_digest(fields.get("csrf_token", ""), viewer.csrf_token):
        raise Forbidden("this form is stale or was not sent by this page; reload and try again")
    return Posted(viewer, fields)


PostedDep = Annotated[Posted, Depends(get_posted)]


def sources_of(platform: Platform) -> Sources:
    """The optional services the dashboard reads, where this platform has them."""
    return Sources(
        billing=getattr(platform, "billing", None),
        dispatch_log=getattr(platform, "dispatch_log", None),
        telemetry=getattr(platform, "telemetry", None),
    )


def page(
    request: Request, viewer: Viewer | None, name: str, status_code: int = 200, **context: Any
) -> HTMLResponse:
    """Render template `name` for `viewer` with the headers every page carries."""
    return templates.TemplateResponse(
        request,
        name,
        {"viewer": viewer, **context},
        status_code=status_code,
        headers=SECURITY_HEADERS,
    )


def redirect(url: str) -> RedirectResponse:
    """A 303: after a POST the browser fetches `url` with GET."""
    return RedirectResponse(url, status_code=303, headers={"Cache-Control": "no-store"})


def safe_next(target: str | None) -> str:
    """`target` when it is a path on this site, else the dashboard (no open redirects)."""
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return "/dashboard"


def login_redirect(request: Request) -> Response:
    """To the login page, coming back here after; a live fragment gets 401 (the poller reloads)."""
    if request.headers.get(LIVE_HEADER):
        return Response("session ended", status_code=401, headers={"Cache-Control": "no-store"})
    target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    return redirect(f"/login?next={quote(target, safe='')}")


def error_page(request: Request, exc: HcpError) -> Response:
    status = next((s for kind, s in _STATUS.items() if isinstance(exc, kind)), 400)
    title = {404: "Not found", 403: "Not allowed", 409: "Not possible now"}.get(status, "Error")
    return page(request, None, "error.html", status, title=title, message=str(exc))


class PageRoute(APIRoute):
    """A dashboard route: domain errors become HTML pages or a login redirect, never JSON."""

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()

        async def handle(request: Request) -> Response:
            try:
                return await handler(request)
            except Unauthenticated:
                return login_redirect(request)
            except (NotFound, Forbidden, DomainValidationError, Conflict) as exc:
                return error_page(request, exc)

        return handle


def same_origin(request: Request) -> bool:
    """Whether a browser's POST came from a page of this site: its Origin header, else its
    Referer, names this host and port (the scheme may differ behind a proxy that ends TLS). A
    request with neither (not a browser's) passes; an opaque origin ("null") does not."""
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if claimed is None:
        return True
    return urlsplit(claimed).netloc == request.url.netloc
