"""GPU telemetry: one canonical reading per GPU, its health, and a node agent's run states.

Field names follow the units rule: `util_pct` in %, `power_w` in W, `temp_c` in °C, framebuffer
in MiB. A DCGM exporter is one source of these readings; the translator lives in
`adapters.devices.dcgm`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum


class GpuHealth(StrEnum):
    """What a node agent knows about one GPU: usable, needs a reset, or gone from the PCIe bus."""

    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"
    LOST = "lost"


class AgentWorkloadState(StrEnum):
    """The state of a workload as a GPU node agent runs it (not the platform's queue state)."""

    RUNNING = "running"
    COMPLETED = "completed"
    FAILED = "failed"
    STOPPED = "stopped"

    @property
    def is_terminal(self) -> bool:
        return self is not AgentWorkloadState.RUNNING


APPLICATION_XIDS = frozenset({13, 31, 43})
"""Xids a user's program raises (a graphics engine exception, a GPU memory page fault, a
stopped kernel): its work fails, the GPU itself is fine (NVIDIA's Xid catalog)."""


@dataclass(frozen=True, slots=True)
class GpuReading:
    """One GPU at one instant: utilisation %, power W, temperature °C, framebuffer MiB, last XID.

    `host` is the node's name, `at` when the scrape finished (UTC). `xid_errors` is what DCGM
    reports for `DCGM_FI_DEV_XID_ERRORS`: the code of the last XID error the GPU raised
    (0 = none since the driver loaded), not a count.
    """

    host: str
    gpu_index: int
    uuid: str
    model: str
    at: datetime
    util_pct: float
    power_w: float
    temp_c: float
    fb_used_mib: int
    fb_free_mib: int
    xid_errors: int

    @property
    def fb_total_mib(self) -> int:
        """Framebuffer visible to DCGM, used + free, in MiB."""
        return self.fb_used_mib + self.fb_free_mib
