"""Who may call what: every /api/v1 route x role x own/other object -> the expected status.

Roles (columns of MATRIX):
- anonymous: no key;
- customer_own: cust-001's key on cust-001's objects;
- customer_other: cust-001's key on cust-002's objects (a route without one: the same call);
- operator, admin: staff keys on cust-001's objects.

A row is one request -- "METHOD /path?query" with {placeholders} filled from `Objects`, and an
optional JSON body -- then the status of each role. A route the app serves that no row names
fails `test_every_api_route_has_a_row`, naming it: add one line to MATRIX.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
from fastapi import APIRouter, FastAPI
from fastapi.routing import iter_route_contexts

from tests.api.conftest import Api
from tests.security.conftest import SQLITE_ONLY, Objects, World, bearer

ROLES = ("anonymous", "customer_own", "customer_other", "operator", "admin")


@dataclass(frozen=True)
class Row:
    request: str
    statuses: tuple[int, int, int, int, int]
    body: dict[str, Any] | None = None

    @property
    def method(self) -> str:
        return self.request.split(" ", 1)[0]

    @property
    def target(self) -> str:
        return V1 + self.request.split(" ", 1)[1]

    @property
    def route(self) -> str:
        """ "METHOD /api/v1/path" as the app names the route (no query string)."""
        return f"{self.method} {self.target.split('?', 1)[0]}"


def row(
    request: str,
    anonymous: int,
    own: int,
    other: int,
    operator: int,
    admin: int,
    body: dict[str, Any] | None = None,
) -> Row:
    """`request` is "METHOD /path?query" under /api/v1; the statuses are in ROLES' order."""
    return Row(request, (anonymous, own, other, operator, admin), body)


V1 = "/api/v1"
WORKLOAD = {
    "workload_type": "ai_training",
    "customer_id": "{customer_id}",
    "requirements": {"gpu_type": "H100", "gpu_count": 1},
}
KEY = {"name": "matrix", "customer_id": "{customer_id}"}
USER = {
    "email": "new-user@{customer_id}.example",
    "role": "customer",
    "customer_id": "{customer_id}",
    "password": "correct horse battery",
}
CUSTOMER = {"customer_id": "cust-new", "name": "New customer"}
GPU = {"resource_type": "GPU"}

# fmt: off
MATRIX: tuple[Row, ...] = (
    #   request under /api/v1                                   anon own other op  admin
    row("GET /workloads",                                        401, 200, 200, 200, 200),
    # naming another customer in the body is a field error (422), as tests/api pins it
    row("POST /workloads",                                       401, 201, 422, 403, 201, WORKLOAD),
    row("GET /workloads/{workload_id}",                          401, 200, 404, 200, 200),
    row("DELETE /workloads/{workload_id}",                       401, 200, 404, 403, 200),
    row("GET /prices/current",                                   401, 200, 200, 200, 200),
    row("POST /profitability/calculate",                         401, 200, 200, 200, 200, GPU),
    row("GET /queue/depth",                                      401, 200, 200, 200, 200),
    row("GET /resources",                                        401, 403, 403, 200, 200),
    row("GET /resources/{device_id}",                            401, 403, 403, 200, 200),
    row("PUT /resources/{device_id}/maintenance",                401, 403, 403, 200, 200,
        {"reason": "matrix"}),
    row("DELETE /resources/{device_id}/maintenance",             401, 403, 403, 200, 200),
    row("GET /sites",                                            401, 403, 403, 200, 200),
    row("GET /plan/current",                                     401, 403, 403, 200, 200),
    row("GET /allocations",                                      401, 200, 200, 200, 200),
    row("GET /preemptions",                                      401, 200, 200, 200, 200),
    row("GET /preemptions?workload_id={workload_id}",            401, 200, 404, 200, 200),
    row("GET /keys",                                             401, 200, 200, 200, 200),
    row("POST /keys",                                            401, 201, 403, 403, 201, KEY),
    row("DELETE /keys/{key_id}",                                 401, 200, 404, 404, 200),
    row("GET /users",                                            401, 403, 403, 403, 200),
    row("POST /users",                                           401, 403, 403, 403, 201, USER),
    row("PATCH /users/{user_id}",                                401, 403, 403, 403, 200,
        {"disabled": False}),
    row("GET /customers",                                        401, 200, 200, 200, 200),
    row("POST /customers",                                       401, 403, 403, 403, 201, CUSTOMER),
    row("PATCH /customers/{customer_id}",                        401, 403, 403, 403, 200,
        {"weight": 2}),
    row("GET /billing/usage?month={month}",                      401, 200, 200, 200, 200),
    row("GET /billing/usage?month={month}&customer_id={customer_id}", 401, 200, 404, 200, 200),
    row("GET /billing/usage.csv?month={month}",                  401, 200, 200, 200, 200),
    row("GET /billing/invoices",                                 401, 200, 200, 200, 200),
    row("POST /billing/invoices?month={month}",                  401, 403, 403, 403, 201),
    row("GET /billing/invoices/{invoice_id}",                    401, 200, 404, 200, 200),
    row("GET /billing/invoices/{invoice_id}.csv",                401, 200, 404, 200, 200),
    row("GET /telemetry?device=site-west-1-gpu-00001&metric=power_w", 401, 403, 403, 200, 200),
    row("GET /dispatch",                                         401, 403, 403, 200, 200),
    # no dispatcher runs in the API test platform: staff get the 404 that says so
    row("GET /dispatch/status",                                  401, 403, 403, 404, 404),
    row("GET /billing/prices",                                    401, 200, 200, 200, 200),
    row("PUT /billing/prices",                                    401, 403, 403, 403, 200,
        {"workload_type": "ai_training", "gpu_type": "H100", "usd_per_gpu_hour": "2.5"}),
)
# fmt: on

CASES = [pytest.param(r, role, id=f"{r.request} as {role}") for r in MATRIX for role in ROLES]


def caller(world: World, role: str) -> tuple[dict[str, str], Objects]:
    """The Authorization header of `role` and whose objects fill its placeholders."""
    headers = {
        "anonymous": {},
        "customer_own": world.api.customer,
        "customer_other": world.api.customer,
        "operator": world.operator,
        "admin": world.api.admin,
    }
    return headers[role], world.other if role == "customer_other" else world.own


def filled(value: Any, objects: Objects) -> Any:
    if isinstance(value, str):
        return objects.fill(value)
    if isinstance(value, dict):
        return {k: filled(v, objects) for k, v in value.items()}
    return value


def send(api: Api, r: Row, headers: dict[str, str], objects: Objects) -> Any:
    body = None if r.body is None else filled(r.body, objects)
    return api.client.request(r.method, objects.fill(r.target), json=body, headers=headers)


# Statuses are decided in Python, the same on either database: SQLite only. The tests below
# that read lists (filtered in SQL) run on both.
@SQLITE_ONLY
@pytest.mark.parametrize(("r", "role"), CASES)
def test_each_role_gets_its_status(world: World, r: Row, role: str) -> None:
    headers, objects = caller(world, role)
    response = send(world.api, r, headers, objects)
    expected = r.statuses[ROLES.index(role)]
    assert response.status_code == expected, (
        f"{r.request} as {role}: expected {expected}, got {response.status_code}: {response.text}"
    )
    if response.status_code >= 400:
        assert response.json()["error"], response.text  # refusals say why, as JSON


def api_routes(app: FastAPI) -> set[str]:
    """ "METHOD /path" of every /api/v1 route (a mount or websocket is named by its type).

    FastAPI keeps included routers as a tree; `iter_route_contexts` flattens it."""
    served: set[str] = set()
    for route in iter_route_contexts(app.routes):
        path = route.path or ""
        if not path.startswith("/api/v1"):
            continue
        if not route.methods:
            served.add(f"{type(route.original_route).__name__} {path}")
            continue
        served |= {f"{m} {path}" for m in route.methods if m not in ("HEAD", "OPTIONS")}
    return served


@SQLITE_ONLY
def test_every_api_route_has_a_row(api: Api) -> None:
    app = api.client.app
    assert isinstance(app, FastAPI)
    served = api_routes(app)
    assert served, "no /api/v1 routes found: has FastAPI changed how it keeps routes?"
    covered = {r.route for r in MATRIX}
    missing = sorted(served - covered)
    assert not missing, f"/api/v1 routes without a row in MATRIX (add one line each): {missing}"
    stale = sorted(covered - served)
    assert not stale, f"MATRIX rows for routes the app no longer serves: {stale}"


def test_the_route_guard_sees_routers_nested_in_routers() -> None:
    inner = APIRouter(prefix="/things")

    @inner.get("/{thing_id}")
    def thing(thing_id: str) -> dict[str, str]:
        return {"thing_id": thing_id}

    outer = APIRouter(prefix="/api/v1")
    outer.include_router(inner)
    app = FastAPI()
    app.include_router(outer)
    assert api_routes(app) == {"GET /api/v1/things/{thing_id}"}


def test_a_revoked_or_expired_key_gets_401_everywhere(world: World) -> None:
    api = world.api
    dead = [_revoked(api, api.customer, {"name": "gone"})]
    dead.append(_revoked(api, api.admin, {"name": "gone admin", "role": "admin"}))
    dead.append(_revoked(api, world.operator, {"name": "gone operator", "role": "operator"}))
    expires = (api.clock.now() + timedelta(minutes=5)).isoformat()
    expiring = api.client.post(
        "/api/v1/keys", json={"name": "brief", "expires_at": expires}, headers=api.customer
    )
    dead.append(bearer(expiring.json()["secret"]))
    api.clock.advance(timedelta(minutes=10))
    wrong = [
        f"{r.request}: {status}"
        for headers in dead
        for r in MATRIX
        if (status := send(api, r, headers, world.own).status_code) != 401
    ]
    assert not wrong, f"a dead key was not refused with 401: {wrong}"


def _revoked(api: Api, creator: dict[str, str], body: dict[str, str]) -> dict[str, str]:
    created = api.client.post("/api/v1/keys", json=body, headers=creator)
    assert created.status_code == 201, created.text
    key = bearer(created.json()["secret"])
    assert api.client.get("/api/v1/keys", headers=key).status_code == 200
    gone = api.client.delete(f"/api/v1/keys/{created.json()['key_id']}", headers=creator)
    assert gone.status_code == 200, gone.text
    return key


# A customer's list under /api/v1, and the own object it must show (so "[]" cannot pass).
LISTS = [
    ("/workloads", "{workload_id}"),
    ("/keys", "{key_id}"),
    ("/customers", "{customer_id}"),
    ("/preemptions", "{workload_id}"),
    ("/allocations", "{workload_id}"),
    ("/billing/usage?month={month}", "{workload_id}"),
    ("/billing/usage?month={month}&customer_id=cust-001", "{workload_id}"),
    ("/billing/usage.csv?month={month}", "{workload_id}"),
    ("/billing/invoices", "{invoice_id}"),
]


@pytest.mark.parametrize(("path", "shows"), LISTS, ids=[p for p, _ in LISTS])
def test_a_customers_lists_hold_only_its_own_objects(world: World, path: str, shows: str) -> None:
    response = world.api.client.get(world.own.fill(V1 + path), headers=world.api.customer)
    assert response.status_code == 200, response.text
    assert world.own.fill(shows) in response.text
    foreign = world.other.ids() | world.staff_key_ids
    leaked = sorted(i for i in foreign if i in response.text)
    assert not leaked, f"{path} shows cust-001 others' objects {leaked}: {response.text}"
    if response.headers["content-type"].startswith("application/json"):
        assert customer_ids(response.json()) <= {"cust-001"}, response.text


def customer_ids(data: Any) -> set[str]:
    """Every value under a "customer_id" key, at any depth."""
    if isinstance(data, list):
        return set().union(*(customer_ids(item) for item in data))
    if isinstance(data, dict):
        own = {str(data["customer_id"])} if data.get("customer_id") is not None else set()
        return own.union(*(customer_ids(v) for v in data.values()))
    return set()
