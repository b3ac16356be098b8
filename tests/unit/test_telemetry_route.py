"""GET /api/v1/telemetry on a real store (SQLite file) behind a minimal app: the route's
parameters, its body, and how bad input and missing keys are answered."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from hcp.adapters.clock import ManualClock
from hcp.adapters.db.engine import make_engine
from hcp.adapters.db.migrate import upgrade
from hcp.adapters.db.telemetry import TelemetryStore
from hcp.domain.errors import Unauthenticated
from hcp.domain.identity import Principal, Role
from hcp.domain.telemetry import Sample
from hcp.http.deps import get_principal
from hcp.http.errors import install_error_handlers
from hcp.http.routes import telemetry
from hcp.services.telemetry import TelemetryService

T0 = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)
HOUR = timedelta(hours=1)
KEY = {"Authorization": "Bearer hcp_test"}


def one_key(request: Request) -> Principal:
    """Stands in for the real key check (`get_principal`): one valid key."""
    if request.headers.get("Authorization") != KEY["Authorization"]:
        raise Unauthenticated("invalid, expired or revoked API key")
    return Principal(key_id="k1", role=Role.OPERATOR, customer_id=None)  # fleet data is staff's


@dataclass
class FakePlatform:
    telemetry: TelemetryService


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    engine = make_engine(f"sqlite:///{tmp_path / 'hcp.db'}")
    upgrade(engine)
    store = TelemetryStore(engine)
    store.write(
        [Sample("miner-1", "power_w", T0 + timedelta(seconds=10 * i), float(i)) for i in range(12)]
    )
    store.rollup(T0 + timedelta(minutes=2))
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(telemetry.router)
    app.dependency_overrides[get_principal] = one_key
    app.state.platform = FakePlatform(TelemetryService(store, ManualClock(T0 + 2 * HOUR)))
    with TestClient(app) as test_client:
        yield test_client
    engine.dispose()


def get(client: TestClient, **params: str) -> dict[str, object]:
    response = client.get("/api/v1/telemetry", params=params, headers=KEY)
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_a_series_of_raw_samples(client: TestClient) -> None:
    body = get(
        client,
        device="miner-1",
        metric="power_w",
        step="30s",
        **{"from": T0.isoformat(), "to": (T0 + HOUR).isoformat()},
    )
    assert body["device"] == "miner-1"
    assert body["metric"] == "power_w"
    assert (body["step_seconds"], body["resolution"]) == (30, "raw")
    assert body["points"] == [
        {"at": "2025-06-01T12:00:00Z", "avg": 1.0, "min": 0.0, "max": 2.0, "count": 3},
        {"at": "2025-06-01T12:00:30Z", "avg": 4.0, "min": 3.0, "max": 5.0, "count": 3},
        {"at": "2025-06-01T12:01:00Z", "avg": 7.0, "min": 6.0, "max": 8.0, "count": 3},
        {"at": "2025-06-01T12:01:30Z", "avg": 10.0, "min": 9.0, "max": 11.0, "count": 3},
    ]


def test_the_default_window_is_the_last_hour_in_minute_steps(client: TestClient) -> None:
    assert get(client, device="miner-1", metric="power_w")["points"] == []
    body = get(client, device="miner-1", metric="power_w", step="5m", **{"from": T0.isoformat()})
    assert (body["step_seconds"], body["resolution"]) == (300, "1m")
    assert body["points"] == [
        {"at": "2025-06-01T12:00:00Z", "avg": 5.5, "min": 0.0, "max": 11.0, "count": 12}
    ]


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"step": "fortnight"}, "step"),
        ({"step": "0"}, "step"),
        ({"step": "1s", "from": "2024-06-01T00:00:00Z"}, "step"),
        ({"from": "2025-06-01T13:00:00Z", "to": "2025-06-01T12:00:00Z"}, "to"),
        ({"from": "2025-06-01T12:00:00"}, "from"),
        ({"device": ""}, "device"),
    ],
)
def test_bad_parameters_answer_422_naming_the_field(
    client: TestClient, params: dict[str, str], field: str
) -> None:
    query = {"device": "miner-1", "metric": "power_w", **params}
    response = client.get("/api/v1/telemetry", params=query, headers=KEY)
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == field


def test_an_api_key_is_required(client: TestClient) -> None:
    response = client.get("/api/v1/telemetry", params={"device": "m", "metric": "p"})
    assert response.status_code == 401
