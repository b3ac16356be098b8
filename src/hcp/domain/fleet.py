"""Sites, racks and devices: the stored fleet."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, TypeAlias

from hcp.domain.devices import DeviceKind


@dataclass(frozen=True, slots=True)
class Site:
    """A power-limited place on one market node with one contract."""

    id: str
    name: str
    node: str
    capacity_mw: float
    pue: float
    contract: dict[str, Any] = field(
        default_factory=lambda: {"kind": "rt", "adder_usd_per_mwh": 0.0}
    )


@dataclass(frozen=True, slots=True)
class Rack:
    id: str
    site_id: str
    name: str


MAX_MAINTENANCE_REASON = 500
"""Characters a maintenance reason may hold."""


@dataclass(frozen=True, slots=True)
class Device:
    """One ASIC or GPU as the platform last saw it.

    A device in maintenance (`maintenance` holds why, set by `maintenance_by` at
    `maintenance_since`) is left alone: the dispatcher sends a miner no command, the planner
    counts on neither, and a GPU takes no new workload (the one it runs drains, and the plan
    counts the GPU until it ends)."""

    id: str
    site_id: str
    rack_id: str | None
    model_name: str
    kind: DeviceKind
    state: str
    updated_at: datetime
    address: str | None = None
    healthy: bool = True
    profile: str | None = None
    power_w: float = 0.0
    hashrate_ths: float = 0.0
    maintenance: str | None = None
    maintenance_since: datetime | None = None
    maintenance_by: str | None = None
    problems: tuple[str, ...] = ()
    """What was wrong with it at its last status, in words (`board 2 dead`, `XID 48`, ...)."""

    @property
    def in_maintenance(self) -> bool:
        return self.maintenance is not None


@dataclass(frozen=True, slots=True)
class FleetMember:
    """A device as each control tick reads it: which it is, where it answers, and why it is in
    maintenance (None: in service). Not its last status: the tick takes the fresher one the
    monitor holds, and reading 11,000 stored statuses (their dates parsed, their problems
    decoded) cost a tenth of a tick."""

    id: str
    site_id: str
    model_name: str
    kind: DeviceKind
    address: str | None
    maintenance: str | None

    @property
    def in_maintenance(self) -> bool:
        return self.maintenance is not None


Member: TypeAlias = "Device | FleetMember"
"""A stored device, whole or as the control tick reads it."""
