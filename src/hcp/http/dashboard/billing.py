"""The billing page: a month's usage and charges, invoices, and their CSV downloads."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response
from fastapi.responses import HTMLResponse

from hcp.http.dashboard.web import PageRoute, ViewerDep, page, sources_of
from hcp.http.deps import PlatformDep
from hcp.services.dashboard import month_of, neighbour_months

router = APIRouter(route_class=PageRoute, include_in_schema=False)


@router.get("/billing")
def billing(
    request: Request, platform: PlatformDep, viewer: ViewerDep, month: str = ""
) -> HTMLResponse:
    """Usage per workload in `month` (default: this one), what it costs so far, invoices."""
    month = month or month_of(platform.dashboard.now())
    view = platform.dashboard.billing(viewer.principal, month, sources_of(platform))
    before, after = neighbour_months(month)
    return page(request, viewer, "billing.html", view=view, before=before, after=after)


@router.get("/billing/usage-{month}.csv")
def usage_csv(platform: PlatformDep, viewer: ViewerDep, month: str) -> Response:
    """The month's usage records as CSV (the viewer's own for a customer)."""
    text = platform.dashboard.usage_csv(viewer.principal, month, sources_of(platform))
    return csv_response(text, f"usage-{month}.csv")


@router.get("/billing/invoices/{invoice_id}.csv")
def invoice_csv(platform: PlatformDep, viewer: ViewerDep, invoice_id: str) -> Response:
    """One invoice as CSV; 404 when it is another customer's."""
    text = platform.dashboard.invoice_csv(viewer.principal, invoice_id, sources_of(platform))
    return csv_response(text, f"{invoice_id}.csv")


def csv_response(text: str, filename: str) -> Response:
    safe = "".join(c for c in filename if c.isalnum() or c in "-_.") or "export.csv"
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{safe}"',
            "Cache-Control": "no-store",
        },
    )
