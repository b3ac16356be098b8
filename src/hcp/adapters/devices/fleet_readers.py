"""Read a whole fleet by device id: LuxOS miners over TCP, GPU nodes by their DCGM exporters."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Mapping

from hcp.adapters.devices.cgminer import Transport
from hcp.adapters.devices.dcgm import DcgmScraper, DcgmTarget
from hcp.adapters.devices.errors import DeviceError
from hcp.adapters.devices.luxos import LuxosClient, RetryPolicy, read_all
from hcp.adapters.devices.luxos_driver import DEVICE_TIMEOUT_S
from hcp.domain.status import DeviceStatus, asic_status, gpu_status
from hcp.services.ports import Clock


class LuxosFleetReader:
    """One LuxOS client per miner, `concurrency` exchanges at a time across the fleet."""

    def __init__(
        self,
        addresses: Mapping[str, tuple[str, int]],
        clock: Clock,
        concurrency: int = 256,
        transport: Transport | None = None,
    ) -> None:
        limiter = asyncio.Semaphore(concurrency)
        # One quick retry: a poll that misses a miner tries again next poll anyway.
        retry = RetryPolicy(attempts=2, first_delay_s=0.05)
        self._clients = {
            device_id: LuxosClient(
                host,
                port,
                timeout_s=DEVICE_TIMEOUT_S,
                retry=retry,
                limiter=limiter,
                clock=clock,
                transport=transport,
            )
            for device_id, (host, port) in addresses.items()
        }
        self._clock = clock

    @property
    def clients(self) -> Mapping[str, LuxosClient]:
        return self._clients

    async def read(self) -> list[DeviceStatus]:
        ids = list(self._clients)
        results = await read_all([self._clients[i] for i in ids])
        now = self._clock.now()
        return [
            asic_status(i, None, now, str(r))
            if isinstance(r, DeviceError)
            else asic_status(i, r, now)
            for i, r in zip(ids, results, strict=True)
        ]


class DcgmFleetReader:
    """Scrapes every GPU node; `gpus` maps (node hostname, GPU index) to device id."""

    def __init__(
        self,
        gpus: Mapping[tuple[str, int], str],
        node_url: Callable[[str], str],
        clock: Clock,
        scraper: DcgmScraper | None = None,
    ) -> None:
        self._gpus = gpus
        hosts = sorted({host for host, _ in gpus})
        self._targets = [DcgmTarget(h, f"{node_url(h)}/metrics") for h in hosts]
        self._scraper = scraper or DcgmScraper(clock=clock)
        self._clock = clock

    async def read(self) -> list[DeviceStatus]:
        sweep = await self._scraper.scrape_all(self._targets)
        now = self._clock.now()
        seen = {(r.host, r.gpu_index): r for r in sweep.readings}
        statuses = []
        for (host, index), device_id in self._gpus.items():
            failure = sweep.failures.get(host)
            reason = str(failure) if failure else "fell off the bus"
            statuses.append(gpu_status(device_id, seen.get((host, index)), now, reason))
        return statuses

    async def aclose(self) -> None:
        await self._scraper.aclose()
