"""Fleet use cases: provision a site with its racks and devices, list what is stored."""

from __future__ import annotations

import logging
import unicodedata
from collections import Counter
from collections.abc import Collection
from dataclasses import asdict, dataclass, fields, replace
from datetime import UTC, datetime

from hcp.domain.catalog import asic_model, gpu_model
from hcp.domain.devices import AsicModel, DeviceKind, GpuModel
from hcp.domain.errors import Forbidden, NotFound, ValidationError
from hcp.domain.fleet import MAX_MAINTENANCE_REASON, Device, Rack, Site
from hcp.domain.identity import Principal
from hcp.domain.plans import SitePlan
from hcp.services.ports import Clock, UnitOfWork, UnitOfWorkFactory

MINERS_PER_RACK = 40

log = logging.getLogger(__name__)


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


@dataclass(frozen=True, slots=True)
class Provisioning:
    """What `provision_site` did: created the site, or added the devices a stored site
    lacked, keeping the larger stored count of a kind it was told to (`larger` says which);
    or left a stored site that holds more or other devices than asked, or lays its GPUs out
    otherwise, as it was (`kept` says how: shrinking a site would drop devices with history,
    and moving GPUs between nodes would break the ones running work)."""

    created: bool = False
    added: int = 0
    kept: str | None = None
    larger: str | None = None
    changed: str | None = None
    """The site's own settings (name, node, MW limit, PUE) changed to the spec's."""


def provision_site(
    uow: UnitOfWork, spec: SiteSpec, now: datetime, keep_larger: Collection[DeviceKind] = ()
) -> Provisioning:
    """Store the site, its racks and devices; a stored site grows to the spec (not committed).
    A stored count above the spec's is kept for the kinds in `keep_larger`, and refused
    (`kept`) for the others."""
    asic, gpu = asic_model(spec.asic_model), gpu_model(spec.gpu_model)
    uow.fleet.ensure_model(asic.name, DeviceKind.ASIC, asic.manufacturer, _spec_of(asic))
    uow.fleet.ensure_model(gpu.name, DeviceKind.GPU, "NVIDIA", _spec_of(gpu))
    stored_site = uow.fleet.site(spec.site.id)
    if stored_site is None:
        racks, devices = plan_devices(spec, now)
        uow.fleet.add_site(spec.site)
        for rack in racks:
            uow.fleet.add_rack(rack)
        uow.fleet.add_devices(devices)
        return Provisioning(created=True, added=len(devices))
    changed = _site_changes(stored_site, spec.site)
    stored = uow.fleet.devices(site_id=spec.site.id)
    spec, larger, beyond = _reconcile(spec, stored, keep_larger)
    racks, devices = plan_devices(spec, now)
    beyond += _moved_gpus(spec, stored, devices)
    if beyond:
        return Provisioning(kept="; ".join(beyond))
    rack_ids, device_ids = {d.rack_id for d in stored}, {d.id for d in stored}
    for rack in racks:
        if rack.id not in rack_ids:
            uow.fleet.add_rack(rack)
    added = [d for d in devices if d.id not in device_ids]
    uow.fleet.add_devices(added)
    if changed:
        uow.fleet.update_site(spec.site)
    return Provisioning(
        added=len(added), larger="; ".join(larger) or None, changed=", ".join(changed) or None
    )


def _site_changes(stored: Site, asked: Site) -> list[str]:
    """What of the stored site's name, node, MW limit and PUE the settings change."""
    fields = ("name", "node", "capacity_mw", "pue")
    return [
        f"{f} {getattr(stored, f)} -> {getattr(asked, f)}"
        for f in fields
        if getattr(stored, f) != getattr(asked, f)
    ]


def _reconcile(
    spec: SiteSpec, stored: list[Device], keep_larger: Collection[DeviceKind]
) -> tuple[SiteSpec, list[str], list[str]]:
    """The spec with the stored counts kept where `keep_larger` allows; what was kept so; and
    how the stored devices go beyond the spec otherwise (more of a kind, or another model)."""
    asked = {
        DeviceKind.ASIC: (spec.asic_model, spec.asics),
        DeviceKind.GPU: (spec.gpu_model, spec.gpus),
    }
    larger, beyond = [], []
    for kind, (model, count) in asked.items():
        have = [d for d in stored if d.kind is kind]
        models = sorted({d.model_name for d in have})
        held = f"{len(have)} {kind.value.upper()}s ({', '.join(models)})"
        if any(m != model for m in models):
            beyond.append(f"{held} where {count} {model} are asked")
        elif len(have) > count and kind in keep_larger:
            larger.append(f"{held}, more than the {count} of the settings")
            if kind is DeviceKind.ASIC:
                spec = replace(spec, asics=len(have))
            else:
                spec = replace(spec, gpus=len(have))
        elif len(have) > count:
            beyond.append(f"{held} where {count} {model} are asked")
    return spec, larger, beyond


def _moved_gpus(spec: SiteSpec, stored: list[Device], planned: list[Device]) -> list[str]:
    """The stored GPUs that `spec` would place on other nodes or indexes (its GPUs per node
    differ from the stored layout's)."""
    where = {d.id: (d.rack_id, d.address) for d in planned}
    moved = [
        d for d in stored if d.kind is DeviceKind.GPU and where.get(d.id) != (d.rack_id, d.address)
    ]
    if not moved:
        return []
    per_node = max(Counter(d.rack_id for d in stored if d.kind is DeviceKind.GPU).values())
    return [
        f"its GPUs sit up to {per_node} to a node where {spec.gpus_per_node} per node are asked"
    ]


def _spec_of(model: AsicModel | GpuModel) -> dict[str, object]:
    """The model's catalog figures as stored: its constructor's fields only (not what it
    derives from them, such as an index of its profiles)."""
    found = asdict(model)
    return {f.name: found[f.name] for f in fields(model) if f.init}


class FleetService:
    def __init__(self, uow: UnitOfWorkFactory, clock: Clock | None = None) -> None:
        self._uow = uow
        self._clock = clock

    def sites(self) -> list[Site]:
        with self._uow() as uow:
            return uow.fleet.sites()

    def current_plan(self, site_id: str | None = None) -> SitePlan:
        """The newest plan of `site_id` (default: the first site) up to now when there is a
        clock (see `MarketService.current`); NotFound before the first."""
        until = None if self._clock is None else self._clock.now()
        with self._uow() as uow:
            sites = uow.fleet.sites()
            chosen = site_id or (sites[0].id if sites else "")
            plan = uow.plans.latest(chosen, until)
        if plan is None:
            raise NotFound("plan", chosen or "(no site)")
        return plan

    def devices(
        self, site_id: str | None = None, kind: DeviceKind | None = None, state: str | None = None
    ) -> list[Device]:
        with self._uow() as uow:
            return uow.fleet.devices(site_id=site_id, kind=kind, state=state)

    def device(self, device_id: str) -> Device:
        with self._uow() as uow:
            found = uow.fleet.device(device_id)
        if found is None:
            raise NotFound("device", device_id)
        return found

    def start_maintenance(self, principal: Principal, device_id: str, reason: str) -> Device:
        """Leave the device alone until `end_maintenance` (staff only): no commands to a
        miner, no new workload on a GPU, and the plan counts on neither. Starting it again
        replaces the reason and the time."""
        _check_staff(principal, "maintenance")
        reason = " ".join(reason.split())
        if not reason:
            raise ValidationError("reason", "say why the device goes into maintenance")
        if any(unicodedata.category(c) == "Cc" for c in reason):
            raise ValidationError("reason", "must not hold control characters")
        if len(reason) > MAX_MAINTENANCE_REASON:
            raise ValidationError("reason", f"at most {MAX_MAINTENANCE_REASON} characters")
        now = self._clock.now() if self._clock is not None else datetime.now(UTC)
        by = principal.user_id or principal.key_id
        return self._set_maintenance(device_id, reason, now, by)

    def end_maintenance(self, principal: Principal, device_id: str) -> Device:
        """Put the device back in service (staff only); a device not in maintenance is
        left as it is."""
        _check_staff(principal, "maintenance")
        return self._set_maintenance(device_id, None, None, None)

    def _set_maintenance(
        self, device_id: str, reason: str | None, since: datetime | None, by: str | None
    ) -> Device:
        with self._uow() as uow:
            if not uow.fleet.set_maintenance(device_id, reason, since, by):
                raise NotFound("device", device_id)
            uow.commit()
            device = uow.fleet.device(device_id)
        assert device is not None, "the device was just updated"
        verb = "in maintenance" if reason is not None else "back in service"
        log.info("%s %s (by %s%s)", device_id, verb, by or "-", f": {reason}" if reason else "")
        return device


def _check_staff(principal: Principal, what: str) -> None:
    if not principal.role.sees_everything:
        raise Forbidden(f"{what} is for operators and admins")
