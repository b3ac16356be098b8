"""The dashboard in a real browser against `hcp up`: both roles, the workload form, live state,
admin charts with data, and another customer's workload out of reach. Each page visited is
saved as a screenshot; the admin dashboard's is also docs/admin-dashboard.png."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import ROOT, Site, publish, screenshot

pytestmark = pytest.mark.e2e
LIVE = 25_000  # ms: the poller refreshes every 5 s and the site ticks every wall second


def test_login_refuses_a_wrong_password(site: Site, page: Page) -> None:
    page.goto(f"{site.url}/dashboard")
    expect(page).to_have_url(re.compile(r"/login\?next=%2Fdashboard$"))
    page.fill("input[name=email]", site.keys["admin_email"])
    page.fill("input[name=password]", "not the password")
    page.click("button[type=submit]")
    expect(page.get_by_role("alert")).to_contain_text("wrong email or password")
    screenshot(page, "login")


def test_admin_sees_the_site_with_live_charts(site: Site, page: Page) -> None:
    site.login(page, "admin")
    expect(page.get_by_role("heading", name=re.compile("Site overview"))).to_be_visible()
    # The chart fills once plans exist; the poller re-renders it without a reload.
    expect(page.locator("[data-testid=power-chart] svg path.area").first).to_be_attached(
        timeout=LIVE
    )
    expect(page.locator("[data-testid=price-chart] svg path.line")).to_be_attached(timeout=LIVE)
    expect(page.locator("[data-testid=tile-electricity] .value")).to_contain_text("$")
    expect(page.locator("[data-testid=fleet] tbody tr")).to_have_count(2)
    expect(page.locator("[data-live-status]")).to_contain_text("refreshed", timeout=LIVE)
    screenshot(page, "admin-dashboard")
    publish(page, "admin-dashboard-viewport", ROOT / "docs" / "admin-dashboard.png")

    for path, name in (
        ("/resources", "resources"),
        ("/resources/site-west-1-asic-00001", "device-asic"),
        ("/resources/site-west-1-gpu-00001", "device-gpu"),
        ("/workloads", "admin-workloads"),
        ("/billing", "admin-billing"),
        ("/settings", "admin-settings"),
    ):
        page.goto(f"{site.url}{path}")
        expect(page.locator("main h1")).to_be_visible()
        screenshot(page, name)


def test_customer_submits_a_workload_and_watches_it_run(site: Site, page: Page) -> None:
    site.login(page, "customer")
    expect(page.get_by_role("heading", name="Your workloads")).to_be_visible()
    screenshot(page, "customer-dashboard")

    page.goto(f"{site.url}/workloads/new")
    page.select_option("select[name=workload_type]", "ai_inference_realtime")
    page.fill("input[name=gpu_count]", "0")
    page.click("button:has-text('Submit')")
    expect(page.locator("#gpu_count-error")).to_contain_text("greater than or equal to 1")
    screenshot(page, "workload-form-errors")

    page.fill("input[name=gpu_count]", "2")
    page.fill("input[name=estimated_hours]", "0.1")
    page.click("button:has-text('Submit')")
    expect(page).to_have_url(re.compile(r"/workloads/[0-9a-f-]{36}$"))
    workload_id = page.url.rsplit("/", 1)[1]
    state = page.locator("[data-testid=workload-state]")
    expect(state).to_have_text(re.compile("queued|scheduled|running|completed"))
    expect(state).to_have_text(re.compile("running|completed"), timeout=LIVE)
    expect(page.locator("[data-testid=history] li").nth(1)).to_be_attached()
    screenshot(page, "workload-detail")

    page.goto(f"{site.url}/workloads")
    expect(page.locator(f"tr[data-workload='{workload_id}']")).to_be_visible()
    screenshot(page, "customer-workloads")
    page.goto(f"{site.url}/dashboard")
    expect(
        page.locator(f"[data-testid=customer-live] tr[data-workload='{workload_id}']")
    ).to_be_visible()
    screenshot(page, "customer-dashboard-with-workload")
    for path, name in (("/billing", "customer-billing"), ("/settings", "customer-settings")):
        page.goto(f"{site.url}{path}")
        expect(page.locator("main h1")).to_be_visible()
        screenshot(page, name)


def test_a_customer_cannot_open_another_customers_workload(site: Site, page: Page) -> None:
    created = site.api("POST", "/api/v1/customers", {"customer_id": "cust-other"})
    assert created.status_code in (201, 422), created.text  # 422: made by an earlier test
    body = {"customer_id": "cust-other", "workload_type": "ai_training"}
    theirs = site.api("POST", "/api/v1/workloads", body).json()["workload_id"]

    site.login(page, "customer")
    response = page.goto(f"{site.url}/workloads/{theirs}")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", name="Not found")).to_be_visible()
    screenshot(page, "not-found")
    page.goto(f"{site.url}/resources")
    expect(page.get_by_role("heading", name="Not allowed")).to_be_visible()


def test_the_dashboard_reads_on_a_phone(site: Site, phone: Page) -> None:
    site.login(phone, "admin")
    expect(phone.locator("[data-testid=power-chart]")).to_be_visible()
    width = phone.evaluate("document.documentElement.scrollWidth")
    assert width <= 390, f"the page is {width} px wide on a 390 px screen"
    screenshot(phone, "admin-dashboard-phone")
