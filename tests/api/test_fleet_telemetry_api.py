"""The fleet as the API shows it: telemetry of unknown devices and metrics is an error, each
device says what is wrong with it, and /metrics counts every state, at zero too."""

from __future__ import annotations

from dataclasses import replace
from datetime import timedelta

import pytest

from hcp.domain.status import UNREACHABLE, DeviceStatus
from hcp.domain.telemetry import Sample
from hcp.services.telemetry import status_samples
from tests.api.conftest import START, Api

MINER, GPU = "site-west-1-asic-00001", "site-west-1-gpu-00001"


def get_telemetry(api: Api, **params: str) -> tuple[int, dict[str, object]]:
    response = api.client.get("/api/v1/telemetry", params=params, headers=api.admin)
    body: dict[str, object] = response.json()
    return response.status_code, body


def test_telemetry_of_an_unknown_device_is_404(api: Api) -> None:
    status, body = get_telemetry(api, device="site-west-1-asic-99999", metric="power_w")
    assert (status, body["error"]) == (404, "not_found")
    assert body["message"] == "device 'site-west-1-asic-99999' not found"


@pytest.mark.parametrize(
    ("device", "metric"),
    [(MINER, "voltage"), (GPU, "hashrate_ths"), ("site-west-1-asic-99999", "voltage")],
)
def test_telemetry_of_an_unknown_metric_is_422_naming_the_metric(
    api: Api, device: str, metric: str
) -> None:
    status, body = get_telemetry(api, device=device, metric=metric)
    assert (status, body["error"]) == (422, "invalid_request")
    fields = body["fields"]
    assert isinstance(fields, list) and [f["field"] for f in fields] == ["metric"]


def test_telemetry_of_a_known_series_without_data_is_empty(api: Api) -> None:
    for device, metric in ((MINER, "hashrate_ths"), (GPU, "temperature_c")):
        status, body = get_telemetry(api, device=device, metric=metric)
        assert (status, body["points"]) == (200, [])


def test_a_huge_step_never_reaches_outside_the_window(api: Api) -> None:
    telemetry = api.runtime.platform.telemetry
    inside = [START - timedelta(hours=3, minutes=m) for m in range(1, 61)]  # 08:00-08:59
    outside = [START - timedelta(hours=10, minutes=m) for m in range(1, 61)]  # 01:00-01:59
    telemetry.record([Sample(MINER, "power_w", at, 3500.0) for at in inside])
    telemetry.record([Sample(MINER, "power_w", at, 1.0) for at in outside])
    telemetry.maintain()  # rolls up every hour closed by START
    frm = START - timedelta(hours=6)
    status, body = get_telemetry(
        api,
        device=MINER,
        metric="power_w",
        step="999999999d",
        **{"from": frm.isoformat(), "to": START.isoformat()},
    )
    # Was one point at 1970-01-01 holding the samples of 10 hours ago too.
    assert (status, body["points"]) == (
        200,
        [{"at": "2025-06-01T06:00:00Z", "avg": 3500.0, "min": 3500.0, "max": 3500.0, "count": 60}],
    )


def resources(api: Api) -> dict[str, dict[str, object]]:
    body = api.client.get("/api/v1/resources", headers=api.admin).json()
    return {d["device_id"]: d for d in body["resources"]}


def test_resources_say_what_is_wrong_with_each_device(api: Api) -> None:
    assert {d["problems"] == [] for d in resources(api).values()} == {True}
    at = START + timedelta(seconds=5)
    lost = DeviceStatus(
        "site-west-1-asic-00002", UNREACHABLE, False, at, problems=("unreachable: timeout",)
    )
    statuses = [
        DeviceStatus(MINER, "mining", False, at, "stock", 2300.0, 130.0, 71.0, ("board 2 dead",)),
        lost,
        DeviceStatus(GPU, "busy", False, at, power_w=300.0, problems=("XID 48",)),
    ]
    with api.runtime.unit_of_work() as uow:
        uow.fleet.update_statuses(statuses)
        uow.commit()
    # Stored with each status, so any API process (`hcp up`'s, or an `hcp api` replica that
    # polls nothing) shows them.
    shown = resources(api)
    assert shown[MINER]["problems"] == ["board 2 dead"]
    assert shown["site-west-1-asic-00002"]["problems"] == ["unreachable: timeout"]
    assert shown[GPU]["problems"] == ["XID 48"]
    assert shown["site-west-1-asic-00003"]["problems"] == []
    single = api.client.get(f"/api/v1/resources/{GPU}", headers=api.admin).json()
    assert single["problems"] == ["XID 48"]
    # A later status without problems clears them.
    with api.runtime.unit_of_work() as uow:
        uow.fleet.update_statuses([DeviceStatus(GPU, "busy", True, at, power_w=300.0)])
        uow.commit()
    assert resources(api)[GPU]["problems"] == []


def test_the_schema_describes_problems(api: Api) -> None:
    schema = api.client.get("/openapi.json").json()
    device = schema["components"]["schemas"]["DeviceOut"]
    assert "problems" in device["required"]
    assert device["properties"]["problems"]["type"] == "array"
    assert device["properties"]["problems"]["items"] == {"type": "string"}
    responses = schema["paths"]["/api/v1/telemetry"]["get"]["responses"]
    assert {"404", "422"} <= responses.keys()


def test_metrics_count_every_state_of_every_kind_at_zero_too(api: Api) -> None:
    text = api.client.get("/metrics").text
    for kind, states in {
        "asic": ("fault", "sleeping", "unreachable", "waking"),
        "gpu": ("busy", "unreachable"),
    }.items():
        for state in states:
            assert f'hcp_devices{{kind="{kind}",state="{state}"}} 0.0' in text
    assert 'hcp_devices{kind="asic",state="mining"} 50.0' in text
    assert 'hcp_devices{kind="gpu",state="idle"} 10.0' in text
    lost = DeviceStatus(MINER, UNREACHABLE, False, START + timedelta(seconds=1))
    with api.runtime.unit_of_work() as uow:
        uow.fleet.update_statuses([lost])
        uow.commit()
    text = api.client.get("/metrics").text
    assert 'hcp_devices{kind="asic",state="mining"} 49.0' in text
    assert 'hcp_devices{kind="asic",state="unreachable"} 1.0' in text
    back = DeviceStatus(MINER, "mining", True, START + timedelta(seconds=2))
    with api.runtime.unit_of_work() as uow:
        uow.fleet.update_statuses([back])
        uow.commit()
    text = api.client.get("/metrics").text
    assert 'hcp_devices{kind="asic",state="unreachable"} 0.0' in text  # was left out


def device_gauges(api: Api, device: str) -> dict[str, str]:
    """The per-device telemetry gauges /metrics gives `device`: {metric name: value}."""
    text = api.client.get("/metrics").text
    label = f'{{device="{device}"}} '
    return {
        line.split("{")[0]: line.split(label)[1]
        for line in text.splitlines()
        if line.startswith("hcp_device_") and label in line
    }


def test_device_gauges_show_what_the_last_poll_measured_not_what_an_earlier_one_did(
    api: Api,
) -> None:
    telemetry = api.runtime.platform.telemetry
    mining = DeviceStatus(MINER, "mining", True, START - timedelta(seconds=10), "stock", 3000.0)
    telemetry.record(status_samples(replace(mining, hashrate_ths=120.0, temperature_c=70.0)))
    assert device_gauges(api, MINER) == {
        "hcp_device_reachable": "1.0",
        "hcp_device_healthy": "1.0",
        "hcp_device_power_w": "3000.0",
        "hcp_device_hashrate_ths": "120.0",
        "hcp_device_temperature_c": "70.0",
    }
    lost = DeviceStatus(MINER, UNREACHABLE, False, START - timedelta(seconds=5))
    telemetry.record(status_samples(lost))
    # Was still 3 kW, 120 TH/s and 70 °C from the poll before: the miner did not answer, so
    # nothing is known of them (and /metrics' fleet totals already count it at 0 W).
    assert device_gauges(api, MINER) == {
        "hcp_device_reachable": "0.0",
        "hcp_device_healthy": "0.0",
    }


def test_device_gauges_leave_out_samples_stored_ahead_of_now(api: Api) -> None:
    """A sped-up run (`hcp up --speed 30`) stores telemetry hours ahead of the wall clock; a
    later run at normal speed must show its own present, not that future."""
    telemetry = api.runtime.platform.telemetry
    now = DeviceStatus(MINER, "mining", True, START - timedelta(seconds=10), "stock", 3000.0)
    ahead = replace(now, at=START + timedelta(hours=3), power_w=1.0)
    telemetry.record(status_samples(now) + status_samples(ahead))
    assert device_gauges(api, MINER)["hcp_device_power_w"] == "3000.0"
