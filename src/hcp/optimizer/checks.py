"""The inputs check run before any solve: every rule `SiteInputs` break, as Problems."""

from __future__ import annotations

import math

import numpy as np

from hcp.domain.market import FloatArray
from hcp.optimizer.inputs import JobInputs, PpaContract, SiteInputs, SiteSpec
from hcp.optimizer.plan import Problem


def check_inputs(x: SiteInputs) -> list[Problem]:
    """Problems with `x` (empty when it can be solved): sizes, units, counts, state, jobs."""
    return [
        *_check_site(x.site),
        *_check_series(x),
        *_check_state(x),
        *(p for job in x.jobs for p in _check_job(x.site, job)),
        *_check_scalars(x),
    ]


def _check_site(site: SiteSpec) -> list[Problem]:
    rules = [
        ("site.capacity_mw", site.capacity_mw > 0, "must be > 0"),
        ("site.pue", site.pue >= 1.0, "must be >= 1"),
        ("site.min_on_steps", site.min_on_steps >= 1, "must be >= 1"),
        ("site.min_off_steps", site.min_off_steps >= 1, "must be >= 1"),
        ("site.ramp_mw_per_step", (site.ramp_mw_per_step or 1.0) > 0, "must be > 0"),
        ("site.asics", all(f.count >= 0 for f in site.asics), "counts must be >= 0"),
        ("site.gpus", all(f.count >= 0 for f in site.gpus), "counts must be >= 0"),
    ]
    if isinstance(site.contract, PpaContract):
        rules.append(("site.contract.committed_mw", site.contract.committed_mw >= 0, ">= 0"))
    return [Problem(f"{site.name}: {name}", message) for name, ok, message in rules if not ok]


def _check_series(x: SiteInputs) -> list[Problem]:
    if x.horizon < 1:
        return [Problem("electricity_usd_per_mwh", "the horizon needs at least one interval")]
    series = {
        "electricity_usd_per_mwh": x.electricity_usd_per_mwh,
        "hashprice_usd_per_ths_day": x.hashprice_usd_per_ths_day,
        **{f"gpu_spot_usd_per_gpu_hour[{k}]": v for k, v in x.gpu_spot_usd_per_gpu_hour.items()},
        **{f"realtime_gpus[{k}]": v for k, v in x.realtime_gpus.items()},
    }
    return [p for name, values in series.items() if (p := _check_array(name, values, x.horizon))]


def _check_array(name: str, values: FloatArray, horizon: int) -> Problem | None:
    if len(values) != horizon:
        return Problem(name, f"has {len(values)} values for a horizon of {horizon}")
    finite = np.isfinite(values)
    if not finite.all():
        first = int(np.flatnonzero(~finite)[0])
        return Problem(name, f"not a finite number at interval {first}")
    if name.startswith(("realtime_gpus", "hashprice")) and np.any(values < 0):
        return Problem(name, "must be >= 0")
    return None


def _check_state(x: SiteInputs) -> list[Problem]:
    problems = []
    if not math.isfinite(x.state.grid_mw) or x.state.grid_mw < 0:
        problems.append(Problem("state.grid_mw", f"must be finite and >= 0, got {x.state.grid_mw}"))
    for fleet in x.site.asics:
        state = x.state.asics.get(fleet.model.name)
        if state is None:
            problems.append(Problem(f"state.asics[{fleet.model.name}]", "missing"))
        elif not 0 <= state.on <= fleet.count:
            message = f"{state.on} on, outside 0..{fleet.count}"
            problems.append(Problem(f"state.asics[{fleet.model.name}].on", message))
    return problems


def _check_job(site: SiteSpec, job: JobInputs) -> list[Problem]:
    rules = [
        ("max_gpus", job.max_gpus >= 1, "must be >= 1"),
        ("remaining_gpu_steps", job.remaining_gpu_steps >= 0, "must be >= 0"),
        ("deadline", job.deadline > job.release, "must be after the release"),
        ("price_usd_per_gpu_hour", math.isfinite(job.price_usd_per_gpu_hour), "must be finite"),
        ("family", job.family in site.families, f"no {job.family} GPUs at {site.name}"),
    ]
    return [Problem(f"jobs[{job.job_id}].{name}", msg) for name, ok, msg in rules if not ok]


def _check_scalars(x: SiteInputs) -> list[Problem]:
    rules = [
        ("step_hours", x.step_hours > 0, "must be > 0"),
        ("sla_penalty_usd_per_gpu_hour", x.sla_penalty_usd_per_gpu_hour >= 0, "must be >= 0"),
        ("pool_fee", 0.0 <= x.pool_fee < 1.0, "must be within [0, 1)"),
    ]
    return [Problem(name, message) for name, ok, message in rules if not ok]
