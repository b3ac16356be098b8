"""Keys, users, customers, and who may manage them; revocation, expiry and rate limits."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from hcp.domain.errors import RateLimited
from hcp.services.ratelimit import RateLimiter
from tests.api.conftest import Api


def bearer(secret: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {secret}"}


def test_admin_creates_customer_user_and_key(api: Api) -> None:
    customer = api.client.post(
        "/api/v1/customers", json={"customer_id": "acme", "name": "Acme"}, headers=api.admin
    )
    assert customer.status_code == 201
    user = api.client.post(
        "/api/v1/users",
        json={
            "email": "Ops@Acme.example",
            "role": "customer",
            "customer_id": "acme",
            "password": "correct horse battery",
        },
        headers=api.admin,
    )
    assert user.status_code == 201
    assert user.json()["email"] == "ops@acme.example"
    assert "password" not in user.text
    key = api.client.post(
        "/api/v1/keys",
        json={"name": "ci", "role": "customer", "customer_id": "acme"},
        headers=api.admin,
    )
    assert key.status_code == 201
    secret = key.json()["secret"]
    assert secret.startswith("hcp_") and key.json()["prefix"] == secret[:10]
    listed = api.client.get("/api/v1/keys", headers=bearer(secret)).json()
    assert [k["key_id"] for k in listed] == [key.json()["key_id"]]
    assert "secret" not in listed[0]


def test_customers_manage_only_their_own_keys(api: Api) -> None:
    other = api.new_customer("cust-002")
    mine = api.client.post("/api/v1/keys", json={"name": "mine"}, headers=api.customer)
    assert mine.status_code == 201 and mine.json()["customer_id"] == "cust-001"
    theirs = api.client.post("/api/v1/keys", json={"name": "theirs"}, headers=other).json()
    for body in ({"name": "x", "role": "admin"}, {"name": "x", "customer_id": "cust-002"}):
        response = api.client.post("/api/v1/keys", json=body, headers=api.customer)
        assert response.status_code == 403, body
    gone = api.client.delete(f"/api/v1/keys/{theirs['key_id']}", headers=api.customer)
    assert gone.status_code == 404
    visible = {
        k["customer_id"] for k in api.client.get("/api/v1/keys", headers=api.customer).json()
    }
    assert visible == {"cust-001"}


def test_only_admins_manage_users_and_customers(api: Api) -> None:
    operator = api.client.post(
        "/api/v1/keys", json={"name": "night shift", "role": "operator"}, headers=api.admin
    ).json()["secret"]
    for caller in (api.customer, bearer(operator)):
        assert api.client.get("/api/v1/users", headers=caller).status_code == 403
        created = api.client.post("/api/v1/customers", json={"customer_id": "evil"}, headers=caller)
        assert created.status_code == 403
        assert created.json()["error"] == "forbidden"
    assert api.client.get("/api/v1/workloads", headers=bearer(operator)).status_code == 200


def test_revoked_key_stops_working_at_once(api: Api) -> None:
    created = api.client.post("/api/v1/keys", json={"name": "temp"}, headers=api.customer).json()
    key = bearer(created["secret"])
    assert api.client.get("/api/v1/queue/depth", headers=key).status_code == 200
    revoked = api.client.delete(f"/api/v1/keys/{created['key_id']}", headers=api.customer)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert api.client.get("/api/v1/queue/depth", headers=key).status_code == 401
    again = api.client.delete(f"/api/v1/keys/{created['key_id']}", headers=api.customer)
    assert again.status_code == 200  # idempotent


def test_expired_key_is_refused(api: Api) -> None:
    expires = (api.clock.now() + timedelta(hours=1)).isoformat()
    created = api.client.post(
        "/api/v1/keys", json={"name": "short", "expires_at": expires}, headers=api.customer
    ).json()
    key = bearer(created["secret"])
    assert api.client.get("/api/v1/queue/depth", headers=key).status_code == 200
    api.clock.advance(timedelta(hours=2))
    assert api.client.get("/api/v1/queue/depth", headers=key).status_code == 401
    past = api.client.post(
        "/api/v1/keys", json={"name": "late", "expires_at": expires}, headers=api.customer
    )
    assert past.status_code == 422 and past.json()["fields"][0]["field"] == "expires_at"


def test_a_key_that_expires_makes_no_key_that_outlives_it(api: Api) -> None:
    """Before, a contractor's one-hour key could make itself a key that never expired."""
    expires = api.clock.now() + timedelta(hours=1)
    short = bearer(
        api.client.post(
            "/api/v1/keys",
            json={"name": "contractor", "expires_at": expires.isoformat()},
            headers=api.customer,
        ).json()["secret"]
    )
    later = (expires + timedelta(minutes=1)).isoformat()
    refused = api.client.post(
        "/api/v1/keys", json={"name": "later", "expires_at": later}, headers=short
    )
    assert refused.status_code == 422
    assert refused.json()["fields"][0]["field"] == "expires_at"
    minted = api.client.post("/api/v1/keys", json={"name": "forever"}, headers=short)
    assert minted.status_code == 201
    assert datetime.fromisoformat(minted.json()["expires_at"]) == expires
    api.clock.advance(timedelta(hours=2))
    key = bearer(minted.json()["secret"])
    assert api.client.get("/api/v1/queue/depth", headers=key).status_code == 401


def test_bad_user_input_names_the_field(api: Api) -> None:
    cases = [
        ({"email": "not-an-email", "role": "admin", "password": "long enough pw"}, "email"),
        ({"email": "a@b.example", "role": "admin", "password": "short"}, "password"),
        ({"email": "a@b.example", "role": "customer", "password": "long enough pw"}, "customer_id"),
        ({"email": "a@b.example", "role": "wizard", "password": "long enough pw"}, "role"),
    ]
    for body, field in cases:
        response = api.client.post("/api/v1/users", json=body, headers=api.admin)
        assert response.status_code == 422, body
        assert response.json()["fields"][0]["field"] == field


def test_rate_limit_answers_429_with_retry_after(api: Api) -> None:
    limiter = api.runtime.platform.rate_limiter
    limiter.per_second, limiter.burst = 1.0, 3
    statuses = [
        api.client.get("/api/v1/queue/depth", headers=api.customer).status_code for _ in range(4)
    ]
    assert statuses == [200, 200, 200, 429]
    limited = api.client.get("/api/v1/queue/depth", headers=api.customer)
    assert limited.json()["error"] == "rate_limited"
    assert limited.headers["Retry-After"] == "1"
    assert api.client.get("/api/v1/queue/depth", headers=api.admin).status_code == 200
    api.clock.advance(timedelta(seconds=2))
    assert api.client.get("/api/v1/queue/depth", headers=api.customer).status_code == 200


def test_a_rate_limited_answer_tells_the_wait_its_retry_after_header_does(api: Api) -> None:
    """At 50 requests a second the next one was 0.02 s away and the body said 'retry in
    0.0 s' beside Retry-After: 1."""
    limiter = api.runtime.platform.rate_limiter
    limiter.per_second, limiter.burst = 50.0, 1
    assert api.client.get("/api/v1/queue/depth", headers=api.customer).status_code == 200
    limited = api.client.get("/api/v1/queue/depth", headers=api.customer)
    assert limited.status_code == 429 and limited.headers["Retry-After"] == "1"
    assert limited.json()["message"] == "rate limit exceeded; retry in 1 s"


def test_rate_limiter_refills_over_time() -> None:
    limiter = RateLimiter(per_second=2.0, burst=2)
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    limiter.check("k", t0)
    limiter.check("k", t0)
    with pytest.raises(RateLimited) as limited:
        limiter.check("k", t0)
    assert limited.value.retry_after_s == pytest.approx(0.5)
    limiter.check("k", t0 + timedelta(seconds=0.5))
    limiter.check("other", t0)  # buckets are per key


def test_a_flood_of_new_keys_does_not_refill_the_one_under_attack() -> None:
    """Before, the 100,000th distinct key cleared every bucket: trying that many emails reset
    the login throttle of the account being guessed."""
    limiter = RateLimiter(per_second=1 / 60, burst=5, max_keys=100)
    t0 = datetime(2025, 1, 1, tzinfo=UTC)
    for _ in range(5):
        limiter.check("victim@example.com", t0)
    for n in range(1_000):
        at = t0 + timedelta(milliseconds=n)
        limiter.check(f"spray-{n}@example.com", at)
        if n % 50 == 0:
            with pytest.raises(RateLimited):
                limiter.check("victim@example.com", at)
    assert len(limiter._buckets) <= 100


def _logged_in(api: Api, email: str, password: str) -> bool:
    form = {"email": email, "password": password}
    return api.client.post("/login", data=form, follow_redirects=False).status_code == 303


def _user(api: Api, email: str) -> dict[str, object]:
    users = api.client.get("/api/v1/users", headers=api.admin).json()
    return next(u for u in users if u["email"] == email)


def test_a_disabled_user_cannot_log_in_and_its_sessions_end(api: Api) -> None:
    creds = json.loads((api.runtime.settings.var_dir / "demo-keys.json").read_text())
    email, password = creds["customer_email"], creds["customer_password"]
    assert _logged_in(api, email, password)
    assert api.client.get("/workloads", follow_redirects=False).status_code == 200
    user_id = _user(api, email)["user_id"]

    off = api.client.patch(f"/api/v1/users/{user_id}", json={"disabled": True}, headers=api.admin)
    assert off.status_code == 200 and off.json()["disabled"] is True
    assert api.client.get("/workloads", follow_redirects=False).status_code == 303  # to /login
    assert not _logged_in(api, email, password)

    on = api.client.patch(f"/api/v1/users/{user_id}", json={"disabled": False}, headers=api.admin)
    assert on.json()["disabled"] is False
    assert _logged_in(api, email, password)


def test_a_new_password_ends_the_users_sessions_and_replaces_the_old(api: Api) -> None:
    creds = json.loads((api.runtime.settings.var_dir / "demo-keys.json").read_text())
    email, old = creds["customer_email"], creds["customer_password"]
    assert _logged_in(api, email, old)
    user_id = _user(api, email)["user_id"]
    new = "a much better passphrase"
    changed = api.client.patch(
        f"/api/v1/users/{user_id}", json={"password": new}, headers=api.admin
    )
    assert changed.status_code == 200
    assert api.client.get("/workloads", follow_redirects=False).status_code == 303
    assert not _logged_in(api, email, old)
    assert _logged_in(api, email, new)


@pytest.mark.parametrize(
    ("body", "status", "field"),
    [
        ({}, 422, "body"),
        ({"password": "short"}, 422, "password"),
        ({"disabled": True, "role": "admin"}, 422, "role"),
    ],
)
def test_a_bad_user_change_names_what_is_wrong(
    api: Api, body: dict[str, object], status: int, field: str
) -> None:
    user_id = _user(api, "customer@hcp.local")["user_id"]
    response = api.client.patch(f"/api/v1/users/{user_id}", json=body, headers=api.admin)
    assert response.status_code == status
    assert response.json()["fields"][0]["field"] == field
    missing = api.client.patch(
        "/api/v1/users/user-nobody", json={"disabled": True}, headers=api.admin
    )
    assert missing.status_code == 404


def test_an_admin_cannot_disable_itself() -> None:
    from hcp.adapters.clock import ManualClock
    from hcp.domain.errors import ValidationError
    from hcp.domain.identity import Principal, Role
    from hcp.services.identity import IdentityService

    me = Principal("session:user-me", Role.ADMIN, None, "user-me")
    service = IdentityService(lambda: None, ManualClock(datetime(2025, 1, 1, tzinfo=UTC)), None)  # type: ignore[arg-type]
    with pytest.raises(ValidationError, match="its own user"):
        service.update_user(me, "user-me", disabled=True)


def test_admins_set_a_customers_fair_share_weight_and_gpu_quota(api: Api) -> None:
    created = api.client.post(
        "/api/v1/customers",
        json={"customer_id": "acme", "name": "Acme", "weight": 2.5, "gpu_quota": 4},
        headers=api.admin,
    )
    assert created.status_code == 201, created.text
    assert (created.json()["weight"], created.json()["gpu_quota"]) == (2.5, 4)
    with api.runtime.unit_of_work() as uow:
        stored = uow.customers.get("acme")
    assert stored is not None and (stored.weight, stored.gpu_quota) == (2.5, 4)

    url = "/api/v1/customers/acme"
    renamed = api.client.patch(url, json={"name": "Acme Corp"}, headers=api.admin).json()
    assert (renamed["name"], renamed["weight"], renamed["gpu_quota"]) == ("Acme Corp", 2.5, 4)
    raised = api.client.patch(url, json={"gpu_quota": 16, "weight": 1}, headers=api.admin)
    assert (raised.json()["weight"], raised.json()["gpu_quota"]) == (1.0, 16)
    lifted = api.client.patch(url, json={"gpu_quota": None}, headers=api.admin).json()
    assert lifted["gpu_quota"] is None and lifted["weight"] == 1.0
    listed = api.client.get("/api/v1/customers", headers=api.admin).json()
    assert {"customer_id": "acme", "gpu_quota": None}.items() <= next(
        c for c in listed if c["customer_id"] == "acme"
    ).items()


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"weight": 0}, "weight"),
        ({"weight": -1}, "weight"),
        ({"weight": 1e9}, "weight"),
        ({"gpu_quota": 0}, "gpu_quota"),
        ({"gpu_quota": "many"}, "gpu_quota"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_a_bad_weight_or_quota_is_a_422_naming_it(
    api: Api, body: dict[str, object], field: str
) -> None:
    for method, url, payload in (
        ("POST", "/api/v1/customers", {"customer_id": "acme", **body}),
        ("PATCH", "/api/v1/customers/cust-001", body),
    ):
        answer = api.client.request(method, url, json=payload, headers=api.admin)
        assert answer.status_code == 422, (method, answer.text)
        assert [f["field"] for f in answer.json()["fields"]] == [field]
    with api.runtime.unit_of_work() as uow:
        assert uow.customers.get("acme") is None
        kept = uow.customers.get("cust-001")
    assert kept is not None and (kept.weight, kept.gpu_quota) == (1.0, None)


def test_changing_an_unknown_customer_is_a_404(api: Api) -> None:
    answer = api.client.patch("/api/v1/customers/nobody", json={"weight": 2}, headers=api.admin)
    assert answer.status_code == 404 and "nobody" in answer.json()["message"]


def test_a_quota_set_through_the_api_bounds_the_next_submissions(api: Api) -> None:
    def submit(gpus: int) -> int:
        body = {"workload_type": "ai_training", "requirements": {"gpu_count": gpus}}
        return api.client.post("/api/v1/workloads", json=body, headers=api.customer).status_code

    assert submit(3) == 201
    cut = api.client.patch("/api/v1/customers/cust-001", json={"gpu_quota": 2}, headers=api.admin)
    assert cut.status_code == 200
    api.clock.advance(timedelta(seconds=11))  # past the quota's cache (CAPACITY_TTL)
    assert submit(3) == 422
    assert submit(2) == 201


def test_a_patch_checks_only_what_it_changes(api: Api) -> None:
    """A customer whose share was stored before the API set it (a weight above the API's
    bound, a quota of 0 GPUs: the scheduler honours both) can still be renamed, or have its
    other figure changed: a PATCH is not refused over a field it leaves as it is."""
    with api.runtime.unit_of_work() as uow:
        stored = uow.customers.get("cust-001")
        assert stored is not None
        uow.customers.update(replace(stored, weight=5_000.0, gpu_quota=0))
        uow.commit()
    url = "/api/v1/customers/cust-001"
    renamed = api.client.patch(url, json={"name": "Renamed"}, headers=api.admin)
    assert renamed.status_code == 200, renamed.text
    assert (renamed.json()["weight"], renamed.json()["gpu_quota"]) == (5_000.0, 0)
    quota = api.client.patch(url, json={"gpu_quota": 4}, headers=api.admin)
    assert quota.status_code == 200, quota.text
    assert (quota.json()["weight"], quota.json()["gpu_quota"]) == (5_000.0, 4)
    weight = api.client.patch(url, json={"weight": 2}, headers=api.admin)
    assert (weight.status_code, weight.json()["gpu_quota"]) == (200, 4)
    refused = api.client.patch(url, json={"weight": 5_000}, headers=api.admin)
    assert refused.status_code == 422  # what it sets is checked all the same
