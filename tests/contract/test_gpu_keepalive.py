"""GPU node HTTP clients (DCGM scraper, node-agent client) against servers that close idle
keep-alive connections: no poll is lost when a server drops a connection as it is reused.

A server closes an idle connection when its keep-alive timer fires; a request the client sends
on that connection at the same moment is lost ("Server disconnected without sending a
response"), and the node showed as unreachable. `RacyServer` makes that race happen every time:
its timer "fires" on any request that comes late in the idle period. Everything here runs on
real loopback sockets and the real clock.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, suppress
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from hcp.adapters.clock import SystemClock
from hcp.adapters.devices.dcgm import DcgmScraper, DcgmTarget
from hcp.adapters.devices.errors import DeviceConnectionReset
from hcp.adapters.devices.fleet_readers import DcgmFleetReader
from hcp.adapters.devices.node_agent import KEEPALIVE_EXPIRY_S, NodeAgentClient, may_retry
from hcp.domain.devices import GpuModel
from hcp.domain.status import UNREACHABLE
from hcp.simulators.gpu import GpuNodeSim, build_fleet_app, serving

HOST = "gpu-node-001"
METRICS = "\n".join(
    f'{name}{{gpu="0",UUID="GPU-0",modelName="Test H100",Hostname="{HOST}"}} {value}'
    for name, value in [
        ("DCGM_FI_DEV_GPU_UTIL", 0),
        ("DCGM_FI_DEV_POWER_USAGE", 70.5),
        ("DCGM_FI_DEV_GPU_TEMP", 31),
        ("DCGM_FI_DEV_FB_USED", 0),
        ("DCGM_FI_DEV_FB_FREE", 81920),
        ("DCGM_FI_DEV_XID_ERRORS", 0),
    ]
)
GPU = {
    "index": 0,
    "uuid": "GPU-0",
    "health": "healthy",
    "workload_id": None,
    "util_pct": 0.0,
    "power_w": 70.5,
    "temp_c": 31.0,
    "fb_used_mib": 0,
    "fb_free_mib": 81920,
    "last_xid": 0,
    "xid_count": 0,
}
WORKLOAD = {
    "workload_id": "job-1",
    "state": "running",
    "progress": 0.5,
    "checkpoint_progress": 0.0,
    "gpu_indices": [0],
    "checkpointable": True,
    "duration_s": 60.0,
    "started_at": "2025-03-01T12:00:00Z",
    "ended_at": None,
    "failure_reason": None,
}
ANSWERS = {
    "/metrics": ("text/plain; version=0.0.4", METRICS),
    "/v1/gpus": ("application/json", json.dumps({"gpus": [GPU]})),
    "/v1/workloads": ("application/json", json.dumps({"workloads": [WORKLOAD]})),
}


@dataclass(frozen=True, slots=True)
class Seen:
    """A request the server read: method, path, and whether it came on a reused connection."""

    method: str
    path: str
    reused: bool


@dataclass
class RacyServer:
    """A tiny HTTP/1.1 server that keeps a connection `keep_alive_s` idle and always loses the
    race at the end of it: a request that comes on a connection idle `keep_alive_s - race_s` or
    longer is read and dropped, the connection closed unanswered, as by a server whose idle
    timer fires while the request is in flight. `drop_all` drops every request."""

    keep_alive_s: float = 1.0
    race_s: float = 0.3
    drop_all: bool = False
    seen: list[Seen] = field(default_factory=list)
    dropped: list[Seen] = field(default_factory=list)
    url: str = ""
    _writers: set[asyncio.StreamWriter] = field(default_factory=set)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        loop = asyncio.get_running_loop()
        self._writers.add(writer)
        idle_since: float | None = None  # when the last answer went out on this connection
        try:
            while True:
                try:
                    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.keep_alive_s)
                except (TimeoutError, asyncio.IncompleteReadError, ConnectionError):
                    return  # idle too long, or the client hung up
                request = self._read_head(head)
                length = int(request["content-length"])
                if length:
                    await reader.readexactly(length)
                seen = Seen(request["method"], request["path"], idle_since is not None)
                self.seen.append(seen)
                late = idle_since is not None and (
                    loop.time() - idle_since >= self.keep_alive_s - self.race_s
                )
                if self.drop_all or late:
                    self.dropped.append(seen)
                    return
                writer.write(self._answer(request["path"]))
                await writer.drain()
                idle_since = loop.time()
        finally:
            self._writers.discard(writer)
            writer.close()
            with suppress(ConnectionError):
                await writer.wait_closed()

    @staticmethod
    def _read_head(head: bytes) -> dict[str, str]:
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        method, target, _ = request_line.split(" ")
        headers = dict(line.lower().split(": ", 1) for line in header_lines if line)
        nodes_prefix = f"/nodes/{HOST}"
        path = target.partition("?")[0].removeprefix(nodes_prefix)
        return {
            "method": method,
            "path": path,
            "content-length": headers.get("content-length", "0"),
        }

    @staticmethod
    def _answer(path: str) -> bytes:
        if path.startswith("/v1/workloads/"):
            content_type, body = "application/json", json.dumps(WORKLOAD)
        else:
            content_type, body = ANSWERS.get(path, ("text/plain", ""))
        status = "200 OK" if path in ANSWERS or path.startswith("/v1/workloads/") else "404 X"
        data = body.encode()
        head = f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\n"
        return f"{head}Content-Length: {len(data)}\r\n\r\n".encode() + data

    def close_connections(self) -> None:
        for writer in list(self._writers):
            writer.close()


@asynccontextmanager
async def racy_server(**kwargs: Any) -> AsyncIterator[RacyServer]:
    racy = RacyServer(**kwargs)
    server = await asyncio.start_server(racy.handle, "127.0.0.1", 0)
    racy.url = f"http://127.0.0.1:{server.sockets[0].getsockname()[1]}/nodes/{HOST}"
    try:
        yield racy
    finally:
        server.close()
        racy.close_connections()
        await server.wait_closed()


# -- polling at the server's keep-alive timeout -------------------------------------------------


async def test_polling_as_the_server_drops_idle_connections_loses_no_poll() -> None:
    """Each poll reuses a connection the server is closing; each must still read the node."""
    async with racy_server(keep_alive_s=1.0, race_s=0.3) as server:
        gpus = {(HOST, 0): "gpu-1"}
        # Its agent asked every poll, as at a poll slower than the agents' refresh.
        reader = DcgmFleetReader(gpus, lambda host: server.url, SystemClock(), agent_refresh_s=0)
        async with NodeAgentClient(HOST, server.url) as agent:
            try:
                for poll in range(5):
                    if poll:
                        await asyncio.sleep(0.9)  # idle 0.9 s: inside the server's race window
                    statuses, listed = await asyncio.gather(reader.read(), agent.list_gpus())
                    assert [s.state for s in statuses] == ["idle"], statuses[0].problems
                    assert [g.index for g in listed] == [0]
            finally:
                await reader.aclose()
        assert all(s.state != UNREACHABLE for s in statuses)
    # The race was run: requests were lost on reused connections, and resent on fresh ones.
    assert server.dropped and all(d.reused for d in server.dropped)
    # Per poll: the reader's scrape and its agent's GPU list, and the agent client's list.
    assert len(server.seen) == 3 * 5 + len(server.dropped)


# -- what is sent once more ---------------------------------------------------------------------


Call = Callable[[NodeAgentClient, DcgmScraper, str], Awaitable[object]]
CALLS: dict[str, tuple[Call, str, int]] = {
    # name: (the call, its HTTP method, how many times the server should see it)
    "scrape": (lambda a, s, url: s.scrape(DcgmTarget(HOST, f"{url}/metrics")), "GET", 2),
    "list_gpus": (lambda a, s, url: a.list_gpus(), "GET", 2),
    "status": (lambda a, s, url: a.status("job-1"), "GET", 2),
    "statuses": (lambda a, s, url: a.statuses(["job-1"]), "GET", 2),
    "start": (lambda a, s, url: a.start("job-2", [0], 60.0), "POST", 1),
    "checkpoint": (lambda a, s, url: a.checkpoint("job-1"), "POST", 1),
    "stop": (lambda a, s, url: a.stop("job-1"), "POST", 1),
}


@pytest.mark.parametrize("name", list(CALLS))
async def test_a_get_broken_on_a_reused_connection_is_sent_once_more_a_post_never(
    name: str,
) -> None:
    call, method, times = CALLS[name]
    async with racy_server(keep_alive_s=30) as server, httpx.AsyncClient() as http:
        agent = NodeAgentClient(HOST, server.url, http)
        scraper = DcgmScraper(http)
        await agent.list_gpus()  # opens the connection the call will reuse
        server.drop_all = True
        with pytest.raises(DeviceConnectionReset, match="without sending a response"):
            await call(agent, scraper, server.url)
    sent = server.seen[1:]
    assert [s.method for s in sent] == [method] * times
    # The one resend goes out on a fresh connection, never on another reused one.
    assert [s.reused for s in sent] == [True, False][:times]


async def test_a_get_broken_on_a_fresh_connection_is_not_sent_again() -> None:
    async with racy_server(drop_all=True) as server, DcgmScraper() as scraper:
        with pytest.raises(DeviceConnectionReset):
            await scraper.scrape(DcgmTarget(HOST, f"{server.url}/metrics"))
    assert server.seen == [Seen("GET", "/metrics", reused=False)]


REUSED = {"http11.send_request_headers.started"}
HEAD_SENT = REUSED | {"http11.send_request_headers.complete"}


@pytest.mark.parametrize(
    ("method", "events", "retry"),
    [
        ("GET", HEAD_SENT | {"http11.receive_response_headers.started"}, True),
        ("GET", {"connection.connect_tcp.started"} | HEAD_SENT, False),  # fresh connection
        ("GET", HEAD_SENT | {"http11.receive_response_headers.complete"}, False),  # answered
        ("GET", set(), False),  # a transport that reports nothing (mock, ASGI)
        ("POST", HEAD_SENT | {"http11.send_request_body.complete"}, False),  # may have acted
        ("POST", REUSED | {"http11.send_request_headers.failed"}, True),  # never arrived whole
    ],
)
def test_may_retry_only_what_the_server_cannot_have_acted_on(
    method: str, events: set[str], retry: bool
) -> None:
    assert may_retry(method, events) is retry


# -- the simulated node's server --------------------------------------------------------------


async def test_the_simulated_node_keeps_an_idle_connection_past_a_poll_interval() -> None:
    """Idle 5.5 s (more than the 5 s poll, and than uvicorn's default keep-alive), the
    connection is still open and reused."""
    model = GpuModel("Test H100", family="H100", busy_power_w=700, idle_power_w=70, memory_gb=80)
    node = GpuNodeSim(HOST, model, 1)
    events: list[str] = []

    async def trace(event: str, info: object) -> None:
        events.append(event)

    limits = httpx.Limits(keepalive_expiry=60)  # the test's client keeps it as long as needed
    async with serving(build_fleet_app([node])) as server, httpx.AsyncClient(limits=limits) as http:
        url = f"{server.base_url}/nodes/{HOST}/metrics"
        assert (await http.get(url)).status_code == 200
        await asyncio.sleep(5.5)
        response = await http.get(url, extensions={"trace": trace})
    assert response.status_code == 200
    assert "connection.connect_tcp.started" not in events, "the server closed the connection"
    assert "http11.send_request_headers.started" in events


def test_clients_drop_idle_connections_before_common_servers_do() -> None:
    """Under uvicorn's, Node's and Apache's 5 s and dcgm-exporter's 10 s (Go's ReadTimeout)."""
    assert 0 < KEEPALIVE_EXPIRY_S < 5
