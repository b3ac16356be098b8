"""Accounting of a backtest: each dispatched interval settled at the real prices of that
interval into running totals (`Ledger`) and a per-interval record (`Trace`)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field

import numpy as np

from hcp.domain.market import FloatArray
from hcp.economics import asic_revenue_usd, energy_cost_usd, gpu_revenue_usd
from hcp.optimizer.inputs import PpaContract, SiteNow, SiteSpec, asic_fleet_watts, grid_mw
from hcp.optimizer.lp import IntArray
from hcp.optimizer.plan import SiteAllocation
from hcp.optimizer.strategies import Terms
from hcp.optimizer.world import MarketArrays

USES = ("asic", "realtime", "batch", "training", "spot")
SOLD = "sellback"
"""The trace's series of MW sold back (a PPA's committed MW left unused), beside the USES."""
_KW_PER_MW = 1_000.0


@dataclass(slots=True)
class Ledger:
    """Money (USD) and service totals of one replay."""

    intervals: int = 0
    mining_revenue_usd: float = 0.0
    gpu_revenue_usd: float = 0.0
    gpu_spot_revenue_usd: float = 0.0
    sellback_revenue_usd: float = 0.0
    energy_cost_usd: float = 0.0
    sla_penalty_usd: float = 0.0
    realtime_unserved_gpu_hours: float = 0.0
    deadline_shortfall_gpu_hours: float = 0.0
    deadlines_missed: int = 0
    jobs_completed: int = 0
    energy_mwh: float = 0.0
    fallbacks: int = 0

    @property
    def profit_usd(self) -> float:
        """Revenue (mining, GPUs, sell-back) minus energy and SLA/deadline penalties."""
        revenue = self.mining_revenue_usd + self.gpu_revenue_usd + self.sellback_revenue_usd
        return revenue - self.energy_cost_usd - self.sla_penalty_usd

    def add(self, money: IntervalMoney, hours: float) -> None:
        """Add one site's interval (`hours` long)."""
        self.mining_revenue_usd += money.mining
        self.gpu_revenue_usd += money.customers + money.spot
        self.gpu_spot_revenue_usd += money.spot
        self.sellback_revenue_usd += money.sellback
        self.energy_cost_usd += money.energy
        self.energy_mwh += money.energy_mwh
        self.sla_penalty_usd += money.penalty
        self.realtime_unserved_gpu_hours += money.unserved_gpus * hours

    def miss_deadline(self, remaining_gpu_steps: int, step_hours: float, terms: Terms) -> float:
        """A job reached its deadline with work left: count it and charge the penalty (USD,
        returned for the trace of the interval it falls in)."""
        hours = remaining_gpu_steps * step_hours
        penalty = gpu_revenue_usd(1.0, hours, terms.sla_penalty_usd_per_gpu_hour)
        self.deadlines_missed += 1
        self.deadline_shortfall_gpu_hours += hours
        self.sla_penalty_usd += penalty
        return penalty

    def summary(self) -> dict[str, object]:
        """Every total, profit included, as plain JSON-ready values."""
        totals = {k: float(v) if isinstance(v, float) else v for k, v in asdict(self).items()}
        return {
            "intervals": totals.pop("intervals"),
            "profit_usd": float(self.profit_usd),
            **totals,
        }


@dataclass(frozen=True, slots=True)
class Trace:
    """Per decided interval: its start (UTC epoch seconds), grid MW by use (all sites, PUE
    included) and MW sold back (`SOLD`), the profit in USD and the real-time price per node.
    Filled in place."""

    seconds: IntArray
    mw: Mapping[str, FloatArray]
    profit_usd: FloatArray
    first: int = 0
    prices: Mapping[str, FloatArray] = field(default_factory=dict)

    @classmethod
    def empty(cls, market: MarketArrays, first: int) -> Trace:
        """A zeroed trace for the intervals of `market` from `first`."""
        n = len(market) - first
        prices = {node: v[first:] for node, v in market.electricity_usd_per_mwh.items()}
        mw = {use: np.zeros(n) for use in (*USES, SOLD)}
        return cls(market.seconds[first:], mw, np.zeros(n), first, prices)


@dataclass(frozen=True, slots=True)
class IntervalMoney:
    """One site's interval at real prices: USD by kind, realtime GPUs unserved, MWh drawn."""

    mining: float
    customers: float
    spot: float
    sellback: float
    energy: float
    penalty: float
    unserved_gpus: float
    energy_mwh: float

    @property
    def profit(self) -> float:
        return self.mining + self.customers + self.spot + self.sellback - self.energy - self.penalty


def settle(
    ledger: Ledger,
    trace: Trace,
    market: MarketArrays,
    terms: Terms,
    now: SiteNow,
    allocation: SiteAllocation,
    t: int,
) -> None:
    """Account `allocation` of site `now` in interval `t` at that interval's real prices."""
    money = interval_money(market, terms, now, allocation, t)
    ledger.add(money, market.step_hours)
    i = t - trace.first
    trace.profit_usd[i] += money.profit
    for use, mw in mw_by_use(allocation, now.site).items():
        trace.mw[use][i] += mw
    trace.mw[SOLD][i] += allocation.sellback_mw


def interval_money(
    market: MarketArrays, terms: Terms, now: SiteNow, allocation: SiteAllocation, t: int
) -> IntervalMoney:
    """What `allocation` of site `now` earns and costs in interval `t`."""
    hours = market.step_hours
    customers, spot = gpu_revenue(allocation, now, market, t)
    unserved = unserved_realtime_gpus(allocation, now)
    price = float(market.electricity_usd_per_mwh[now.site.node][t])
    energy, sold = energy_and_sellback_usd(allocation, now.site, price, hours)
    return IntervalMoney(
        mining=mining_revenue_usd(allocation, now.site, market, terms, t),
        customers=customers,
        spot=spot,
        sellback=sold,
        energy=energy,
        penalty=gpu_revenue_usd(unserved, hours, terms.sla_penalty_usd_per_gpu_hour),
        unserved_gpus=unserved,
        energy_mwh=allocation.grid_mw * hours,
    )


def mining_revenue_usd(
    allocation: SiteAllocation, site: SiteSpec, market: MarketArrays, terms: Terms, t: int
) -> float:
    """Pool payout of every hashing miner in interval `t`, after the pool fee."""
    hashprice = float(market.hashprice_usd_per_ths_day[t])
    hashrate = sum(
        count * fleet.model.profile(profile).hashrate_ths
        for fleet in site.asics
        for profile, count in allocation.asics.get(fleet.model.name, {}).items()
    )
    return asic_revenue_usd(hashrate, hashprice, market.step_seconds, terms.pool_fee)


def gpu_revenue(
    allocation: SiteAllocation, now: SiteNow, market: MarketArrays, t: int
) -> tuple[float, float]:
    """(customer revenue, spot revenue) in USD of the GPUs in interval `t`."""
    hours, job_price = market.step_hours, {j.job_id: j.price_usd_per_gpu_hour for j in now.jobs}
    customers = spot = 0.0
    for fleet in now.site.gpus:
        use = allocation.gpus.get(fleet.model.name)
        if use is None:
            continue
        family = fleet.model.family
        realtime_price = now.realtime_price_usd_per_gpu_hour.get(family, 0.0)
        customers += gpu_revenue_usd(use.realtime, hours, realtime_price)
        customers += sum(gpu_revenue_usd(n, hours, job_price[j]) for j, n in use.jobs().items())
        spot_price = market.gpu_spot_usd_per_gpu_hour.get(family)
        spot += 0.0 if spot_price is None else gpu_revenue_usd(use.spot, hours, spot_price[t])
    return customers, spot


def unserved_realtime_gpus(allocation: SiteAllocation, now: SiteNow) -> float:
    """Realtime demand (GPUs) left unserved in the interval, over all families."""
    served: dict[str, float] = {}
    for fleet in now.site.gpus:
        use = allocation.gpus.get(fleet.model.name)
        family = fleet.model.family
        served[family] = served.get(family, 0.0) + (use.realtime if use else 0.0)
    return sum(max(d - served.get(f, 0.0), 0.0) for f, d in now.realtime_gpus.items())


def energy_and_sellback_usd(
    allocation: SiteAllocation, site: SiteSpec, price_usd_per_mwh: float, hours: float
) -> tuple[float, float]:
    """(energy cost, sell-back revenue) in USD under the site's contract."""
    contract = site.contract
    grid_kw = allocation.grid_mw * _KW_PER_MW
    if not isinstance(contract, PpaContract):
        return energy_cost_usd(grid_kw, hours, price_usd_per_mwh + contract.adder_usd_per_mwh), 0.0
    committed_kw = contract.committed_mw * _KW_PER_MW
    fixed = energy_cost_usd(committed_kw, hours, contract.price_usd_per_mwh)
    extra = energy_cost_usd(max(grid_kw - committed_kw, 0.0), hours, price_usd_per_mwh)
    net_price = price_usd_per_mwh - contract.sellback_fee_usd_per_mwh
    sold = energy_cost_usd(allocation.sellback_mw * _KW_PER_MW, hours, net_price)
    return fixed + extra, sold


def mw_by_use(allocation: SiteAllocation, site: SiteSpec) -> dict[str, float]:
    """Grid MW (PUE included) drawn by miners (asleep ones too) and by GPUs in each use."""
    watts = dict.fromkeys(USES, 0.0)
    for fleet in site.asics:
        watts["asic"] += asic_fleet_watts(fleet, allocation.asics.get(fleet.model.name, {}))
    for gpu_fleet in site.gpus:
        use = allocation.gpus.get(gpu_fleet.model.name)
        if use is not None:
            busy = gpu_fleet.model.busy_power_w
            watts["realtime"] += use.realtime * busy
            watts["spot"] += use.spot * busy
            watts["batch"] += sum(use.batch.values()) * busy
            watts["training"] += sum(use.training.values()) * busy
    return {use: grid_mw(w, site.pue) for use, w in watts.items()}
