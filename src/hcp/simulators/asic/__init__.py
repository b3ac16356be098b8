"""Simulated LuxOS miners: CGMiner RPC over TCP on loopback, physics from an `AsicModel`."""

from hcp.simulators.asic.config import (
    Addressing,
    Faults,
    FleetSimConfig,
    MinerSimConfig,
    loopback_hosts,
    uniform_fleet,
)
from hcp.simulators.asic.miner import AtmSettings, MinerSim
from hcp.simulators.asic.server import AsicFleetSimulator, MinerServer, serve_fleet

__all__ = [
    "Addressing",
    "AsicFleetSimulator",
    "AtmSettings",
    "Faults",
    "FleetSimConfig",
    "MinerServer",
    "MinerSim",
    "MinerSimConfig",
    "loopback_hosts",
    "serve_fleet",
    "uniform_fleet",
]
