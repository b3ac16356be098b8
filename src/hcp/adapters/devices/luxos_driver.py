"""The dispatcher's `MinerDriver` over LuxOS RPC: one `LuxosClient` per miner address (so its
session is reused between commands), one limiter shared by all, and short timeouts so a dead
miner costs a tick at most `timeout_s` x `retry.attempts` plus the backoff."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from hcp.adapters.devices.cgminer import Transport
from hcp.adapters.devices.errors import DeviceError
from hcp.adapters.devices.luxos import LuxosClient, RetryPolicy, read_all
from hcp.domain.telemetry import AsicReading
from hcp.services.ports import Clock

CGMINER_PORT = 4028
DEVICE_TIMEOUT_S = 2.0
"""Per exchange: a miner on the site's network answers in milliseconds or not at all."""
DRIVER_RETRY = RetryPolicy(attempts=2, first_delay_s=0.1, max_delay_s=0.5)
"""One retry, soon: the dispatcher's closed loop retries again next tick anyway."""


def split_address(address: str) -> tuple[str, int]:
    """(host, port) of `host:port`, `[v6]:port` or a bare host (port 4028)."""
    if address.startswith("["):
        host, _, rest = address[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else CGMINER_PORT
    host, sep, port = address.rpartition(":")
    if not sep or ":" in host:
        return address, CGMINER_PORT
    return host, int(port)


class LuxosMinerDriver:
    """Sends sleep, wake and profile commands to LuxOS miners, and reads them back."""

    def __init__(
        self,
        *,
        timeout_s: float = DEVICE_TIMEOUT_S,
        retry: RetryPolicy = DRIVER_RETRY,
        max_in_flight: int = 256,
        clock: Clock | None = None,
        transport: Transport | None = None,
    ) -> None:
        self.timeout_s = timeout_s
        self.retry = retry
        self._limiter = asyncio.Semaphore(max_in_flight)
        self._clock = clock
        self._transport = transport
        self._clients: dict[str, LuxosClient] = {}

    def client(self, address: str) -> LuxosClient:
        """The client of the miner at `address` (made on first use, then kept)."""
        client = self._clients.get(address)
        if client is None:
            host, port = split_address(address)
            client = LuxosClient(
                host,
                port,
                timeout_s=self.timeout_s,
                retry=self.retry,
                limiter=self._limiter,
                transport=self._transport,
                clock=self._clock,
            )
            self._clients[address] = client
        return client

    async def sleep(self, address: str) -> None:
        await self.client(address).curtail_sleep()

    async def wake(self, address: str) -> None:
        await self.client(address).curtail_wakeup()

    async def set_profile(self, address: str, profile: str) -> None:
        await self.client(address).set_profile(profile)

    async def read_all(self, addresses: Sequence[str]) -> list[AsicReading | DeviceError]:
        """One reading per address, concurrently; a miner that fails gives its error."""
        return await read_all([self.client(address) for address in addresses])

    async def close(self) -> None:
        """Give every held session back, so operators' tools can log on (errors ignored)."""
        await asyncio.gather(
            *(client.logoff() for client in self._clients.values()), return_exceptions=True
        )
