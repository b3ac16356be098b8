"""Simulated GPU nodes: DCGM-exporter metrics plus a node-agent API that runs simulated workloads.

`GpuNodeSim` holds one node's state and physics; `build_node_app` serves one node, and
`serve_nodes` serves a whole fleet on one loopback port under `/nodes/{hostname}`.
"""

from hcp.domain.gpu_telemetry import APPLICATION_XIDS
from hcp.simulators.gpu.app import build_fleet_app, build_node_app
from hcp.simulators.gpu.node import (
    DEFAULT_FAULT_XID,
    XID_FALLEN_OFF_BUS,
    DuplicateWorkload,
    GpuNodeSim,
    GpuNotAvailable,
    GpuSample,
    NodeIsDown,
    WorkloadView,
)
from hcp.simulators.gpu.serve import (
    GpuSimConfig,
    NodeSpec,
    RunningServer,
    build_nodes,
    serve_nodes,
    serving,
)

__all__ = [
    "APPLICATION_XIDS",
    "DEFAULT_FAULT_XID",
    "XID_FALLEN_OFF_BUS",
    "DuplicateWorkload",
    "GpuNodeSim",
    "GpuNotAvailable",
    "GpuSample",
    "GpuSimConfig",
    "NodeIsDown",
    "NodeSpec",
    "RunningServer",
    "WorkloadView",
    "build_fleet_app",
    "build_node_app",
    "build_nodes",
    "serve_nodes",
    "serving",
]
