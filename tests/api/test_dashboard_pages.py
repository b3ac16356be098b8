"""Dashboard pages without a browser: login and logout, CSRF, redirects, another customer's
workload, form validation, empty states; and the pure chart, power and profit arithmetic."""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from hcp.config import DEMO_KEYS_FILE
from hcp.domain.fleet import Site
from hcp.domain.plans import Allocation, SitePlan
from hcp.domain.telemetry import Sample
from hcp.http.dashboard.charts import Series, Step, nice_ticks, resample, stacked_steps, time_ticks
from hcp.http.dashboard.present import metric_chart
from hcp.http.dashboard.web import COOKIE, sources_of
from hcp.services.dashboard import (
    CURTAILED,
    MetricSeries,
    fleet_rows,
    plan_spans,
    power_by_use,
    profit_usd,
    use_of,
)
from tests.api.conftest import START, Api

T0 = datetime(2025, 6, 1, 0, 0, tzinfo=UTC)
CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def credentials(api: Api) -> dict[str, str]:
    data: dict[str, str] = json.loads((api.runtime.settings.var_dir / DEMO_KEYS_FILE).read_text())
    return data


def login(api: Api, who: str) -> str:
    """Log the test client in as the demo `who`; returns the session's CSRF token."""
    creds = credentials(api)
    form = {"email": creds[f"{who}_email"], "password": creds[f"{who}_password"]}
    response = api.client.post("/login", data=form, follow_redirects=False)
    assert response.status_code == 303, response.text
    return csrf_of(api.client.get("/settings").text)


def csrf_of(html: str) -> str:
    match = CSRF.search(html)
    assert match is not None, "no CSRF token on the page"
    return match[1]


def submit(api: Api, token: str, **fields: str) -> httpx.Response:
    form = {"csrf_token": token, "workload_type": "ai_training", "gpu_count": "1", **fields}
    return api.client.post("/workloads", data=form, follow_redirects=False)


# --- sessions -------------------------------------------------------------------------------


def test_every_page_redirects_to_login_and_comes_back(api: Api) -> None:
    response = api.client.get("/workloads?status=queued", follow_redirects=False)
    assert response.status_code == 303
    assert response.headers["location"] == "/login?next=%2Fworkloads%3Fstatus%3Dqueued"
    creds = credentials(api)
    back = api.client.post(
        "/login",
        data={
            "email": creds["admin_email"],
            "password": creds["admin_password"],
            "next": "/workloads?status=queued",
        },
        follow_redirects=False,
    )
    assert back.headers["location"] == "/workloads?status=queued"
    assert api.client.get("/", follow_redirects=False).headers["location"] == "/dashboard"


def test_login_sets_a_strict_cookie_and_logout_ends_the_session(api: Api) -> None:
    creds = credentials(api)
    wrong = api.client.post("/login", data={"email": creds["admin_email"], "password": "nope"})
    assert wrong.status_code == 401
    assert "wrong email or password" in wrong.text
    assert COOKIE not in api.client.cookies

    token = login(api, "admin")
    cookie = api.client.cookies[COOKIE]
    page = api.client.get("/dashboard")
    assert page.status_code == 200 and "Site overview" in page.text
    assert page.headers["cache-control"] == "no-store"
    assert "script-src 'self'" in page.headers["content-security-policy"]

    out = api.client.post("/logout", data={"csrf_token": token}, follow_redirects=False)
    assert out.headers["location"] == "/login"
    api.client.cookies.set(COOKIE, cookie)  # the old cookie is dead on the server too
    assert api.client.get("/dashboard", follow_redirects=False).status_code == 303


def test_the_cookie_is_http_only_same_site_lax_and_secure_in_production(api: Api) -> None:
    creds = credentials(api)
    form = {"email": creds["customer_email"], "password": creds["customer_password"]}
    plain = api.client.post("/login", data=form, follow_redirects=False)
    header = plain.headers["set-cookie"]
    assert "HttpOnly" in header and "SameSite=lax" in header and "Secure" not in header
    api.runtime.platform.dashboard.secure_cookies = True
    secure = api.client.post("/login", data=form, follow_redirects=False)
    assert "Secure" in secure.headers["set-cookie"]


def test_login_never_redirects_off_the_site(api: Api) -> None:
    creds = credentials(api)
    form = {"email": creds["admin_email"], "password": creds["admin_password"]}
    for target in ("//evil.example/x", "https://evil.example/", "/\\evil.example"):
        response = api.client.post("/login", data={**form, "next": target}, follow_redirects=False)
        assert response.headers["location"] == "/dashboard"


def test_a_live_fragment_without_a_session_answers_401(api: Api) -> None:
    response = api.client.get("/dashboard/live/overview", headers={"X-HCP-Live": "1"})
    assert response.status_code == 401


def test_forms_without_the_sessions_csrf_token_are_refused(api: Api) -> None:
    login(api, "customer")
    for token in ("", "forged"):
        refused = submit(api, token)
        assert refused.status_code == 403
        assert "reload" in refused.text
    assert api.client.post("/logout", data={}).status_code == 403
    assert "No workloads yet" in api.client.get("/workloads").text


# --- workloads ------------------------------------------------------------------------------


def test_another_customers_workload_page_answers_404(api: Api) -> None:
    other = api.new_customer("cust-002")
    body = {"workload_type": "ai_training", "requirements": {"gpu_count": 1}}
    theirs = api.client.post("/api/v1/workloads", json=body, headers=other).json()["workload_id"]

    token = login(api, "customer")
    page = api.client.get(f"/workloads/{theirs}")
    assert page.status_code == 404
    assert page.headers["content-type"].startswith("text/html")
    assert "not found" in page.text
    assert api.client.get(f"/dashboard/live/workloads/{theirs}").status_code == 404
    cancel = api.client.post(f"/workloads/{theirs}/cancel", data={"csrf_token": token})
    assert cancel.status_code == 404
    still = api.client.get(f"/api/v1/workloads/{theirs}", headers=other).json()
    assert still["status"] == "queued"
    assert theirs not in api.client.get("/workloads").text


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"gpu_count": "0"}, "gpu_count", "greater than or equal to 1"),
        ({"gpu_count": "many"}, "gpu_count", "valid integer"),
        ({"gpu_count": "500"}, "gpu_count", "exceeds the 10"),
        ({"gpu_type": "Z9"}, "gpu_type", "unknown GPU type"),
        ({"workload_type": "mining"}, "workload_type", "Input should be"),
        ({"deadline": "2020-01-01T00:00"}, "deadline", "must be in the future"),
        ({"estimated_hours": "-1"}, "estimated_hours", "greater than 0"),
    ],
)
def test_the_workload_form_shows_what_is_wrong_beside_the_field(
    api: Api, fields: dict[str, str], field: str, message: str
) -> None:
    token = login(api, "customer")
    response = submit(api, token, **fields)
    assert response.status_code == 422
    html = response.text
    error = re.search(rf'id="{field}-error" role="alert">([^<]*)<', html)
    assert error is not None and message in error[1], html
    assert "was not submitted" in html
    for name, value in fields.items():  # what was typed is kept
        if name not in ("workload_type", "gpu_type"):  # a select keeps known values only
            assert f'value="{value}"' in html


def test_a_submitted_workload_shows_its_history_and_can_be_cancelled(api: Api) -> None:
    token = login(api, "customer")
    response = submit(api, token, gpu_count="2", estimated_hours="1.5", checkpointable="on")
    assert response.status_code == 303
    url = response.headers["location"]
    page = api.client.get(url)
    assert 'class="state state-queued"' in page.text and "submit:" in page.text
    assert "2 × any" in page.text
    assert 'data-testid="workload-checkpoint">none yet' in page.text

    api.client.post(f"{url}/cancel", data={"csrf_token": token})
    live = api.client.get(url.replace("/workloads/", "/dashboard/live/workloads/"))
    assert 'data-testid="workload-state"><span class="state state-cancelled"' in live.text
    assert "cancelled on the dashboard" in live.text
    listed = api.client.get("/workloads?status=cancelled")
    assert url.rsplit("/", 1)[1][:8] in listed.text


def test_an_admin_submits_for_a_customer_it_names(api: Api) -> None:
    token = login(api, "admin")
    missing = submit(api, token)
    assert missing.status_code == 422
    assert "required when an admin key submits" in missing.text
    named = submit(api, token, customer_id="cust-001")
    assert named.status_code == 303


# --- dashboards, resources, billing, settings -----------------------------------------------


def test_the_admin_dashboard_says_what_is_missing_before_the_first_tick(api: Api) -> None:
    login(api, "admin")
    page = api.client.get("/dashboard").text
    assert "No plan yet" in page
    assert "No plans in the last 24 hours yet" in page
    assert "HB_WEST" in page  # the price recorded by the fixture
    assert "S21" in page and "H100 SXM" in page  # the fleet table


def test_the_admin_dashboard_draws_power_by_use_from_the_plans(api: Api) -> None:
    site = api.runtime.platform.fleet.sites()[0]
    with api.runtime.unit_of_work() as uow:
        for i, sleeping in enumerate((0, 20, 50)):
            at = START - timedelta(minutes=15 - 5 * i)
            uow.plans.add(plan(site.id, at, sleeping, profit_per_hour=12.0))
        uow.commit()
    api.clock.advance(timedelta(minutes=5))
    login(api, "admin")
    live = api.client.get("/dashboard/live/overview").text
    assert live.count('class="area"') == 3  # mining, GPU workloads, curtailed
    assert "S21 stock" in live and "curtailed" in live and "site limit 1 MW" in live
    assert "$4.00" in live  # 12 $/h over the 20 minutes the plans were in force


def test_customers_see_their_own_overview_and_no_fleet(api: Api) -> None:
    token = login(api, "customer")
    empty = api.client.get("/dashboard").text
    assert "You have no workloads yet" in empty
    submit(api, token)
    live = api.client.get("/dashboard/live/overview").text
    assert 'class="state state-queued"' in live
    assert api.client.get("/resources").status_code == 403
    assert "Resources" not in api.client.get("/dashboard").text.split("<main>")[0]


def test_resources_filter_by_model_and_show_a_device(api: Api) -> None:
    login(api, "admin")
    gpus = api.client.get("/resources?model=H100+SXM").text
    assert gpus.count('href="/resources/site-west-1-gpu-') == 10
    assert "site-west-1-asic-" not in gpus
    nothing = api.client.get("/resources?state=melting").text
    assert "No device matches these filters" in nothing
    device = api.client.get("/resources/site-west-1-asic-00001?window=6h")
    assert device.status_code == 200 and "S21 (asic)" in device.text
    assert api.client.get("/resources/no-such-device").status_code == 404


def test_a_device_in_maintenance_is_marked_with_its_reason(api: Api) -> None:
    put = api.client.put(
        "/api/v1/resources/site-west-1-asic-00002/maintenance",
        json={"reason": "fan <2> swap"},
        headers=api.admin,
    )
    assert put.status_code == 200
    login(api, "admin")
    listing = api.client.get("/resources?model=S21").text
    assert listing.count('class="maintenance"') == 1
    assert 'title="fan &lt;2&gt; swap">maintenance</span>' in listing
    device = api.client.get("/resources/site-west-1-asic-00002").text
    assert '<span class="maintenance">fan &lt;2&gt; swap</span>' in device
    assert 'class="maintenance"' not in api.client.get("/resources/site-west-1-asic-00001").text


def test_staff_put_a_device_in_maintenance_and_back_from_its_page(api: Api) -> None:
    token = login(api, "admin")
    url = "/resources/site-west-1-gpu-00003"
    assert "Put in maintenance" in api.client.get(url).text
    blank = api.client.post(f"{url}/maintenance", data={"csrf_token": token, "reason": "  "})
    assert blank.status_code == 422
    assert "say why the device goes into maintenance" in blank.text
    forged = api.client.post(f"{url}/maintenance", data={"csrf_token": "x", "reason": "r"})
    assert forged.status_code == 403
    done = api.client.post(
        f"{url}/maintenance",
        data={"csrf_token": token, "reason": "reseat riser"},
        follow_redirects=False,
    )
    assert done.status_code == 303 and done.headers["location"] == url
    shown = api.client.get(url).text
    assert "reseat riser" in shown and "Back in service" in shown
    assert "It takes no new workload" in shown
    api_view = api.client.get("/api/v1/resources/site-west-1-gpu-00003", headers=api.admin)
    assert api_view.json()["maintenance"]["reason"] == "reseat riser"
    back = api.client.post(f"{url}/maintenance/end", data={"csrf_token": token})
    assert back.status_code == 200 and "Put in maintenance" in back.text  # redirect followed
    api_view = api.client.get("/api/v1/resources/site-west-1-gpu-00003", headers=api.admin)
    assert api_view.json()["maintenance"] is None


def test_customers_cannot_reach_the_maintenance_forms(api: Api) -> None:
    token = login(api, "customer")
    url = "/resources/site-west-1-gpu-00003/maintenance"
    refused = api.client.post(url, data={"csrf_token": token, "reason": "mine"})
    assert refused.status_code == 403
    api_view = api.client.get("/api/v1/resources/site-west-1-gpu-00003", headers=api.admin)
    assert api_view.json()["maintenance"] is None


def test_billing_shows_the_month_and_exports_csv(api: Api) -> None:
    login(api, "customer")
    page = api.client.get("/billing?month=2025-06")
    assert page.status_code == 200
    assert "Billing · 2025-06" in page.text and "2025-05" in page.text and "2025-07" in page.text
    csv = api.client.get("/billing/usage-2025-06.csv")
    if hasattr(api.runtime.platform, "billing"):
        assert csv.status_code == 200
        assert csv.headers["content-type"].startswith("text/csv")
        assert csv.text.startswith("workload_id,")
    assert api.client.get("/billing?month=June").status_code == 422
    assert api.client.get("/billing/invoices/inv-2025-06-cust-002.csv").status_code == 404
    # The month before year 1's January does not exist (a 500 before).
    assert api.client.get("/billing?month=0001-01").status_code == 422
    assert api.client.get("/billing?month=0002-01").status_code == 200


@pytest.mark.parametrize(
    ("header", "value", "status"),
    [
        ("origin", "https://evil.example", 403),
        ("origin", "null", 403),
        ("referer", "https://evil.example/page", 403),
        ("origin", "http://testserver", 303),
        ("referer", "http://testserver/login", 303),
    ],
)
def test_a_login_posted_from_another_site_is_refused(
    api: Api, header: str, value: str, status: int
) -> None:
    """Login CSRF: a page elsewhere could log the browser into its author's account, and the
    victim's workloads would be filed under it."""
    creds = credentials(api)
    form = {"email": creds["customer_email"], "password": creds["customer_password"]}
    response = api.client.post("/login", data=form, headers={header: value}, follow_redirects=False)
    assert response.status_code == status
    assert ("hcp_session" in response.headers.get("set-cookie", "")) == (status == 303)


def test_settings_create_a_key_shown_once_and_revoke_it(api: Api) -> None:
    token = login(api, "customer")
    created = api.client.post("/settings/keys", data={"csrf_token": token, "name": "laptop"})
    assert created.status_code == 201
    secret = re.search(r'data-testid="new-secret">(hcp_[^<]+)<', created.text)
    assert secret is not None
    auth = {"Authorization": f"Bearer {secret[1]}"}
    assert api.client.get("/api/v1/workloads", headers=auth).status_code == 200
    assert secret[1] not in api.client.get("/settings").text

    key_id = re.search(r'action="/settings/keys/([^/]+)/revoke"', api.client.get("/settings").text)
    assert key_id is not None
    api.client.post(f"/settings/keys/{key_id[1]}/revoke", data={"csrf_token": token})
    assert "revoked" in api.client.get("/settings").text
    refused = api.client.post(
        "/settings/keys", data={"csrf_token": token, "name": "x", "role": "admin"}
    )
    assert refused.status_code == 422 and "own customer only" in refused.text


def test_admins_add_users_and_see_the_price_sheet(api: Api) -> None:
    token = login(api, "admin")
    settings = api.client.get("/settings").text
    assert "admin@hcp.local" in settings and "customer@hcp.local" in settings
    assert "ai_inference_realtime" in settings and "$4.0000" in settings
    user = {
        "csrf_token": token,
        "email": "ops@example.com",
        "role": "operator",
        "password": "short",
    }
    short = api.client.post("/settings/users", data=user)
    assert short.status_code == 422 and "at least 10 characters" in short.text
    assert 'value="ops@example.com"' in short.text
    made = api.client.post(
        "/settings/users", data={**user, "password": "a long password"}, follow_redirects=False
    )
    assert made.status_code == 303
    api.client.cookies.clear()
    response = api.client.post(
        "/login", data={"email": "ops@example.com", "password": "a long password"}
    )
    assert "Site overview" in response.text  # an operator sees the site


def test_admins_set_a_price_through_the_form(api: Api) -> None:
    token = login(api, "admin")
    price = {"csrf_token": token, "workload_type": "ai_training", "gpu_type": "A100"}
    bad = api.client.post("/settings/prices", data={**price, "usd_per_gpu_hour": "free"})
    assert bad.status_code == 422 and "usd_per_gpu_hour" in bad.text
    done = api.client.post(
        "/settings/prices", data={**price, "usd_per_gpu_hour": "1.95"}, follow_redirects=False
    )
    assert done.status_code == 303
    assert "$1.9500" in api.client.get("/settings").text
    forged = api.client.post(
        "/settings/prices", data={**price, "csrf_token": "nope", "usd_per_gpu_hour": "9"}
    )
    assert forged.status_code == 403


def test_customers_cannot_reach_the_admin_settings(api: Api) -> None:
    token = login(api, "customer")
    assert "Users" not in api.client.get("/settings").text
    user = {
        "csrf_token": token,
        "email": "x@example.com",
        "role": "admin",
        "password": "a long password",
    }
    assert api.client.post("/settings/users", data=user).status_code == 403
    price = {
        "csrf_token": token,
        "workload_type": "ai_training",
        "gpu_type": "H100",
        "usd_per_gpu_hour": "0.01",
    }
    assert api.client.post("/settings/prices", data=price).status_code == 403


# --- the pure parts -------------------------------------------------------------------------


def plan(
    site_id: str, at: datetime, sleeping: int, profit_per_hour: float = 0.0, gpus: int = 10
) -> SitePlan:
    running = 50 - sleeping
    allocations = (
        Allocation("H100 SXM", "workloads", gpus, gpus * 0.7),
        Allocation("S21", "stock", running, running * 3.5),
        Allocation("S21", "sleep", sleeping, 0.0),
    )
    return SitePlan(
        f"plan-{at:%H%M}", site_id, at, "test", "optimal", None, profit_per_hour, at, allocations
    )


SITE = Site("s", "S", "HB_WEST", capacity_mw=0.2, pue=1.0)


def test_power_by_use_puts_sleeping_miners_into_curtailed_within_the_site_limit() -> None:
    mw = power_by_use(plan("s", T0, sleeping=40), SITE)
    assert mw[use_of("S21", "stock")] == pytest.approx(0.035)
    assert mw[use_of("H100 SXM", "workloads")] == pytest.approx(0.007)
    # 40 x 3.5 kW would be 0.14 MW, but only 0.158 MW is left under the limit
    assert mw[CURTAILED] == pytest.approx(0.14)
    all_asleep = power_by_use(plan("s", T0, sleeping=50, gpus=0), Site("s", "S", "N", 0.1, 1.0))
    assert all_asleep[CURTAILED] == pytest.approx(0.1)


def test_profit_integrates_each_plans_hourly_rate_over_its_span() -> None:
    plans = [plan("s", T0, 0, 10.0), plan("s", T0 + timedelta(minutes=30), 0, 20.0)]
    spans = plan_spans(plans, now=T0 + timedelta(hours=5))
    assert [(s, e) for _, s, e in spans] == [
        (T0, T0 + timedelta(minutes=30)),
        (T0 + timedelta(minutes=30), T0 + timedelta(minutes=90)),  # the last holds an hour
    ]
    assert profit_usd(spans, T0, T0 + timedelta(hours=5)) == pytest.approx(5.0 + 20.0)
    assert profit_usd(spans, T0 + timedelta(minutes=15), T0 + timedelta(minutes=45)) == (
        pytest.approx(2.5 + 5.0)
    )
    assert plan_spans([], T0) == []


def test_nice_ticks_are_round_and_cover_the_range() -> None:
    assert nice_ticks(0, 0.93) == [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]
    assert nice_ticks(-12, 48) == [-20.0, 0.0, 20.0, 40.0, 60.0]
    assert nice_ticks(5, 5) == [4.0, 4.5, 5.0, 5.5, 6.0]


def test_time_ticks_fall_on_round_minutes_and_hours() -> None:
    ticks = time_ticks(T0 + timedelta(minutes=7), T0 + timedelta(minutes=47))
    assert [t.minute for t in ticks] == [10, 20, 30, 40]
    day = time_ticks(T0, T0 + timedelta(hours=24))
    assert [t.hour for t in day] == [0, 6, 12, 18, 0]


def test_stacked_steps_stay_inside_the_plot_and_skip_empty_series() -> None:
    steps = [
        Step(T0 + timedelta(hours=i), T0 + timedelta(hours=i + 1), (1.0, 0.0, 2.0))
        for i in range(3)
    ]
    series = [Series("a", "#000"), Series("b", "#111"), Series("c", "#222")]
    chart = stacked_steps("power", "MW", series, steps, limit=(4.0, "limit"))
    assert [a.label for a in chart.areas] == ["a", "c"]
    numbers = [float(n) for a in chart.areas for n in re.findall(r"[\d.]+", a.d)]
    assert min(numbers) >= chart.top and max(numbers) <= chart.right
    assert chart.guides[0].y < chart.bottom
    assert stacked_steps("power", "MW", series, []).empty


def test_resample_keeps_the_time_weighted_mean() -> None:
    steps = [
        Step(T0, T0 + timedelta(minutes=10), (1.0,)),
        Step(T0 + timedelta(minutes=10), T0 + timedelta(minutes=40), (3.0,)),
        Step(T0 + timedelta(minutes=40), T0 + timedelta(minutes=60), (0.0,)),
    ]
    (merged,) = resample(steps, 1)
    assert (merged.start, merged.end) == (T0, T0 + timedelta(hours=1))
    assert merged.values[0] == pytest.approx((10 + 90) / 60)


def test_password_guessing_is_throttled_per_email(api: Api) -> None:
    wrong = {"email": "admin@hcp.local", "password": "not the password"}
    statuses = [api.client.post("/login", data=wrong).status_code for _ in range(6)]
    assert statuses == [401] * 5 + [429]
    throttled = api.client.post("/login", data=wrong)
    assert throttled.headers["Retry-After"] == "60" and "too many attempts" in throttled.text
    other = api.client.post("/login", data={**wrong, "email": "customer@hcp.local"})
    assert other.status_code == 401  # each email has its own budget
    api.clock.advance(timedelta(minutes=1))
    assert api.client.post("/login", data=wrong).status_code == 401


def test_successful_logins_do_not_use_up_the_attempts(api: Api) -> None:
    for _ in range(8):
        api.client.cookies.clear()
        login(api, "admin")


def test_a_telemetry_chart_breaks_its_line_where_the_device_sent_nothing() -> None:
    """A miner polled every 30 s that did not answer for 20 minutes: the chart shows the
    hole, not a straight line across it as though it had run on meanwhile."""
    times = [T0 + timedelta(seconds=30 * i) for i in range(20)]
    times += [T0 + timedelta(minutes=30, seconds=30 * i) for i in range(20)]
    points = tuple((at, 3000.0 + i, 2990.0, 3010.0 + i) for i, at in enumerate(times))
    chart = metric_chart(MetricSeries("power_w", "Power", "W", points))
    (drawn,) = chart.lines
    assert drawn.d.count("M") == 2  # was one path through the gap
    (band,) = chart.areas
    assert band.d.count("M") == 2 and band.d.count("Z") == 2
    steady = metric_chart(MetricSeries("power_w", "Power", "W", points[:20]))
    assert steady.lines[0].d.count("M") == 1


def test_a_telemetry_chart_spans_its_whole_window_so_a_silent_end_shows(api: Api) -> None:
    """A miner that sent nothing for the last 40 minutes of its 1-hour chart: the line stops
    two thirds of the way short of the right edge, not stretched over the whole width as
    though its last sample were the newest."""
    miner = "site-west-1-asic-00001"
    first = START - timedelta(hours=1)
    api.runtime.platform.telemetry.record(
        [Sample(miner, "power_w", first + timedelta(seconds=30 * i), 3000.0) for i in range(40)]
    )
    platform = api.runtime.platform
    detail = platform.dashboard.device(miner, "1h", sources_of(platform))
    power = next(m for m in detail.metrics.data or [] if m.metric == "power_w")
    chart = metric_chart(power)
    xs = [float(x) for x in re.findall(r"([\d.]+),[\d.]+", chart.lines[0].d)]
    plot = chart.right - chart.left
    assert xs[0] == pytest.approx(chart.left, abs=0.1)
    # Was at the right edge: the chart ended at the last sample, 40 minutes ago.
    assert xs[-1] == pytest.approx(chart.left + plot * (39 * 30) / 3600, abs=0.1)
    assert chart.x_ticks[-1].label == "12:00"  # now, the window's end


def test_devices_that_do_not_answer_count_apart_from_the_power_reported() -> None:
    """A miner cut off from the network may still hash: its draw is unknown, not 0 W."""
    from hcp.domain.devices import DeviceKind
    from hcp.domain.fleet import Device
    from hcp.domain.status import UNREACHABLE

    def miner(i: int, state: str, power_w: float) -> Device:
        return Device(f"m{i}", "s", None, "S21", DeviceKind.ASIC, state, T0, power_w=power_w)

    devices = [miner(0, "mining", 3500.0), miner(1, "sleeping", 25.0), miner(2, UNREACHABLE, 0)]
    (row,), states = fleet_rows(devices)
    assert (row.power_kw, row.unreported, row.total) == (3.525, 1, 3)
    assert UNREACHABLE in states
    (answering,), _ = fleet_rows(devices[:2])
    assert answering.unreported == 0


def test_the_fleet_table_says_how_many_devices_draw_an_unknown_power(api: Api) -> None:
    from hcp.domain.status import asic_status

    with api.runtime.unit_of_work() as uow:
        miners = [d for d in uow.fleet.devices() if d.kind.value == "asic"][:3]
        uow.fleet.update_statuses([asic_status(d.id, None, START, "timed out") for d in miners])
        uow.commit()
    login(api, "admin")
    live = api.client.get("/dashboard/live/overview").text
    assert 'data-testid="unreported-power"' in live and "+ 3 unknown" in live
