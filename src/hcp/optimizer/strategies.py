"""Four strategies behind one interface: given what is known now, decide this interval.

- `always_on`: every ASIC at its stock profile; GPUs serve demand.
- `breakeven`: today's practice: ASICs at stock, asleep while the last known price is above
  their breakeven; GPUs serve demand.
- `mpc`: a rolling-horizon LP over a forecast made only of information available now; the
  first interval of each plan is applied.
- `oracle`: perfect foresight, the upper bound: one LP over the whole window with the real
  prices, demand and future jobs (MILPs over week-long chunks, whole devices, when fleets are
  small).

Every decision is made dispatchable by the caller, so all four live under the same limits.
"""

from __future__ import annotations

import bisect
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np

from hcp.domain.workloads import WorkloadClass
from hcp.economics import DEFAULT_POOL_FEE, breakeven_usd_per_mwh
from hcp.optimizer.forecast import ForecastSettings, carry_forward, forecast_electricity
from hcp.optimizer.inputs import JobInputs, PpaContract, SiteInputs, SiteNow
from hcp.optimizer.plan import GpuUse, Plan, SiteAllocation, SolveStatus
from hcp.optimizer.planner import MatrixCache, plan_site
from hcp.optimizer.solver import HighsSolver, Solver
from hcp.optimizer.world import DecisionView, Foresight, Job

STRATEGY_NAMES = ("always_on", "breakeven", "mpc", "oracle")
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Terms:
    """Money terms shared by every site: the SLA penalty (USD per realtime GPU-hour unserved
    and per job GPU-hour missing at its deadline) and the mining pool's fee."""

    sla_penalty_usd_per_gpu_hour: float
    pool_fee: float = DEFAULT_POOL_FEE


@dataclass(frozen=True, slots=True)
class Decision:
    """Wished-for allocations of one interval per site, and how they were reached."""

    allocations: Mapping[str, SiteAllocation]
    status: SolveStatus = SolveStatus.OPTIMAL
    reason: str = ""


class Strategy(Protocol):
    @property
    def name(self) -> str: ...

    def decide(self, view: DecisionView) -> Decision:
        """The allocations wished for interval `view.t`."""
        ...


def serve_demand(now: SiteNow) -> dict[str, GpuUse]:
    """GPUs on realtime demand first, then open jobs (batch before training, earliest deadline
    first) at their full GPU count; the rest off."""
    free = {f.model.name: f.count for f in now.site.gpus}
    realtime = dict.fromkeys(free, 0)
    jobs: dict[str, dict[str, float]] = {name: {} for name in free}
    for family, demand in now.realtime_gpus.items():
        for model in now.site.gpu_models_of(family):
            realtime[model] = min(demand, free[model])
            free[model], demand = free[model] - realtime[model], demand - realtime[model]
    by_priority = sorted(now.jobs, key=lambda j: (j.workload_class.priority, j.deadline))
    for job in by_priority:
        want = min(job.max_gpus, job.remaining_gpu_steps)
        for model in now.site.gpu_models_of(job.family):
            granted = min(want, free[model])
            if granted > 0:
                jobs[model][job.job_id] = float(granted)
                free[model], want = free[model] - granted, want - granted
    return {m: _gpu_use(realtime[m], jobs[m], now) for m in free}


def _gpu_use(realtime: int, jobs: dict[str, float], now: SiteNow) -> GpuUse:
    training = {j.job_id for j in now.jobs if j.workload_class == WorkloadClass.AI_TRAINING}
    batch = {j: n for j, n in jobs.items() if j not in training}
    return GpuUse(float(realtime), 0.0, batch, {j: n for j, n in jobs.items() if j in training})


def _asics_at(now: SiteNow, running: Mapping[str, bool]) -> dict[str, dict[str, float]]:
    """Every miner of a model at its stock profile where `running[model]`, else asleep."""
    return {
        f.model.name: {f.model.stock_profile: float(f.count if running[f.model.name] else 0)}
        for f in now.site.asics
    }


def safe_allocation(now: SiteNow) -> SiteAllocation:
    """The fallback when no plan can be trusted: miners asleep, GPUs serving customers."""
    asleep = _asics_at(now, {f.model.name: False for f in now.site.asics})
    return SiteAllocation(now.site.name, asleep, serve_demand(now))


class AlwaysOn:
    """Every ASIC hashing at stock whatever the price; GPUs serve demand."""

    name = "always_on"

    def decide(self, view: DecisionView) -> Decision:
        """Everything on, every interval."""
        return Decision({name: self._site(now) for name, now in view.sites.items()})

    def _site(self, now: SiteNow) -> SiteAllocation:
        running = {f.model.name: True for f in now.site.asics}
        return SiteAllocation(now.site.name, _asics_at(now, running), serve_demand(now))


class Breakeven:
    """ASICs at stock, asleep while the last known price is above their breakeven."""

    name = "breakeven"

    def __init__(self, terms: Terms) -> None:
        self.terms = terms

    def decide(self, view: DecisionView) -> Decision:
        """Compare the last known price with each model's breakeven at the last hashprice."""
        return Decision({name: self._site(view, now) for name, now in view.sites.items()})

    def _site(self, view: DecisionView, now: SiteNow) -> SiteAllocation:
        price = marginal_price(now, float(view.electricity_usd_per_mwh[now.site.node][-1]))
        hashprice = float(view.hashprice_usd_per_ths_day[-1])
        running = {
            f.model.name: price
            <= breakeven_usd_per_mwh(f.model.stock, hashprice, now.site.pue, self.terms.pool_fee)
            for f in now.site.asics
        }
        return SiteAllocation(now.site.name, _asics_at(now, running), serve_demand(now))


def marginal_price(now: SiteNow, price_usd_per_mwh: float) -> float:
    """What one more MWh costs the site at this real-time price under its contract."""
    contract = now.site.contract
    if isinstance(contract, PpaContract):
        return price_usd_per_mwh - contract.sellback_fee_usd_per_mwh
    return price_usd_per_mwh + contract.adder_usd_per_mwh


@dataclass(frozen=True, slots=True)
class MpcSettings:
    """Rolling-horizon length and the forecast, chosen on 2021–2023 only
    (scripts/tune_forecast.py): longer horizons changed nothing but the solve time.

    `deadline_margin_hours`: each plan counts on finishing a job this long before its
    deadline (`SiteInputs.deadline_margin_steps`). Without it mpc left a deferred job exactly
    the time its full GPU count needed, so GPUs taken by realtime demand in the last hours
    made it miss: once in the 36 months of 2021–2023 (a training job in Winter Storm Uri,
    233 GPU-hours short). One hour left it 56 GPU-hours short; two hours none, and changed
    no other month (USD +276 over the 36)."""

    horizon_hours: float = 2.0
    forecast: ForecastSettings = field(default_factory=ForecastSettings)
    deadline_margin_hours: float = 2.0


class Mpc:
    """Plan the next hours on a forecast, apply the first interval, re-plan next interval."""

    name = "mpc"

    def __init__(
        self, terms: Terms, settings: MpcSettings | None = None, solver: Solver | None = None
    ) -> None:
        self.terms = terms
        self.settings = settings or MpcSettings()
        self.solver = solver or HighsSolver(presolve=False)
        self._matrices: dict[str, MatrixCache] = {}

    def decide(self, view: DecisionView) -> Decision:
        """Solve each site on the forecast; a site whose solve fails gets the safe plan."""
        plans = {
            name: plan_site(
                self._inputs(view, now), self.solver, self._matrices.setdefault(name, MatrixCache())
            )
            for name, now in view.sites.items()
        }
        return _first_intervals(plans, view, 0)

    def _inputs(self, view: DecisionView, now: SiteNow) -> SiteInputs:
        horizon = max(1, round(self.settings.horizon_hours / view.step_hours))
        site = now.site
        day_ahead = view.day_ahead_usd_per_mwh.get(site.day_ahead_node or site.node)
        price = forecast_electricity(
            view.electricity_usd_per_mwh[site.node],
            day_ahead,
            view.steps_per_day,
            horizon,
            self.settings.forecast,
        )
        return SiteInputs(
            site=site,
            state=now.state,
            step_hours=view.step_hours,
            electricity_usd_per_mwh=price,
            hashprice_usd_per_ths_day=carry_forward(view.hashprice_usd_per_ths_day, horizon),
            gpu_spot_usd_per_gpu_hour={
                family: carry_forward(spot, horizon)
                for family, spot in view.gpu_spot_usd_per_gpu_hour.items()
            },
            realtime_gpus={f: np.full(horizon, float(n)) for f, n in now.realtime_gpus.items()},
            realtime_price_usd_per_gpu_hour=now.realtime_price_usd_per_gpu_hour,
            jobs=now.jobs,
            sla_penalty_usd_per_gpu_hour=self.terms.sla_penalty_usd_per_gpu_hour,
            pool_fee=self.terms.pool_fee,
            deadline_margin_steps=round(self.settings.deadline_margin_hours / view.step_hours),
        )


def _first_intervals(plans: Mapping[str, Plan], view: DecisionView, i: int) -> Decision:
    """Interval `i` of each site's plan; the safe allocation where a plan failed (the
    decision then carries the first failure's status and reason)."""
    allocations, failed = {}, None
    for name, plan in plans.items():
        if plan.ok:
            allocations[name] = plan.allocation(i)
        else:
            allocations[name] = safe_allocation(view.sites[name])
            failed = failed or plan
    if failed is None:
        return Decision(allocations)
    return Decision(allocations, failed.status, f"{failed.site}: {failed.reason}")


@dataclass(frozen=True, slots=True)
class OracleSettings:
    """`integer`: whole devices (MILP); None decides by size: MILP when no fleet of the site
    has more than `integer_up_to` devices, where rounding an LP would cost a visible share of
    the profit.

    LPs cover the whole window in one program (`chunk_hours` None), so that the profit bounds
    every strategy's: a year of 15-minute steps at 30 MW is about 20 s and 1 GB (`make
    bench-economics`). The plan is then followed to the end, each interval made dispatchable
    from the sites' actual state. With a MILP at any site, every site goes by chunks of
    `milp_chunk_hours`, each with `overlap_hours` more of foresight (re-planned by the next
    chunk): branch and cut over a year of whole devices is out of reach. So does an LP whose
    whole-window solve failed (the solver's time limit), from that interval on. A
    `chunk_hours` chunks LPs as well. A MILP chunk that branch and cut cannot finish within
    `milp_time_limit_s` is planned by its LP relaxation instead (150 S21s and 32 H100s with
    minimum on/off times took HiGHS past 300 s for one day, where 80 and 16 take 0.1 s)."""

    chunk_hours: float | None = None
    milp_chunk_hours: float = 168.0
    overlap_hours: float = 48.0
    integer: bool | None = None
    integer_up_to: int = 200
    milp_time_limit_s: float = 60.0


class Oracle:
    """Perfect foresight over the whole window: the upper bound of every strategy."""

    name = "oracle"

    def __init__(
        self,
        foresight: Foresight,
        terms: Terms,
        settings: OracleSettings | None = None,
        solver: Solver | None = None,
    ) -> None:
        self.foresight = foresight
        self.terms = terms
        self.settings = settings or OracleSettings()
        self.solver = solver or HighsSolver()
        self._milp_solver = solver or HighsSolver(time_limit_s=self.settings.milp_time_limit_s)
        self._releases = [job.release for job in foresight.jobs]
        self._start = 0
        self._chunk = 0  # intervals the current plan is followed for, from _start
        self._plans: dict[str, Plan] = {}
        self._whole_window_failed = False

    def decide(self, view: DecisionView) -> Decision:
        """The allocation of interval t from the current plan: one of the rest of the window,
        or of the current chunk (a new one is solved from the sites' actual state when t leaves
        the chunk, or when the last solve failed)."""
        failed = not all(plan.ok for plan in self._plans.values())
        if not self._plans or failed or view.t >= self._start + self._chunk:
            self._solve_from(view)
        return _first_intervals(self._plans, view, view.t - self._start)

    def _solve_from(self, view: DecisionView) -> None:
        """Plan every site from interval t: the rest of the window, or a chunk (at once, in
        chunks, when the rest of the window in one program fails)."""
        left = len(self.foresight.market) - view.t
        hours = self._chunk_hours(view)
        if hours is None:
            chunk, overlap = left, 0
        else:
            chunk = self._steps(hours, view.step_hours)
            overlap = self._steps(self.settings.overlap_hours, view.step_hours)
        self._start, self._chunk = view.t, chunk
        horizon = min(chunk + overlap, left)
        self._plans = {
            name: self._plan(self._inputs(view, now, horizon)) for name, now in view.sites.items()
        }
        if hours is None and not all(plan.ok for plan in self._plans.values()):
            self._whole_window_failed = True  # not tried again: the rest goes in chunks
            self._solve_from(view)

    def _plan(self, inputs: SiteInputs) -> Plan:
        """The plan of `inputs`; a MILP that fails (out of time) gives way to its LP relaxation,
        rather than to the safe plan."""
        if not inputs.integer:
            return plan_site(inputs, self.solver)
        plan = plan_site(inputs, self._milp_solver)
        if plan.ok:
            return plan
        why = f"{plan.status.value} ({plan.reason})"
        log.warning("oracle: %s in whole devices %s; planning its LP relaxation", plan.site, why)
        return plan_site(replace(inputs, integer=False), self.solver)

    @staticmethod
    def _steps(hours: float, step_hours: float) -> int:
        return max(1, round(hours / step_hours))

    def _chunk_hours(self, view: DecisionView) -> float | None:
        """The chunk length in hours; None: the rest of the window in one program."""
        if self._whole_window_failed or any(self._integer(n) for n in view.sites.values()):
            return self.settings.milp_chunk_hours
        return self.settings.chunk_hours

    def _inputs(self, view: DecisionView, now: SiteNow, horizon: int) -> SiteInputs:
        market, window = self.foresight.market, slice(view.t, view.t + horizon)
        families = self.foresight.realtime_gpus.get(now.site.name, {})
        return SiteInputs(
            site=now.site,
            state=now.state,
            step_hours=view.step_hours,
            electricity_usd_per_mwh=market.electricity_usd_per_mwh[now.site.node][window],
            hashprice_usd_per_ths_day=market.hashprice_usd_per_ths_day[window],
            gpu_spot_usd_per_gpu_hour={
                k: v[window] for k, v in market.gpu_spot_usd_per_gpu_hour.items()
            },
            realtime_gpus={family: demand[window] for family, demand in families.items()},
            realtime_price_usd_per_gpu_hour=now.realtime_price_usd_per_gpu_hour,
            jobs=now.jobs + self._future_jobs(now.site.name, view.t, horizon),
            sla_penalty_usd_per_gpu_hour=self.terms.sla_penalty_usd_per_gpu_hour,
            pool_fee=self.terms.pool_fee,
            final=view.t + horizon >= len(market),
            integer=self._integer(now),
        )

    def _future_jobs(self, site: str, t: int, horizon: int) -> tuple[JobInputs, ...]:
        """Jobs of `site` that arrive after t within the horizon, times relative to t."""
        first = bisect.bisect_right(self._releases, t)
        last = bisect.bisect_left(self._releases, t + horizon)
        return tuple(
            job_inputs(job, t, job.work_gpu_steps)
            for job in self.foresight.jobs[first:last]
            if job.site == site
        )

    def _integer(self, now: SiteNow) -> bool:
        if self.settings.integer is not None:
            return self.settings.integer
        counts = [f.count for f in now.site.asics] + [f.count for f in now.site.gpus]
        return max(counts, default=0) <= self.settings.integer_up_to


def job_inputs(job: Job, t: int, remaining_gpu_steps: int) -> JobInputs:
    """`job` as the optimizer sees it at interval t, with the work it has left."""
    return JobInputs(
        job_id=job.job_id,
        workload_class=job.workload_class,
        family=job.family,
        max_gpus=job.gpus,
        remaining_gpu_steps=remaining_gpu_steps,
        release=job.release - t,
        deadline=job.deadline - t,
        price_usd_per_gpu_hour=job.price_usd_per_gpu_hour,
    )
