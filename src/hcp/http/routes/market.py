"""/api/v1/prices/current and /api/v1/profitability/calculate."""

from __future__ import annotations

from fastapi import APIRouter

from hcp.economics import ProfitabilityRequest, snapshot_hashprice
from hcp.http.deps import CurrentPrincipal, PlatformDep
from hcp.http.schemas import PricesOut, PriceValue, ProfitabilityIn, ProfitabilityOut

router = APIRouter(prefix="/api/v1", tags=["market"])


@router.get("/prices/current", response_model=PricesOut)
def current_prices(platform: PlatformDep, _caller: CurrentPrincipal) -> PricesOut:
    """The newest market snapshot at the first site's node (electricity in USD/kWh, as the seed)."""
    snapshot, site = platform.market.current()
    usd_per_mwh = snapshot.electricity(site.node)
    prices = {
        "electricity": PriceValue(value=round(usd_per_mwh / 1000, 6), unit="USD/kWh"),
        "electricity_mwh": PriceValue(value=usd_per_mwh, unit="USD/MWh"),
        "btc": PriceValue(value=snapshot.btc_usd, unit="USD"),
        "gpu_spot": PriceValue(value=snapshot.gpu_spot("H100"), unit="USD/hour"),
        "hashprice": PriceValue(value=snapshot_hashprice(snapshot), unit="USD/TH/day"),
        "difficulty": PriceValue(value=snapshot.difficulty, unit="1"),
    }
    return PricesOut(timestamp=snapshot.at, node=site.node, prices=prices)


@router.post("/profitability/calculate", response_model=ProfitabilityOut)
def calculate_profitability(
    body: ProfitabilityIn, platform: PlatformDep, _caller: CurrentPrincipal
) -> ProfitabilityOut:
    """Revenue, electricity cost and net profit of one device at the current prices."""
    request = ProfitabilityRequest(
        resource_type=body.resource_type,
        workload_type=body.workload_type,
        power_draw_w=body.power_draw_w,
        gpu_type=body.gpu_type,
        asic_model=body.asic_model,
        profile=body.profile,
        hashrate_ths=body.hashrate_ths,
        duration_hours=body.duration_hours,
    )
    result, snapshot, site = platform.market.profitability(request)
    return ProfitabilityOut(
        score=result.score,
        expected_revenue=result.expected_revenue,
        estimated_cost=result.estimated_cost,
        net_profit=result.net_profit,
        recommendation=result.recommendation,
        breakeven_usd_per_mwh=result.breakeven_usd_per_mwh,
        electricity_usd_per_mwh=snapshot.electricity(site.node),
        timestamp=snapshot.at,
    )
