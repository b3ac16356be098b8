"""Read a whole fleet by device id: LuxOS miners over TCP, GPU nodes by their DCGM exporters.
A device that stops answering, or answers with problems, is logged once when that starts and
once when it ends (`Transitions`), not on every poll."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence

from hcp.adapters.devices.cgminer import Transport
from hcp.adapters.devices.dcgm import DcgmScraper, DcgmTarget
from hcp.adapters.devices.errors import DeviceError
from hcp.adapters.devices.luxos import LuxosClient, RetryPolicy, read_all
from hcp.adapters.devices.luxos_driver import DEVICE_TIMEOUT_S
from hcp.domain.status import UNREACHABLE, DeviceStatus, asic_status, gpu_status
from hcp.domain.telemetry import MinerState
from hcp.services.ports import Clock

log = logging.getLogger(__name__)

OK = "ok"


def condition(status: DeviceStatus) -> str:
    """`unreachable`, `faulted` (a miner in its fault state), `degraded` (it answered, with
    problems) or `ok`."""
    if status.state == UNREACHABLE:
        return UNREACHABLE
    if status.state == MinerState.FAULT:
        return "faulted"
    return OK if status.healthy and not status.problems else "degraded"


class Transitions:
    """Logs each device whose condition changed since the last sweep: a WARNING when it turns
    unreachable, faulted or degraded (with its problems), an INFO when it is ok again. A device
    first seen in trouble counts as a change. Per sweep at most `per_sweep` devices are named
    in each direction, then one line counts the rest (a site losing power is one event, not
    10,000 lines)."""

    def __init__(self, kind: str, per_sweep: int = 20) -> None:
        self._kind = kind
        self._per_sweep = per_sweep
        self._troubled: dict[str, str] = {}  # device id -> its condition, when not ok

    def note(self, statuses: Sequence[DeviceStatus]) -> None:
        worse: list[tuple[DeviceStatus, str, str]] = []
        better: list[tuple[DeviceStatus, str]] = []
        for status in statuses:
            now, before = condition(status), self._troubled.get(status.device_id, OK)
            if now == before:
                continue
            if now == OK:
                del self._troubled[status.device_id]
                better.append((status, before))
            else:
                self._troubled[status.device_id] = now
                worse.append((status, now, before))
        for status, now, before in worse[: self._per_sweep]:
            problems = "; ".join(status.problems) or "no reason given"
            log.warning(
                "%s %s is %s (was %s): %s", self._kind, status.device_id, now, before, problems
            )
        if len(worse) > self._per_sweep:
            log.warning(
                "%d more %ss turned unreachable, faulted or degraded in this sweep",
                len(worse) - self._per_sweep,
                self._kind,
            )
        for status, before in better[: self._per_sweep]:
            log.info("%s %s recovered (was %s)", self._kind, status.device_id, before)
        if len(better) > self._per_sweep:
            log.info(
                "%d more %ss recovered in this sweep", len(better) - self._per_sweep, self._kind
            )


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
        self._transitions = Transitions("miner")

    @property
    def clients(self) -> Mapping[str, LuxosClient]:
        return self._clients

    async def read(self) -> list[DeviceStatus]:
        ids = list(self._clients)
        results = await read_all([self._clients[i] for i in ids])
        now = self._clock.now()
        statuses = [
            asic_status(i, None, now, f"unreachable: {r.message}")
            if isinstance(r, DeviceError)
            else asic_status(i, r, now)
            for i, r in zip(ids, results, strict=True)
        ]
        self._transitions.note(statuses)
        return statuses


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
        self._transitions = Transitions("GPU")

    async def read(self) -> list[DeviceStatus]:
        sweep = await self._scraper.scrape_all(self._targets)
        now = self._clock.now()
        seen = {(r.host, r.gpu_index): r for r in sweep.readings}
        statuses = []
        for (host, index), device_id in self._gpus.items():
            failure = sweep.failures.get(host)
            reason = f"node {host}: {failure.message}" if failure else "fell off the bus"
            reading = seen.get((host, index))
            statuses.append(gpu_status(device_id, reading, now, f"unreachable: {reason}"))
        self._transitions.note(statuses)
        return statuses

    async def aclose(self) -> None:
        await self._scraper.aclose()
