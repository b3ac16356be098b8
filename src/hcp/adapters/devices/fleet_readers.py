"""Read a whole fleet by device id: LuxOS miners over TCP, GPU nodes by their DCGM exporters
and, for each GPU's health, their node agents. A device that stops answering, or answers with
problems, is logged once when that starts and once when it ends (`Transitions`), not on every
poll."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime, timedelta

import httpx

from hcp.adapters.devices.cgminer import Transport
from hcp.adapters.devices.dcgm import DcgmScraper, DcgmTarget
from hcp.adapters.devices.errors import DeviceError
from hcp.adapters.devices.luxos import LuxosClient, RetryPolicy, read_all
from hcp.adapters.devices.luxos_driver import DEVICE_TIMEOUT_S
from hcp.adapters.devices.node_agent import NodeAgentClient, new_gpu_node_client
from hcp.domain.gpu_telemetry import GpuHealth, GpuReading
from hcp.domain.status import (
    UNREACHABLE,
    AgentVerdict,
    DeviceStatus,
    asic_status,
    gpu_status,
    standing_verdict,
)
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


class GpuHealthReader:
    """Each node agent's word on its GPUs' health: one `GET /v1/gpus` per node asked, at most
    `concurrency` at a time, each within `timeout_s`. A node whose agent does not answer
    is left out (its GPUs keep the agent's last word while DCGM shows the same Xid, else DCGM's
    rule applies: `standing_verdict`); that is logged when it starts
    and when the agent answers again."""

    def __init__(
        self,
        node_url: Callable[[str], str],
        client: httpx.AsyncClient | None = None,
        *,
        timeout_s: float = 2.0,
        concurrency: int = 32,
    ) -> None:
        self._node_url = node_url
        self._owns_client = client is None
        self._client = client or new_gpu_node_client(
            max_connections=concurrency, max_keepalive_connections=None
        )
        self._timeout_s = timeout_s
        self._limiter = asyncio.Semaphore(concurrency)
        self._silent: set[str] = set()  # nodes whose agent did not answer the last poll

    async def read(self, hosts: Sequence[str]) -> dict[str, dict[int, GpuHealth]]:
        """Health by node and GPU index, for the nodes asked whose agent answered."""
        answers = await asyncio.gather(*(self._ask(host) for host in hosts))
        by_host = dict(zip(hosts, answers, strict=True))
        failed = {h: a for h, a in by_host.items() if isinstance(a, DeviceError)}
        self._note_silent(set(hosts), failed)
        return {h: a for h, a in by_host.items() if isinstance(a, dict)}

    def _note_silent(self, asked: set[str], failed: Mapping[str, DeviceError]) -> None:
        """Log the agents that stopped answering (naming five at most) and those back; a node
        not asked this time keeps what it was."""
        if started := sorted(failed.keys() - self._silent):
            why = "; ".join(f"{h}: {failed[h].message}" for h in started[:5])
            more = f" and {len(started) - 5} more" if len(started) > 5 else ""
            log.warning(
                "node agents did not answer (%s%s): their GPUs keep the agents' last word "
                "until DCGM reports a new Xid",
                why,
                more,
            )
        if back := sorted((self._silent & asked) - failed.keys()):
            log.info("node agents answer again: %s", ", ".join(back))
        self._silent = (self._silent - asked) | failed.keys()

    async def _ask(self, host: str) -> dict[int, GpuHealth] | DeviceError:
        agent = NodeAgentClient(host, self._node_url(host), self._client, timeout_s=self._timeout_s)
        try:
            async with self._limiter:
                return {gpu.index: gpu.health for gpu in await agent.list_gpus()}
        except DeviceError as exc:
            return exc

    async def aclose(self) -> None:
        """Close the HTTP client if this reader opened it."""
        if self._owns_client:
            await self._client.aclose()


AGENT_REFRESH_S = 30.0
"""Seconds (platform time) a node agent's word that all its GPUs are healthy is trusted while
DCGM shows no new Xid: a reset, which DCGM does not show, is seen within this."""


class DcgmFleetReader:
    """Scrapes every GPU node, then asks the agents of the nodes that need it for their GPUs'
    health (`GpuHealthReader`); `gpus` maps (node hostname, GPU index) to device id.

    A node's agent is asked when one of its GPUs has no word from it yet, or a word other than
    healthy, or shows another Xid than when the word was given, or the node's last answer (one
    given beside a scrape) is `agent_refresh_s` old in platform time (or the clock went back).
    At a few seconds' poll most nodes are not asked most polls: each ask is an HTTP request,
    and at 1,000 GPUs asking every node every poll cost a tenth of a core. A word is dropped
    when DCGM shows a new Xid without a fresh one, or when the agent no longer lists the GPU."""

    def __init__(
        self,
        gpus: Mapping[tuple[str, int], str],
        node_url: Callable[[str], str],
        clock: Clock,
        scraper: DcgmScraper | None = None,
        agents: GpuHealthReader | None = None,
        agent_refresh_s: float = AGENT_REFRESH_S,
    ) -> None:
        self._gpus = gpus
        self._hosts = sorted({host for host, _ in gpus})
        self._indexes: dict[str, list[int]] = {host: [] for host in self._hosts}
        for host, index in gpus:
            self._indexes[host].append(index)
        self._targets = [DcgmTarget(h, f"{node_url(h)}/metrics") for h in self._hosts]
        self._scraper = scraper or DcgmScraper(clock=clock)
        self._agents = agents or GpuHealthReader(node_url)
        self._clock = clock
        self._transitions = Transitions("GPU")
        self._verdicts: dict[tuple[str, int], AgentVerdict] = {}
        self._refresh = timedelta(seconds=agent_refresh_s)
        self._answered_at: dict[str, datetime] = {}

    async def read(self) -> list[DeviceStatus]:
        sweep = await self._scraper.scrape_all(self._targets)
        seen = {(r.host, r.gpu_index): r for r in sweep.readings}
        asked_at = self._clock.now()
        health = await self._agents.read(
            [h for h in self._hosts if self._to_ask(h, seen, asked_at)]
        )
        for host in health:
            if host not in sweep.failures:  # its word is kept only beside a reading
                self._answered_at[host] = asked_at
        now = self._clock.now()
        statuses = []
        for (host, index), device_id in self._gpus.items():
            failure = sweep.failures.get(host)
            reason = f"node {host}: {failure.message}" if failure else "fell off the bus"
            reading, answer = seen.get((host, index)), health.get(host)
            fresh = None if answer is None else answer.get(index)
            agent = None
            if answer is not None and fresh is None:  # the agent no longer lists it
                self._verdicts.pop((host, index), None)
            if reading is not None:
                last = self._verdicts.get((host, index))
                verdict = standing_verdict(fresh, last, reading.xid_errors)
                if verdict is None:
                    self._verdicts.pop((host, index), None)  # voided by a new Xid
                else:
                    self._verdicts[host, index] = verdict
                    agent = verdict.health
            statuses.append(gpu_status(device_id, reading, now, f"unreachable: {reason}", agent))
        self._transitions.note(statuses)
        return statuses

    def _to_ask(self, host: str, seen: Mapping[tuple[str, int], GpuReading], now: datetime) -> bool:
        """Whether the node's agent must be asked this poll (see the class docstring)."""
        answered = self._answered_at.get(host)
        if answered is None or not timedelta(0) <= now - answered < self._refresh:
            return True  # never, long ago, or the clock stepped back
        for index in self._indexes[host]:
            reading = seen.get((host, index))
            if reading is None:
                continue
            verdict = self._verdicts.get((host, index))
            if (
                verdict is None
                or verdict.health is not GpuHealth.HEALTHY
                or verdict.xid != reading.xid_errors
            ):
                return True
        return False

    async def aclose(self) -> None:
        await self._scraper.aclose()
        await self._agents.aclose()
