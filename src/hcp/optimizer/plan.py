"""The optimizer's output: a Plan per site (a status, a reason, and a schedule over the
horizon) and the SiteAllocation of one interval: how many units of each device class are in
each use. Solve outcomes are values (`SolveStatus`), never exceptions."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType

from hcp.domain.market import FloatArray
from hcp.domain.workloads import WorkloadClass

_EMPTY: Mapping[str, float] = MappingProxyType({})


class SolveStatus(StrEnum):
    OPTIMAL = "optimal"
    INFEASIBLE = "infeasible"
    UNBOUNDED = "unbounded"
    BAD_INPUT = "bad_input"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the inputs: `field` is a dotted path, `message` says what."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}"


@dataclass(frozen=True, slots=True)
class GpuUse:
    """GPUs of one model in one interval by use; batch and training are keyed by job id.
    Counts are whole numbers once dispatched, fractions in an LP plan."""

    realtime: float = 0.0
    spot: float = 0.0
    batch: Mapping[str, float] = field(default_factory=dict)
    training: Mapping[str, float] = field(default_factory=dict)

    @property
    def busy(self) -> float:
        """GPUs drawing busy power."""
        return self.realtime + self.spot + sum(self.batch.values()) + sum(self.training.values())

    def jobs(self) -> dict[str, float]:
        """GPUs per job, batch and training together."""
        return {**self.batch, **self.training}


@dataclass(frozen=True, slots=True)
class SiteAllocation:
    """One site in one interval: miners running per model and profile (the rest sleep), GPUs
    per model and use (the rest are off), grid draw in MW (PUE included) and MW sold back."""

    site: str
    asics: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    gpus: Mapping[str, GpuUse] = field(default_factory=dict)
    grid_mw: float = 0.0
    sellback_mw: float = 0.0

    def asics_on(self, model: str) -> float:
        """Miners of `model` hashing in any profile."""
        return sum(self.asics.get(model, _EMPTY).values())


@dataclass(frozen=True, slots=True)
class Schedule:
    """A solved horizon as arrays, one value per interval: miners per model and profile, GPUs
    per model in realtime and spot use, grid and sell-back MW; and per GPU model and interval
    (only those with any), the GPUs of each job given some."""

    asics: Mapping[str, Mapping[str, FloatArray]]
    realtime: Mapping[str, FloatArray]
    spot: Mapping[str, FloatArray]
    jobs: Mapping[str, Mapping[int, Mapping[str, float]]]
    job_classes: Mapping[str, WorkloadClass]
    grid_mw: FloatArray
    sellback_mw: FloatArray

    def allocation(self, site: str, i: int) -> SiteAllocation:
        """Interval `i` as a SiteAllocation."""
        asics = {m: {p: float(v[i]) for p, v in ps.items()} for m, ps in self.asics.items()}
        gpus = {model: self._gpu_use(model, i) for model in self.realtime}
        grid, sold = float(self.grid_mw[i]), float(self.sellback_mw[i])
        return SiteAllocation(site, asics, gpus, grid, sold)

    def _gpu_use(self, model: str, i: int) -> GpuUse:
        jobs = dict(self.jobs.get(model, {}).get(i, {}))
        batch = {j: n for j, n in jobs.items() if self.job_classes[j] != WorkloadClass.AI_TRAINING}
        training = {j: n for j, n in jobs.items() if j not in batch}
        return GpuUse(float(self.realtime[model][i]), float(self.spot[model][i]), batch, training)


@dataclass(frozen=True, slots=True)
class Plan:
    """One site's solve: `status` and a human `reason`; the schedule when one was found.

    `objective_usd` is the planned profit over the horizon under the inputs' prices.
    """

    site: str
    status: SolveStatus
    reason: str = ""
    objective_usd: float = 0.0
    problems: tuple[Problem, ...] = ()
    schedule: Schedule | None = None

    @property
    def ok(self) -> bool:
        """True when the plan holds an optimal schedule to follow."""
        return self.status == SolveStatus.OPTIMAL and self.schedule is not None

    @property
    def horizon(self) -> int:
        """Intervals in the schedule (0 without one)."""
        return 0 if self.schedule is None else len(self.schedule.grid_mw)

    def allocation(self, i: int = 0) -> SiteAllocation:
        """Interval `i` of the schedule; ValueError when the solve produced none."""
        if self.schedule is None:
            raise ValueError(f"plan for {self.site} has no schedule ({self.status}: {self.reason})")
        return self.schedule.allocation(self.site, i)
