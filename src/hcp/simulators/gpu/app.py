"""HTTP face of simulated GPU nodes.

One node is one ASGI app (`build_node_app`) with three parts:

- `GET /metrics`: DCGM-exporter Prometheus text;
- `/v1/...`: the node-agent API (JSON): `GET /v1/gpus`, `POST /v1/workloads`,
  `GET /v1/workloads/{id}`, `GET /v1/workloads?ids=a,b` (many at once, unknown ones left out),
  `POST /v1/workloads/{id}/checkpoint`, `POST /v1/workloads/{id}/stop`;
- `/sim/...`: fault injection, which a real node does not have: `POST /sim/gpus/{i}/xid?xid=48`,
  `POST /sim/gpus/{i}/off-bus`, `POST /sim/gpus/{i}/reset`, `POST /sim/node/down` (or `up`).

A fleet is one ASGI app with the same routes under `/nodes/{hostname}` (`build_fleet_app`), so
a thousand GPUs share one loopback port, one listening socket and one set of routes: a node's
base URL is `http://127.0.0.1:{port}/nodes/{hostname}`, its exporter that URL + `/metrics`.
`GET /nodes` lists the hostnames.

Errors answer `{"detail": "...", "code": "..."}`: 404 `not_found` (`unknown_node` for a
hostname the fleet lacks); 409 `gpu_unavailable`, `workload_exists` or `conflict`; 422 `invalid`
(FastAPI's own 422 for a malformed body keeps its list-shaped detail and has no code); 503
`node_down` for everything but `/sim` while the node is down.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, PlainTextResponse
from pydantic import BaseModel, ConfigDict

from hcp.domain.errors import Conflict, HcpError, NotFound, ValidationError
from hcp.simulators.gpu.exposition import CONTENT_TYPE, NodeLabels, render_metrics
from hcp.simulators.gpu.node import (
    DEFAULT_FAULT_XID,
    DuplicateWorkload,
    GpuNodeSim,
    GpuNotAvailable,
    GpuSample,
    NodeIsDown,
    WorkloadView,
)


class UnknownNode(NotFound):
    """No node of the fleet has this hostname."""

    def __init__(self, hostname: str) -> None:
        super().__init__("node", hostname)


# Most specific first: the first matching class gives the status and the machine-readable code.
_ERROR_TABLE: tuple[tuple[type[HcpError], int, str], ...] = (
    (GpuNotAvailable, 409, "gpu_unavailable"),
    (DuplicateWorkload, 409, "workload_exists"),
    (UnknownNode, 404, "unknown_node"),
    (NotFound, 404, "not_found"),
    (Conflict, 409, "conflict"),
    (ValidationError, 422, "invalid"),
    (NodeIsDown, 503, "node_down"),
)


class StartRequest(BaseModel):
    """Body of `POST /v1/workloads`; the node checks the rules (ranges, free GPUs)."""

    model_config = ConfigDict(extra="forbid")

    workload_id: str
    gpu_indices: list[int]
    duration_s: float
    checkpointable: bool = False
    resume_from_progress: float = 0.0
    fb_mib_per_gpu: int | None = None


class WorkloadList(BaseModel):
    """Body of `GET /v1/workloads?ids=...`: the named workloads the node knows."""

    workloads: list[WorkloadView]


class GpuInventory(BaseModel):
    """Body of `GET /v1/gpus`: the node, its model and every GPU it has (lost ones too)."""

    hostname: str
    model: str
    gpus: list[GpuSample]


def build_node_app(node: GpuNodeSim) -> FastAPI:
    """One simulated node as an ASGI app: `/metrics`, the `/v1` agent API and `/sim` faults."""
    return _app({node.hostname: node}, prefix="", title=f"HCP GPU node simulator: {node.hostname}")


def build_fleet_app(nodes: Iterable[GpuNodeSim]) -> FastAPI:
    """Many nodes behind one ASGI app: node `h` under `/nodes/h`, `GET /nodes` lists them."""
    by_host: dict[str, GpuNodeSim] = {}
    for node in nodes:
        if node.hostname in by_host:
            raise ValidationError("nodes", f"hostname {node.hostname!r} appears twice")
        by_host[node.hostname] = node
    app = _app(by_host, prefix="/nodes/{hostname}", title="HCP GPU fleet simulator")

    @app.get("/nodes")
    async def hostnames() -> list[str]:
        return list(by_host)

    return app


def _app(nodes: dict[str, GpuNodeSim], prefix: str, title: str) -> FastAPI:
    """An app serving `nodes` under `prefix` (which names the node unless there is just one)."""
    app = FastAPI(title=title)
    app.state.nodes = nodes
    for error_type, _, _ in _ERROR_TABLE:
        app.add_exception_handler(error_type, _error_response)
    app.include_router(_exporter, prefix=prefix)
    app.include_router(_agent, prefix=f"{prefix}/v1")
    app.include_router(_faults, prefix=f"{prefix}/sim")
    return app


async def _error_response(request: Request, exc: Exception) -> JSONResponse:
    """Map a domain error to its status code and code (the table above)."""
    status, code = next((s, c) for t, s, c in _ERROR_TABLE if isinstance(exc, t))
    return JSONResponse({"detail": str(exc), "code": code}, status_code=status)


def _resolve_node(request: Request) -> GpuNodeSim:
    """The node a request is for: named by its `/nodes/{hostname}` prefix, or the app's only one."""
    nodes: dict[str, GpuNodeSim] = request.app.state.nodes
    hostname = request.path_params.get("hostname")
    if hostname is None:
        (node,) = nodes.values()
        return node
    try:
        return nodes[hostname]
    except KeyError:
        raise UnknownNode(hostname) from None


Node = Annotated[GpuNodeSim, Depends(_resolve_node)]
_exporter, _agent, _faults = APIRouter(), APIRouter(), APIRouter()


@_exporter.get("/metrics", response_class=PlainTextResponse)
async def metrics(node: Node) -> PlainTextResponse:
    labels = NodeLabels(node.hostname, node.model.name, node.driver_version)
    body = render_metrics(labels, node.sample())
    return PlainTextResponse(body, headers={"content-type": CONTENT_TYPE})


@_agent.get("/gpus")
async def list_gpus(node: Node) -> GpuInventory:
    return GpuInventory(hostname=node.hostname, model=node.model.name, gpus=node.sample())


@_agent.post("/workloads", status_code=201)
async def start(node: Node, body: StartRequest) -> WorkloadView:
    return node.start(**body.model_dump())


@_agent.get("/workloads")
async def statuses(node: Node, ids: str = "") -> WorkloadList:
    return WorkloadList(workloads=node.workloads(i for i in ids.split(",") if i))


@_agent.get("/workloads/{workload_id}")
async def status(node: Node, workload_id: str) -> WorkloadView:
    return node.workload(workload_id)


@_agent.post("/workloads/{workload_id}/checkpoint")
async def checkpoint(node: Node, workload_id: str) -> WorkloadView:
    return node.checkpoint(workload_id)


@_agent.post("/workloads/{workload_id}/stop")
async def stop(node: Node, workload_id: str) -> WorkloadView:
    return node.stop(workload_id)


@_faults.post("/gpus/{gpu_index}/xid", status_code=204)
async def xid(node: Node, gpu_index: int, xid: int = DEFAULT_FAULT_XID) -> None:
    node.inject_xid(gpu_index, xid)


@_faults.post("/gpus/{gpu_index}/off-bus", status_code=204)
async def off_bus(node: Node, gpu_index: int) -> None:
    node.drop_off_bus(gpu_index)


@_faults.post("/gpus/{gpu_index}/reset", status_code=204)
async def reset(node: Node, gpu_index: int) -> None:
    node.reset_gpu(gpu_index)


@_faults.post("/node/{state}", status_code=204)
async def set_node_state(node: Node, state: Literal["up", "down"]) -> None:
    node.set_down(state == "down")
