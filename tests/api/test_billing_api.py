"""Billing endpoints: scope per customer, admin-only issuing, clear errors."""

from __future__ import annotations

import threading
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from hcp.adapters.db.repositories import SqlBilling
from hcp.billing import Invoice, Tier, UsageRecord, build_invoice, parse_month
from hcp.cli import billing as billing_cli
from hcp.cli.main import app
from hcp.domain.errors import Conflict
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
    # the first issue's, not committed yet while the second runs
    outcome = issue_while_saving(api, expected, START)
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


# --- final invoices and late usage -----------------------------------------------------------

JUNE_END = datetime(2025, 7, 1, tzinfo=UTC)
JULY_END = datetime(2025, 8, 1, tzinfo=UTC)


def store(
    api: Api,
    workload_id: str,
    start: datetime,
    gpu_hours: str,
    max_price: Decimal | None = None,
) -> None:
    """One hour of cust-001's H100 training (list 2.25) metered from `start`, as a meter does
    (its workload stored first when new)."""
    record = UsageRecord(
        workload_id, "cust-001", WorkloadClass.AI_TRAINING, "H100", Tier.STANDARD,
        start, start + timedelta(hours=1), Decimal(gpu_hours), Decimal("0.700000"),
    )  # fmt: skip
    with api.runtime.unit_of_work() as uow:
        if uow.workloads.get(workload_id) is None:
            w = Workload(
                id=workload_id,
                max_price_usd_per_gpu_hour=max_price,
                customer_id="cust-001",
                workload_class=WorkloadClass.AI_TRAINING,
                state=WorkloadState.COMPLETED,
                requirements=Requirements("H100", 1),
                submitted_at=START,
                updated_at=START,
            )
            change = StateChange(w.id, START, WorkloadEvent.SUBMIT, None, WorkloadState.QUEUED)
            uow.workloads.add(w, change)
        uow.billing.add_usage([record])
        uow.commit()


def advance_to(api: Api, at: datetime) -> None:
    api.clock.advance(at - api.clock.now())


def issue(api: Api, month: str) -> list[dict[str, Any]]:
    response = api.client.post(f"/api/v1/billing/invoices?month={month}", headers=api.admin)
    assert response.status_code == 201, response.text
    issued: list[dict[str, Any]] = response.json()
    return issued


def lines_of(invoice: dict[str, Any]) -> list[tuple[str, Decimal, Decimal, str | None]]:
    """(description, quantity, amount, late usage month) of each line."""
    return [
        (li["description"], Decimal(li["quantity"]), Decimal(li["amount"]), li["late_usage_month"])
        for li in invoice["lines"]
    ]


def shown(api: Api, invoice_id: str) -> tuple[dict[str, Any], str]:
    url = f"/api/v1/billing/invoices/{invoice_id}"
    as_json, as_csv = (api.client.get(u, headers=api.customer) for u in (url, url + ".csv"))
    assert as_json.status_code == as_csv.status_code == 200
    body: dict[str, Any] = as_json.json()
    return body, as_csv.text


TRAINING_LINE = "H100 GPU-hours, training, standard"
LATE_JUNE_LINE = f"late usage from 2025-06: {TRAINING_LINE}"


def test_a_final_invoice_is_not_changed_by_usage_metered_after_it(api: Api) -> None:
    """June's final invoice (1 GPU-hour, 2.25) was issued; 2 GPU-hours of June were metered
    after it (a meter that was behind). Issuing June again rebuilt it from the stored usage:
    the invoice a customer may have paid said 6.75 now."""
    store(api, "w-1", START, "1")
    advance_to(api, JUNE_END + timedelta(minutes=5))
    [final] = issue(api, "2025-06")
    assert (final["final"], final["total"]) == (True, "2.25")
    before = shown(api, final["invoice_id"])

    store(api, "w-1", JUNE_END - timedelta(hours=1), "2")
    advance_to(api, JUNE_END + timedelta(days=2))
    assert issue(api, "2025-06") == [final]  # as it is, issued_at included
    assert shown(api, final["invoice_id"]) == before
    billing = api.runtime.platform.billing
    assert billing.issue("cust-001", "2025-06").issued_at == JUNE_END + timedelta(minutes=5)


def test_usage_metered_after_a_final_invoice_is_billed_on_the_next_months_at_its_own_price(
    api: Api,
) -> None:
    """The late June usage is billed on July's invoice, on lines of their own, at June's list
    price (2.25, not the 4.00 set in July) and a late workload's max price (2.00), and once:
    not again on August's."""
    store(api, "w-1", START, "1")
    advance_to(api, JUNE_END + timedelta(minutes=5))
    [june] = issue(api, "2025-06")
    change = {"workload_type": "ai_training", "gpu_type": "H100", "usd_per_gpu_hour": "4"}
    assert api.client.put("/api/v1/billing/prices", json=change, headers=api.admin).is_success
    advance_to(api, JUNE_END + timedelta(days=1))
    store(api, "w-1", JUNE_END - timedelta(hours=2), "2")  # late: June's meter was behind
    store(api, "w-capped", JUNE_END - timedelta(hours=2), "1", max_price=Decimal("2.00"))
    store(api, "w-1", JUNE_END + timedelta(days=1), "1")  # July's own, at 4.00

    advance_to(api, JULY_END + timedelta(minutes=5))
    [july] = issue(api, "2025-07")
    assert july["final"] is True and july["total"] == "10.50"  # 4.00 + 4.50 + 2.00
    assert lines_of(july) == [
        (TRAINING_LINE, Decimal(1), Decimal("4.00"), None),
        (LATE_JUNE_LINE, Decimal(2), Decimal("4.50"), "2025-06"),
        (f"{LATE_JUNE_LINE}, at the workload's max price 2.0000", 1, Decimal("2.00"), "2025-06"),
    ]
    stored, csv_text = shown(api, july["invoice_id"])
    assert stored == july
    assert csv_text.count("late usage from 2025-06: ") == 2
    assert issue(api, "2025-06") == [june]
    assert issue(api, "2025-08") == []  # billed once: nothing late is left for August


def test_a_customer_with_only_late_usage_gets_an_invoice_for_it(api: Api) -> None:
    store(api, "w-1", START, "1")
    advance_to(api, JUNE_END + timedelta(minutes=5))
    issue(api, "2025-06")
    store(api, "w-1", JUNE_END - timedelta(hours=1), "1")
    advance_to(api, JULY_END + timedelta(minutes=5))
    [july] = issue(api, "2025-07")
    assert (july["customer_id"], july["total"]) == ("cust-001", "2.25")
    assert lines_of(july) == [(LATE_JUNE_LINE, Decimal(1), Decimal("2.25"), "2025-06")]
    login(api, "admin")
    page = api.client.get("/billing?month=2025-07")
    assert page.status_code == 200 and "late usage from 2025-06" in page.text


def test_a_provisional_invoice_is_replaced_by_the_final_one_and_late_usage_billed_once(
    api: Api,
) -> None:
    store(api, "w-1", START, "1")
    assert [(i["final"], i["total"]) for i in issue(api, "2025-06")] == [(False, "2.25")]
    advance_to(api, datetime(2025, 6, 20, tzinfo=UTC))
    store(api, "w-1", datetime(2025, 6, 19, tzinfo=UTC), "1")  # June goes on
    advance_to(api, JUNE_END + timedelta(minutes=5))
    [june] = issue(api, "2025-06")
    assert (june["final"], june["total"]) == (True, "4.50")  # the provisional one replaced
    assert lines_of(june) == [(TRAINING_LINE, Decimal(2), Decimal("4.50"), None)]

    store(api, "w-1", JUNE_END - timedelta(hours=1), "1")  # late
    advance_to(api, datetime(2025, 7, 10, tzinfo=UTC))
    [early] = issue(api, "2025-07")
    assert (early["final"], lines_of(early)) == (
        False,
        [(LATE_JUNE_LINE, Decimal(1), Decimal("2.25"), "2025-06")],
    )
    store(api, "w-1", JUNE_END - timedelta(hours=3), "2")  # later still
    advance_to(api, JULY_END + timedelta(minutes=5))
    [july] = issue(api, "2025-07")
    assert (july["final"], july["total"]) == (True, "6.75")
    assert lines_of(july) == [(LATE_JUNE_LINE, Decimal(3), Decimal("6.75"), "2025-06")]

    store(api, "w-1", JUNE_END - timedelta(hours=5), "1")  # after July's final invoice too
    [august] = issue(api, "2025-08")  # provisional: August has not ended
    assert lines_of(august) == [(LATE_JUNE_LINE, Decimal(1), Decimal("2.25"), "2025-06")]
    assert issue(api, "2025-06") == [june] and issue(api, "2025-07") == [july]


def test_usage_metered_while_a_final_invoice_is_issued_is_not_lost(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A meter stores June usage between the issue's read of June and its storing of the final
    invoice: it is on neither, unless the issue is refused and made again."""
    store(api, "w-1", START, "1")
    advance_to(api, JUNE_END + timedelta(minutes=5))
    read = SqlBilling.usage

    def read_then_meter(
        self: SqlBilling, start: datetime, end: datetime, customer_id: str | None = None
    ) -> list[UsageRecord]:
        found = read(self, start, end, customer_id)
        if customer_id is not None:
            monkeypatch.setattr(SqlBilling, "usage", read)
            store(api, "w-1", JUNE_END - timedelta(hours=1), "2")  # in its own transaction
        return found

    monkeypatch.setattr(SqlBilling, "usage", read_then_meter)
    billing = api.runtime.platform.billing
    with pytest.raises(Conflict, match="issue it again"):
        billing.issue("cust-001", "2025-06")
    assert api.client.get("/api/v1/billing/invoices", headers=api.customer).json() == []
    again = billing.issue("cust-001", "2025-06")
    assert again.final and again.total == Decimal("6.75")


def test_a_final_invoice_stored_by_a_racing_issue_is_kept_as_it_is(api: Api) -> None:
    """Two issues of a month that has ended: the first stores the final invoice while the
    second, which read usage metered since, waits; the second replaced it."""
    store(api, "w-1", START, "2")
    advance_to(api, JUNE_END + timedelta(minutes=5))
    billing = api.runtime.platform.billing
    with api.runtime.unit_of_work() as uow:
        usage = uow.billing.usage(*parse_month("2025-06"))
    first = replace(build_invoice("cust-001", "2025-06", usage, billing.history), issued_at=None)
    store(api, "w-1", JUNE_END - timedelta(hours=1), "1")
    outcome = issue_while_saving(api, first, api.clock.now())
    assert outcome == [first]
    [kept] = outcome
    assert isinstance(kept, Invoice) and kept.final and kept.total == Decimal("4.50")


def test_the_cli_says_when_a_final_invoice_is_kept_and_what_late_usage_it_bills(
    api: Api, database_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`hcp billing invoice` on the same database, on the wall clock (June 2025 has ended)."""
    monkeypatch.setattr(billing_cli.console, "width", 200)  # one line per invoice
    env = {"HCP_DATABASE_URL": database_url, "HCP_VAR_DIR": str(tmp_path / "cli")}

    def invoice(month: str) -> str:
        result = CliRunner().invoke(app, ["billing", "invoice", "--month", month], env=env)
        assert result.exit_code == 0, result.output
        return " ".join(result.output.replace("│", " ").split())

    store(api, "w-1", START, "1")
    first = invoice("2025-06")
    assert "inv-2025-06-cust-001 cust-001 1 2.25 final" in first and "unchanged" not in first
    store(api, "w-1", JUNE_END - timedelta(hours=1), "2")
    assert "1 2.25 final, unchanged (issued 20" in invoice("2025-06")
    assert "1 4.50 final; late usage from 2025-06" in invoice("2025-07")


def issue_while_saving(api: Api, invoice: Invoice, at: datetime) -> list[object]:
    """What `BillingService.issue` of `invoice`'s customer and month gives (or raises) when it
    runs while another transaction has stored `invoice` at `at` and not yet committed: it
    waits for that transaction, which commits a second later."""
    outcome: list[object] = []

    def issue() -> None:
        try:
            outcome.append(api.runtime.platform.billing.issue(invoice.customer_id, invoice.month))
        except Exception as error:  # what the caller would get
            outcome.append(error)

    with api.runtime.unit_of_work() as racing:
        assert racing.billing.save_invoice(invoice, at) is None
        second = threading.Thread(target=issue)
        second.start()
        second.join(timeout=1.0)
        racing.commit()
    second.join(timeout=30)
    return outcome
