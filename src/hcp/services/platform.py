"""The services the edges (HTTP, CLI) talk to, bundled; built only by `hcp.bootstrap`."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from hcp.services.auth import Authenticator
from hcp.services.billing import BillingService
from hcp.services.dashboard import DashboardService
from hcp.services.fleet import FleetService
from hcp.services.identity import IdentityService
from hcp.services.market import MarketService
from hcp.services.ports import DispatchLogReader, DispatchStatusStore
from hcp.services.ratelimit import RateLimiter
from hcp.services.telemetry import TelemetryService
from hcp.services.workloads import WorkloadService

HealthCheck = Callable[[], dict[str, str]]


@dataclass(frozen=True, slots=True)
class Platform:
    workloads: WorkloadService
    auth: Authenticator
    market: MarketService
    fleet: FleetService
    identity: IdentityService
    dashboard: DashboardService
    billing: BillingService
    telemetry: TelemetryService
    dispatch_log: DispatchLogReader
    dispatch_status: DispatchStatusStore
    """Each site's last tick of miner dispatch, written by the process that leads the site."""
    rate_limiter: RateLimiter
    health: HealthCheck
    """Each component's status: "ok", or a short reason it is not."""
