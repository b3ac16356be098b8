"""/api/v1/billing: usage, invoices, and both as CSV."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated

from fastapi import APIRouter, Query, status
from fastapi.responses import PlainTextResponse
from pydantic import BaseModel, ConfigDict, Field

from hcp.billing import BillingPriceSheet, Invoice, UsageRecord
from hcp.domain.errors import Forbidden
from hcp.domain.workloads import WorkloadClass
from hcp.http.deps import CurrentPrincipal, PlatformDep

router = APIRouter(prefix="/api/v1/billing", tags=["billing"])
Month = Annotated[str, Query(pattern=r"^\d{4}-\d{2}$", description="YYYY-MM (UTC)")]
CustomerFilter = Annotated[
    str | None,
    Query(
        max_length=64,
        description="staff: one customer's (default: everyone's); a customer may name only "
        "itself, and gets a 404 for any other",
    ),
]


class CsvResponse(PlainTextResponse):
    media_type = "text/csv"


class UsageOut(BaseModel):
    workload_id: str
    customer_id: str
    workload_type: str
    gpu_type: str
    tier: str
    interval_start: datetime
    interval_end: datetime
    gpu_hours: Decimal
    energy_kwh: Decimal
    rt_price_usd_per_mwh: Decimal | None
    energy_source: str


class UsageList(BaseModel):
    month: str
    usage: list[UsageOut]
    gpu_hours: Decimal
    energy_kwh: Decimal


class InvoiceLineOut(BaseModel):
    description: str
    quantity: Decimal
    unit: str
    unit_price: Decimal
    amount: Decimal
    late_usage_month: str | None = Field(
        default=None,
        description="on a line billing late usage (usage of an earlier month metered after "
        "that month's final invoice), the month it ran in (YYYY-MM); null on the lines of the "
        "invoice's own month",
    )


class InvoiceOut(BaseModel):
    invoice_id: str
    customer_id: str
    month: str
    currency: str = "USD"
    total: Decimal
    issued_at: datetime
    final: bool = Field(
        description="issued once its month had ended: never changed again (usage of its month "
        "metered later is billed on a later invoice, as late usage); false: provisional, the "
        "month's usage may still grow and issuing it again after the month replaces it"
    )
    lines: list[InvoiceLineOut]


class PriceOut(BaseModel):
    workload_type: WorkloadClass
    gpu_type: str
    usd_per_gpu_hour: Decimal


class PriceIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    workload_type: WorkloadClass
    gpu_type: str = Field(..., min_length=1, max_length=32)
    usd_per_gpu_hour: Decimal = Field(..., gt=0, le=10_000, decimal_places=4)


@router.get("/prices", response_model=list[PriceOut])
def price_sheet(platform: PlatformDep, _caller: CurrentPrincipal) -> list[PriceOut]:
    """Standard list prices, USD per GPU-hour (the interruptible tier is priced off these and
    the real-time electricity price of each interval)."""
    return prices_out(platform.billing.sheet)


@router.put("/prices", response_model=list[PriceOut])
def set_price(body: PriceIn, platform: PlatformDep, caller: CurrentPrincipal) -> list[PriceOut]:
    """Set one list price (admins only), in force from now on: usage metered before it keeps the
    price it ran at, so invoices of past months come out the same when rebuilt."""
    sheet = platform.billing.set_price(
        caller, body.workload_type, body.gpu_type, body.usd_per_gpu_hour
    )
    return prices_out(sheet)


def prices_out(sheet: BillingPriceSheet) -> list[PriceOut]:
    return [
        PriceOut(workload_type=c, gpu_type=family, usd_per_gpu_hour=usd)
        for c, by_family in sheet.usd_per_gpu_hour.items()
        for family, usd in sorted(by_family.items())
    ]


@router.get("/usage", response_model=UsageList)
def usage(
    platform: PlatformDep,
    caller: CurrentPrincipal,
    month: Month,
    customer_id: CustomerFilter = None,
) -> UsageList:
    """Metered usage of one month: GPU-hours and energy per workload and interval."""
    records = platform.billing.usage(caller, month, customer_id)
    return UsageList(
        month=month,
        usage=[usage_out(r) for r in records],
        gpu_hours=sum((r.gpu_hours for r in records), Decimal(0)),
        energy_kwh=sum((r.energy_kwh for r in records), Decimal(0)),
    )


@router.get("/usage.csv", response_class=CsvResponse)
def usage_csv(
    platform: PlatformDep,
    caller: CurrentPrincipal,
    month: Month,
    customer_id: CustomerFilter = None,
) -> PlainTextResponse:
    """The same usage as CSV."""
    body = platform.billing.usage_csv(caller, month, customer_id)
    return _csv(body, f"usage-{month}.csv")


@router.get("/invoices", response_model=list[InvoiceOut])
def invoices(platform: PlatformDep, caller: CurrentPrincipal) -> list[InvoiceOut]:
    """Invoices, newest month first (a customer's own only)."""
    return [invoice_out(i) for i in platform.billing.invoices(caller)]


@router.post("/invoices", status_code=status.HTTP_201_CREATED, response_model=list[InvoiceOut])
def issue_invoices(
    platform: PlatformDep, caller: CurrentPrincipal, month: Month
) -> list[InvoiceOut]:
    """Issue every customer's invoice for `month` from stored usage (admins only):
    reproducible, the same usage gives the same invoice. A provisional invoice is rebuilt, or
    replaced by the final one once the month has ended; a final invoice is returned as it is
    (its `issued_at` says when it was issued), never rebuilt. Usage of an earlier month metered
    after that month's final invoice is billed here, on lines of its own (`late_usage_month`)."""
    if not caller.manages_users:
        raise Forbidden("only an admin may issue invoices")
    return [invoice_out(i) for i in platform.billing.issue_all(month)]


@router.get("/invoices/{invoice_id}.csv", response_class=CsvResponse)
def invoice_csv(
    invoice_id: str, platform: PlatformDep, caller: CurrentPrincipal
) -> PlainTextResponse:
    """One invoice as CSV."""
    return _csv(platform.billing.invoice_csv(caller, invoice_id), f"{invoice_id}.csv")


@router.get("/invoices/{invoice_id}", response_model=InvoiceOut)
def invoice(invoice_id: str, platform: PlatformDep, caller: CurrentPrincipal) -> InvoiceOut:
    """One invoice with its lines; 404 when it is another customer's."""
    return invoice_out(platform.billing.invoice(caller, invoice_id))


def _csv(body: str, filename: str) -> CsvResponse:
    headers = {"Content-Disposition": f'attachment; filename="{filename}"'}
    return CsvResponse(body, headers=headers)


def usage_out(r: UsageRecord) -> UsageOut:
    return UsageOut(
        workload_id=r.workload_id,
        customer_id=r.customer_id,
        workload_type=r.workload_class.value,
        gpu_type=r.gpu_family,
        tier=r.tier.value,
        interval_start=r.interval_start,
        interval_end=r.interval_end,
        gpu_hours=r.gpu_hours,
        energy_kwh=r.energy_kwh,
        rt_price_usd_per_mwh=r.rt_price_usd_per_mwh,
        energy_source=r.energy_source.value,
    )


def invoice_out(i: Invoice) -> InvoiceOut:
    return InvoiceOut(
        invoice_id=i.id,
        customer_id=i.customer_id,
        month=i.month,
        total=i.total,
        issued_at=i.issued_at,
        final=i.final,
        lines=[
            InvoiceLineOut(
                description=li.description,
                quantity=li.quantity,
                unit=li.unit,
                unit_price=li.unit_price,
                amount=li.amount,
                late_usage_month=li.late_usage_month,
            )
            for li in i.lines
        ],
    )
