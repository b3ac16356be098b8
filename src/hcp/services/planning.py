"""Live planning: turn the current market and fleet into a SitePlan for the next interval.

`RuleOfThumbPlanner` is today's industry practice (the backtests' `breakeven` strategy): every
GPU is offered to customer work, and each miner model runs at stock while the last known
price is below its breakeven, within the site's power limit (GPUs first: a GPU-hour is worth
far more than the energy it draws).

`OptimizerPlanner` is the backtests' `mpc` strategy run live behind the same `Planner`
protocol: a rolling-horizon LP over a price forecast made of what is known at the tick, whose
first interval becomes the plan; the rule of thumb stands in whenever no optimal plan exists.
"""

from __future__ import annotations

import logging
import math
import uuid
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Protocol

import numpy as np

from hcp.domain.catalog import asic_model, gpu_model
from hcp.domain.fleet import Site
from hcp.domain.market import FloatArray, MarketSnapshot
from hcp.domain.plans import GPU_OFF, GPU_SPOT, GPU_WORKLOADS, SLEEP, Allocation, SitePlan
from hcp.domain.workloads import Workload, WorkloadClass, WorkloadState
from hcp.economics import (
    DEFAULT_POOL_FEE,
    DEFAULT_PRICE_SHEET,
    GpuPriceSheet,
    breakeven_usd_per_mwh,
    gpu_hour_value_usd,
    gpu_revenue_usd,
    snapshot_hashprice,
)
from hcp.economics.energy import energy_cost_usd
from hcp.economics.mining import asic_revenue_usd
from hcp.optimizer.dispatchable import dispatchable
from hcp.optimizer.forecast import ForecastSettings, carry_forward, forecast_electricity
from hcp.optimizer.inputs import (
    AsicFleet,
    AsicState,
    GpuFleet,
    JobInputs,
    RtContract,
    SiteInputs,
    SiteNow,
    SiteSpec,
    SiteState,
    keep_last,
    steps_covering,
)
from hcp.optimizer.inputs import (
    grid_mw as grid_mw_of,
)
from hcp.optimizer.plan import GpuUse, SiteAllocation, SolveStatus
from hcp.optimizer.planner import plan_site
from hcp.optimizer.solver import HighsSolver, Solver
from hcp.optimizer.strategies import MpcSettings
from hcp.services.ports import UnitOfWorkFactory
from hcp.services.scheduler import DEFAULT_HOURS

log = logging.getLogger(__name__)


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


def planner_named(
    name: str,
    uow: UnitOfWorkFactory,
    step: timedelta,
    ramp_mw_per_step: float | None = None,
    min_on: timedelta = timedelta(0),
    min_off: timedelta = timedelta(0),
) -> Planner:
    """The live planner called `name` (`mpc` or `breakeven`) for ticks of `step`; the
    optimizer keeps to the site's ramp limit and its miners' minimum on/off time (the rule of
    thumb knows neither: the dispatcher staggers what it wakes)."""
    if name == RuleOfThumbPlanner.name:
        return RuleOfThumbPlanner()
    if name == OptimizerPlanner.name:
        settings = MpcPlanSettings(
            step=step, ramp_mw_per_step=ramp_mw_per_step, min_on=min_on, min_off=min_off
        )
        return OptimizerPlanner(StoredHistory(uow), settings)
    raise ValueError(f"unknown planner {name!r} (known: mpc, breakeven)")


# --- the optimizer behind the same protocol ------------------------------------------------

OPEN_STATES = (WorkloadState.QUEUED, WorkloadState.SCHEDULED, WorkloadState.RUNNING)
DEFAULT_SLA_PENALTY_USD_PER_GPU_HOUR = 10.0
"""Charged per realtime GPU-hour unserved and per job GPU-hour missing at its deadline: the
figure the example backtest scenarios use (examples/*.toml)."""
_HOUR = timedelta(hours=1)
_REALTIME = WorkloadClass.AI_INFERENCE_REALTIME


@dataclass(frozen=True, slots=True)
class PlanningHistory:
    """What the store knows when an interval is planned: market snapshots (oldest first), the
    site's previous plan, the customer workloads queued, scheduled or running, and the site's
    recent plans (oldest first; what the minimum on/off time looks back on)."""

    snapshots: Sequence[MarketSnapshot]
    previous: SitePlan | None
    workloads: Sequence[Workload]
    recent_plans: Sequence[SitePlan] = ()


class HistorySource(Protocol):
    def read(
        self, site: Site, since: datetime, before: datetime, plans_since: datetime | None = None
    ) -> PlanningHistory:
        """Snapshots in [since, before), the site's latest plan, its open workloads, and its
        plans of intervals in [plans_since, before) when `plans_since` is given."""
        ...


class StoredHistory:
    """`HistorySource` over the unit of work, one read transaction per tick.

    Stored snapshots never change and the feed stores them in time order, so they are kept
    between ticks and a tick reads only those newer than the newest kept (reading all 21 days
    of five-minute snapshots takes a few hundred milliseconds on SQLite; it happens once).
    """

    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow
        self._kept: list[MarketSnapshot] = []
        self._kept_since: datetime | None = None

    def read(
        self, site: Site, since: datetime, before: datetime, plans_since: datetime | None = None
    ) -> PlanningHistory:
        """Snapshots in [since, before), the site's latest plan, its open workloads, and its
        plans of intervals in [plans_since, before) when `plans_since` is given."""
        covered = self._kept_since is not None and self._kept_since <= since
        kept = self._kept if covered else []
        newest = kept[-1].at if kept else None
        recent: list[SitePlan] = []
        with self._uow() as uow:
            # `recent` is oldest first and stops at `limit`: leave room for every interval.
            fresh = uow.market.recent(newest or since, limit=1_000_000)
            previous = uow.plans.latest(site.id, until=before)
            workloads = uow.workloads.in_states(OPEN_STATES)
            if plans_since is not None:
                recent = uow.plans.recent(site.id, since=plans_since)
        # Nothing from `before` on: a sped-up run may have stored market time ahead of this
        # one, and the cache must not move past what this run has reached.
        added = [s for s in fresh if (newest is None or s.at > newest) and s.at < before]
        self._kept = [s for s in kept if s.at >= since] + added
        self._kept_since = since
        return PlanningHistory(
            [s for s in self._kept if s.at < before],
            previous,
            [w for w in workloads if w.site_id in (None, site.id)],
            [p for p in recent if p.interval_start < before],
        )


@dataclass(frozen=True, slots=True)
class MpcPlanSettings:
    """The live optimizer's knobs: tick length, horizon (that of the backtests' `mpc`), SLA
    penalty, pool fee, how long after its work could end a job without a deadline is due,
    the forecast and the customer price sheet.

    Very short ticks (a demonstration's 1 s) would make a two-hour horizon thousands of
    intervals and 21 days of history millions of prices: `max_horizon_steps` and
    `max_history_steps` bound both (at five-minute ticks neither binds).
    """

    step: timedelta = timedelta(minutes=5)
    horizon: timedelta = timedelta(hours=MpcSettings().horizon_hours)
    max_horizon_steps: int = 48
    max_history_steps: int = 21 * 288
    sla_penalty_usd_per_gpu_hour: float = DEFAULT_SLA_PENALTY_USD_PER_GPU_HOUR
    pool_fee: float = DEFAULT_POOL_FEE
    # A workload without a deadline is wanted as soon as possible: it is due one step after
    # its work could end, so the plan runs it now unless power is short. A customer who gives
    # a deadline lets the optimizer defer the work into cheaper hours.
    job_slack: timedelta = timedelta(minutes=5)
    # Each plan counts on finishing a job this long before its deadline (see MpcSettings).
    deadline_margin: timedelta = timedelta(hours=MpcSettings().deadline_margin_hours)
    # The site's ramp limit (grid MW per tick, up or down), None for none. It holds from the
    # previous plan's draw; the first plan has none to hold from.
    ramp_mw_per_step: float | None = None
    # A miner woken stays on, and one put to sleep stays asleep, at least this long (0: no
    # minimum), counting the wakes and sleeps of the site's recent plans.
    min_on: timedelta = timedelta(0)
    min_off: timedelta = timedelta(0)
    forecast: ForecastSettings = field(default_factory=ForecastSettings)
    prices: GpuPriceSheet = DEFAULT_PRICE_SHEET

    @property
    def horizon_steps(self) -> int:
        """Intervals planned, the one decided included."""
        return min(max(1, round(self.horizon / self.step)), self.max_horizon_steps)

    @property
    def history_steps(self) -> int:
        """Past intervals the forecast looks back over."""
        days = self.forecast.profile_days * self.steps_per_day
        return max(1, min(days, self.max_history_steps))

    @property
    def steps_per_day(self) -> int:
        return max(1, round(timedelta(days=1) / self.step))

    @property
    def min_on_steps(self) -> int:
        return steps_covering(self.min_on, self.step)

    @property
    def min_off_steps(self) -> int:
        return steps_covering(self.min_off, self.step)


class OptimizerPlanner:
    """The backtests' `mpc` live: each tick an LP over the next `horizon`, on a forecast made
    of what is known now; its first interval, made whole by `dispatchable`, is the plan.

    What the plan of the interval [t, t + step) starting at `snapshot.at` uses:
    - electricity: for t, the snapshot's real-time price at the site's node (published at the
      start of the interval; the price the interval is metered at); for t+1 on, the forecast
      of `forecast_electricity` from the stored real-time prices before t followed by t's
      (daily profile of the last `profile_days` blended with t's price), or t's price held
      flat while less than a day is stored. No day-ahead: the store has none for t+1 on.
    - hashprice and GPU spot: the snapshot's, held over the horizon.
    - fleet: the healthy device counts; state: the miners hashing in the previous stored plan.
    - demand: realtime GPUs of the workloads queued, scheduled or running now; batch and
      training workloads in those states as jobs.
    No price of an interval after t is used, nor any snapshot of t but the one given. With
    bad inputs or a solve that is not optimal the breakeven rule plans instead; the plan
    keeps the solve's status and reason.
    """

    name = "mpc"

    def __init__(
        self,
        history: HistorySource,
        settings: MpcPlanSettings | None = None,
        solver: Solver | None = None,
    ) -> None:
        self.history = history
        self.settings = settings or MpcPlanSettings()
        self.solver = solver or HighsSolver(presolve=False)
        self.fallback = RuleOfThumbPlanner()

    def plan(
        self, site: Site, fleet: FleetCounts, snapshot: MarketSnapshot, now: datetime
    ) -> SitePlan:
        """The plan of the interval starting at `snapshot.at`; always a plan."""
        try:
            inputs = self._inputs(site, fleet, snapshot)
            solved = plan_site(inputs, self.solver)
        except (KeyError, ValueError) as exc:
            return self._fall_back(site, fleet, snapshot, now, SolveStatus.BAD_INPUT, str(exc))
        except Exception as exc:  # the control loop must get a plan whatever went wrong
            log.exception("mpc planning failed for site %s", site.id)
            why = f"{type(exc).__name__}: {exc}"
            return self._fall_back(site, fleet, snapshot, now, SolveStatus.FAILED, why)
        if not solved.ok:
            return self._fall_back(site, fleet, snapshot, now, solved.status, solved.reason)
        allocation = dispatchable(solved.allocation(0), site_now(inputs))
        return self._site_plan(site, inputs, allocation, snapshot.at, now)

    def _inputs(self, site: Site, fleet: FleetCounts, snapshot: MarketSnapshot) -> SiteInputs:
        since = snapshot.at - self.settings.history_steps * self.settings.step
        switches = max(self.settings.min_on_steps, self.settings.min_off_steps) - 1
        plans_since = snapshot.at - switches * self.settings.step if switches else None
        known = self.history.read(site, since, snapshot.at, plans_since)
        return live_inputs(site, fleet, snapshot, known, self.settings)

    def _site_plan(
        self,
        site: Site,
        inputs: SiteInputs,
        allocation: SiteAllocation,
        interval_start: datetime,
        now: datetime,
    ) -> SitePlan:
        return SitePlan(
            id=f"plan-{uuid.uuid4().hex[:12]}",
            site_id=site.id,
            interval_start=interval_start,
            strategy=self.name,
            status=SolveStatus.OPTIMAL.value,
            reason=describe(inputs),
            expected_profit_usd=round(hourly_profit_usd(allocation, inputs), 4),
            created_at=now,
            allocations=plan_allocations(allocation, inputs.site),
        )

    def _fall_back(
        self,
        site: Site,
        fleet: FleetCounts,
        snapshot: MarketSnapshot,
        now: datetime,
        status: SolveStatus,
        reason: str,
    ) -> SitePlan:
        """The breakeven rule's plan, marked with the solve's status and reason."""
        plan = self.fallback.plan(site, fleet, snapshot, now)
        why = f"mpc {status.value}: {reason}; breakeven rule applied: {plan.reason}"
        log.warning("site %s: %s", site.id, why)
        return replace(plan, strategy=self.name, status=status.value, reason=why)


def live_inputs(
    site: Site,
    fleet: FleetCounts,
    snapshot: MarketSnapshot,
    known: PlanningHistory,
    settings: MpcPlanSettings,
) -> SiteInputs:
    """The optimizer's inputs for the interval starting at `snapshot.at` (what each comes
    from: `OptimizerPlanner`)."""
    previous = known.previous
    # The ramp holds from the previous plan's draw, if it is the last tick's: after a pause
    # (a restart, say) the site's draw is not what that plan left.
    recent = previous is not None and previous.interval_start >= snapshot.at - 2 * settings.step
    spec = site_spec(site, fleet, settings.ramp_mw_per_step if recent else None)
    spec = replace(spec, min_on_steps=settings.min_on_steps, min_off_steps=settings.min_off_steps)
    h = settings.horizon_steps
    demand = realtime_demand(known.workloads, spec)
    state = site_state(previous, spec)
    return SiteInputs(
        site=spec,
        state=with_recent_switches(state, known.recent_plans, spec, snapshot.at, settings.step),
        step_hours=settings.step / _HOUR,
        electricity_usd_per_mwh=electricity_forecast(known.snapshots, snapshot, site, settings),
        hashprice_usd_per_ths_day=np.full(h, snapshot_hashprice(snapshot)),
        gpu_spot_usd_per_gpu_hour={f: np.full(h, snapshot.gpu_spot(f)) for f in spec.families},
        realtime_gpus={f: np.full(h, float(n)) for f, n in demand.items()},
        realtime_price_usd_per_gpu_hour={
            f: gpu_hour_value_usd(_REALTIME, f, settings.prices, snapshot.gpu_spot(f))
            for f in spec.families
        },
        jobs=open_jobs(known.workloads, spec, snapshot, settings),
        sla_penalty_usd_per_gpu_hour=settings.sla_penalty_usd_per_gpu_hour,
        pool_fee=settings.pool_fee,
        deadline_margin_steps=round(settings.deadline_margin / settings.step),
    )


def site_spec(site: Site, fleet: FleetCounts, ramp_mw_per_step: float | None = None) -> SiteSpec:
    """The site as the optimizer sees it: its healthy fleet, MW, PUE, real-time contract and
    ramp limit."""
    kind = site.contract.get("kind", "rt")
    if kind != "rt":
        raise ValueError(f"site {site.id}: the live planner prices rt contracts only, not {kind}")
    return SiteSpec(
        name=site.id,
        node=site.node,
        capacity_mw=site.capacity_mw,
        pue=site.pue,
        contract=RtContract(float(site.contract.get("adder_usd_per_mwh", 0.0))),
        asics=tuple(AsicFleet(asic_model(m), n) for m, n in fleet.asics.items()),
        gpus=tuple(GpuFleet(gpu_model(m), n) for m, n in fleet.gpus.items()),
        ramp_mw_per_step=ramp_mw_per_step,
    )


def site_state(previous: SitePlan | None, spec: SiteSpec) -> SiteState:
    """Miners hashing per model (within today's healthy fleet) and grid MW as the previous
    plan left them; all asleep and no draw without one."""
    on = _hashing(previous) if previous is not None else Counter[str]()
    asics = {f.model.name: AsicState(min(on[f.model.name], f.count)) for f in spec.asics}
    if previous is None:
        return SiteState(0.0, asics)
    return SiteState(_reachable_mw(previous.power_kw * spec.pue / 1000, spec), asics)


def with_recent_switches(
    state: SiteState, plans: Sequence[SitePlan], spec: SiteSpec, now: datetime, step: timedelta
) -> SiteState:
    """`state` with the miners woken and put to sleep in each of the intervals before `now`
    that the minimum on/off time still counts, from the site's `plans` (oldest first): the
    change of miners hashing from each plan to the one before it. An interval without a plan
    (a pause) switched none."""
    steps = max(spec.min_on_steps, spec.min_off_steps) - 1
    if steps == 0:
        return state
    hashing = {p.interval_start: _hashing(p) for p in plans}
    asics = {}
    for fleet in spec.asics:
        name, ups, downs = fleet.model.name, [], []
        for k in range(steps, 0, -1):  # the interval k steps before now, oldest first
            at = now - k * step
            after, before = hashing.get(at), hashing.get(at - step)
            change = 0 if after is None or before is None else after[name] - before[name]
            ups.append(max(change, 0))
            downs.append(max(-change, 0))
        asics[name] = replace(
            state.asics[name],
            recent_ups=keep_last(tuple(ups), spec.min_on_steps - 1),
            recent_downs=keep_last(tuple(downs), spec.min_off_steps - 1),
        )
    return replace(state, asics=asics)


def _hashing(plan: SitePlan) -> Counter[str]:
    """Devices not asleep per model in `plan` (for miners: those hashing, in any profile)."""
    counts: Counter[str] = Counter()
    for a in plan.allocations:
        if a.use != SLEEP:
            counts[a.device_model] += a.count
    return counts


def _reachable_mw(grid_mw: float, spec: SiteSpec) -> float:
    """`grid_mw` within what the site can draw now: from every healthy miner asleep to its
    MW limit or everything at full power. A plan made for more devices than are healthy now,
    or for a larger limit, would otherwise put the ramp's window out of reach (infeasible)."""
    full_w = sum(max(p.power_w for p in f.model.profiles) * f.count for f in spec.asics)
    full_w += sum(f.model.busy_power_w * f.count for f in spec.gpus)
    low, high = grid_mw_of(spec.asleep_w, spec.pue), grid_mw_of(full_w, spec.pue)
    return min(max(grid_mw, low), min(high, spec.capacity_mw))


def electricity_forecast(
    snapshots: Sequence[MarketSnapshot],
    snapshot: MarketSnapshot,
    site: Site,
    settings: MpcPlanSettings,
) -> FloatArray:
    """USD/MWh over the horizon from `snapshot.at`: the snapshot's own real-time price, then
    the forecast from the real-time prices of `snapshots` before it and its own."""
    now_price = snapshot.electricity(site.node)
    past = price_grid(snapshots, site.node, snapshot.at, settings)
    history = np.append(past, now_price)
    ahead, per_day = settings.horizon_steps - 1, settings.steps_per_day
    if len(history) <= per_day:  # no same time of day stored yet: the price now, held
        later = carry_forward(history, ahead)
    else:
        later = forecast_electricity(history, None, per_day, ahead, settings.forecast)
    return np.concatenate([[now_price], later])


def price_grid(
    snapshots: Sequence[MarketSnapshot], node: str, before: datetime, settings: MpcPlanSettings
) -> FloatArray:
    """Real-time prices at `node` on the tick grid ending just before `before`, as far back as
    the forecast looks: from the first stored one on, a missing interval repeating the price
    before it. Snapshots at or after `before` are ignored."""
    slots = settings.history_steps
    start = before - slots * settings.step
    prices = np.full(slots, np.nan)
    for s in snapshots:
        i = round((s.at - start) / settings.step)
        if s.at < before and 0 <= i < slots and node in s.electricity_usd_per_mwh:
            prices[i] = s.electricity(node)
    known = np.flatnonzero(~np.isnan(prices))
    if not known.size:
        return np.empty(0)
    prices = prices[known[0] :]
    last_known = np.maximum.accumulate(np.where(np.isnan(prices), 0, np.arange(len(prices))))
    filled: FloatArray = prices[last_known]
    return filled


def family_of(workload: Workload, spec: SiteSpec) -> str | None:
    """The GPU family `workload` runs on here: the one it asks for, or the site's first when
    it asks for none; None when the site has no such GPUs."""
    wanted = workload.requirements.gpu_type
    if wanted is None:
        return spec.families[0] if spec.families else None
    return wanted if wanted in spec.families else None


def realtime_demand(workloads: Sequence[Workload], spec: SiteSpec) -> dict[str, int]:
    """GPUs per family asked for by realtime inference workloads (queued or holding GPUs)."""
    demand = dict.fromkeys(spec.families, 0)
    for w in workloads:
        family = family_of(w, spec)
        if w.workload_class is _REALTIME and family is not None:
            demand[family] += w.requirements.gpu_count
    return demand


def open_jobs(
    workloads: Sequence[Workload],
    spec: SiteSpec,
    snapshot: MarketSnapshot,
    settings: MpcPlanSettings,
) -> tuple[JobInputs, ...]:
    """Batch and training workloads that can run here, as jobs seen from `snapshot.at`."""
    jobs = []
    for w in workloads:
        family = family_of(w, spec)
        if w.workload_class is not _REALTIME and family is not None:
            jobs.append(job_of(w, family, snapshot, settings))
    return tuple(jobs)


def job_of(
    workload: Workload, family: str, snapshot: MarketSnapshot, settings: MpcPlanSettings
) -> JobInputs:
    """`workload` as a job released now: GPU-intervals of work left from its estimated hours
    and progress (at least one while it is open), due at its deadline or, without one,
    `job_slack` after its work could end (and the deadline margin after that: the margin
    guards a customer's deadline, it does not shorten the slack); paid the price sheet's
    price of its class (the spot price for a family the sheet does not list)."""
    req, at, spot = workload.requirements, snapshot.at, snapshot.gpu_spot(family)
    hours_left = (req.estimated_hours or DEFAULT_HOURS) * (1 - min(max(workload.progress, 0), 1))
    work = math.ceil(req.gpu_count * hours_left / (settings.step / _HOUR) - 1e-9)
    slack = settings.job_slack + settings.deadline_margin
    due = workload.deadline or at + hours_left * _HOUR + slack
    return JobInputs(
        job_id=workload.id,
        workload_class=workload.workload_class,
        family=family,
        max_gpus=req.gpu_count,
        remaining_gpu_steps=max(1, work),
        release=0,
        deadline=max(1, math.floor((due - at) / settings.step)),
        price_usd_per_gpu_hour=gpu_hour_value_usd(
            workload.workload_class, family, settings.prices, spot
        ),
    )


def site_now(inputs: SiteInputs) -> SiteNow:
    """The site as `dispatchable` needs it for interval 0 of `inputs`."""
    return SiteNow(
        site=inputs.site,
        state=inputs.state,
        realtime_gpus={f: round(float(d[0])) for f, d in inputs.realtime_gpus.items()},
        realtime_price_usd_per_gpu_hour=inputs.realtime_price_usd_per_gpu_hour,
        jobs=inputs.jobs,
    )


def plan_allocations(allocation: SiteAllocation, spec: SiteSpec) -> tuple[Allocation, ...]:
    """`allocation` as stored rows: per ASIC model one row per profile hashing and one `sleep`
    row; per GPU model `workloads` (realtime and jobs), `spot` and `off`. Power at the wall
    from the catalog; off GPUs draw nothing, as in the optimizer's model."""
    rows: list[Allocation] = []
    for fleet in spec.asics:
        model, counts = fleet.model, allocation.asics.get(fleet.model.name, {})
        hashing = {p.name: round(counts.get(p.name, 0.0)) for p in model.profiles}
        for name, n in hashing.items():
            if n > 0:
                rows.append(Allocation(model.name, name, n, n * model.profile(name).power_w / 1000))
        asleep = fleet.count - sum(hashing.values())
        rows.append(Allocation(model.name, SLEEP, asleep, asleep * model.sleep_power_w / 1000))
    for gpus in spec.gpus:
        rows.extend(_gpu_rows(gpus, allocation.gpus.get(gpus.model.name, GpuUse())))
    return tuple(rows)


def _gpu_rows(fleet: GpuFleet, use: GpuUse) -> list[Allocation]:
    serving = round(use.realtime + sum(use.jobs().values()))
    spot = round(use.spot)
    busy_kw = fleet.model.busy_power_w / 1000
    return [
        Allocation(fleet.model.name, GPU_WORKLOADS, serving, serving * busy_kw),
        Allocation(fleet.model.name, GPU_SPOT, spot, spot * busy_kw),
        Allocation(fleet.model.name, GPU_OFF, fleet.count - serving - spot, 0.0),
    ]


def hourly_profit_usd(allocation: SiteAllocation, inputs: SiteInputs) -> float:
    """Revenue − energy cost in USD per hour of `allocation` at the prices of interval 0 of
    `inputs` (the economics' figures; SLA penalties are not money received or paid)."""
    price = float(inputs.electricity_usd_per_mwh[0])
    if isinstance(inputs.site.contract, RtContract):
        price += inputs.site.contract.adder_usd_per_mwh
    energy = energy_cost_usd(allocation.grid_mw * 1000, 1.0, price)  # grid MW include PUE
    return _mining_usd_per_hour(allocation, inputs) + _gpu_usd_per_hour(allocation, inputs) - energy


def _mining_usd_per_hour(allocation: SiteAllocation, inputs: SiteInputs) -> float:
    hashprice = float(inputs.hashprice_usd_per_ths_day[0])
    hashrate = sum(
        n * fleet.model.profile(p).hashrate_ths
        for fleet in inputs.site.asics
        for p, n in allocation.asics.get(fleet.model.name, {}).items()
    )
    return asic_revenue_usd(hashrate, hashprice, 3600, inputs.pool_fee)


def _gpu_usd_per_hour(allocation: SiteAllocation, inputs: SiteInputs) -> float:
    job_price = {job.job_id: job.price_usd_per_gpu_hour for job in inputs.jobs}
    total = 0.0
    for fleet in inputs.site.gpus:
        use, family = allocation.gpus.get(fleet.model.name, GpuUse()), fleet.model.family
        realtime = inputs.realtime_price_usd_per_gpu_hour.get(family, 0.0)
        total += gpu_revenue_usd(use.realtime, 1.0, realtime)
        total += gpu_revenue_usd(use.spot, 1.0, float(inputs.gpu_spot_usd_per_gpu_hour[family][0]))
        total += sum(gpu_revenue_usd(n, 1.0, job_price[j]) for j, n in use.jobs().items())
    return total


def describe(inputs: SiteInputs) -> str:
    """One line on what the plan was made from."""
    prices = inputs.electricity_usd_per_mwh
    demand = sum(round(float(d[0])) for d in inputs.realtime_gpus.values())
    return (
        f"price {prices[0]:.2f} $/MWh (next {inputs.horizon - 1} intervals forecast "
        f"{prices[1:].mean() if inputs.horizon > 1 else prices[0]:.2f} on average), "
        f"hashprice {inputs.hashprice_usd_per_ths_day[0]:.4f} $/TH/day, "
        f"realtime {demand} GPUs, {len(inputs.jobs)} jobs"
    )
