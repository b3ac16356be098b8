"""A GPU's health in the live loop of `hcp up` follows its node agent: a GPU reset after an Xid
gets work again though DCGM keeps reporting that last Xid; one that fell off the bus does not."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from hcp import bootstrap
from hcp.adapters.clock import ManualClock
from hcp.adapters.devices.fleet_readers import AGENT_REFRESH_S
from hcp.adapters.devices.gpu_runner import split_address
from hcp.domain.devices import DeviceKind
from hcp.domain.gpu_telemetry import GpuHealth
from hcp.domain.identity import Principal, Role
from hcp.domain.workloads import Requirements, WorkloadClass
from hcp.services.scheduler import gpu_of
from hcp.services.workloads import Submission
from hcp.simulators.gpu import GpuNodeSim
from hcp.simulators.site import SimulatedSite
from tests.integration.livesite import live_site


@dataclass
class Site:
    runtime: bootstrap.Runtime
    live: bootstrap.Live
    clock: ManualClock
    api: httpx.AsyncClient
    admin: dict[str, str]

    def gpu(self, device_id: str) -> tuple[GpuNodeSim, int]:
        """The simulated node holding GPU `device_id`, and the GPU's index on it."""
        assert isinstance(self.live.site, SimulatedSite)
        with self.runtime.unit_of_work() as uow:
            (device,) = [d for d in uow.fleet.devices() if d.id == device_id]
        host, index = split_address(device.address)
        return self.live.site.nodes[host], index

    async def poll(self) -> dict[str, dict[str, object]]:
        """One fleet poll, stored; the GPUs as /api/v1/resources shows them."""
        await self.live.control.poll()
        await self.live.settle()
        body = (await self.api.get("/api/v1/resources", headers=self.admin)).json()
        return {d["device_id"]: d for d in body["resources"] if d["device_id"] in GPUS}

    def usable(self) -> set[str]:
        """The GPUs the scheduler may place work on, from the stored fleet."""
        with self.runtime.unit_of_work() as uow:
            devices = uow.fleet.devices(site_id=self.runtime.settings.site_id)
        return {d.id for d in devices if d.kind is DeviceKind.GPU and gpu_of(d).healthy}


RESET, LOST = "site-west-1-gpu-00001", "site-west-1-gpu-00002"
GPUS = {RESET, LOST}


@pytest.fixture
async def site(tmp_path: Path) -> AsyncIterator[Site]:
    async with live_site(tmp_path, site_asics=1, site_gpus=2) as s:
        yield Site(s.runtime, s.live, s.clock, s.api, s.admin)


async def test_a_gpu_reset_after_an_xid_is_usable_again_and_a_lost_one_is_not(site: Site) -> None:
    gpus = await site.poll()
    assert {d: gpus[d]["healthy"] for d in GPUS} == {RESET: True, LOST: True}
    assert site.usable() == GPUS

    node, index = site.gpu(RESET)
    node.inject_xid(index, 79)
    lost_node, lost_index = site.gpu(LOST)
    lost_node.drop_off_bus(lost_index)
    gpus = await site.poll()
    assert not gpus[RESET]["healthy"] and not gpus[LOST]["healthy"]
    assert "XID 79" in " ".join(gpus[RESET]["problems"])  # type: ignore[arg-type]
    assert site.usable() == set()

    node.reset_gpu(index)  # DCGM keeps reporting Xid 79 as the GPU's last one
    for _ in range(2):
        gpus = await site.poll()
        assert (gpus[RESET]["healthy"], gpus[RESET]["problems"]) == (True, [])
        assert not gpus[LOST]["healthy"]
        assert site.usable() == {RESET}


async def test_a_reset_gpu_keeps_its_work_when_its_agent_misses_a_poll(site: Site) -> None:
    """DCGM still shows the Xid from before the reset; one missed agent answer must not turn
    the GPU unhealthy and get its workload stopped as a GPU failure."""
    await site.poll()
    node, index = site.gpu(RESET)
    node.inject_xid(index, 79)
    await site.poll()
    node.reset_gpu(index)
    assert (await site.poll())[RESET]["healthy"]
    customer = Principal("k", Role.CUSTOMER, "cust-001")
    realtime = Submission(WorkloadClass.AI_INFERENCE_REALTIME, Requirements("H100", 1, None, 4.0))
    for _ in range(2):
        await site.runtime.platform.workloads.submit(customer, realtime)
    started = await site.live.control.tick()
    assert started.scheduling is not None and len(started.scheduling.started) == 2
    agents = site.live.gpu_reader._agents

    asked: list[list[str]] = []

    async def silent(hosts: Sequence[str]) -> dict[str, dict[int, GpuHealth]]:
        asked.append(list(hosts))
        return {}  # every agent's GET /v1/gpus timed out

    answering = agents.read
    agents.read = silent  # type: ignore[method-assign]
    site.clock.advance(timedelta(seconds=AGENT_REFRESH_S))  # the agent is due to be asked
    gpus = await site.poll()
    assert asked == [["site-west-1-gpu-node-001"]]
    assert (gpus[RESET]["healthy"], gpus[RESET]["problems"]) == (True, [])
    agents.read = answering  # type: ignore[method-assign]
    after = await site.live.control.tick()
    assert after.scheduling is not None and after.scheduling.preempted == []
    node.inject_xid(index, 48)  # a new fault while the agent is silent: DCGM's word counts
    agents.read = silent  # type: ignore[method-assign]
    gpus = await site.poll()
    assert (gpus[RESET]["healthy"], gpus[RESET]["problems"]) == (False, ["XID 48"])
