"""The scheduler's GpuRunner on node agents: a workload's GPUs may span nodes (a gang on the
fewest nodes), so each call fans out to every node it touches."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import TypeVar, cast

import httpx

from hcp.adapters.devices.errors import DeviceError
from hcp.adapters.devices.gpu_errors import WorkloadNotFound
from hcp.adapters.devices.node_agent import NodeAgentClient, WorkloadStatus, new_gpu_node_client
from hcp.domain.fleet import Device
from hcp.domain.gpu_telemetry import AgentWorkloadState
from hcp.domain.workloads import Workload
from hcp.services.scheduler import DEFAULT_HOURS, RunState, RunStatus

T = TypeVar("T")

_STATES = {
    AgentWorkloadState.RUNNING: RunState.RUNNING,
    AgentWorkloadState.COMPLETED: RunState.COMPLETED,
    AgentWorkloadState.FAILED: RunState.FAILED,
    AgentWorkloadState.STOPPED: RunState.STOPPED,
}


def run_id(w: Workload) -> str:
    """The node agents' id of one run of `w`: a requeued workload runs again under a new id."""
    started = w.started_at or w.updated_at
    return f"{w.id}.{int(started.timestamp() * 1000)}"


def split_address(address: str | None) -> tuple[str, int]:
    """`gpu-node-001/3` -> ("gpu-node-001", 3): a GPU's node hostname and index on it."""
    host, _, index = (address or "").rpartition("/")
    if not host or not index.isdigit():
        raise ValueError(f"GPU address {address!r} is not '<node>/<index>'")
    return host, int(index)


def by_node(gpus: Sequence[Device]) -> dict[str, list[int]]:
    nodes: dict[str, list[int]] = defaultdict(list)
    for gpu in gpus:
        host, index = split_address(gpu.address)
        nodes[host].append(index)
    return dict(nodes)


DEFAULT_CONCURRENCY = 8
"""Node-agent calls in flight at once. httpx's pool looks through its waiting requests for
each free connection, so hundreds queued at once cost time quadratic in their number (at
1,000 GPUs this was most of a scheduler tick). Eight in flight measured cheaper than 16 or 64
on loopback and still hide a LAN round trip per node; a dead node holds one slot until its
timeout."""


class NodeAgentGpuRunner:
    """Runs workloads through node agents found at `base_url(host)`, at most `concurrency`
    calls in flight."""

    def __init__(
        self,
        base_url: Callable[[str], str],
        client: httpx.AsyncClient | None = None,
        concurrency: int = DEFAULT_CONCURRENCY,
    ) -> None:
        self._base_url = base_url
        self._client = client or new_gpu_node_client()
        self._in_flight = asyncio.Semaphore(concurrency)

    def _agent(self, host: str) -> NodeAgentClient:
        return NodeAgentClient(host, self._base_url(host), self._client)

    async def start(self, workload: Workload, gpus: Sequence[Device]) -> None:
        hours = workload.requirements.estimated_hours or DEFAULT_HOURS
        calls = [
            self._start_on(host, workload, indices, hours * 3600)
            for host, indices in by_node(gpus).items()
        ]
        await asyncio.gather(*calls)

    async def _start_on(
        self, host: str, w: Workload, indices: list[int], duration_s: float
    ) -> None:
        async with self._in_flight:
            await self._agent(host).start(
                run_id(w),
                indices,
                duration_s,
                checkpointable=w.checkpointable,
                resume_from_progress=w.progress if w.checkpointable else 0.0,
            )

    async def checkpoint(self, workload: Workload, gpus: Sequence[Device]) -> float:
        """Have each node of `workload` checkpoint it now: the progress kept (its nodes' least).
        Every node's call ends before a node's error is raised."""
        statuses = await _every(self._checkpoint_on(host, workload) for host in by_node(gpus))
        return min(s.checkpoint_progress for s in statuses)

    async def _checkpoint_on(self, host: str, w: Workload) -> WorkloadStatus:
        async with self._in_flight:
            return await self._agent(host).checkpoint(run_id(w))

    async def stop(
        self, workload: Workload, gpus: Sequence[Device], checkpoint: bool
    ) -> float | None:
        """Stop it on each node; the progress a resumed run starts from (its nodes' least), or
        None when a node no longer knows the run (it kept nothing there). Every node's call
        ends before a node's error is raised."""
        statuses = await _every(self._stop_on(host, workload, checkpoint) for host in by_node(gpus))
        if any(s is None for s in statuses):
            return None
        return min((s.checkpoint_progress for s in statuses if s is not None), default=None)

    async def _stop_on(self, host: str, w: Workload, checkpoint: bool) -> WorkloadStatus | None:
        agent = self._agent(host)
        try:
            async with self._in_flight:
                if checkpoint and w.checkpointable:
                    await agent.checkpoint(run_id(w))
                return await agent.stop(run_id(w))
        except WorkloadNotFound:
            return None

    async def poll(
        self, running: Sequence[tuple[Workload, Sequence[Device]]]
    ) -> dict[str, RunStatus]:
        """Every running workload's status: one call per node for all its workloads."""
        hosts = {w.id: list(by_node(gpus)) for w, gpus in running}
        asked: dict[str, list[str]] = defaultdict(list)
        for w, _ in running:
            for host in hosts[w.id]:
                asked[host].append(run_id(w))
        answers = await asyncio.gather(*(self._statuses(h, ids) for h, ids in asked.items()))
        by_host = dict(zip(asked, answers, strict=True))
        return {w.id: _status_of(w, [by_host[h] for h in hosts[w.id]]) for w, _ in running}

    async def _statuses(self, host: str, ids: list[str]) -> dict[str, WorkloadStatus] | str:
        """The node's statuses of `ids`, or why the node could not be asked."""
        try:
            async with self._in_flight:
                return await self._agent(host).statuses(ids)
        except DeviceError as exc:
            return str(exc)

    async def aclose(self) -> None:
        await self._client.aclose()


def _status_of(w: Workload, answers: Sequence[dict[str, WorkloadStatus] | str]) -> RunStatus:
    """A workload's status from the answers of the nodes it runs on (an error text where a
    node could not be asked): unknown while a node is unreachable, stopped when a node no
    longer knows the run (at the last checkpoint known: a node that forgot the run may have
    restarted, and what ran since that checkpoint is gone), else the combined status."""
    failed = [answer for answer in answers if isinstance(answer, str)]
    if failed:
        return RunStatus(RunState.UNKNOWN, w.progress, detail=failed[0])
    statuses = [answer.get(run_id(w)) for answer in answers if not isinstance(answer, str)]
    known = [status for status in statuses if status is not None]
    if len(known) < len(statuses) or not known:
        return RunStatus(RunState.STOPPED, w.progress, w.checkpoint, "the node no longer knows it")
    return combine(known)


def combine(statuses: Sequence[WorkloadStatus]) -> RunStatus:
    """One status for a workload spread over nodes: the slowest part, the worst state."""
    states = {_STATES[s.state] for s in statuses}
    progress = min(s.progress for s in statuses)
    checkpoint = min(s.checkpoint_progress for s in statuses)
    detail = next((s.failure_reason for s in statuses if s.failure_reason), None)
    ended = max((s.ended_at for s in statuses if s.ended_at is not None), default=None)
    for state in (RunState.FAILED, RunState.STOPPED, RunState.RUNNING):
        if state in states:
            return RunStatus(state, progress, checkpoint, detail, ended)
    return RunStatus(RunState.COMPLETED, 1.0, checkpoint, detail, ended)


async def _every(calls: Iterable[Awaitable[T]]) -> list[T]:
    """The results of `calls`, run together; the first error raised once all have ended (a
    node's call is never left running unobserved)."""
    outcomes = await asyncio.gather(*calls, return_exceptions=True)
    for outcome in outcomes:
        if isinstance(outcome, BaseException):
            raise outcome
    return cast(list[T], outcomes)
