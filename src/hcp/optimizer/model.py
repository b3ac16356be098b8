"""One site's dispatch over a horizon as a linear program (a MILP with `inputs.integer`).

`build_model` reads as the table of contents of the model; each `define_*` adds one kind of
variable or constraint for every interval at once. Units: device counts, MW of grid draw
(PUE included), USD. Index 0 of every horizon array is the interval being decided.

Every device of a kind at a site is interchangeable, so a fleet of N miners of one model is
modelled by how many run in each profile (the rest sleep), with wake-ups and sleeps counted
for the minimum on/off time (the clustered unit-commitment formulation); GPUs by how many
serve realtime inference, each batch or training job, the spot market (the rest are off).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from hcp.domain.market import FloatArray
from hcp.economics import asic_revenue_usd, energy_cost_usd, gpu_revenue_usd
from hcp.optimizer.inputs import PpaContract, RtContract, SiteInputs, grid_mw
from hcp.optimizer.lp import INF, IntArray, LinearProgram

_SECONDS_PER_HOUR = 3600.0


@dataclass(frozen=True, slots=True)
class AsicVariables:
    """Per ASIC model: `profiles` (profiles × horizon) miners per profile, `on` miners hashing,
    `up`/`down` miners woken/put to sleep (present only with a minimum on/off time)."""

    profiles: Mapping[str, IntArray]
    on: Mapping[str, IntArray]
    up: Mapping[str, IntArray]
    down: Mapping[str, IntArray]


@dataclass(frozen=True, slots=True)
class GpuVariables:
    """Per GPU model: GPUs serving realtime inference, rented on spot, and busy in any use."""

    realtime: Mapping[str, IntArray]
    spot: Mapping[str, IntArray]
    busy: Mapping[str, IntArray]


@dataclass(frozen=True, slots=True)
class JobGpus:
    """GPUs of one model per job and interval, only where the job may run (its window, its
    family): column `cols[k]` is job `job[k]` (index into `inputs.jobs`) in interval `t[k]`.
    Sparse: a year of jobs is thousands of jobs, each runnable for hours or days of it."""

    cols: IntArray
    job: IntArray
    t: IntArray


@dataclass(frozen=True, slots=True)
class JobVariables:
    """Per GPU model: GPUs per job and interval (`JobGpus`). Per job: its work left undone
    (GPU-intervals) by its deadline or the horizon's end."""

    gpus: Mapping[str, JobGpus]
    shortfall: IntArray


@dataclass(frozen=True, slots=True)
class PowerVariables:
    """Grid draw in MW per interval; MW bought above and sold back below a PPA's commitment."""

    grid: IntArray
    buy: IntArray | None
    sell: IntArray | None


@dataclass(frozen=True, slots=True)
class Variables:
    asic: AsicVariables
    gpu: GpuVariables
    jobs: JobVariables
    power: PowerVariables


@dataclass(frozen=True, slots=True)
class SiteModel:
    """A built model: its inputs, the program and where each variable lives in it."""

    inputs: SiteInputs
    lp: LinearProgram
    v: Variables


def build_model(inputs: SiteInputs, with_matrix: bool = True) -> SiteModel:
    """The LP of one site over the horizon of `inputs` (check them first: `check_inputs`);
    `with_matrix=False` leaves out the constraint matrix, which depends only on
    `structure_of(inputs)` (see `LinearProgram`)."""
    lp = LinearProgram(with_matrix)
    v = Variables(
        asic=define_asic_profile_variables(lp, inputs),
        gpu=define_gpu_use_variables(lp, inputs),
        jobs=define_job_variables(lp, inputs),
        power=define_power_variables(lp, inputs),
    )
    define_asic_count(lp, inputs, v)
    define_gpu_count(lp, inputs, v)
    define_site_power_limit(lp, inputs, v)
    define_ramp_limit(lp, inputs, v)
    define_min_on_off_time(lp, inputs, v)
    define_realtime_sla(lp, inputs, v)
    define_deadline_energy(lp, inputs, v)
    define_sellback(lp, inputs, v)
    define_profit_objective(lp, inputs, v)
    return SiteModel(inputs, lp, v)


def structure_of(x: SiteInputs) -> tuple[object, ...]:
    """What the variables, rows and constraint matrix of `x`'s model depend on: the site (its
    devices, profiles, PUE, contract, ramp and minimum times), the horizon, and each job's
    family and the intervals of the horizon it may run in. Everything else in the inputs
    (prices, state, demand, work left, caps) only sets bounds and costs, so two inputs of
    equal structure have the same matrix (a test checks it on random inputs)."""
    h = x.horizon
    windows = tuple(
        (job.family, min(max(job.release, 0), h), min(max(job.deadline, 0), h)) for job in x.jobs
    )
    return x.site, h, windows


def has_switching(inputs: SiteInputs) -> bool:
    """True when a minimum on or off time couples intervals (more than one step)."""
    return inputs.site.min_on_steps > 1 or inputs.site.min_off_steps > 1


def define_asic_profile_variables(lp: LinearProgram, x: SiteInputs) -> AsicVariables:
    """Miners per profile and hashing in total, plus wake-ups and sleeps when they matter."""
    h, whole = x.horizon, x.integer
    profiles, on, up, down = {}, {}, {}, {}
    for fleet in x.site.asics:
        name, n = fleet.model.name, fleet.count
        profiles[name] = lp.add_variables((len(fleet.model.profiles), h), 0, n, whole)
        on[name] = lp.add_variables(h, 0, n, whole)
        if has_switching(x):
            up[name] = lp.add_variables(h, 0, n, whole)
            down[name] = lp.add_variables(h, 0, n, whole)
    return AsicVariables(profiles, on, up, down)


def define_gpu_use_variables(lp: LinearProgram, x: SiteInputs) -> GpuVariables:
    """GPUs per model serving realtime inference, on the spot market, and busy in total."""
    h, whole = x.horizon, x.integer
    realtime, spot, busy = {}, {}, {}
    for fleet in x.site.gpus:
        name, n = fleet.model.name, fleet.count
        realtime[name] = lp.add_variables(h, 0, n, whole)
        spot[name] = lp.add_variables(h, 0, n, whole)
        busy[name] = lp.add_variables(h, 0, n, whole)
    return GpuVariables(realtime, spot, busy)


def define_job_variables(lp: LinearProgram, x: SiteInputs) -> JobVariables:
    """GPUs per model, job and interval where the job may run (its window, its family), up to
    its GPU count; and each job's shortfall."""
    # (minimum and maximum: np.clip costs several times as much on arrays this small)
    release = np.array([job.release for job in x.jobs], dtype=np.int64)
    deadline = np.array([job.deadline for job in x.jobs], dtype=np.int64)
    first = np.minimum(np.maximum(release, 0), x.horizon)
    end = np.minimum(np.maximum(deadline, 0), x.horizon)
    cap = np.array([float(job.max_gpus) for job in x.jobs])
    gpus = {}
    for fleet in x.site.gpus:
        fits = np.array([job.family == fleet.model.family for job in x.jobs], dtype=bool)
        lengths = np.where(fits, np.maximum(end - first, 0), 0)
        job = np.repeat(np.arange(len(x.jobs)), lengths)
        # interval of each entry: its job's first, plus its place within that job's run
        t = first[job] + np.arange(len(job)) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        cols = lp.add_variables(len(job), 0, cap[job], x.integer)
        gpus[fleet.model.name] = JobGpus(cols, job, t)
    remaining = np.array([float(job.remaining_gpu_steps) for job in x.jobs])
    return JobVariables(gpus, lp.add_variables(len(x.jobs), 0, remaining))


def define_power_variables(lp: LinearProgram, x: SiteInputs) -> PowerVariables:
    """Grid draw in MW; under a PPA also MW bought above and sold below the commitment."""
    grid = lp.add_variables(x.horizon, 0.0)
    if not isinstance(x.site.contract, PpaContract):
        return PowerVariables(grid, None, None)
    return PowerVariables(grid, lp.add_variables(x.horizon), lp.add_variables(x.horizon))


def define_asic_count(lp: LinearProgram, x: SiteInputs, v: Variables) -> None:
    """Miners hashing = the sum over profiles (at most the fleet, by the variables' bounds)."""
    for name, profiles in v.asic.profiles.items():
        columns = np.column_stack([v.asic.on[name], profiles.T])
        coefs = np.full(len(profiles) + 1, -1.0)
        coefs[0] = 1.0
        lp.add_rows(columns, coefs, 0.0, 0.0)


def define_gpu_count(lp: LinearProgram, x: SiteInputs, v: Variables) -> None:
    """Busy GPUs = realtime + spot + jobs, at most the GPUs of the model."""
    for name, busy in v.gpu.busy.items():
        columns = np.column_stack([busy, v.gpu.realtime[name], v.gpu.spot[name]])
        rows = lp.add_rows(columns, [1.0, -1.0, -1.0], 0.0, 0.0)
        jobs = v.jobs.gpus[name]
        lp.add_terms(rows[jobs.t], jobs.cols, -1.0)


def define_site_power_limit(lp: LinearProgram, x: SiteInputs, v: Variables) -> None:
    """Grid MW = PUE × (miners by profile + sleeping miners + busy GPUs) <= the site's MW."""
    mw_per_w = grid_mw(1.0, x.site.pue)
    columns, coefs = [v.power.grid], [1.0]
    for fleet in x.site.asics:
        model, profiles = fleet.model, v.asic.profiles[fleet.model.name]
        for row, profile in zip(profiles, model.profiles, strict=True):
            columns.append(row)
            coefs.append(-(profile.power_w - model.sleep_power_w) * mw_per_w)
    for gpu_fleet in x.site.gpus:
        columns.append(v.gpu.busy[gpu_fleet.model.name])
        coefs.append(-gpu_fleet.model.busy_power_w * mw_per_w)
    sleep_mw = x.site.asleep_w * mw_per_w
    lp.add_rows(np.column_stack(columns), coefs, sleep_mw, sleep_mw)
    lp.tighten(v.power.grid, upper=x.site.capacity_mw)


def define_ramp_limit(lp: LinearProgram, x: SiteInputs, v: Variables) -> None:
    """Grid draw changes by at most the site's ramp (MW) from one interval to the next."""
    ramp = x.site.ramp_mw_per_step
    if ramp is None:
        return
    grid = v.power.grid
    lp.tighten(grid[0], x.state.grid_mw - ramp, x.state.grid_mw + ramp)
    lp.add_rows(np.column_stack([grid[1:], grid[:-1]]), [1.0, -1.0], -ramp, ramp)


def define_min_on_off_time(lp: LinearProgram, x: SiteInputs, v: Variables) -> None:
    """A miner woken stays on `min_on_steps` intervals, one put to sleep stays asleep
    `min_off_steps` intervals, counting the wake-ups and sleeps of the recent past."""
    if not has_switching(x):
        return
    for fleet in x.site.asics:
        name, state = fleet.model.name, x.state.asics[fleet.model.name]
        on, up, down = v.asic.on[name], v.asic.up[name], v.asic.down[name]
        previous_on = np.concatenate([[-1], on[:-1]])
        was_on = np.zeros(x.horizon)
        was_on[0] = state.on
        columns = np.column_stack([on, previous_on, up, down])
        lp.add_rows(columns, [1.0, -1.0, -1.0, 1.0], was_on, was_on)
        recent_ups = _recent_sums(state.recent_ups, x.site.min_on_steps, x.horizon)
        _add_window_rows(lp, on, 1.0, up, x.site.min_on_steps, recent_ups)
        recent_downs = _recent_sums(state.recent_downs, x.site.min_off_steps, x.horizon)
        _add_window_rows(lp, on, -1.0, down, x.site.min_off_steps, recent_downs - fleet.count)


def _add_window_rows(
    lp: LinearProgram, on: IntArray, sign: float, events: IntArray, steps: int, lower: FloatArray
) -> None:
    """sign × on[t] − (events in the last `steps` intervals up to t) >= lower[t]."""
    padded = np.concatenate([np.full(steps - 1, -1, dtype=np.int64), events])
    # row t: the events of intervals t-steps+1 .. t (indexing, a fifth of sliding_window_view's
    # cost on these short horizons, which the rolling horizon builds every interval)
    windows = padded[np.arange(len(events))[:, None] + np.arange(steps)]
    coefs = np.full(steps + 1, -1.0)
    coefs[0] = sign
    lp.add_rows(np.column_stack([on, windows]), coefs, lower)


def _recent_sums(recent: tuple[int, ...], steps: int, horizon: int) -> FloatArray:
    """For each horizon interval t, the events before the horizon still inside a window of
    `steps` intervals ending at t (`recent` oldest first)."""
    kept = np.zeros(steps - 1)
    tail = np.asarray(recent[len(recent) - (steps - 1) :] if steps > 1 else (), dtype=float)
    kept[len(kept) - len(tail) :] = tail
    suffix = np.cumsum(kept[::-1])[::-1]
    sums = np.zeros(horizon)
    sums[: min(len(suffix), horizon)] = suffix[:horizon]
    return sums


def define_realtime_sla(lp: LinearProgram, x: SiteInputs, v: Variables) -> None:
    """GPUs serving realtime inference of a family never exceed its demand; the unserved
    rest is penalised in the objective."""
    for family in x.site.families:
        models = x.site.gpu_models_of(family)
        demand = x.realtime_gpus.get(family, np.zeros(x.horizon))
        columns = np.column_stack([v.gpu.realtime[m] for m in models])
        lp.add_rows(columns, 1.0, -INF, demand)


def define_deadline_energy(lp: LinearProgram, x: SiteInputs, v: Variables) -> None:
    """Each job gets at most `max_gpus` GPUs at once and at most its remaining work; what it
    still needs by its deadline (or, past the horizon, what could no longer fit before its
    deadline) is done or counted as shortfall."""
    if not x.jobs:
        return
    by_model = list(v.jobs.gpus.values())
    cols = np.concatenate([g.cols for g in by_model]) if by_model else np.zeros(0, np.int64)
    job = np.concatenate([g.job for g in by_model]) if by_model else np.zeros(0, np.int64)
    if len(by_model) > 1:  # a job's GPUs of every model together, in each interval
        t = np.concatenate([g.t for g in by_model])
        places, place = np.unique(job * x.horizon + t, return_inverse=True)
        cap = np.array([float(j.max_gpus) for j in x.jobs])[places // x.horizon]
        rows = lp.add_rows(np.full((len(places), 1), -1), 1.0, -INF, cap)
        lp.add_terms(rows[place], cols, 1.0)
    remaining = np.array([float(j.remaining_gpu_steps) for j in x.jobs])
    rows = lp.add_rows(np.full((len(x.jobs), 1), -1), 1.0, -INF, remaining)
    lp.add_terms(rows[job], cols, 1.0)
    rows = lp.add_rows(v.jobs.shortfall.reshape(-1, 1), 1.0, work_needed(x))
    lp.add_terms(rows[job], cols, 1.0)


def work_needed(x: SiteInputs) -> np.ndarray:
    """GPU-intervals of each job that must be done inside the horizon to avoid a shortfall:
    all of it when due inside; else what could not be done after the horizon and before its
    deadline, less the margin (`deadline_margin_steps`).

    After the horizon a job gets at most its `max_gpus`, and the jobs of a family share the
    family's GPUs: earliest deadline first, each from the horizon's end on. Counting each job
    alone at its full width let several jobs all leave their work to the same later hours,
    which then could not hold it all (a spot price above a job's own price made mpc defer
    them, and miss deadlines that even always_on met)."""
    needed = np.zeros(len(x.jobs))
    later: dict[str, list[tuple[int, int]]] = {}  # family -> (deadline, job index)
    for i, job in enumerate(x.jobs):
        after = job.deadline - x.horizon
        if after <= 0:
            needed[i] = job.remaining_gpu_steps
        elif not x.final:
            later.setdefault(job.family, []).append((job.deadline, i))
    for family, due in later.items():
        order = [i for _, i in sorted(due)]
        jobs = [x.jobs[i] for i in order]
        gpus = sum(g.count for g in x.site.gpus if g.model.family == family)
        steps = [max(j.deadline - x.horizon - x.deadline_margin_steps, 0) for j in jobs]
        if sum(j.max_gpus for j in jobs) <= gpus:  # never short of GPUs: each job alone
            for i, j, n in zip(order, jobs, steps, strict=True):
                needed[i] = max(0, j.remaining_gpu_steps - j.max_gpus * n)
            continue
        # Long enough to hold all their work (each job in turn at its widest): a deadline
        # years away must not make a horizon of as many intervals.
        widest = [max(1, min(j.max_gpus, gpus)) for j in jobs]
        enough = (
            sum(math.ceil(j.remaining_gpu_steps / w) for j, w in zip(jobs, widest, strict=True))
            if gpus
            else 0
        )
        free = np.full(min(max(steps, default=0), enough), float(gpus))
        for i, j, n in zip(order, jobs, steps, strict=True):
            take = np.minimum(free[:n], float(j.max_gpus))
            done = np.cumsum(take)
            if len(done) and done[-1] > j.remaining_gpu_steps:  # finished early: rest free
                k = int(np.searchsorted(done, j.remaining_gpu_steps))
                take[k] -= done[k] - j.remaining_gpu_steps
                take[k + 1 :] = 0.0
            free[:n] -= take
            needed[i] = max(0.0, j.remaining_gpu_steps - float(take.sum()))
    return needed


def define_sellback(lp: LinearProgram, x: SiteInputs, v: Variables) -> None:
    """Under a PPA: grid draw − bought + sold back = the committed MW."""
    contract, buy, sell = x.site.contract, v.power.buy, v.power.sell
    if not isinstance(contract, PpaContract) or buy is None or sell is None:
        return
    columns = np.column_stack([v.power.grid, buy, sell])
    lp.add_rows(columns, [1.0, -1.0, 1.0], contract.committed_mw, contract.committed_mw)


def define_profit_objective(lp: LinearProgram, x: SiteInputs, v: Variables) -> None:
    """Maximise mining revenue + GPU revenue + sell-back − energy − SLA and deadline penalties."""
    _add_mining_revenue(lp, x, v)
    _add_gpu_revenue(lp, x, v)
    _add_penalties(lp, x, v)
    _add_energy_cost(lp, x, v)


def _add_mining_revenue(lp: LinearProgram, x: SiteInputs, v: Variables) -> None:
    """Pool payout, after its fee, of the hashrate of every profile."""
    usd_per_ths = asic_revenue_usd(1.0, 1.0, x.step_hours * _SECONDS_PER_HOUR, x.pool_fee)
    for fleet in x.site.asics:
        hashrate = np.array([p.hashrate_ths for p in fleet.model.profiles])
        value = np.outer(hashrate, x.hashprice_usd_per_ths_day) * usd_per_ths
        lp.add_objective(v.asic.profiles[fleet.model.name], value)


def _add_gpu_revenue(lp: LinearProgram, x: SiteInputs, v: Variables) -> None:
    """Customer prices for realtime and job GPU-hours, the spot price for rented ones."""
    hours = gpu_revenue_usd(1.0, x.step_hours, 1.0)
    for fleet in x.site.gpus:
        name, family = fleet.model.name, fleet.model.family
        spot = x.gpu_spot_usd_per_gpu_hour.get(family, np.zeros(x.horizon))
        lp.add_objective(v.gpu.spot[name], spot * hours)
        realtime = x.realtime_price_usd_per_gpu_hour.get(family, 0.0)
        lp.add_objective(v.gpu.realtime[name], realtime * hours)
    job_price = np.array([job.price_usd_per_gpu_hour for job in x.jobs])
    for jobs in v.jobs.gpus.values():
        lp.add_objective(jobs.cols, job_price[jobs.job] * hours)


def _add_penalties(lp: LinearProgram, x: SiteInputs, v: Variables) -> None:
    """The SLA penalty per realtime GPU-hour unserved and per job GPU-hour short at its
    deadline: − penalty × demand, plus penalty back for every GPU-hour served."""
    penalty = gpu_revenue_usd(1.0, x.step_hours, x.sla_penalty_usd_per_gpu_hour)
    for fleet in x.site.gpus:
        lp.add_objective(v.gpu.realtime[fleet.model.name], penalty)
    for demand in x.realtime_gpus.values():
        lp.offset -= penalty * float(np.sum(demand))
    lp.add_objective(v.jobs.shortfall, -penalty)


def _add_energy_cost(lp: LinearProgram, x: SiteInputs, v: Variables) -> None:
    """Real-time contract: grid MWh × (price + adder). PPA: committed MWh × PPA price, MWh
    above it at the real-time price, MWh sold back at the real-time price less the fee."""
    mwh_per_mw = energy_cost_usd(1_000.0, x.step_hours, 1.0)
    price, contract = x.electricity_usd_per_mwh, x.site.contract
    buy, sell = v.power.buy, v.power.sell
    if isinstance(contract, PpaContract) and buy is not None and sell is not None:
        lp.offset -= contract.committed_mw * contract.price_usd_per_mwh * mwh_per_mw * x.horizon
        lp.add_objective(buy, -price * mwh_per_mw)
        lp.add_objective(sell, (price - contract.sellback_fee_usd_per_mwh) * mwh_per_mw)
    else:
        adder = contract.adder_usd_per_mwh if isinstance(contract, RtContract) else 0.0
        lp.add_objective(v.power.grid, -(price + adder) * mwh_per_mw)
