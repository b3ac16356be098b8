"""A device's last known status, derived from its latest reading (or the failure to read it)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from hcp.domain.gpu_telemetry import APPLICATION_XIDS, GpuHealth, GpuReading
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
    device_id: str,
    reading: GpuReading | None,
    at: datetime,
    error: str = "",
    agent: GpuHealth | None = None,
) -> DeviceStatus:
    """A GPU's status: busy when it draws work, idle otherwise; missing from its node = lost.
    Healthy as `gpu_problems` says, from the reading's last Xid and the node agent's `agent`
    health (None: the agent was not asked, or did not answer)."""
    if reading is None:
        return DeviceStatus(device_id, UNREACHABLE, False, at, problems=(error or "not reported",))
    busy = reading.util_pct > 0 or reading.fb_used_mib > 0
    problems = gpu_problems(reading.xid_errors, agent)
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


def gpu_problems(last_xid: int, agent: GpuHealth | None) -> tuple[str, ...]:
    """Why a GPU may not be given work (empty: it may), from DCGM's `last_xid` (0 = none) and
    its node agent's health now (None when the agent could not be asked).

    DCGM keeps reporting the last Xid after a reset has cleared it, so the agent decides: a GPU
    it calls healthy is, whatever Xid came before. Without its word, an Xid other than one a
    user's program raises (`APPLICATION_XIDS`) counts against the GPU."""
    xid = (f"XID {last_xid}",) if last_xid and last_xid not in APPLICATION_XIDS else ()
    if agent is None:
        return xid
    if agent is GpuHealth.HEALTHY:
        return ()
    return (*xid, f"node agent: {agent.value}")


@dataclass(frozen=True, slots=True)
class AgentVerdict:
    """A node agent's word on one GPU's health, and DCGM's last Xid when it was given."""

    health: GpuHealth
    xid: int


def standing_verdict(
    fresh: GpuHealth | None, last: AgentVerdict | None, xid: int
) -> AgentVerdict | None:
    """The agent's word on a GPU for this poll, DCGM reporting `xid`: its `fresh` answer; with
    none (the agent missed this poll), the `last` one while DCGM still reports the Xid it did
    then (a new Xid since voids it); else None, and DCGM's rule applies (`gpu_problems`). A
    single missed answer must not turn a reset GPU, whose old Xid DCGM still shows, unhealthy
    and get its running workload stopped as a GPU failure."""
    if fresh is not None:
        return AgentVerdict(fresh, xid)
    if last is not None and last.xid == xid:
        return last
    return None
