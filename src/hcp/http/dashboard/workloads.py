"""Workload pages: list and filter, submit through a form, detail with history, cancel."""

from __future__ import annotations

import math
from typing import Annotated, Any

import pydantic
from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import HTMLResponse

from hcp.domain.catalog import gpu_families
from hcp.domain.errors import ValidationError
from hcp.domain.workloads import Requirements, WorkloadClass, WorkloadState
from hcp.http.dashboard.web import (
    PageRoute,
    Posted,
    PostedDep,
    Viewer,
    ViewerDep,
    page,
    redirect,
)
from hcp.http.deps import PlatformDep
from hcp.http.schemas import WorkloadIn
from hcp.services.platform import Platform
from hcp.services.workloads import Submission

router = APIRouter(route_class=PageRoute, include_in_schema=False)
PAGE_SIZE = 25
# form input -> the API field it fills, so every message lands beside its input
FIELDS = {
    "workload_type": "workload_type",
    "customer_id": "customer_id",
    "gpu_type": "requirements.gpu_type",
    "gpu_count": "requirements.gpu_count",
    "memory_gb": "requirements.memory_gb",
    "estimated_hours": "requirements.estimated_duration_hours",
    "deadline": "deadline",
    "max_price": "max_price_usd_per_gpu_hour",
}
INPUT_OF = {api: name for name, api in FIELDS.items()}


PageNo = Annotated[str, Query(alias="page", max_length=9)]


@router.get("/workloads")
def workloads(
    request: Request,
    platform: PlatformDep,
    viewer: ViewerDep,
    status: str = "",
    page_no: PageNo = "1",
) -> HTMLResponse:
    """The viewer's workloads (everyone's for staff), newest first, filtered by state."""
    return page(request, viewer, "workloads.html", **listing(platform, viewer, status, page_no))


@router.get("/dashboard/live/workloads")
def workloads_live(
    request: Request,
    platform: PlatformDep,
    viewer: ViewerDep,
    status: str = "",
    page_no: PageNo = "1",
) -> HTMLResponse:
    context = listing(platform, viewer, status, page_no)
    return page(request, viewer, "_workloads_table.html", **context)


def listing(platform: Platform, viewer: Viewer, status: str, page_text: str) -> dict[str, Any]:
    """A page of workloads; an unknown state or page number is read as none / the first."""
    state = WorkloadState(status) if status in set(WorkloadState) else None
    page_no = max(1, int(page_text)) if page_text.isdigit() else 1
    items, total = platform.workloads.find(
        viewer.principal, state, PAGE_SIZE, (page_no - 1) * PAGE_SIZE
    )
    return {
        "workloads": items,
        "total": total,
        "status": state.value if state else "",
        "states": [s.value for s in WorkloadState],
        "page_no": page_no,
        "pages": max(1, math.ceil(total / PAGE_SIZE)),
    }


@router.get("/workloads/new")
def new_workload(request: Request, platform: PlatformDep, viewer: ViewerDep) -> HTMLResponse:
    return form_page(request, platform, viewer, {"gpu_count": "1"}, {})


@router.post("/workloads", response_model=None)
async def submit_workload(
    request: Request, platform: PlatformDep, posted: PostedDep
) -> HTMLResponse | Response:
    """Validate the form as the API validates its body; the form again with messages if wrong."""
    values = {name: posted.get(name) for name in FIELDS} | {
        "checkpointable": "on" if posted.get("checkpointable") else ""
    }
    try:
        submission = submission_of(posted)
        submitted = await platform.workloads.submit(posted.viewer.principal, submission)
    except pydantic.ValidationError as exc:
        return form_page(request, platform, posted.viewer, values, messages_of(exc))
    except ValidationError as exc:
        errors = {INPUT_OF.get(exc.field, "form"): exc.message}
        return form_page(request, platform, posted.viewer, values, errors)
    return redirect(f"/workloads/{submitted.workload.id}")


def form_page(
    request: Request,
    platform: Platform,
    viewer: Viewer,
    values: dict[str, str],
    errors: dict[str, str],
) -> HTMLResponse:
    customers = platform.identity.customers(viewer.principal) if viewer.admin else []
    return page(
        request,
        viewer,
        "workload_new.html",
        422 if errors else 200,
        values=values,
        errors=errors,
        classes=[c.value for c in WorkloadClass],
        families=sorted(gpu_families()),
        customers=customers,
    )


def submission_of(posted: Posted) -> Submission:
    """The form checked by the API's own schema, as the service's Submission."""
    w = WorkloadIn.model_validate(body_of(posted))
    req = w.requirements
    return Submission(
        workload_class=w.workload_type,
        requirements=Requirements(
            req.gpu_type, req.gpu_count, req.memory_gb, req.estimated_duration_hours
        ),
        customer_id=w.customer_id,
        deadline=w.deadline,
        checkpointable=w.checkpointable,
        max_price_usd_per_gpu_hour=w.max_price_usd_per_gpu_hour,
    )


def body_of(posted: Posted) -> dict[str, Any]:
    """The form as the API's JSON body; inputs left empty are left out (schema defaults)."""
    filled = {name: posted.get(name) for name in FIELDS if posted.get(name)}
    if "deadline" in filled:
        filled["deadline"] = as_utc(filled["deadline"])
    body: dict[str, Any] = {
        "requirements": {},
        "checkpointable": bool(posted.get("checkpointable")),
    }
    for name, value in filled.items():
        path = FIELDS[name].split(".")
        (body["requirements"] if len(path) == 2 else body)[path[-1]] = value
    return body


def as_utc(local: str) -> str:
    """A `datetime-local` input (no zone) read as UTC, as the form says."""
    return local if local.endswith("Z") or "+" in local[10:] else local + "Z"


def messages_of(exc: pydantic.ValidationError) -> dict[str, str]:
    """Pydantic's errors keyed by form input (first message per input)."""
    errors: dict[str, str] = {}
    for e in exc.errors():
        path = ".".join(str(p) for p in e["loc"])
        errors.setdefault(INPUT_OF.get(path, "form"), str(e["msg"]))
    return errors


@router.get("/workloads/{workload_id}")
def workload(
    request: Request, platform: PlatformDep, viewer: ViewerDep, workload_id: str
) -> HTMLResponse:
    """One workload with its progress and state history; 404 when it is not the viewer's."""
    return page(request, viewer, "workload.html", **detail(platform, viewer, workload_id))


@router.get("/dashboard/live/workloads/{workload_id}")
def workload_live(
    request: Request, platform: PlatformDep, viewer: ViewerDep, workload_id: str
) -> HTMLResponse:
    return page(request, viewer, "_workload_live.html", **detail(platform, viewer, workload_id))


def detail(platform: Platform, viewer: Viewer, workload_id: str) -> dict[str, Any]:
    w, history = platform.workloads.get(viewer.principal, workload_id)
    preemptions = platform.workloads.preemptions(viewer.principal, workload_id, 20)
    return {"w": w, "history": list(reversed(history)), "preemptions": preemptions}


@router.post("/workloads/{workload_id}/cancel", response_model=None)
def cancel(platform: PlatformDep, posted: PostedDep, workload_id: str) -> Response:
    """Cancel (idempotent); a workload that has ended answers with a 409 page."""
    platform.workloads.cancel(posted.viewer.principal, workload_id, "cancelled on the dashboard")
    return redirect(f"/workloads/{workload_id}")
