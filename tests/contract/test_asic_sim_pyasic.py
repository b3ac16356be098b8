"""pyasic, an independent LuxOS client, against our simulated miners.

pyasic always dials port 4028, so each miner here has its own loopback IP (127.x.y.z:4028).
Its LuxOS backend has no mining-state reader (`MinerData.is_mining` stays at its default True),
so mining state is judged here from the hashrate and wattage it reads.
"""

from __future__ import annotations

import random
import warnings
from collections.abc import AsyncIterator
from typing import Any

import pytest

from hcp.domain.devices import AsicModel, AsicProfile
from hcp.domain.telemetry import MinerState
from hcp.simulators.asic import AsicFleetSimulator, Faults, uniform_fleet

with warnings.catch_warnings():
    # pyasic 0.79 declares a pydantic class-based `Config`, deprecated since pydantic 2.0.
    warnings.simplefilter("ignore", DeprecationWarning)
    import pyasic
    from pyasic.miners.backends.luxminer import LUXMiner

MODEL = AsicModel(
    name="S21",
    manufacturer="Bitmain",
    profiles=(
        AsicProfile("eco", hashrate_ths=150.0, power_w=2_500.0),
        AsicProfile("stock", hashrate_ths=200.0, power_w=3_500.0),
        AsicProfile("turbo", hashrate_ths=230.0, power_w=4_300.0),
    ),
    stock_profile="stock",
    sleep_power_w=20.0,
    wake_seconds=0.0,  # wall-clock simulator here: wake at once so no test has to wait
)


@pytest.fixture
async def fleet() -> AsyncIterator[AsicFleetSimulator]:
    # A random 127.x.y.0/24 per test, so a second test run on the same machine cannot collide.
    first_ip = f"127.{random.randint(64, 250)}.{random.randint(0, 250)}.1"
    config = uniform_fleet(MODEL, 2, first_ip=first_ip, faults={1: Faults(dead_boards=1)})
    async with AsicFleetSimulator(config) as simulator:
        yield simulator


async def miner_at(fleet: AsicFleetSimulator, index: int) -> Any:
    ip, port = fleet.addresses[index]
    assert port == 4028
    miner = await pyasic.get_miner(ip)
    assert miner is not None, f"pyasic found no miner at {ip}"
    return miner


def state_of(fleet: AsicFleetSimulator) -> MinerState:
    return fleet.miners[0].state


async def test_pyasic_discovers_a_luxos_s21(fleet: AsicFleetSimulator) -> None:
    miner = await miner_at(fleet, 0)
    assert isinstance(miner, LUXMiner)
    assert miner.raw_model == "S21"


async def test_pyasic_reads_hashrate_wattage_and_boards(fleet: AsicFleetSimulator) -> None:
    data = await (await miner_at(fleet, 0)).get_data()
    assert float(data.hashrate) == pytest.approx(200.0, rel=0.05)  # TH/s
    assert data.wattage == pytest.approx(3_500, rel=0.03)
    assert data.wattage_limit == 3_500  # the active profile's watts
    assert data.fw_ver.startswith("2024.")
    assert [b.chips for b in data.hashboards] == [108, 108, 108]
    assert all(b.temp is not None and b.temp > 60 for b in data.hashboards)
    assert data.pools[0].alive


async def test_pyasic_sees_a_dead_hashboard(fleet: AsicFleetSimulator) -> None:
    data = await (await miner_at(fleet, 1)).get_data()
    assert float(data.hashrate) == pytest.approx(200.0 * 2 / 3, rel=0.05)
    assert [float(b.hashrate) > 0 for b in data.hashboards] == [True, True, False]


async def test_pyasic_stop_and_resume_mining_curtail_the_simulator(
    fleet: AsicFleetSimulator,
) -> None:
    miner = await miner_at(fleet, 0)
    assert await miner.stop_mining()
    assert state_of(fleet) is MinerState.SLEEPING
    asleep = await miner.get_data()
    assert float(asleep.hashrate) == 0.0
    assert asleep.wattage == pytest.approx(20, abs=2)

    assert await miner.resume_mining()
    assert state_of(fleet) is MinerState.MINING
    assert float((await miner.get_data()).hashrate) == pytest.approx(200.0, rel=0.05)


async def test_pyasic_reads_the_profiles_as_presets(fleet: AsicFleetSimulator) -> None:
    config = await (await miner_at(fleet, 0)).get_config()
    presets = {p.name: p.power for p in config.mining_mode.available_presets}
    assert presets == {"eco": 2_500, "stock": 3_500, "turbo": 4_300}
    assert config.mining_mode.active_preset.name == "stock"


async def test_pyasic_set_power_limit_picks_a_profile_in_the_simulator(
    fleet: AsicFleetSimulator,
) -> None:
    miner = await miner_at(fleet, 0)
    assert await miner.set_power_limit(3_000)
    assert fleet.miners[0].profile.name == "eco"  # the highest preset within 3 kW
    assert (await miner.get_data()).wattage == pytest.approx(2_500, rel=0.03)


async def test_pyasic_turns_atm_off_around_a_power_limit_as_luxos_requires(
    fleet: AsicFleetSimulator,
) -> None:
    miner = await miner_at(fleet, 0)
    await miner.rpc.atmset(enabled=True, temp_window=8)
    assert await miner.atm_enabled()
    assert await miner.set_power_limit(4_400)  # refused by profileset unless ATM is off first
    assert fleet.miners[0].profile.name == "turbo"
    atm = (await miner.rpc.atm())["ATM"][0]
    assert atm["Enabled"] is True and atm["TempWindow"] == 8.0  # pyasic turned it back on
