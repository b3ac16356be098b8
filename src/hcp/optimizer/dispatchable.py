"""From a wished-for allocation to one that can be dispatched: whole devices, within the fleet,
the realtime demand, each job's GPU cap and remaining work, the minimum on/off time, the site's
MW and the ramp limit.

Every strategy's decision passes through `dispatchable` before it is applied, so no strategy
can profit from breaking a limit. When power must come off, ASICs give it up first (they are
the site's fast buffer), then GPUs on the spot market, training, batch and realtime last; and
realtime demand is served before any GPU goes to a lower use.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from hcp.domain.devices import AsicModel
from hcp.domain.workloads import WorkloadClass
from hcp.optimizer.inputs import (
    AsicFleet,
    JobInputs,
    PpaContract,
    SiteNow,
    asic_fleet_watts,
    grid_mw,
)
from hcp.optimizer.plan import GpuUse, SiteAllocation

_TOLERANCE_MW = 1e-9


@dataclass(slots=True)
class _Gpus:
    """Whole GPUs of one model by use, being adjusted."""

    realtime: int = 0
    spot: int = 0
    jobs: dict[str, int] = field(default_factory=dict)

    @property
    def busy(self) -> int:
        return self.realtime + self.spot + sum(self.jobs.values())


def dispatchable(desired: SiteAllocation, now: SiteNow) -> SiteAllocation:
    """The allocation nearest `desired` that respects every limit of the site `now`."""
    jobs = {job.job_id: job for job in now.jobs}
    gpus = {f.model.name: _whole_gpus(desired.gpus.get(f.model.name)) for f in now.site.gpus}
    _cap_jobs(gpus, jobs)
    _cap_realtime(gpus, now)
    for fleet in now.site.gpus:
        use = gpus[fleet.model.name]
        _trim(use, use.busy - fleet.count, jobs, realtime=True)
    _serve_realtime_first(gpus, jobs, now)
    asics = {f.model.name: _whole_asics(desired, f, now) for f in now.site.asics}
    low, high = _power_window(now)
    _shed(asics, gpus, jobs, now, _grid_mw(asics, gpus, now) - high)
    grid = _grid_mw(asics, gpus, now)
    _add(asics, now, low - grid, high - grid)
    return _allocation(asics, gpus, jobs, now)


def _whole_gpus(use: GpuUse | None) -> _Gpus:
    """`use` rounded down to whole GPUs."""
    if use is None:
        return _Gpus()
    jobs = {j: _floor(n) for j, n in use.jobs().items() if _floor(n) > 0}
    return _Gpus(_floor(use.realtime), _floor(use.spot), jobs)


def _floor(value: float) -> int:
    return max(0, math.floor(value + 1e-6))


def _cap_jobs(gpus: dict[str, _Gpus], jobs: dict[str, JobInputs]) -> None:
    """Only open jobs run, each on at most min(its GPU cap, its remaining work) GPUs."""
    left = {j: min(job.max_gpus, job.remaining_gpu_steps) for j, job in jobs.items()}
    for use in gpus.values():
        for job_id in list(use.jobs):
            granted = min(use.jobs[job_id], left.get(job_id, 0))
            left[job_id] = left.get(job_id, 0) - granted
            use.jobs[job_id] = granted
            if granted == 0:
                del use.jobs[job_id]


def _cap_realtime(gpus: dict[str, _Gpus], now: SiteNow) -> None:
    """GPUs serving realtime inference of a family do not exceed its demand."""
    for family in now.site.families:
        left = now.realtime_gpus.get(family, 0)
        for model in now.site.gpu_models_of(family):
            gpus[model].realtime = min(gpus[model].realtime, left)
            left -= gpus[model].realtime


def _serve_realtime_first(gpus: dict[str, _Gpus], jobs: dict[str, JobInputs], now: SiteNow) -> None:
    """Unserved realtime demand takes GPUs of its family from spot, training, then batch."""
    for family in now.site.families:
        models = now.site.gpu_models_of(family)
        served = sum(gpus[m].realtime for m in models)
        unserved = now.realtime_gpus.get(family, 0) - served
        for model in models:
            moved = _trim(gpus[model], unserved, jobs)
            gpus[model].realtime += moved
            unserved -= moved


def _trim(gpus: _Gpus, count: int, jobs: dict[str, JobInputs], realtime: bool = False) -> int:
    """Take up to `count` GPUs off spot, then jobs (training before batch, latest deadline
    first), then with `realtime` off realtime inference; returns how many were taken."""
    count = max(count, 0)
    taken = min(count, gpus.spot)
    gpus.spot -= taken
    for job_id in sorted(gpus.jobs, key=lambda j: _shed_order(jobs.get(j))):
        take = min(count - taken, gpus.jobs[job_id])
        gpus.jobs[job_id] -= take
        taken += take
    gpus.jobs = {j: n for j, n in gpus.jobs.items() if n > 0}
    if realtime:
        take = min(count - taken, gpus.realtime)
        gpus.realtime -= take
        taken += take
    return taken


def _shed_order(job: JobInputs | None) -> tuple[int, int]:
    """Jobs that give up GPUs first: lowest priority, then latest deadline."""
    if job is None:
        return (0, 0)
    return (-job.workload_class.priority, -job.deadline)


def _whole_asics(desired: SiteAllocation, fleet: AsicFleet, now: SiteNow) -> dict[str, int]:
    """Miners per profile rounded to whole ones, within what min on/off time allows."""
    wanted = desired.asics.get(fleet.model.name, {})
    counts = {p.name: max(0, round(wanted.get(p.name, 0.0))) for p in fleet.model.profiles}
    fewest, most = now.asics_on_range(fleet)
    by_power = _profiles_by_power(fleet.model)
    for name in reversed(by_power):
        excess = sum(counts.values()) - most
        counts[name] -= min(max(excess, 0), counts[name])
    counts[by_power[0]] += max(0, fewest - sum(counts.values()))
    return counts


def _profiles_by_power(model: AsicModel) -> list[str]:
    """Profile names from the lowest to the highest power draw."""
    return [p.name for p in sorted(model.profiles, key=lambda p: p.power_w)]


def _power_window(now: SiteNow) -> tuple[float, float]:
    """(lowest, highest) grid MW allowed now: the ramp around the last draw and the site MW
    (which wins when the two disagree)."""
    ramp = now.site.ramp_mw_per_step
    if ramp is None:
        return -math.inf, now.site.capacity_mw
    last = now.state.grid_mw
    high = min(now.site.capacity_mw, last + ramp)
    return min(last - ramp, high), high


def _grid_mw(asics: dict[str, dict[str, int]], gpus: dict[str, _Gpus], now: SiteNow) -> float:
    """Grid draw in MW, PUE included, sleeping miners drawing their sleep power."""
    watts = sum(asic_fleet_watts(fleet, asics[fleet.model.name]) for fleet in now.site.asics)
    for gpu_fleet in now.site.gpus:
        watts += gpus[gpu_fleet.model.name].busy * gpu_fleet.model.busy_power_w
    return grid_mw(watts, now.site.pue)


def _unit_mw(watts: float, now: SiteNow) -> float:
    return grid_mw(watts, now.site.pue)


def _shed(
    asics: dict[str, dict[str, int]],
    gpus: dict[str, _Gpus],
    jobs: dict[str, JobInputs],
    now: SiteNow,
    excess_mw: float,
) -> None:
    """Take `excess_mw` off: sleep miners (highest power first), then step locked-on miners
    down to their lowest profile, then GPUs (spot, training, batch, realtime)."""
    excess_mw = _sleep_miners(asics, now, excess_mw)
    excess_mw = _step_down_miners(asics, now, excess_mw)
    for fleet in now.site.gpus:
        if excess_mw <= _TOLERANCE_MW:
            return
        unit = _unit_mw(fleet.model.busy_power_w, now)
        taken = _trim(gpus[fleet.model.name], _units(excess_mw, unit), jobs, realtime=True)
        excess_mw -= taken * unit


def _units(mw: float, unit_mw: float) -> int:
    """Whole units of `unit_mw` needed to cover `mw`."""
    return max(0, math.ceil(mw / unit_mw - 1e-9)) if unit_mw > 0 else 0


def _sleep_miners(asics: dict[str, dict[str, int]], now: SiteNow, excess_mw: float) -> float:
    """Put miners to sleep, highest-power profile first, down to those locked on."""
    steps = [(fleet, p) for fleet in now.site.asics for p in fleet.model.profiles]
    for fleet, profile in sorted(steps, key=lambda s: -s[1].power_w):
        if excess_mw <= _TOLERANCE_MW:
            break
        model, counts = fleet.model, asics[fleet.model.name]
        unit = _unit_mw(profile.power_w - model.sleep_power_w, now)
        spare = sum(counts.values()) - now.asics_on_range(fleet)[0]
        slept = min(_units(excess_mw, unit), counts[profile.name], spare)
        counts[profile.name] -= slept
        excess_mw -= slept * unit
    return excess_mw


def _step_down_miners(asics: dict[str, dict[str, int]], now: SiteNow, excess_mw: float) -> float:
    """Move miners that must keep hashing to their lowest-power profile."""
    for fleet in now.site.asics:
        model, counts = fleet.model, asics[fleet.model.name]
        lowest = _profiles_by_power(model)[0]
        for profile in reversed(_profiles_by_power(model)[1:]):
            unit = _unit_mw(model.profile(profile).power_w - model.profile(lowest).power_w, now)
            moved = min(_units(excess_mw, unit), counts[profile])
            counts[profile] -= moved
            counts[lowest] += moved
            excess_mw -= moved * unit
    return excess_mw


def _add(asics: dict[str, dict[str, int]], now: SiteNow, missing_mw: float, room_mw: float) -> None:
    """Draw `missing_mw` more (a ramp-down limit) without drawing `room_mw` more: wake miners
    at stock, then step them up to their highest profile."""
    for fleet in now.site.asics:
        if missing_mw <= _TOLERANCE_MW:
            return
        model, counts = fleet.model, asics[fleet.model.name]
        unit = _unit_mw(model.stock.power_w - model.sleep_power_w, now)
        asleep = now.asics_on_range(fleet)[1] - sum(counts.values())
        woken = max(min(_units(missing_mw, unit), asleep, _fits(room_mw, unit)), 0)
        counts[model.stock_profile] += woken
        missing_mw, room_mw = missing_mw - woken * unit, room_mw - woken * unit
        top = _profiles_by_power(model)[-1]
        for profile in _profiles_by_power(model)[:-1]:
            step = _unit_mw(model.profile(top).power_w - model.profile(profile).power_w, now)
            moved = max(min(_units(missing_mw, step), counts[profile], _fits(room_mw, step)), 0)
            counts[profile] -= moved
            counts[top] += moved
            missing_mw, room_mw = missing_mw - moved * step, room_mw - moved * step


def _fits(room_mw: float, unit_mw: float) -> int:
    """Whole units of `unit_mw` that fit in `room_mw`."""
    return math.floor(room_mw / unit_mw + 1e-9) if unit_mw > 0 else 0


def _allocation(
    asics: dict[str, dict[str, int]],
    gpus: dict[str, _Gpus],
    jobs: dict[str, JobInputs],
    now: SiteNow,
) -> SiteAllocation:
    uses = {name: _gpu_use(use, jobs) for name, use in gpus.items()}
    grid = _grid_mw(asics, gpus, now)
    contract = now.site.contract
    sold = max(contract.committed_mw - grid, 0.0) if isinstance(contract, PpaContract) else 0.0
    counts = {m: {p: float(n) for p, n in c.items()} for m, c in asics.items()}
    return SiteAllocation(now.site.name, counts, uses, grid, sold)


def _gpu_use(use: _Gpus, jobs: dict[str, JobInputs]) -> GpuUse:
    training = WorkloadClass.AI_TRAINING
    split = {j: jobs[j].workload_class == training for j in use.jobs}
    batch = {j: float(n) for j, n in use.jobs.items() if not split[j]}
    trained = {j: float(n) for j, n in use.jobs.items() if split[j]}
    return GpuUse(float(use.realtime), float(use.spot), batch, trained)
