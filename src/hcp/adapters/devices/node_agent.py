"""An async client of a GPU node agent: list GPUs, start, watch, checkpoint and stop workloads.

The protocol is JSON over HTTP (see `hcp.simulators.gpu.app` for the routes and error codes).
Refusals become `AgentRejected` subclasses, a node that is down or unreachable a
`DeviceUnreachable` (`NodeDown` for a 503), an answer that does not fit a `MalformedReply`.

It also holds what every HTTP client of a GPU node (this one and the DCGM scraper) shares about
keep-alive: idle pooled connections are dropped after `KEEPALIVE_EXPIRY_S`, before a server
would close them, and `request_retrying_stale` sends a request once more when a server closed
the reused connection under it.
"""

from __future__ import annotations

import logging
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime
from types import TracebackType
from typing import Any, TypeVar
from urllib.parse import urlencode

import httpx
import pydantic

from hcp.adapters.devices.errors import DeviceIOError, MalformedReply
from hcp.adapters.devices.gpu_errors import (
    AgentRejected,
    GpuUnavailable,
    RequestInvalid,
    WorkloadConflict,
    WorkloadExists,
    WorkloadNotFound,
    check_served,
    transport_errors,
)
from hcp.domain.gpu_telemetry import AgentWorkloadState, GpuHealth


@dataclass(frozen=True, slots=True)
class GpuStatus:
    """One GPU as its node agent reports it: %, W, °C, MiB; None where a lost GPU can't be read."""

    index: int
    uuid: str
    health: GpuHealth
    workload_id: str | None
    util_pct: float | None
    power_w: float | None
    temp_c: float | None
    fb_used_mib: int | None
    fb_free_mib: int | None
    last_xid: int
    xid_count: int


@dataclass(frozen=True, slots=True)
class WorkloadStatus:
    """A workload on a node: state, progress and last checkpoint (both 0–1), why it failed."""

    workload_id: str
    state: AgentWorkloadState
    progress: float
    checkpoint_progress: float
    gpu_indices: tuple[int, ...]
    checkpointable: bool
    duration_s: float
    started_at: datetime
    ended_at: datetime | None
    failure_reason: str | None


# (HTTP status, the agent's error code) -> the error a caller catches.
_REJECTIONS: dict[tuple[int, str | None], type[AgentRejected]] = {
    (404, "not_found"): WorkloadNotFound,
    (409, "gpu_unavailable"): GpuUnavailable,
    (409, "workload_exists"): WorkloadExists,
    (409, "conflict"): WorkloadConflict,
    (422, "invalid"): RequestInvalid,
    (422, None): RequestInvalid,
}
T = TypeVar("T")

log = logging.getLogger(__name__)

KEEPALIVE_EXPIRY_S = 4.0
"""Seconds a GPU node client keeps an idle pooled connection for reuse. A client must give up
an idle connection before the server does: a request sent as the server's idle timer fires is
lost ("Server disconnected without sending a response"). Servers close idle connections after
5 s (uvicorn, Node.js, Apache), 10 s (dcgm-exporter: a Go net/http server with a 10 s
ReadTimeout and no IdleTimeout, so Go uses the ReadTimeout), 75 s (nginx; our simulator).
4 s is under all of them. At a 5 s poll a node's connection is then opened afresh each poll,
one handshake on the LAN, which costs less than a poll lost; `request_retrying_stale` covers a
server that closes sooner still."""

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
"""Methods safe to send twice (RFC 9110 §9.2.2): the GPU clients only ever GET."""

_BROKEN = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)


def new_gpu_node_client(
    *, max_connections: int | None = 100, max_keepalive_connections: int | None = 20
) -> httpx.AsyncClient:
    """An httpx client for GPU nodes: httpx's default pool, but idle connections are dropped
    after `KEEPALIVE_EXPIRY_S`. Share one across a fleet's clients."""
    limits = httpx.Limits(
        max_connections=max_connections,
        max_keepalive_connections=max_keepalive_connections,
        keepalive_expiry=KEEPALIVE_EXPIRY_S,
    )
    return httpx.AsyncClient(limits=limits)


class _Trace:
    """Collects the events httpcore reports of one request (its `trace` extension)."""

    __slots__ = ("events",)

    def __init__(self) -> None:
        self.events: set[str] = set()

    async def __call__(self, event: str, info: object) -> None:
        self.events.add(event)


def may_retry(method: str, events: Collection[str]) -> bool:
    """Whether a request whose connection broke (`events`: what httpcore traced of it) may be
    sent once more at once: only one that went out on a reused keep-alive connection and got
    no answer, i.e. the server closed that idle connection as the request arrived.

    A GET is sent again: reading twice changes nothing. Any other method is sent again only if
    its request head never went out whole, since no HTTP server acts on half a request; once
    the head is out, the server may have read the request and acted before the connection
    broke, and the client cannot tell. On a fresh connection the break is not keep-alive's
    doing, and a transport that traces nothing (a mock, ASGI) tells us nothing: no retry.
    """
    reused = (
        "http11.send_request_headers.started" in events
        and "connection.connect_tcp.started" not in events
    )
    if not reused or "http11.receive_response_headers.complete" in events:
        return False
    return method in IDEMPOTENT_METHODS or "http11.send_request_headers.complete" not in events


async def request_retrying_stale(
    client: httpx.AsyncClient, method: str, url: str, **kwargs: Any
) -> httpx.Response:
    """`client.request(method, url, **kwargs)`, sent once more, immediately, when the server
    closed the reused keep-alive connection under it (see `may_retry`), the way browsers and
    Go's net/http do. A second failure is raised, as is every other error."""
    trace = _Trace()
    try:
        return await client.request(method, url, extensions={"trace": trace}, **kwargs)
    except _BROKEN as exc:
        if not may_retry(method, trace.events):
            raise
        log.debug(
            "%s %s: reused connection closed by the server (%s); sending again", method, url, exc
        )
    return await client.request(method, url, **kwargs)


_GPUS = pydantic.TypeAdapter(list[GpuStatus])
_WORKLOAD = pydantic.TypeAdapter(WorkloadStatus)
_WORKLOADS = pydantic.TypeAdapter(list[WorkloadStatus])


class NodeAgentClient:
    """Talks to the agent of node `host` at `base_url` (routes are `{base_url}/v1/...`).

    Share one `httpx.AsyncClient` across the clients of a fleet (`new_gpu_node_client`);
    without one the client opens its own and `aclose()` closes it. Every request gets
    `timeout_s`.

    A GET (`list_gpus`, `status`, `statuses`) that breaks because the node closed the reused
    idle connection is sent once more (`request_retrying_stale`). `start`, `checkpoint` and
    `stop` are POSTs and are not: the node may have read one and acted on it before the
    connection broke, and sending it again could start a workload twice, or checkpoint or
    stop a state the caller never saw. Such a failure is raised; the caller's next poll reads
    what the node did. A POST is resent only if its request never left whole.
    """

    def __init__(
        self,
        host: str,
        base_url: str,
        client: httpx.AsyncClient | None = None,
        *,
        timeout_s: float = 5.0,
    ) -> None:
        self.host = host
        self.base_url = base_url.rstrip("/")
        self._owns_client = client is None
        self._client = client or new_gpu_node_client()
        self._timeout = httpx.Timeout(timeout_s)

    async def list_gpus(self) -> list[GpuStatus]:
        """Every GPU of the node, lost ones included."""
        body = await self._call("GET", "/v1/gpus", "list_gpus")
        gpus = body.get("gpus") if isinstance(body, dict) else None
        return self._parse(_GPUS, gpus)

    async def start(
        self,
        workload_id: str,
        gpu_indices: list[int] | tuple[int, ...],
        duration_s: float,
        *,
        checkpointable: bool = False,
        resume_from_progress: float = 0.0,
        fb_mib_per_gpu: int | None = None,
    ) -> WorkloadStatus:
        """Start `workload_id` on `gpu_indices`; it takes `duration_s` s from progress 0 to 1."""
        request = {
            "workload_id": workload_id,
            "gpu_indices": list(gpu_indices),
            "duration_s": duration_s,
            "checkpointable": checkpointable,
            "resume_from_progress": resume_from_progress,
            "fb_mib_per_gpu": fb_mib_per_gpu,
        }
        body = await self._call("POST", "/v1/workloads", "start", workload_id, request)
        return self._parse(_WORKLOAD, body)

    async def status(self, workload_id: str) -> WorkloadStatus:
        """The workload's state and progress now."""
        return await self._workload_call("GET", workload_id, "", "status")

    async def statuses(self, workload_ids: Sequence[str]) -> dict[str, WorkloadStatus]:
        """The named workloads' states in one call, by id; ids the node does not know are
        missing from the answer."""
        if not workload_ids:
            return {}
        path = "/v1/workloads?" + urlencode({"ids": ",".join(workload_ids)})
        body = await self._call("GET", path, "statuses")
        listed = body.get("workloads") if isinstance(body, dict) else None
        return {w.workload_id: w for w in self._parse(_WORKLOADS, listed)}

    async def checkpoint(self, workload_id: str) -> WorkloadStatus:
        """Checkpoint a running, checkpointable workload; its status with the new checkpoint."""
        return await self._workload_call("POST", workload_id, "/checkpoint", "checkpoint")

    async def stop(self, workload_id: str) -> WorkloadStatus:
        """Stop the workload (a finished one is left as it is); `checkpoint_progress` is where
        a resumed run would start."""
        return await self._workload_call("POST", workload_id, "/stop", "stop")

    async def _workload_call(
        self, method: str, workload_id: str, suffix: str, command: str
    ) -> WorkloadStatus:
        path = f"/v1/workloads/{workload_id}{suffix}"
        return self._parse(_WORKLOAD, await self._call(method, path, command, workload_id))

    async def _call(
        self,
        method: str,
        path: str,
        command: str,
        workload_id: str | None = None,
        json: dict[str, Any] | None = None,
    ) -> Any:
        """Send one request; the decoded JSON of a 2xx answer, else the matching device error."""
        with transport_errors(self.host):
            response = await request_retrying_stale(
                self._client, method, self.base_url + path, json=json, timeout=self._timeout
            )
        check_served(self.host, response)
        if response.is_success:
            return self._json(response)
        raise self._rejection(response, command, workload_id)

    def _rejection(
        self, response: httpx.Response, command: str, workload_id: str | None
    ) -> DeviceIOError | AgentRejected:
        """The error for a 4xx answer: by status and the agent's `code`, else a DeviceIOError."""
        body = self._json(response) if _is_json(response) else {}
        code = body.get("code") if isinstance(body, dict) else None
        detail = str(body.get("detail", response.text)) if isinstance(body, dict) else response.text
        error_type = _REJECTIONS.get((response.status_code, code))
        if error_type is None:
            status = response.status_code
            return DeviceIOError(self.host, f"{command}: unexpected HTTP {status}: {detail[:200]}")
        return error_type(self.host, command, response.status_code, detail, workload_id)

    def _json(self, response: httpx.Response) -> Any:
        try:
            return response.json()
        except ValueError as exc:
            raise MalformedReply(self.host, f"not JSON: {response.text[:120]!r}") from exc

    def _parse(self, adapter: pydantic.TypeAdapter[T], data: Any) -> T:
        try:
            return adapter.validate_python(data)
        except pydantic.ValidationError as exc:
            raise MalformedReply(self.host, f"unexpected answer: {exc}") from exc

    async def aclose(self) -> None:
        """Close the HTTP client if this client opened it."""
        if self._owns_client:
            await self._client.aclose()

    async def __aenter__(self) -> NodeAgentClient:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()


def _is_json(response: httpx.Response) -> bool:
    content_type: str = response.headers.get("content-type", "")
    return content_type.startswith("application/json")
