"""Schemathesis against the app's own OpenAPI, in process, with its default checks: the app
never answers 5xx, and every answer (status, content type, headers, body) is one the schema
declares.

Each operation is a test, run with the admin's and with a customer's demo key on a fresh
SQLite app. Bounded and deterministic: a fixed seed; the schema's examples, schemathesis'
coverage cases (boundaries, missing or mistyped parameters, other methods) and at most
`MAX_EXAMPLES` fuzzed cases per operation. No route talks to a live site yet, so none is
excluded (one that did would go in `schema.exclude(...)`, with the reason).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.config import SchemathesisConfig
from starlette.types import ASGIApp, Receive, Scope, Send

from hcp.http.app import create_app
from hcp.services.platform import Platform
from tests.api.conftest import Api
from tests.security.conftest import SQLITE_ONLY

MAX_EXAMPLES = 25
SEED = 20250601
Case = schemathesis.Case[Any]


class AppUnderTest:
    """Hands each request to the running test's app, with its key. Schemathesis reads the
    schema while pytest collects (one test per operation), long before any test has an app."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.authorization = ""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.app(scope, receive, send)


# Until a test swaps in its own, an app without a platform: enough to serve /openapi.json,
# which describes the routes alone.
SCHEMA_ONLY_APP = create_app(cast(Platform, None))
TARGET = AppUnderTest(SCHEMA_ONLY_APP)
CONFIG = SchemathesisConfig.from_dict(
    {
        "seed": SEED,
        "generation": {"max-examples": MAX_EXAMPLES, "deterministic": True, "database": "none"},
        # Schemathesis' default plus 422: a schema-valid request may still break a rule no JSON
        # Schema states (an admin's workload names its customer, a key expires in the future,
        # month 00 does not exist); the app refuses it with 422 naming the field, by design.
        "checks": {
            "positive_data_acceptance": {
                "expected-statuses": ["2xx", "3xx", "401", "403", "404", "409", "422", "429", "5xx"]
            }
        },
        "phases": {
            "examples": {"enabled": True},
            "fuzzing": {"enabled": True},
            "coverage": {"enabled": True},
            "stateful": {"enabled": False},
        },
    }
)
schema = schemathesis.openapi.from_asgi("/openapi.json", TARGET, config=CONFIG)


@schema.auth(refresh_interval=None)
class CurrentKey:
    """The running test's key on every case, except those that test a missing key."""

    def get(self, case: Case, ctx: schemathesis.AuthContext) -> str:
        return TARGET.authorization

    def set(self, case: Case, data: str, ctx: schemathesis.AuthContext) -> None:
        case.headers["Authorization"] = data


@pytest.fixture(params=["admin", "customer"])
def app_under_test(api: Api, request: pytest.FixtureRequest) -> Iterator[Api]:
    """`api`'s app behind TARGET, called with the admin's or the customer's demo key."""
    key = api.admin if request.param == "admin" else api.customer
    TARGET.app, TARGET.authorization = api.client.app, key["Authorization"]
    yield api
    TARGET.app, TARGET.authorization = SCHEMA_ONLY_APP, ""


@SQLITE_ONLY
@schema.parametrize()
# One app per operation and key, shared by its examples: what they create stays, on purpose.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
def test_the_app_answers_as_its_schema_says(case: Case, app_under_test: Api) -> None:
    case.call_and_validate()


@SQLITE_ONLY
def test_what_schemathesis_found_stays_fixed(api: Api) -> None:
    deep = api.client.get("/api/v1/workloads", params={"offset": 2**63}, headers=api.admin)
    assert deep.status_code == 422, deep.text  # was a 500: the driver's integer overflowed
    other_method = api.client.options("/api/v1/keys", headers=api.admin)
    assert other_method.status_code == 405
    assert other_method.headers["Allow"] == "GET, POST"  # was "GET": the first route's only
    paths = api.client.get("/openapi.json").json()["paths"]
    csv = paths["/api/v1/billing/usage.csv"]["get"]["responses"]
    assert "text/csv" in csv["200"]["content"]  # was text/plain
    assert "application/json" in csv["404"]["content"]  # errors are JSON, even here
    listed = paths["/api/v1/workloads"]["get"]["responses"]
    assert {"401", "422", "429"} <= listed.keys()  # 401 and 429 were undocumented
    assert listed["422"]["content"]["application/json"]["schema"]["$ref"].endswith("/ErrorOut")
