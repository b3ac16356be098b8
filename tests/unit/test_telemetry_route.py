"""GET /api/v1/telemetry on a real store (SQLite file) behind a minimal app: the route's
parameters, its body, and how bad input and missing keys are answered."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient

from hcp.adapters.clock import ManualClock
from hcp.adapters.db.engine import make_engine
from hcp.adapters.db.migrate import upgrade
from hcp.adapters.db.telemetry import TelemetryStore
from hcp.domain.devices import DeviceKind
from hcp.domain.errors import Unauthenticated
from hcp.domain.fleet import Device
from hcp.domain.identity import Principal, Role
from hcp.domain.telemetry import Sample
from hcp.http.deps import get_principal
from hcp.http.errors import install_error_handlers
from hcp.http.routes import telemetry
from hcp.services.telemetry import DeviceKinds, TelemetryService

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


def device(device_id: str, kind: DeviceKind) -> Device:
    return Device(device_id, "site", None, "S21", kind, "mining", T0)


# miner-1 has raw samples from T0 (and minute rollups), miner-3 minute and hour rollups of the
# four hours before T0 (its value is the hour of day); miner-2 and gpu-1 have no samples.
FLEET = [device(f"miner-{n}", DeviceKind.ASIC) for n in (1, 2, 3)] + [
    device("gpu-1", DeviceKind.GPU)
]


@pytest.fixture
def client(tmp_path: Path) -> Iterator[TestClient]:
    engine = make_engine(f"sqlite:///{tmp_path / 'hcp.db'}")
    upgrade(engine)
    store = TelemetryStore(engine)
    store.write(
        [Sample("miner-1", "power_w", T0 + timedelta(seconds=10 * i), float(i)) for i in range(12)]
    )
    early = T0 - 4 * HOUR
    store.write(
        [
            Sample("miner-3", "power_w", at, float(at.hour))
            for at in (early + timedelta(minutes=m) for m in range(4 * 60))
        ]
    )
    store.rollup(T0 + timedelta(minutes=2))
    app = FastAPI()
    install_error_handlers(app)
    app.include_router(telemetry.router)
    app.dependency_overrides[get_principal] = one_key
    app.state.platform = FakePlatform(TelemetryService(store, ManualClock(T0 + 2 * HOUR)))
    app.state.device_kinds = DeviceKinds(lambda: FLEET)
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
        ({"metric": "voltage"}, "metric"),  # no device reports it
        ({"device": "gpu-1", "metric": "hashrate_ths"}, "metric"),  # GPUs do not hash
        # A minute step reads whole minute rollups, and none has closed within 40 s.
        ({"step": "1m", "from": "2025-06-01T12:00:10Z", "to": "2025-06-01T12:00:50Z"}, "step"),
    ],
)
def test_bad_parameters_answer_422_naming_the_field(
    client: TestClient, params: dict[str, str], field: str
) -> None:
    query = {"device": "miner-1", "metric": "power_w", **params}
    response = client.get("/api/v1/telemetry", params=query, headers=KEY)
    assert response.status_code == 422
    assert response.json()["fields"][0]["field"] == field


def test_an_unknown_device_answers_404_with_the_error_body(client: TestClient) -> None:
    response = client.get(
        "/api/v1/telemetry", params={"device": "miner-9", "metric": "power_w"}, headers=KEY
    )
    assert response.status_code == 404
    assert response.json() == {
        "error": "not_found",
        "message": "device 'miner-9' not found",
        "fields": [],
    }


def test_an_unknown_metric_names_the_metrics_there_are(client: TestClient) -> None:
    query = {"device": "gpu-1", "metric": "hashrate_ths"}
    response = client.get("/api/v1/telemetry", params=query, headers=KEY)
    assert response.json()["error"] == "invalid_request"
    message = response.json()["fields"][0]["message"]
    assert message.startswith("a GPU does not report hashrate_ths; it reports reachable")


def test_a_known_device_and_metric_without_data_is_an_empty_series(client: TestClient) -> None:
    for device_id, metric in (("miner-2", "power_w"), ("gpu-1", "temperature_c")):
        assert get(client, device=device_id, metric=metric)["points"] == []


def points(body: dict[str, object]) -> list[dict[str, Any]]:
    found = body["points"]
    assert isinstance(found, list)
    return found


def window(start: str, end: str) -> dict[str, str]:
    return {"from": f"2025-06-01T{start}Z", "to": f"2025-06-01T{end}Z"}


def test_no_point_starts_before_from_nor_counts_samples_before_it(client: TestClient) -> None:
    body = get(
        client, device="miner-1", metric="power_w", step="30s", **window("12:00:05", "12:01:00")
    )
    # The 5 s before the first whole step hold no sample: the first point is the 20 s after.
    assert body["points"] == [
        {"at": "2025-06-01T12:00:05Z", "avg": 1.5, "min": 1.0, "max": 2.0, "count": 2},
        {"at": "2025-06-01T12:00:30Z", "avg": 4.0, "min": 3.0, "max": 5.0, "count": 3},
    ]


def test_rollup_steps_read_only_whole_rollups_inside_the_window(client: TestClient) -> None:
    body = get(client, device="miner-3", metric="power_w", step="1h", **window("09:30", "11:30"))
    assert body["points"] == [
        {"at": "2025-06-01T10:00:00Z", "avg": 10.0, "min": 10.0, "max": 10.0, "count": 60}
    ]
    body = get(client, device="miner-3", metric="power_w", step="5m", **window("09:58", "10:12"))
    assert [(p["at"][11:19], p["count"]) for p in points(body)] == [
        ("09:58:00", 2),
        ("10:00:00", 5),
        ("10:05:00", 5),
        ("10:10:00", 2),
    ]


@pytest.mark.parametrize(
    ("step", "whole_window"),
    [
        ("1d", [("08:00", 240, 9.5)]),
        ("999999999d", [("08:00", 240, 9.5)]),  # was one point at 1970-01-01 holding all data
        ("3h", [("08:00", 60, 8.0), ("09:00", 180, 10.0)]),  # 09:00 is a multiple of 3 h
    ],
)
def test_a_step_longer_than_the_window_covers_the_window_and_no_more(
    client: TestClient, step: str, whole_window: list[tuple[str, int, float]]
) -> None:
    body = get(client, device="miner-3", metric="power_w", step=step, **window("09:30", "11:30"))
    # 09:30-10:00 and 11:00-11:30 lie in hour rollups reaching outside the window: left out.
    assert body["points"] == [
        {"at": "2025-06-01T10:00:00Z", "avg": 10.0, "min": 10.0, "max": 10.0, "count": 60}
    ]
    whole = get(client, device="miner-3", metric="power_w", step=step, **window("08:00", "12:00"))
    assert [(p["at"][11:16], p["count"], p["avg"]) for p in points(whole)] == whole_window


def test_an_api_key_is_required(client: TestClient) -> None:
    response = client.get("/api/v1/telemetry", params={"device": "m", "metric": "p"})
    assert response.status_code == 401
