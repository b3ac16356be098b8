"""Live planning: turn the current market and fleet into a SitePlan for the next interval.

`RuleOfThumbPlanner` is today's industry practice (the backtests' `breakeven` strategy): every
GPU is offered to customer work, and each miner model runs at stock while the last known
price is below its breakeven, within the site's power limit (GPUs first: a GPU-hour is worth
far more than the energy it draws). The optimizer's strategies plug in behind the same
`Planner` protocol.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from hcp.domain.catalog import asic_model, gpu_model
from hcp.domain.fleet import Site
from hcp.domain.market import MarketSnapshot
from hcp.domain.plans import GPU_WORKLOADS, SLEEP, Allocation, SitePlan
from hcp.economics import breakeven_usd_per_mwh, snapshot_hashprice
from hcp.economics.energy import energy_cost_usd
from hcp.economics.mining import asic_revenue_usd


@dataclass(frozen=True, slots=True)
class FleetCounts:
    """Healthy devices a plan may use: per ASIC model and per GPU model."""

    asics: Mapping[str, int]
    gpus: Mapping[str, int]


class Planner(Protocol):
    name: str

    def plan(
        self, site: Site, fleet: FleetCounts, snapshot: MarketSnapshot, now: datetime
    ) -> SitePlan: ...


def contract_price(site: Site, snapshot: MarketSnapshot) -> float:
    """What a MWh costs the site now, USD: real time plus the contract's adder."""
    adder = float(site.contract.get("adder_usd_per_mwh", 0.0))
    return snapshot.electricity(site.node) + adder


class RuleOfThumbPlanner:
    name = "breakeven"

    def plan(
        self, site: Site, fleet: FleetCounts, snapshot: MarketSnapshot, now: datetime
    ) -> SitePlan:
        price = contract_price(site, snapshot)
        hashprice = snapshot_hashprice(snapshot)
        budget_kw = site.capacity_mw * 1000 / site.pue
        allocations: list[Allocation] = []
        for name, count in fleet.gpus.items():
            model = gpu_model(name)
            allowed = min(count, math.floor(budget_kw / model.busy_power_w * 1000))
            budget_kw -= allowed * model.busy_power_w / 1000
            allocations.append(
                Allocation(name, GPU_WORKLOADS, allowed, allowed * model.busy_power_w / 1000)
            )
        profit = 0.0
        for name, count in sorted(fleet.asics.items(), key=lambda kv: _stock_j_per_th(kv[0])):
            stock = asic_model(name).stock
            worth_it = price < breakeven_usd_per_mwh(stock, hashprice, site.pue)
            on = min(count, math.floor(budget_kw * 1000 / stock.power_w)) if worth_it else 0
            budget_kw -= on * stock.power_w / 1000
            allocations.append(Allocation(name, stock.name, on, on * stock.power_w / 1000))
            allocations.append(Allocation(name, SLEEP, count - on, 0.0))
            revenue = asic_revenue_usd(on * stock.hashrate_ths, hashprice, 3600)
            profit += revenue - energy_cost_usd(on * stock.power_w / 1000, 1.0, price, site.pue)
        reason = f"price {price:.2f} $/MWh, hashprice {hashprice:.4f} $/TH/day"
        return SitePlan(
            id=f"plan-{uuid.uuid4().hex[:12]}",
            site_id=site.id,
            interval_start=snapshot.at,
            strategy=self.name,
            status="optimal",
            reason=reason,
            expected_profit_usd=round(profit, 4),
            created_at=now,
            allocations=tuple(allocations),
        )


def _stock_j_per_th(model_name: str) -> float:
    return asic_model(model_name).stock.efficiency_j_per_th
