"""Device faults in the live loop of `hcp up`: each poll's problems reach /api/v1/resources,
and the log says when a device's trouble starts and ends, once each, not on every poll."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from hcp import bootstrap
from hcp.adapters.devices import fleet_readers
from hcp.simulators.asic.config import Faults
from hcp.simulators.asic.server import AsicFleetSimulator
from hcp.simulators.site import SimulatedSite
from tests.integration.livesite import live_site


@dataclass
class Site:
    live: bootstrap.Live
    api: httpx.AsyncClient
    admin: dict[str, str]

    @property
    def miners(self) -> AsicFleetSimulator:
        assert isinstance(self.live.site, SimulatedSite)
        return self.live.site.asic_fleet

    async def poll(self) -> dict[str, dict[str, object]]:
        """One fleet poll, stored; the devices as /api/v1/resources shows them."""
        await self.live.control.poll()
        await self.live.settle()
        body = (await self.api.get("/api/v1/resources", headers=self.admin)).json()
        return {d["device_id"]: d for d in body["resources"]}


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async with live_site(tmp_path, site_asics=4, site_gpus=2) as s:
        yield Site(s.live, s.api, s.admin)


def troubles(caplog: pytest.LogCaptureFixture) -> list[tuple[str, str]]:
    lines = [
        (r.levelname, r.getMessage()) for r in caplog.records if r.name == fleet_readers.__name__
    ]
    caplog.clear()
    return lines


async def test_faults_are_explained_in_resources_and_logged_once_per_transition(
    site: Site, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, fleet_readers.__name__)
    devices = await site.poll()
    assert {d["device_id"]: d["problems"] for d in devices.values() if d["problems"]} == {}
    assert troubles(caplog) == []

    offline, degraded = "site-west-1-asic-00002", "site-west-1-asic-00003"
    await site.miners.set_faults(1, Faults(offline=True))
    await site.miners.set_faults(2, Faults(dead_boards=1))
    for _ in range(2):
        devices = await site.poll()
    assert devices[offline]["state"] == "unreachable"
    problems = devices[offline]["problems"]
    assert isinstance(problems, list) and len(problems) == 1
    assert problems[0].startswith("unreachable: cannot connect")
    assert "board 2 dead" in devices[degraded]["problems"]  # type: ignore[operator]
    assert devices["site-west-1-asic-00001"]["problems"] == []
    assert devices["site-west-1-gpu-00001"]["problems"] == []
    lines = troubles(caplog)
    assert [(level, text.split(" (")[0]) for level, text in lines] == [
        ("WARNING", f"miner {offline} is unreachable"),
        ("WARNING", f"miner {degraded} is degraded"),
    ]

    await site.miners.set_faults(1, Faults())
    await site.miners.set_faults(2, Faults())
    for _ in range(2):
        devices = await site.poll()
    assert {d["device_id"]: d["problems"] for d in devices.values() if d["problems"]} == {}
    assert troubles(caplog) == [
        ("INFO", f"miner {offline} recovered (was unreachable)"),
        ("INFO", f"miner {degraded} recovered (was degraded)"),
    ]
