"""The scheduler against simulated GPU nodes (in-process, over ASGI) and a stored site, on a
manual clock, with hooks that run inside the scheduler's awaits of the nodes: what an API call
served meanwhile (a cancel) does to a tick."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Mapping, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import timedelta
from pathlib import Path
from typing import Any

import httpx

from hcp import bootstrap
from hcp.adapters.clock import ManualClock
from hcp.adapters.devices.gpu_runner import NodeAgentGpuRunner, split_address
from hcp.domain.catalog import gpu_model
from hcp.domain.devices import DeviceKind
from hcp.domain.fleet import Device
from hcp.domain.identity import Principal, Role
from hcp.domain.workloads import Requirements, Workload, WorkloadClass, WorkloadState
from hcp.scheduling import SchedulingPolicy
from hcp.services.ports import StoredCommand
from hcp.services.scheduler import RunStatus, SchedulerService
from hcp.services.workloads import Submission
from hcp.simulators.gpu import GpuNodeSim, build_fleet_app
from tests.api.conftest import START, make_settings

SITE = "site-west-1"
CUSTOMER = Principal("k", Role.CUSTOMER, "cust-001")
ADMIN = Principal("a", Role.ADMIN, None)
Hook = Callable[[Workload], None]


class HookedRunner:
    """The real node-agent runner; `after_start` runs once, right after a start's answer."""

    def __init__(self, inner: NodeAgentGpuRunner) -> None:
        self.inner = inner
        self.after_start: Hook | None = None
        self.fail_start: BaseException | None = None
        self.node_clock_behind = timedelta(0)
        """How far behind ours the nodes' clocks run, as their `ended_at` shows."""

    async def start(self, workload: Workload, gpus: Sequence[Device]) -> None:
        if self.fail_start is not None:
            error, self.fail_start = self.fail_start, None
            raise error
        await self.inner.start(workload, gpus)
        if self.after_start is not None:
            hook, self.after_start = self.after_start, None
            hook(workload)

    async def checkpoint(self, workload: Workload, gpus: Sequence[Device]) -> float:
        return await self.inner.checkpoint(workload, gpus)

    async def stop(
        self, workload: Workload, gpus: Sequence[Device], checkpoint: bool
    ) -> float | None:
        return await self.inner.stop(workload, gpus, checkpoint)

    async def poll(
        self, running: Sequence[tuple[Workload, Sequence[Device]]]
    ) -> Mapping[str, RunStatus]:
        statuses = await self.inner.poll(running)
        behind = self.node_clock_behind
        return {
            i: replace(s, ended_at=s.ended_at - behind) if s.ended_at is not None else s
            for i, s in statuses.items()
        }


class CommandList(list[StoredCommand]):
    """The GPU command log, in memory."""

    def add(self, commands: Sequence[StoredCommand]) -> None:
        self.extend(commands)


@dataclass
class World:
    runtime: bootstrap.Runtime
    clock: ManualClock
    nodes: dict[str, GpuNodeSim]
    scheduler: SchedulerService
    runner: HookedRunner
    commands: CommandList

    async def submit(
        self,
        kind: WorkloadClass,
        gpus: int = 1,
        hours: float = 1.0,
        **options: Any,
    ) -> str:
        submission = Submission(kind, Requirements("H100", gpus, None, hours), **options)
        submitted = await self.runtime.platform.workloads.submit(CUSTOMER, submission)
        self.clock.advance(timedelta(seconds=1))
        return submitted.workload.id

    def state(self, workload_id: str) -> WorkloadState:
        return self.get(workload_id).state

    def get(self, workload_id: str) -> Workload:
        with self.runtime.unit_of_work() as uow:
            found = uow.workloads.get(workload_id)
        assert found is not None
        return found

    def history(self, workload_id: str) -> list[tuple[str, str]]:
        with self.runtime.unit_of_work() as uow:
            changes = uow.workloads.history(workload_id)
        return [(c.event.value, c.to_state.value) for c in changes]

    def runs_on_a_node(self, workload_id: str) -> bool:
        """Whether some simulated GPU runs the workload now."""
        return any(
            g.workload_id.startswith(workload_id)
            for node in self.nodes.values()
            for g in node.sample()
            if g.workload_id
        )


@asynccontextmanager
async def world(tmp_path: Path) -> AsyncIterator[World]:
    clock = ManualClock(START)
    settings = make_settings(f"sqlite:///{tmp_path / 'hcp.db'}", tmp_path / "var")
    runtime = bootstrap.build(settings, clock)
    bootstrap.prepare(runtime)
    with runtime.unit_of_work() as uow:
        gpus = uow.fleet.devices(kind=DeviceKind.GPU)
    hosts = sorted({split_address(g.address or "")[0] for g in gpus})
    model = gpu_model(settings.site_gpu_model)
    nodes = {
        host: GpuNodeSim(
            host, model, sum(split_address(g.address or "")[0] == host for g in gpus), clock=clock
        )
        for host in hosts
    }
    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=build_fleet_app(nodes.values())))
    runner = HookedRunner(NodeAgentGpuRunner(lambda host: f"http://sim/nodes/{host}", client))
    policy = SchedulingPolicy(min_runtime=timedelta(minutes=10))
    commands = CommandList()
    scheduler = SchedulerService(runtime.unit_of_work, runner, clock, policy, commands=commands)
    try:
        yield World(runtime, clock, nodes, scheduler, runner, commands)
    finally:
        await client.aclose()
        runtime.close()
