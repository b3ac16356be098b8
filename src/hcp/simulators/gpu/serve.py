"""Running simulated GPU nodes: the fleet's configuration and a loopback HTTP server for it.

All nodes share one uvicorn server on one loopback port, each under `/nodes/{hostname}` (see
`app`): 125 nodes × 8 GPUs cost one socket and one event loop, not 125 servers.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import uvicorn
from starlette.types import ASGIApp

from hcp.domain.devices import GpuModel
from hcp.domain.errors import ValidationError
from hcp.services.ports import Clock
from hcp.simulators.gpu.app import build_fleet_app
from hcp.simulators.gpu.node import GpuNodeSim

DCGM_EXPORTER_PORT = 9400  # dcgm-exporter's default listen port

KEEP_ALIVE_S = 75
"""Seconds the nodes' server keeps an idle connection open (uvicorn's default is 5 s). It must
be well beyond any poll interval: polls come every 5 s, and a server whose idle timer fires as
a client reuses the connection loses that request ("Server disconnected without sending a
response"), so the node looked unreachable every few polls. 75 s is nginx's default; clients
give up idle connections sooner (`hcp.adapters.devices.node_agent.KEEPALIVE_EXPIRY_S`), so the
client, never the server, ends an idle connection. Shutdown closes idle connections at once."""


@dataclass(frozen=True, slots=True)
class NodeSpec:
    """One node to simulate: its hostname, GPU model and GPU count."""

    hostname: str
    model: GpuModel
    gpu_count: int = 8


@dataclass(frozen=True, slots=True)
class GpuSimConfig:
    """A simulated fleet and where it listens (a loopback address only)."""

    nodes: tuple[NodeSpec, ...]
    host: str = "127.0.0.1"
    port: int = DCGM_EXPORTER_PORT
    seed: int = 0

    def __post_init__(self) -> None:
        _require_loopback(self.host)

    @classmethod
    def uniform(
        cls,
        model: GpuModel,
        node_count: int,
        gpus_per_node: int = 8,
        *,
        prefix: str = "gpu-node",
        host: str = "127.0.0.1",
        port: int = DCGM_EXPORTER_PORT,
    ) -> GpuSimConfig:
        """`node_count` identical nodes named `{prefix}-001`, `{prefix}-002`, ..."""
        nodes = tuple(
            NodeSpec(f"{prefix}-{i:03d}", model, gpus_per_node) for i in range(1, node_count + 1)
        )
        return cls(nodes, host=host, port=port)

    def base_url(self, hostname: str) -> str:
        """Where node `hostname` answers: append `/metrics` or `/v1/...`."""
        return f"http://{self.host}:{self.port}/nodes/{hostname}"


def build_nodes(config: GpuSimConfig, clock: Clock | None = None) -> list[GpuNodeSim]:
    """One `GpuNodeSim` per node of `config`, all on the same clock."""
    return [
        GpuNodeSim(spec.hostname, spec.model, spec.gpu_count, clock=clock, seed=config.seed)
        for spec in config.nodes
    ]


async def serve_nodes(
    config: GpuSimConfig,
    *,
    clock: Clock | None = None,
    on_ready: Callable[[], None] | None = None,
) -> None:
    """Serve every node of `config` on `config.host:config.port` until cancelled or signalled;
    `on_ready` is called once the port is listened on."""
    app = build_fleet_app(build_nodes(config, clock))
    async with serving(app, host=config.host, port=config.port) as server:
        if on_ready is not None:
            on_ready()
        await server.wait_closed()


@dataclass(frozen=True, slots=True)
class RunningServer:
    """A server started by `serving`: its base URL, and a way to wait until it stops."""

    base_url: str
    port: int
    _task: asyncio.Task[None]

    async def wait_closed(self) -> None:
        """Return when the server stops (a signal); cancelling the waiter leaves it running."""
        await asyncio.shield(self._task)


@asynccontextmanager
async def serving(
    app: ASGIApp, *, host: str = "127.0.0.1", port: int = 0
) -> AsyncIterator[RunningServer]:
    """Serve `app` over HTTP on a loopback `host:port` (0 = a free port) while the block runs."""
    _require_loopback(host)
    # log_config=None: leave the process's logging set-up alone (the platform may run its own).
    config = uvicorn.Config(
        app,
        log_config=None,
        access_log=False,
        lifespan="off",
        ws="none",
        timeout_keep_alive=KEEP_ALIVE_S,
        timeout_graceful_shutdown=2,
    )
    server = uvicorn.Server(config)
    sock = socket.create_server((host, port))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        await _started(server, task)
        bound_port = sock.getsockname()[1]
        yield RunningServer(f"http://{host}:{bound_port}", bound_port, task)
    finally:
        server.should_exit = True
        await task
        sock.close()


async def _started(server: uvicorn.Server, task: asyncio.Task[None]) -> None:
    """Wait until `server` listens; re-raise what stopped it if it died first."""
    while not server.started:
        if task.done():
            await task
            raise RuntimeError("the simulator's HTTP server stopped during start-up")
        await asyncio.sleep(0.005)


def _require_loopback(host: str) -> None:
    try:
        loopback = ipaddress.IPv4Address(host).is_loopback
    except ValueError:
        loopback = False
    if not loopback:
        raise ValidationError("host", f"simulators bind IPv4 loopback addresses only, not {host!r}")
