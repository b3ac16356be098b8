"""A stored plan: what each device model at a site should do during one interval."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

SLEEP = "sleep"
GPU_WORKLOADS = "workloads"
GPU_SPOT = "spot"
GPU_OFF = "off"
GPU_USES = (GPU_WORKLOADS, GPU_SPOT, GPU_OFF)


@dataclass(frozen=True, slots=True)
class Allocation:
    """`count` devices of `device_model` in `use` (an ASIC profile or `sleep`; for GPUs
    `workloads`, `spot` or `off`), drawing `power_kw` in all at the wall (before PUE)."""

    device_model: str
    use: str
    count: int
    power_kw: float


@dataclass(frozen=True, slots=True)
class SitePlan:
    id: str
    site_id: str
    interval_start: datetime
    strategy: str
    status: str
    reason: str | None
    expected_profit_usd: float
    created_at: datetime
    allocations: tuple[Allocation, ...]

    def asic_target(self, asic_models: set[str]) -> dict[str, dict[str, int]]:
        """Miners to run per ASIC model and profile (those not listed sleep)."""
        target: dict[str, dict[str, int]] = {}
        for a in self.allocations:
            if a.device_model in asic_models and a.use != SLEEP and a.count > 0:
                target.setdefault(a.device_model, {})[a.use] = a.count
        return target

    def gpu_budget(self) -> int:
        """GPUs the scheduler may keep busy with customer workloads."""
        return sum(a.count for a in self.allocations if a.use == GPU_WORKLOADS)

    @property
    def power_kw(self) -> float:
        return sum(a.power_kw for a in self.allocations)
