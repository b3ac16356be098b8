"""Luxor's own Python library (`luxos` on PyPI) against our simulated miners.

`luxos.asyncops.rexec` logs on, runs a command and logs off for every command that needs a
session, so these tests also check our session rules against the vendor's client.
Skipped where the package is not installed (it is an optional dev tool, not a dependency).
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from hcp.domain.devices import AsicModel, AsicProfile
from hcp.domain.telemetry import MinerState
from hcp.simulators.asic import Addressing, AsicFleetSimulator, Faults, uniform_fleet

asyncops = pytest.importorskip("luxos.asyncops")
exceptions = pytest.importorskip("luxos.exceptions")
utils = pytest.importorskip("luxos.utils")

# luxos 0.2.4's `_roundtrip` returns without closing its StreamWriter; asyncio then warns
# "unclosed <StreamWriter ...>" when the writer is freed. That leak is the library's, not ours.
pytestmark = pytest.mark.filterwarnings("ignore:unclosed <StreamWriter:ResourceWarning")

MODEL = AsicModel(
    name="S21",
    manufacturer="Bitmain",
    profiles=(
        AsicProfile("eco", hashrate_ths=150.0, power_w=2_500.0),
        AsicProfile("stock", hashrate_ths=200.0, power_w=3_500.0),
    ),
    stock_profile="stock",
    sleep_power_w=20.0,
    wake_seconds=0.0,  # wall-clock simulator here: wake at once so no test has to wait
)


@pytest.fixture
async def fleet() -> AsyncIterator[AsicFleetSimulator]:
    faults = {2: Faults(offline=True)}
    config = uniform_fleet(MODEL, 3, addressing=Addressing.PORTS, first_port=0, faults=faults)
    async with AsicFleetSimulator(config) as simulator:
        yield simulator


def state_of(fleet: AsicFleetSimulator) -> MinerState:
    return fleet.miners[0].state


async def test_luxos_reads_version_and_summary(fleet: AsicFleetSimulator) -> None:
    host, port = fleet.addresses[0]
    version = await asyncops.rexec(host, port, "version")
    assert "LUXminer" in asyncops.validate(version, "VERSION", 1, 1)
    summary = asyncops.validate(await asyncops.rexec(host, port, "summary"), "SUMMARY", 1, 1)
    assert summary["GHS 5s"] == pytest.approx(200_000, rel=0.05)


async def test_luxos_curtails_and_wakes_the_miner(fleet: AsicFleetSimulator) -> None:
    host, port = fleet.addresses[0]
    reply = await asyncops.rexec(host, port, "curtail", "sleep")
    assert asyncops.validate(reply, "CURTAIL", 1, 1)["Action"] == "sleep mode"
    assert state_of(fleet) is MinerState.SLEEPING
    await asyncops.rexec(host, port, "curtail", "wakeup")
    assert state_of(fleet) is MinerState.MINING
    # rexec logged off after each command, so the session is free again.
    assert fleet.miners[0].sessions.active(fleet.clock.now()) is None


async def test_luxos_sets_a_profile(fleet: AsicFleetSimulator) -> None:
    host, port = fleet.addresses[0]
    reply = await asyncops.rexec(host, port, "profileset", "eco")
    assert asyncops.validate(reply, "PROFILE", 1, 1)["Profile"] == "eco"
    assert fleet.miners[0].profile.name == "eco"


async def test_luxos_sees_a_busy_session(fleet: AsicFleetSimulator) -> None:
    host, port = fleet.addresses[1]
    await asyncops.logon(host, port)
    with pytest.raises(exceptions.MinerCommandSessionAlreadyActive):
        await asyncops.rexec(host, port, "curtail", "sleep")


async def test_luxos_launch_reports_the_offline_miner(fleet: AsicFleetSimulator) -> None:
    async def power(host: str, port: int) -> object:
        reply = await asyncops.rexec(host, port, "power", timeout=1.0)
        return asyncops.validate(reply, "POWER", 1, 1)["Watts"]

    results = await utils.launch(fleet.addresses, power)
    assert results[0] == pytest.approx(3_500, rel=0.03)
    assert results[1] == pytest.approx(3_500, rel=0.03)
    assert isinstance(results[2], utils.LuxosLaunchError)
