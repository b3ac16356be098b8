"""Fleet use cases: provision a site with its racks and devices, list what is stored."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime

from hcp.domain.catalog import asic_model, gpu_model
from hcp.domain.devices import DeviceKind
from hcp.domain.errors import NotFound
from hcp.domain.fleet import Device, Rack, Site
from hcp.domain.plans import SitePlan
from hcp.services.ports import UnitOfWork, UnitOfWorkFactory

MINERS_PER_RACK = 40


@dataclass(frozen=True, slots=True)
class SiteSpec:
    """A site to provision: the site itself and how many devices of which model."""

    site: Site
    asic_model: str
    asics: int
    gpu_model: str
    gpus: int
    gpus_per_node: int = 8


def plan_devices(spec: SiteSpec, now: datetime) -> tuple[list[Rack], list[Device]]:
    """Racks and devices for a spec: miners in racks of 40, GPUs in nodes of `gpus_per_node`."""
    site_id = spec.site.id
    racks: list[Rack] = []
    devices: list[Device] = []
    stock = asic_model(spec.asic_model).stock_profile
    for i in range(spec.asics):
        if i % MINERS_PER_RACK == 0:
            racks.append(
                Rack(
                    f"{site_id}-rack-a{len(racks) + 1:03d}", site_id, f"ASIC rack {len(racks) + 1}"
                )
            )
        devices.append(
            Device(
                f"{site_id}-asic-{i + 1:05d}",
                site_id,
                racks[-1].id,
                spec.asic_model,
                DeviceKind.ASIC,
                "mining",
                now,
                profile=stock,
            )
        )
    for i in range(spec.gpus):
        node = i // spec.gpus_per_node + 1
        if i % spec.gpus_per_node == 0:
            racks.append(Rack(f"{site_id}-gpu-node-{node:03d}", site_id, f"GPU node {node}"))
        devices.append(
            Device(
                f"{site_id}-gpu-{i + 1:05d}",
                site_id,
                racks[-1].id,
                spec.gpu_model,
                DeviceKind.GPU,
                "idle",
                now,
                address=f"{racks[-1].id}/{i % spec.gpus_per_node}",
            )
        )
    return racks, devices


def provision_site(uow: UnitOfWork, spec: SiteSpec, now: datetime) -> bool:
    """Store the site, its racks and devices unless the site exists (not committed).

    Returns True when something was created.
    """
    if uow.fleet.site(spec.site.id) is not None:
        return False
    asic, gpu = asic_model(spec.asic_model), gpu_model(spec.gpu_model)
    uow.fleet.ensure_model(asic.name, DeviceKind.ASIC, asic.manufacturer, _spec_of(asic))
    uow.fleet.ensure_model(gpu.name, DeviceKind.GPU, "NVIDIA", _spec_of(gpu))
    uow.fleet.add_site(spec.site)
    racks, devices = plan_devices(spec, now)
    for rack in racks:
        uow.fleet.add_rack(rack)
    uow.fleet.add_devices(devices)
    return True


def _spec_of(model: object) -> dict[str, object]:
    return asdict(model)  # type: ignore[call-overload, no-any-return]


class FleetService:
    def __init__(self, uow: UnitOfWorkFactory) -> None:
        self._uow = uow

    def sites(self) -> list[Site]:
        with self._uow() as uow:
            return uow.fleet.sites()

    def current_plan(self, site_id: str | None = None) -> SitePlan:
        """The newest plan of `site_id` (default: the first site); NotFound before the first."""
        with self._uow() as uow:
            sites = uow.fleet.sites()
            chosen = site_id or (sites[0].id if sites else "")
            plan = uow.plans.latest(chosen)
        if plan is None:
            raise NotFound("plan", chosen or "(no site)")
        return plan

    def devices(
        self, site_id: str | None = None, kind: DeviceKind | None = None, state: str | None = None
    ) -> list[Device]:
        with self._uow() as uow:
            return uow.fleet.devices(site_id=site_id, kind=kind, state=state)
