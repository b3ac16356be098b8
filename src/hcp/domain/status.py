"""A device's last known status, derived from its latest reading (or the failure to read it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hcp.domain.gpu_telemetry import APPLICATION_XIDS, GpuReading
from hcp.domain.telemetry import AsicReading

UNREACHABLE = "unreachable"


@dataclass(frozen=True, slots=True)
class DeviceStatus:
    """What the fleet view and the devices table hold for one device; power in W, TH/s."""

    device_id: str
    state: str
    healthy: bool
    at: datetime
    profile: str | None = None
    power_w: float = 0.0
    hashrate_ths: float = 0.0
    temperature_c: float | None = None
    problems: tuple[str, ...] = ()
    util_pct: float | None = None
    """A GPU's utilisation; None for a miner (whose work is its hashrate)."""


def asic_status(
    device_id: str, reading: AsicReading | None, at: datetime, error: str = ""
) -> DeviceStatus:
    """A miner's status; no reading means it did not answer (degraded, never fatal)."""
    if reading is None:
        return DeviceStatus(device_id, UNREACHABLE, False, at, problems=(error or "no answer",))
    return DeviceStatus(
        device_id,
        reading.state.value,
        reading.healthy,
        reading.at,
        reading.profile,
        reading.power_w,
        reading.hashrate_ths,
        reading.temperature_c,
        reading.problems,
    )


def gpu_status(
    device_id: str, reading: GpuReading | None, at: datetime, error: str = ""
) -> DeviceStatus:
    """A GPU's status: busy when it draws work, idle otherwise; missing from its node = lost."""
    if reading is None:
        return DeviceStatus(device_id, UNREACHABLE, False, at, problems=(error or "not reported",))
    busy = reading.util_pct > 0 or reading.fb_used_mib > 0
    # The last Xid stays reported after it: one a user's program raised leaves the GPU usable.
    xid = reading.xid_errors
    problems = (f"XID {xid}",) if xid and xid not in APPLICATION_XIDS else ()
    return DeviceStatus(
        device_id,
        "busy" if busy else "idle",
        not problems,
        reading.at,
        power_w=reading.power_w,
        temperature_c=reading.temp_c,
        problems=problems,
        util_pct=reading.util_pct,
    )
