"""Luxor's own Python library (`luxos` on PyPI) against our simulated miners.

`luxos.asyncops.rexec` logs on, runs a command and logs off for every command that needs a
session, so these tests also check our session rules against the vendor's client.
Skipped where the package is not installed (it is an optional dev tool, not a dependency).
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

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


async def read(host: str, port: int, command: str) -> dict[str, Any]:
    """The one entry of `command`'s reply section, read through Luxor's library."""
    reply = await asyncops.rexec(host, port, command)
    entry: dict[str, Any] = asyncops.validate(reply, command.upper(), 1, 1)
    return entry


async def test_luxos_curtails_and_wakes_the_miner(fleet: AsicFleetSimulator) -> None:
    host, port = fleet.addresses[0]
    reply = await asyncops.rexec(host, port, "curtail", "sleep")
    assert asyncops.validate(reply, "CURTAIL", 1, 1)["Action"] == "sleep mode"
    # What luxos itself reads back: asleep, PSU off, sleep power, no hashrate.
    config = await read(host, port, "config")
    assert (config["CurtailMode"], config["IsPowerSupplyOn"]) == ("Sleep", False)
    assert (await read(host, port, "power"))["Watts"] == pytest.approx(20, abs=2)
    assert (await read(host, port, "summary"))["GHS 5s"] == 0
    assert state_of(fleet) is MinerState.SLEEPING

    await asyncops.rexec(host, port, "curtail", "wakeup")
    config = await read(host, port, "config")
    assert (config["CurtailMode"], config["IsPowerSupplyOn"]) == ("None", True)
    assert (await read(host, port, "power"))["Watts"] == pytest.approx(3_500, rel=0.03)
    assert (await read(host, port, "summary"))["GHS 5s"] == pytest.approx(200_000, rel=0.05)
    assert state_of(fleet) is MinerState.MINING
    # rexec logged off after each command, so the session is free again.
    assert fleet.miners[0].sessions.active(fleet.clock.now()) is None


async def test_luxos_sets_a_profile(fleet: AsicFleetSimulator) -> None:
    host, port = fleet.addresses[0]
    reply = await asyncops.rexec(host, port, "profileset", "eco")
    assert asyncops.validate(reply, "PROFILE", 1, 1)["Profile"] == "eco"
    assert (await read(host, port, "config"))["Profile"] == "eco"
    assert (await read(host, port, "power"))["Watts"] == pytest.approx(2_500, rel=0.03)
    assert (await read(host, port, "summary"))["GHS 5s"] == pytest.approx(150_000, rel=0.05)
    assert fleet.miners[0].profile.name == "eco"


async def test_luxos_sets_and_reads_every_atm_setting(fleet: AsicFleetSimulator) -> None:
    host, port = fleet.addresses[0]
    settings = {
        "enabled": True,
        "startup_minutes": 20,
        "post_ramp_minutes": 3,
        "temp_window": 9,
        "min_profile": "eco",
        "max_profile": "stock",
    }
    reply = await asyncops.rexec(host, port, "atmset", settings)
    assert asyncops.validate(reply)["STATUS"][0]["Code"] == 340
    atm = await read(host, port, "atm")
    assert atm["Enabled"] is True
    assert (atm["StartupMinutes"], atm["PostRampMinutes"], atm["TempWindow"]) == (20, 3, 9.0)
    assert (atm["MinProfile"], atm["MaxProfile"]) == ("eco", "stock")
    assert (await read(host, port, "config"))["IsAtmEnabled"] is True

    refused = await asyncops.rexec(host, port, "atmset", {"temp_window": "hot"})
    assert refused["STATUS"][0]["STATUS"] == "E"
    assert "Invalid temp_window 'hot'" in refused["STATUS"][0]["Msg"]
    assert (await read(host, port, "atm"))["TempWindow"] == 9.0


async def test_luxos_with_atm_lets_a_profile_change_through(fleet: AsicFleetSimulator) -> None:
    host, port = fleet.addresses[0]
    await asyncops.rexec(host, port, "atmset", {"enabled": True})
    refused = await asyncops.rexec(host, port, "profileset", "eco")
    assert "while ATM is enabled" in refused["STATUS"][0]["Msg"]
    with pytest.raises(exceptions.MinerMessageError, match="wrong status 'E'"):
        asyncops.validate(refused, "PROFILE", 1, 1)
    async with asyncops.with_atm(host, port, False) as was_enabled:
        assert was_enabled is True
        await asyncops.rexec(host, port, "profileset", "eco")
    assert (await read(host, port, "config"))["Profile"] == "eco"
    assert (await read(host, port, "atm"))["Enabled"] is True  # with_atm put it back


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
