"""Prices, profitability, queue depth, resources, health and metrics read real state."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime, timedelta

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from hcp.cli.serve import _server
from hcp.config import Settings
from hcp.domain.plans import SitePlan
from hcp.economics import snapshot_hashprice
from hcp.services.dashboard import Sources
from tests.api.conftest import START, Api
from tests.conftest import TEST_SECRET


def test_prices_come_from_the_stored_snapshot(api: Api) -> None:
    with api.runtime.unit_of_work() as uow:
        snapshot = uow.market.latest()
    assert snapshot is not None
    body = api.client.get("/api/v1/prices/current", headers=api.customer).json()
    prices = body["prices"]
    assert body["timestamp"].startswith(START.strftime("%Y-%m-%dT%H:%M"))
    assert body["node"] == "HB_WEST"
    assert prices["electricity"]["unit"] == "USD/kWh"
    assert prices["electricity"]["value"] == pytest.approx(
        snapshot.electricity("HB_WEST") / 1000, abs=1e-6
    )
    assert prices["btc"] == {"value": snapshot.btc_usd, "unit": "USD"}
    assert prices["gpu_spot"]["value"] == snapshot.gpu_spot("H100")
    assert prices["hashprice"]["value"] == pytest.approx(snapshot_hashprice(snapshot), rel=1e-5)


def test_profitability_uses_current_price_and_site_pue(api: Api) -> None:
    price = api.client.get("/api/v1/prices/current", headers=api.customer).json()
    usd_per_mwh = price["prices"]["electricity_mwh"]["value"]
    body = {"resource_type": "GPU", "workload_type": "ai_inference_realtime", "power_draw_w": 700}
    result = api.client.post("/api/v1/profitability/calculate", json=body, headers=api.customer)
    assert result.status_code == 200
    out = result.json()
    pue = api.runtime.settings.site_pue
    assert out["estimated_cost"] == pytest.approx(0.7 * pue * usd_per_mwh / 1000)
    assert out["net_profit"] == pytest.approx(out["expected_revenue"] - out["estimated_cost"])
    assert out["recommendation"] in {"allocate", "defer"}
    assert 0 <= out["score"] <= 100


def test_profitability_of_a_miner(api: Api) -> None:
    body = {"resource_type": "ASIC", "asic_model": "S21", "profile": "eco"}
    out = api.client.post("/api/v1/profitability/calculate", json=body, headers=api.customer)
    assert out.status_code == 200
    assert out.json()["recommendation"] in {"mine", "curtail"}
    bad = api.client.post(
        "/api/v1/profitability/calculate",
        json={**body, "profile": "warp"},
        headers=api.customer,
    )
    assert bad.status_code == 422
    assert bad.json()["fields"][0]["field"] == "profile"


def test_queue_depth_counts_stored_queue(api: Api) -> None:
    for kind in ("ai_inference_realtime", "ai_training", "ai_training"):
        api.client.post("/api/v1/workloads", json={"workload_type": kind}, headers=api.customer)
    depth = api.client.get("/api/v1/queue/depth", headers=api.customer).json()
    assert depth == {
        "total_depth": 3,
        "by_priority": {"1": 1, "2": 0, "3": 2},
        "utilization_pct": 0.0,
    }


def test_resources_list_the_provisioned_fleet(api: Api) -> None:
    body = api.client.get("/api/v1/resources", headers=api.admin).json()
    assert body["total"] == 60
    assert body["by_kind"] == {"asic": 50, "gpu": 10}
    models = {d["model"] for d in body["resources"]}
    assert models == {"S21", "H100 SXM"}
    gpus = api.client.get("/api/v1/resources?kind=gpu", headers=api.admin).json()
    assert gpus["total"] == 10
    sites = api.client.get("/api/v1/sites", headers=api.admin).json()
    assert [s["site_id"] for s in sites] == ["site-west-1"]


def test_health_ready_and_metrics(api: Api) -> None:
    health = api.client.get("/health").json()
    assert health["status"] == "ok"
    assert health["components"] == {"database": "ok", "schema": "ok", "market": "ok"}
    assert api.client.get("/ready").status_code == 200
    api.client.post(
        "/api/v1/workloads", json={"workload_type": "ai_training"}, headers=api.customer
    )
    text = api.client.get("/metrics").text
    assert 'hcp_queue_depth{priority="3"} 1.0' in text
    assert 'hcp_devices{kind="asic",state="mining"} 50.0' in text
    assert 'hcp_devices_in_maintenance{kind="asic"} 0.0' in text
    api.client.put(
        "/api/v1/resources/site-west-1-gpu-00001/maintenance",
        json={"reason": "riser"},
        headers=api.admin,
    )
    assert 'hcp_devices_in_maintenance{kind="gpu"} 1.0' in api.client.get("/metrics").text
    assert "hcp_market_electricity_usd_per_mwh" in text
    assert "hcp_fleet_hashrate_ths" in text and 'hcp_fleet_power_w{kind="asic"}' in text
    assert (
        'hcp_http_requests_total{method="POST",route="/api/v1/workloads",status="201"} 1.0' in text
    )


def test_openapi_docs_are_served(api: Api) -> None:
    assert api.client.get("/docs").status_code == 200
    schema = api.client.get("/openapi.json").json()
    assert "/api/v1/workloads" in schema["paths"]


def test_data_stored_ahead_of_now_is_not_shown_as_current(api: Api) -> None:
    """A sped-up run (`hcp up --speed 30`) stores market time hours ahead of the wall clock; a
    later run at normal speed must show its own present, not that future."""
    with api.runtime.unit_of_work() as uow:
        present = uow.market.latest()
        assert present is not None
        ahead = START + timedelta(hours=3)
        uow.market.add(replace(present, at=ahead, btc_usd=1.0), "a sped-up run")
        uow.plans.add(plan_at(START, "now"))
        uow.plans.add(plan_at(ahead, "ahead"))
        uow.commit()
    prices = api.client.get("/api/v1/prices/current", headers=api.customer).json()
    assert prices["timestamp"].startswith(START.strftime("%Y-%m-%dT%H:%M"))
    plan = api.client.get("/api/v1/plan/current", headers=api.admin).json()
    assert plan["plan_id"] == "plan-now"
    api.clock.advance(timedelta(hours=3))  # once that time comes, it is the present
    prices = api.client.get("/api/v1/prices/current", headers=api.customer).json()
    assert prices["prices"]["btc"]["value"] == 1.0
    assert (
        api.client.get("/api/v1/plan/current", headers=api.admin).json()["plan_id"] == "plan-ahead"
    )


def plan_at(start: datetime, name: str) -> SitePlan:
    return SitePlan(
        id=f"plan-{name}",
        site_id="site-west-1",
        interval_start=start,
        strategy="breakeven",
        status="optimal",
        reason=None,
        expected_profit_usd=0.0,
        created_at=start,
        allocations=(),
    )


def test_the_dashboard_shows_no_plan_or_price_from_ahead_of_now(api: Api) -> None:
    """With devices elsewhere `hcp up` keeps the wall clock, behind a sped-up run's history:
    the overview shows the present, as `/api/v1/plan/current` and `/prices/current` do."""
    with api.runtime.unit_of_work() as uow:
        present = uow.market.latest()
        assert present is not None
        ahead = START + timedelta(days=2)
        future = replace(present, at=ahead, electricity_usd_per_mwh={"HB_WEST": 4_321.0})
        uow.market.add(future, "simulator")
        uow.plans.add(SitePlan("ahead", "site-west-1", ahead, "mpc", "optimal", None, 0.0,
                               ahead, ()))  # fmt: skip
        uow.commit()
    overview = api.runtime.platform.dashboard.admin(Sources())
    assert overview.prices is not None and overview.prices.at == present.at
    assert overview.plan is None or overview.plan.interval_start <= START


def test_metrics_behind_a_token_answer_only_the_scraper(api: Api) -> None:
    settings = api.runtime.settings.model_copy(update={"metrics_token": SecretStr("scrape-me")})
    app = _server(settings, api.runtime).config.app
    with TestClient(app) as client:
        for headers in ({}, {"Authorization": "Bearer scrape-you"}, api.admin):
            refused = client.get("/metrics", headers=headers)
            assert refused.status_code == 401, headers
            assert refused.headers["WWW-Authenticate"].startswith("Bearer")
            assert "HCP_METRICS_TOKEN" in refused.json()["message"]
            assert "hcp_queue_depth" not in refused.text
        scraped = client.get("/metrics", headers={"Authorization": "Bearer scrape-me"})
        assert scraped.status_code == 200 and "hcp_queue_depth" in scraped.text
        assert client.get("/health").status_code == 200  # liveness stays open


def test_metrics_without_a_token_are_open_as_health_is(api: Api) -> None:
    app = _server(api.runtime.settings, api.runtime).config.app
    with TestClient(app) as client:
        assert "hcp_queue_depth" in client.get("/metrics").text


def test_the_metrics_token_comes_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HCP_METRICS_TOKEN", "from-env")
    token = Settings(env="test", secret_key=TEST_SECRET).metrics_token
    assert token is not None and token.get_secret_value() == "from-env"


def test_an_empty_metrics_token_lets_no_bare_bearer_in(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """HCP_METRICS_TOKEN= (an empty value, as an unset variable substituted into an env file
    gives) is refused, not taken as a token that an empty 'Authorization: Bearer' matches."""
    monkeypatch.setenv("HCP_METRICS_TOKEN", "")
    with pytest.raises(ValueError, match="HCP_METRICS_TOKEN"):
        Settings(env="test", secret_key=TEST_SECRET)
    settings = api.runtime.settings.model_copy(update={"metrics_token": SecretStr("")})
    app = _server(settings, api.runtime).config.app
    with TestClient(app) as client:
        for headers in ({"Authorization": "Bearer"}, {"Authorization": "Bearer "}, {}):
            refused = client.get("/metrics", headers=headers)
            assert refused.status_code == 401, headers
            assert "hcp_queue_depth" not in refused.text
