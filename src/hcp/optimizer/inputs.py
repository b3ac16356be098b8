"""What the optimizer is told about one site for one solve: the site, its fleet and contract,
its state now, and per-interval prices and demand over the horizon (index 0 = the interval
being decided)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import timedelta

from hcp.domain.devices import AsicModel, GpuModel
from hcp.domain.market import FloatArray
from hcp.domain.workloads import WorkloadClass
from hcp.economics import DEFAULT_POOL_FEE


@dataclass(frozen=True, slots=True)
class RtContract:
    """Pay the real-time price plus `adder_usd_per_mwh` for every MWh drawn."""

    adder_usd_per_mwh: float = 0.0


@dataclass(frozen=True, slots=True)
class PpaContract:
    """A fixed `price_usd_per_mwh` for `committed_mw`; MW left unused are sold back at the
    real-time price minus `sellback_fee_usd_per_mwh`, MW above it are bought at real time."""

    price_usd_per_mwh: float
    committed_mw: float
    sellback_fee_usd_per_mwh: float = 0.0


Contract = RtContract | PpaContract


@dataclass(frozen=True, slots=True)
class AsicFleet:
    model: AsicModel
    count: int


@dataclass(frozen=True, slots=True)
class GpuFleet:
    model: GpuModel
    count: int


@dataclass(frozen=True, slots=True)
class SiteSpec:
    """A site as the optimizer sees it. `ramp_mw_per_step` bounds the change of grid draw from
    one interval to the next (None: no bound); an ASIC woken must run `min_on_steps` intervals
    and one put to sleep must sleep `min_off_steps` intervals. `day_ahead_node` names the node
    whose day-ahead price forecasts this site's (default: its own node)."""

    name: str
    node: str
    capacity_mw: float
    pue: float
    contract: Contract
    asics: tuple[AsicFleet, ...] = ()
    gpus: tuple[GpuFleet, ...] = ()
    ramp_mw_per_step: float | None = None
    min_on_steps: int = 1
    min_off_steps: int = 1
    day_ahead_node: str | None = None

    def gpu_models_of(self, family: str) -> tuple[str, ...]:
        """Names of this site's GPU models of `family`."""
        return tuple(g.model.name for g in self.gpus if g.model.family == family)

    @property
    def families(self) -> tuple[str, ...]:
        """The GPU families present at this site, in fleet order."""
        return tuple(dict.fromkeys(g.model.family for g in self.gpus))

    @property
    def asleep_w(self) -> float:
        """IT watts of every miner asleep: the least the site draws."""
        return sum(f.model.sleep_power_w * f.count for f in self.asics)


@dataclass(frozen=True, slots=True)
class AsicState:
    """Miners of one model running now (`on`) and how many were woken (`recent_ups`) and put to
    sleep (`recent_downs`) in the last intervals, oldest first (what min on/off time locks)."""

    on: int
    recent_ups: tuple[int, ...] = ()
    recent_downs: tuple[int, ...] = ()


@dataclass(frozen=True, slots=True)
class SiteState:
    """A site at the end of the previous interval: its grid draw in MW and its ASICs by model."""

    grid_mw: float
    asics: Mapping[str, AsicState] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class JobInputs:
    """A deferrable GPU job: up to `max_gpus` GPUs of `family` at once, `remaining_gpu_steps`
    GPU-intervals of work left, runnable in intervals [release, deadline) of the horizon
    (`deadline` may lie beyond it), paid `price_usd_per_gpu_hour` per GPU-hour done."""

    job_id: str
    workload_class: WorkloadClass
    family: str
    max_gpus: int
    remaining_gpu_steps: int
    release: int
    deadline: int
    price_usd_per_gpu_hour: float


@dataclass(frozen=True, slots=True)
class SiteInputs:
    """Everything one site's solve needs; arrays have one value per horizon interval.

    `realtime_gpus` is realtime inference demand in GPUs per family. With `final` the horizon
    ends the accounting window: jobs due later carry no end-of-horizon obligation. `integer`
    asks for whole device counts (a MILP) instead of the LP relaxation. A rolling plan counts
    on finishing each job `deadline_margin_steps` intervals before its deadline: the work it
    leaves past the horizon is what the job's full GPU count could do by then, so GPUs taken
    later by realtime demand or other jobs cost a margin, not the deadline.
    """

    site: SiteSpec
    state: SiteState
    step_hours: float
    electricity_usd_per_mwh: FloatArray
    hashprice_usd_per_ths_day: FloatArray
    gpu_spot_usd_per_gpu_hour: Mapping[str, FloatArray]
    realtime_gpus: Mapping[str, FloatArray]
    realtime_price_usd_per_gpu_hour: Mapping[str, float]
    jobs: tuple[JobInputs, ...]
    sla_penalty_usd_per_gpu_hour: float
    pool_fee: float = DEFAULT_POOL_FEE
    final: bool = False
    integer: bool = False
    deadline_margin_steps: int = 0

    @property
    def horizon(self) -> int:
        """Number of intervals planned."""
        return len(self.electricity_usd_per_mwh)


@dataclass(frozen=True, slots=True)
class SiteNow:
    """A site when one interval is decided: its spec and state, realtime demand now (GPUs per
    family) and its price, and the jobs open now (release <= 0 < deadline, work left), their
    deadlines relative to now."""

    site: SiteSpec
    state: SiteState
    realtime_gpus: Mapping[str, int]
    realtime_price_usd_per_gpu_hour: Mapping[str, float] = field(default_factory=dict)
    jobs: tuple[JobInputs, ...] = ()

    def asics_on_range(self, fleet: AsicFleet) -> tuple[int, int]:
        """(fewest, most) miners of `fleet` that may hash now: those woken within the minimum
        on time must stay on, those put to sleep within the minimum off time must stay off."""
        state = self.state.asics.get(fleet.model.name, AsicState(0))
        locked_on = sum(keep_last(state.recent_ups, self.site.min_on_steps - 1))
        locked_off = sum(keep_last(state.recent_downs, self.site.min_off_steps - 1))
        return locked_on, fleet.count - locked_off


def steps_covering(duration: timedelta, step: timedelta) -> int:
    """Whole steps covering `duration` (at least one): a minimum on or off time in steps."""
    return max(1, math.ceil(duration / step - 1e-9))


def keep_last(values: tuple[int, ...], n: int) -> tuple[int, ...]:
    """The last `n` of `values` (all of them when fewer; none when n <= 0)."""
    return values[max(len(values) - n, 0) :] if n > 0 else ()


def asic_fleet_watts(fleet: AsicFleet, counts: Mapping[str, float]) -> float:
    """Watts drawn by `fleet` with `counts` miners hashing per profile and the rest asleep."""
    model = fleet.model
    hashing = sum(n * model.profile(p).power_w for p, n in counts.items())
    return hashing + (fleet.count - sum(counts.values())) * model.sleep_power_w


def grid_mw(it_watts: float, pue: float) -> float:
    """Grid draw in MW of `it_watts` W of IT load at `pue` (facility over IT power)."""
    return it_watts * pue / 1e6
