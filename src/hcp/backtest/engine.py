"""The replay engine: step through a window, ask a strategy for each interval's decision with
only the information it may have, make the decision dispatchable, and account it at the
real prices of that interval. Pure: the caller brings the market, demand and sites."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime

from hcp.backtest.demand import Demand
from hcp.backtest.ledger import Ledger, Trace, settle
from hcp.optimizer.dispatchable import dispatchable
from hcp.optimizer.inputs import AsicState, SiteNow, SiteSpec, SiteState, keep_last
from hcp.optimizer.plan import SiteAllocation, SolveStatus
from hcp.optimizer.strategies import (
    AlwaysOn,
    Breakeven,
    Mpc,
    MpcSettings,
    Oracle,
    OracleSettings,
    Strategy,
    Terms,
    job_inputs,
    safe_allocation,
)
from hcp.optimizer.world import Foresight, Job, MarketArrays, view_at


@dataclass(frozen=True, slots=True)
class Setup:
    """A backtest ready to replay: market arrays (warm-up intervals first), the first interval
    decided and accounted, the sites, the demand and the money terms."""

    market: MarketArrays
    first: int
    sites: tuple[SiteSpec, ...]
    demand: Demand
    terms: Terms

    def __post_init__(self) -> None:
        decidable = self.market.first_decidable()
        if self.first < min(decidable, len(self.market)):
            at = datetime.fromtimestamp(int(self.market.seconds[self.first]), UTC)
            message = (
                f"interval {self.first} ({at.isoformat()}) is to be decided, but the hashprice "
                "known before it is not: the market holds no UTC day ended by then (decisions "
                f"can start at interval {decidable}; a warm-up of at least a day is needed)"
            )
            raise ValueError(message)

    @property
    def intervals(self) -> int:
        """Intervals decided and accounted."""
        return len(self.market) - self.first

    def foresight(self) -> Foresight:
        """Everything about the window, for the oracle."""
        return Foresight(self.market, self.demand.realtime_gpus, self.demand.jobs)


@dataclass(frozen=True, slots=True)
class Result:
    """One strategy's backtest: totals, per-interval trace, wall time."""

    strategy: str
    ledger: Ledger
    trace: Trace
    wall_seconds: float

    def summary(self) -> dict[str, object]:
        """The figures of the JSON line: strategy, intervals, money, service, wall time."""
        return {
            "strategy": self.strategy,
            **self.ledger.summary(),
            "wall_seconds": self.wall_seconds,
        }


def make_strategy(
    name: str,
    setup: Setup,
    mpc: MpcSettings | None = None,
    oracle: OracleSettings | None = None,
) -> Strategy:
    """The strategy called `name` (one of STRATEGY_NAMES); only the oracle gets foresight."""
    if name == "always_on":
        return AlwaysOn()
    if name == "breakeven":
        return Breakeven(setup.terms)
    if name == "mpc":
        return Mpc(setup.terms, mpc)
    if name == "oracle":
        return Oracle(setup.foresight(), setup.terms, oracle)
    raise ValueError(f"unknown strategy {name!r} (known: always_on, breakeven, mpc, oracle)")


def run_backtest(
    setup: Setup, strategy: Strategy, on_progress: Callable[[int], None] | None = None
) -> Result:
    """Replay the window with `strategy`; `on_progress(done)` after every interval."""
    started = time.perf_counter()
    replay = _Replay(setup)
    for t in range(setup.first, len(setup.market)):
        replay.step(t, strategy)
        if on_progress is not None:
            on_progress(t - setup.first + 1)
    wall = time.perf_counter() - started
    return Result(strategy.name, replay.ledger, replay.trace, wall)


@dataclass(slots=True)
class _OpenJob:
    job: Job
    remaining: int


@dataclass(slots=True)
class _Replay:
    """The mutable state of one replay: site states, open jobs, money and trace so far."""

    setup: Setup
    states: dict[str, SiteState] = field(default_factory=dict)
    open_jobs: dict[str, _OpenJob] = field(default_factory=dict)
    next_job: int = 0
    ledger: Ledger = field(default_factory=Ledger)
    trace: Trace = field(init=False)

    def __post_init__(self) -> None:
        self.states = {site.name: initial_state(site) for site in self.setup.sites}
        self.trace = Trace.empty(self.setup.market, self.setup.first)

    def step(self, t: int, strategy: Strategy) -> None:
        """Decide, dispatch, account and advance interval `t`."""
        self._release_jobs(t)
        nows = {site.name: self._now(site, t) for site in self.setup.sites}
        decision = strategy.decide(view_at(self.setup.market, t, nows))
        self.ledger.intervals += 1
        if decision.status != SolveStatus.OPTIMAL:
            self.ledger.fallbacks += 1
        market, terms = self.setup.market, self.setup.terms
        for name, now in nows.items():
            wished = decision.allocations.get(name) or safe_allocation(now)
            allocation = dispatchable(wished, now)
            settle(self.ledger, self.trace, market, terms, now, allocation, t)
            self._advance(now, allocation)
        self._close_deadlines(t)

    def _release_jobs(self, t: int) -> None:
        jobs = self.setup.demand.jobs
        while self.next_job < len(jobs) and jobs[self.next_job].release <= t:
            job = jobs[self.next_job]
            self.open_jobs[job.job_id] = _OpenJob(job, job.work_gpu_steps)
            self.next_job += 1

    def _now(self, site: SiteSpec, t: int) -> SiteNow:
        demand = self.setup.demand
        realtime = demand.realtime_gpus.get(site.name, {})
        jobs = tuple(
            job_inputs(o.job, t, o.remaining)
            for o in self.open_jobs.values()
            if o.job.site == site.name
        )
        return SiteNow(
            site=site,
            state=self.states[site.name],
            realtime_gpus={family: int(gpus[t]) for family, gpus in realtime.items()},
            realtime_price_usd_per_gpu_hour=demand.realtime_price_usd_per_gpu_hour.get(
                site.name, {}
            ),
            jobs=jobs,
        )

    def _advance(self, now: SiteNow, allocation: SiteAllocation) -> None:
        self.states[now.site.name] = next_state(now, allocation)
        for use in allocation.gpus.values():
            for job_id, gpus in use.jobs().items():
                self.open_jobs[job_id].remaining -= round(gpus)

    def _close_deadlines(self, t: int) -> None:
        """Jobs done leave; jobs due at t+1 with work left are missed and penalised."""
        for job_id, open_job in list(self.open_jobs.items()):
            if open_job.remaining <= 0:
                self.ledger.jobs_completed += 1
                del self.open_jobs[job_id]
            elif open_job.job.deadline <= t + 1:
                hours = self.setup.market.step_hours
                penalty = self.ledger.miss_deadline(open_job.remaining, hours, self.setup.terms)
                self.trace.profit_usd[t - self.trace.first] -= penalty  # as the ledger's
                del self.open_jobs[job_id]


def initial_state(site: SiteSpec) -> SiteState:
    """Before the window: every miner that fits hashing at stock, GPUs off, no recent switch."""
    unbounded = replace(site, ramp_mw_per_step=None)
    everything = {f.model.name: {f.model.stock_profile: float(f.count)} for f in site.asics}
    idle = SiteState(0.0, {f.model.name: AsicState(f.count) for f in site.asics})
    allocation = dispatchable(SiteAllocation(site.name, everything), SiteNow(unbounded, idle, {}))
    on = {name: AsicState(round(allocation.asics_on(name))) for name in everything}
    return SiteState(allocation.grid_mw, on)


def next_state(now: SiteNow, allocation: SiteAllocation) -> SiteState:
    """The site's state after `allocation`: miners on, recent wake-ups and sleeps, grid MW."""
    site, asics = now.site, {}
    for fleet in site.asics:
        before = now.state.asics[fleet.model.name]
        on = round(allocation.asics_on(fleet.model.name))
        ups = (*before.recent_ups, max(on - before.on, 0))
        downs = (*before.recent_downs, max(before.on - on, 0))
        asics[fleet.model.name] = AsicState(
            on, keep_last(ups, site.min_on_steps - 1), keep_last(downs, site.min_off_steps - 1)
        )
    return SiteState(allocation.grid_mw, asics)
