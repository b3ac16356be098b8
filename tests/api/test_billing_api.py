"""Billing endpoints: scope per customer, admin-only issuing, clear errors."""

from __future__ import annotations

import threading
from datetime import timedelta
from decimal import Decimal

import pytest

from hcp.billing import Tier, UsageRecord, build_invoice, parse_month
from hcp.domain.identity import Principal, Role
from hcp.domain.workloads import (
    Requirements,
    StateChange,
    Workload,
    WorkloadClass,
    WorkloadEvent,
    WorkloadState,
)
from hcp.http.dashboard.web import sources_of
from tests.api.conftest import START, Api
from tests.api.test_dashboard_pages import login


def store_usage(
    api: Api, customer_id: str, gpu_hours: str, max_price: Decimal | None = None
) -> None:
    """A completed workload of `customer_id` with one stored usage record."""
    w = Workload(
        id=f"w-{customer_id}",
        max_price_usd_per_gpu_hour=max_price,
        customer_id=customer_id,
        workload_class=WorkloadClass.AI_TRAINING,
        state=WorkloadState.COMPLETED,
        requirements=Requirements("H100", 1),
        submitted_at=START,
        updated_at=START,
    )
    record = UsageRecord(
        w.id,
        customer_id,
        WorkloadClass.AI_TRAINING,
        "H100",
        Tier.STANDARD,
        START,
        START + timedelta(hours=1),
        Decimal(gpu_hours),
        Decimal("0.700000"),
    )
    with api.runtime.unit_of_work() as uow:
        uow.workloads.add(
            w, StateChange(w.id, START, WorkloadEvent.SUBMIT, None, WorkloadState.QUEUED)
        )
        uow.billing.add_usage([record])
        uow.commit()


def test_customers_see_only_their_own_usage_and_invoices(api: Api) -> None:
    other = api.new_customer("cust-002")
    store_usage(api, "cust-001", "1.000000")
    store_usage(api, "cust-002", "3.000000")
    month = START.strftime("%Y-%m")
    issued = api.client.post(f"/api/v1/billing/invoices?month={month}", headers=api.admin).json()
    assert {i["customer_id"]: i["total"] for i in issued} == {
        "cust-001": "2.25",
        "cust-002": "6.75",
    }

    mine = api.client.get(f"/api/v1/billing/usage?month={month}", headers=api.customer).json()
    assert [u["customer_id"] for u in mine["usage"]] == ["cust-001"]
    for path in ("usage", "usage.csv"):  # another's: none such, not the caller's own
        sneaky = f"/api/v1/billing/{path}?month={month}&customer_id=cust-002"
        refused = api.client.get(sneaky, headers=api.customer)
        assert refused.status_code == 404, path
        assert "cust-002" in refused.json()["message"] and "1.000000" not in refused.text
    named = f"/api/v1/billing/usage?month={month}&customer_id=cust-001"
    assert [
        u["customer_id"] for u in api.client.get(named, headers=api.customer).json()["usage"]
    ] == ["cust-001"]
    invoices = api.client.get("/api/v1/billing/invoices", headers=other).json()
    assert [i["customer_id"] for i in invoices] == ["cust-002"]
    theirs = f"/api/v1/billing/invoices/inv-{month}-cust-002"
    assert api.client.get(theirs, headers=api.customer).status_code == 404
    assert api.client.get(theirs + ".csv", headers=api.customer).status_code == 404
    assert api.client.get(theirs, headers=other).json()["total"] == "6.75"


def test_only_admins_issue_invoices_and_months_are_checked(api: Api) -> None:
    issue = api.client.post("/api/v1/billing/invoices?month=2025-06", headers=api.customer)
    assert issue.status_code == 403
    bad = api.client.get("/api/v1/billing/usage?month=2025-13", headers=api.customer)
    assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "month"
    missing = api.client.get("/api/v1/billing/usage", headers=api.customer)
    assert missing.status_code == 422 and missing.json()["fields"][0]["field"] == "month"
    empty = api.client.post("/api/v1/billing/invoices?month=2030-01", headers=api.admin)
    assert empty.status_code == 201 and empty.json() == []


def test_usage_csv_downloads(api: Api) -> None:
    store_usage(api, "cust-001", "1.500000")
    month = START.strftime("%Y-%m")
    response = api.client.get(f"/api/v1/billing/usage.csv?month={month}", headers=api.customer)
    assert response.status_code == 200
    assert response.headers["content-disposition"] == f'attachment; filename="usage-{month}.csv"'
    header, row = response.text.strip().splitlines()
    assert "gpu_hours" in header and "1.500000" in row


def test_admins_set_list_prices_and_invoices_use_them(api: Api) -> None:
    store_usage(api, "cust-001", "2.000000")
    change = {"workload_type": "ai_training", "gpu_type": "H100", "usd_per_gpu_hour": "3.1"}
    assert (
        api.client.put("/api/v1/billing/prices", json=change, headers=api.customer).status_code
        == 403
    )
    updated = api.client.put("/api/v1/billing/prices", json=change, headers=api.admin)
    assert updated.status_code == 200
    row = {"workload_type": "ai_training", "gpu_type": "H100", "usd_per_gpu_hour": "3.1000"}
    assert row in updated.json()
    assert row in api.client.get("/api/v1/billing/prices", headers=api.customer).json()
    month = START.strftime("%Y-%m")
    issued = api.client.post(f"/api/v1/billing/invoices?month={month}", headers=api.admin).json()
    assert issued[0]["total"] == "6.20"  # 2 GPU-hours of H100 training at the new $3.10
    unknown = api.client.put(
        "/api/v1/billing/prices", json={**change, "gpu_type": "TPU"}, headers=api.admin
    )
    assert unknown.status_code == 422 and unknown.json()["fields"][0]["field"] == "gpu_type"
    negative = api.client.put(
        "/api/v1/billing/prices", json={**change, "usd_per_gpu_hour": "-1"}, headers=api.admin
    )
    assert negative.status_code == 422


def test_the_dashboard_spend_is_what_the_invoice_bills(api: Api) -> None:
    """A workload whose customer agreed to at most 2.00 USD a GPU-hour of H100 training (list
    2.25): the invoice bills 2 GPU-hours at 2.00, and the dashboard's spend so far said 4.50."""
    store_usage(api, "cust-001", "2.000000", max_price=Decimal("2.00"))
    month = START.strftime("%Y-%m")
    issued = api.client.post(f"/api/v1/billing/invoices?month={month}", headers=api.admin).json()
    assert issued[0]["total"] == "4.00"
    platform = api.runtime.platform
    customer = Principal(key_id="k", role=Role.CUSTOMER, customer_id="cust-001")
    view = platform.dashboard.billing(customer, month, sources_of(platform))
    assert view.usage.data is not None
    assert view.usage.data.charges.usd == Decimal("4.00")
    api.clock.advance(timedelta(hours=1))
    overview = platform.dashboard.customer(customer, sources_of(platform))
    assert overview.spend.data is not None and overview.spend.data.usd == Decimal("4.00")


def test_staff_asking_for_an_unknown_customers_usage_get_a_404_naming_it(api: Api) -> None:
    """A mistyped customer id looked like a customer without usage (200, empty)."""
    store_usage(api, "cust-001", "1.000000")
    month = START.strftime("%Y-%m")
    for path in ("usage", "usage.csv"):
        url = f"/api/v1/billing/{path}?month={month}&customer_id=cust-00l"
        response = api.client.get(url, headers=api.admin)
        assert response.status_code == 404, path
        assert "cust-00l" in response.text
    known = f"/api/v1/billing/usage?month={month}&customer_id=cust-001"
    assert len(api.client.get(known, headers=api.admin).json()["usage"]) == 1


@pytest.mark.parametrize("issued_before", [False, True], ids=["new", "reissued"])
def test_an_invoice_issued_twice_at_once_is_issued_once(api: Api, issued_before: bool) -> None:
    """Two issues of one month raced (a double click, the CLI while an admin clicked): the
    second inserted the invoice the first had just stored, and failed on its key (a 500);
    rebuilding one issued before, each kept the other's lines and added its own."""
    store_usage(api, "cust-001", "2.000000")
    month = START.strftime("%Y-%m")
    billing = api.runtime.platform.billing
    if issued_before:
        billing.issue("cust-001", month)
    with api.runtime.unit_of_work() as uow:
        usage = uow.billing.usage(*parse_month(month))
    expected = build_invoice("cust-001", month, usage, billing.history)
    outcome: list[object] = []

    def issue() -> None:
        try:
            outcome.append(billing.issue("cust-001", month))
        except Exception as error:  # what the caller would get
            outcome.append(error)

    with api.runtime.unit_of_work() as racing:
        racing.billing.save_invoice(expected, START)  # the first issue's, not committed yet
        second = threading.Thread(target=issue)
        second.start()
        second.join(timeout=1.0)
        racing.commit()
    second.join(timeout=30)
    assert outcome == [expected]
    shown = api.client.get(f"/api/v1/billing/invoices/{expected.id}", headers=api.customer)
    assert shown.status_code == 200 and shown.json()["total"] == "4.50"
    assert len(shown.json()["lines"]) == 1


def test_an_issue_rolled_back_leaves_no_invoice(api: Api) -> None:
    """Storing an invoice is all or nothing, with the racing issue's row held the same way."""
    store_usage(api, "cust-001", "2.000000")
    month = START.strftime("%Y-%m")
    with api.runtime.unit_of_work() as uow:
        usage = uow.billing.usage(*parse_month(month))
    invoice = build_invoice("cust-001", month, usage, api.runtime.platform.billing.history)
    with api.runtime.unit_of_work() as uow:
        uow.billing.save_invoice(invoice, START)
        uow.rollback()
    with api.runtime.unit_of_work() as uow:
        assert uow.billing.invoice(invoice.id) is None


def test_an_invoice_issued_before_its_month_ends_is_provisional_until_issued_after(
    api: Api,
) -> None:
    store_usage(api, "cust-001", "1.000000")
    month = START.strftime("%Y-%m")
    url = f"/api/v1/billing/invoices?month={month}"
    early = api.client.post(url, headers=api.admin).json()
    assert [(i["final"], i["issued_at"][:16]) for i in early] == [(False, "2025-06-01T12:00")]
    shown = api.client.get(f"/api/v1/billing/invoices/inv-{month}-cust-001", headers=api.customer)
    assert shown.json()["final"] is False
    login(api, "admin")
    page = api.client.get(f"/billing?month={month}")
    assert page.status_code == 200 and "provisional" in page.text

    _, month_end = parse_month(month)
    api.clock.advance(month_end - START + timedelta(minutes=5))
    later = api.client.post(url, headers=api.admin).json()
    assert [(i["final"], i["issued_at"][:16]) for i in later] == [(True, "2025-07-01T00:05")]
    assert [i["total"] for i in later] == [i["total"] for i in early]
    listed = api.client.get("/api/v1/billing/invoices", headers=api.customer).json()
    assert [(i["invoice_id"], i["final"]) for i in listed] == [(f"inv-{month}-cust-001", True)]
    login(api, "admin")  # the first session expired meanwhile
    page = api.client.get(f"/billing?month={month}")
    assert f"inv-{month}-cust-001" in page.text and "provisional" not in page.text
