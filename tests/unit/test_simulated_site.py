"""The simulated site of `hcp up`: its miners idle a LuxOS session out after a minute of wall
time, as LuxOS does, however fast the site's clock runs (at `--speed 5000` a minute of the
miners' own time is 12 ms, and commands failed with "Invalid session id")."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from hcp.adapters.clock import ManualClock, ScaledClock
from hcp.domain.devices import DeviceKind
from hcp.domain.fleet import Device
from hcp.services.ports import Clock
from hcp.simulators.asic.config import SESSION_TIMEOUT_S
from hcp.simulators.site import SimulatedSite

T0 = datetime(2025, 6, 1, tzinfo=UTC)


def miners(count: int) -> list[Device]:
    return [
        Device(f"s-asic-{i}", "s", None, "S21", DeviceKind.ASIC, "mining", T0) for i in range(count)
    ]


@pytest.mark.parametrize(
    ("clock", "speed"), [(ScaledClock(5_000.0, T0), 5_000.0), (ManualClock(T0), 1.0)]
)
def test_sessions_idle_out_after_a_minute_of_wall_time(clock: Clock, speed: float) -> None:
    site = SimulatedSite(miners(2), clock)
    timeouts = {miner.sessions.timeout_s for miner in site.asic_fleet.miners}
    assert timeouts == {SESSION_TIMEOUT_S * speed}
