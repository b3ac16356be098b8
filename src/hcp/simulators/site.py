"""A whole simulated site in the platform's process: one LuxOS miner per stored ASIC and one
GPU node agent per stored GPU node, on loopback, speaking their real protocols."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from contextlib import AsyncExitStack

from hcp.adapters.devices.gpu_runner import split_address
from hcp.adapters.devices.site_file import SiteAddresses
from hcp.domain.catalog import asic_model, gpu_model
from hcp.domain.devices import DeviceKind
from hcp.domain.fleet import Device
from hcp.services.ports import Clock
from hcp.simulators.asic import AsicFleetSimulator
from hcp.simulators.asic.config import SESSION_TIMEOUT_S, FleetSimConfig, MinerSimConfig
from hcp.simulators.gpu import GpuNodeSim, build_fleet_app
from hcp.simulators.gpu.serve import serving


class SimulatedSite:
    """Starts and stops the simulators for `devices`; `miners` and `nodes` expose their state
    so faults can be injected."""

    def __init__(self, devices: Sequence[Device], clock: Clock, *, first_port: int = 0) -> None:
        self._clock = clock
        self._asics = [d for d in devices if d.kind is DeviceKind.ASIC]
        gpus = [d for d in devices if d.kind is DeviceKind.GPU]
        # LuxOS idles a session out after a minute of wall time; the miners live on `clock`,
        # which a sped-up site runs `speed` times faster (at 5,000× a minute is 12 ms).
        session_timeout_s = SESSION_TIMEOUT_S * getattr(clock, "speed", 1.0)
        miners = tuple(
            MinerSimConfig(
                asic_model(d.model_name),
                "127.0.0.1",
                first_port + i if first_port else 0,
                profile=d.profile,
                seed=i,
                session_timeout_s=session_timeout_s,
            )
            for i, d in enumerate(self._asics)
        )
        self.asic_fleet = AsicFleetSimulator(FleetSimConfig(miners), clock)
        per_node = Counter(split_address(g.address)[0] for g in gpus)
        models = {split_address(g.address)[0]: g.model_name for g in gpus}
        self.nodes = {
            host: GpuNodeSim(host, gpu_model(models[host]), count, clock=clock, seed=i)
            for i, (host, count) in enumerate(sorted(per_node.items()))
        }
        self._stack = AsyncExitStack()

    async def start(self) -> SiteAddresses:
        await self._stack.enter_async_context(self.asic_fleet)
        server = await self._stack.enter_async_context(
            serving(build_fleet_app(self.nodes.values()), port=0)
        )
        asics = {d.id: addr for d, addr in zip(self._asics, self.asic_fleet.addresses, strict=True)}
        return SiteAddresses(asics, f"{server.base_url}/nodes/{{node}}")

    async def stop(self) -> None:
        await self._stack.aclose()
