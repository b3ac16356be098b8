"""Queue depth, fleet and sites."""

from __future__ import annotations

from collections import Counter
from typing import Annotated

from fastapi import APIRouter, Path, Query

from hcp.domain.devices import DeviceKind
from hcp.domain.fleet import Device
from hcp.domain.status import UNREACHABLE
from hcp.http.deps import CurrentPrincipal, PlatformDep, StaffPrincipal
from hcp.http.schemas import (
    DeviceOut,
    MaintenanceIn,
    MaintenanceOut,
    QueueDepthOut,
    ResourcesOut,
    SiteOut,
)

router = APIRouter(prefix="/api/v1", tags=["operations"])


@router.get("/queue/depth", response_model=QueueDepthOut)
def queue_depth(platform: PlatformDep, _caller: CurrentPrincipal) -> QueueDepthOut:
    """Queued workloads in all, by priority, and the share of GPUs in use (percent)."""
    depth = platform.workloads.queue_depth()
    return QueueDepthOut(
        total_depth=depth.total_depth,
        by_priority={str(p): n for p, n in depth.by_priority.items()},
        utilization_pct=depth.utilization_pct,
    )


@router.get("/resources", response_model=ResourcesOut)
def resources(
    platform: PlatformDep,
    _caller: StaffPrincipal,
    site: Annotated[str | None, Query(max_length=64)] = None,
    kind: DeviceKind | None = None,
    state: Annotated[str | None, Query(max_length=32)] = None,
) -> ResourcesOut:
    """Every stored device with its last known state, filtered by site, kind and state, and
    the problems of that state in words (`problems`, empty when healthy)."""
    devices = platform.fleet.devices(site_id=site, kind=kind, state=state)
    return ResourcesOut(
        resources=[_device_out(d) for d in devices],
        total=len(devices),
        by_kind=dict(Counter(d.kind.value for d in devices)),
        by_state=dict(Counter(d.state for d in devices)),
    )


DeviceId = Annotated[str, Path(min_length=1, max_length=64)]


@router.get("/resources/{device_id}", response_model=DeviceOut)
def resource(device_id: DeviceId, platform: PlatformDep, _caller: StaffPrincipal) -> DeviceOut:
    """One stored device with its last known state and problems."""
    device = platform.fleet.device(device_id)
    return _device_out(device)


@router.put("/resources/{device_id}/maintenance", response_model=DeviceOut)
def start_maintenance(
    device_id: DeviceId, body: MaintenanceIn, platform: PlatformDep, caller: StaffPrincipal
) -> DeviceOut:
    """Put a device in maintenance (operators and admins): from the next tick a miner gets no
    command and a GPU no new workload (the one it runs drains), and the plan counts on
    neither; a miner that still hashes is counted as drawing what it reads. Again with
    another reason: the reason and time are replaced."""
    device = platform.fleet.start_maintenance(caller, device_id, body.reason)
    return _device_out(device)


@router.delete("/resources/{device_id}/maintenance", response_model=DeviceOut)
def end_maintenance(
    device_id: DeviceId, platform: PlatformDep, caller: StaffPrincipal
) -> DeviceOut:
    """Put a device back in service (operators and admins); one not in maintenance is
    answered as it is."""
    device = platform.fleet.end_maintenance(caller, device_id)
    return _device_out(device)


@router.get("/sites", response_model=list[SiteOut])
def sites(platform: PlatformDep, _caller: StaffPrincipal) -> list[SiteOut]:
    """Every site with its market node, power limit, PUE and contract."""
    return [
        SiteOut(
            site_id=s.id,
            name=s.name,
            node=s.node,
            capacity_mw=s.capacity_mw,
            pue=s.pue,
            contract=s.contract,
        )
        for s in platform.fleet.sites()
    ]


def problems_of(d: Device) -> list[str]:
    """The problems stored with `d`'s last status, as the poll found them; for a status stored
    without them (before they were kept), what the stored state says."""
    if d.problems:
        return list(d.problems)
    if d.state == UNREACHABLE:
        return ["unreachable"]
    return [] if d.healthy else ["unhealthy"]


def _device_out(d: Device) -> DeviceOut:
    return DeviceOut(
        device_id=d.id,
        kind=d.kind.value,
        model=d.model_name,
        site_id=d.site_id,
        rack_id=d.rack_id,
        address=d.address,
        state=d.state,
        healthy=d.healthy,
        profile=d.profile,
        power_w=d.power_w,
        hashrate_ths=d.hashrate_ths,
        updated_at=d.updated_at,
        problems=problems_of(d),
        maintenance=_maintenance_out(d),
    )


def _maintenance_out(d: Device) -> MaintenanceOut | None:
    if d.maintenance is None or d.maintenance_since is None:
        return None
    return MaintenanceOut(
        reason=d.maintenance, since=d.maintenance_since, by=d.maintenance_by or ""
    )
