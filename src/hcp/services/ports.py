"""Ports: one small Protocol per kind of I/O. Adapters implement them; services depend on them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any, Protocol

from hcp.billing import Invoice, UsageRecord
from hcp.dispatch.ledger import MinerMemory
from hcp.domain.devices import DeviceKind
from hcp.domain.fleet import Device, FleetMember, Rack, Site
from hcp.domain.identity import ApiKey, BrowserSession, Customer, User
from hcp.domain.market import MarketSnapshot
from hcp.domain.plans import SitePlan
from hcp.domain.status import DeviceStatus
from hcp.domain.workloads import PreemptionRecord, StateChange, Workload, WorkloadState


class Clock(Protocol):
    def now(self) -> datetime:
        """The current time, timezone-aware UTC."""
        ...


class Leadership(Protocol):
    """The right to run one site's control loop: one process holds it, any other waits."""

    site_id: str

    @property
    def held(self) -> bool:
        """Whether this process took it (and has not let it go or seen it lost)."""
        ...

    def try_acquire(self) -> bool:
        """Take it if nobody holds it; True when this process now holds it (blocking I/O)."""
        ...

    def still_held(self) -> bool:
        """False once it is lost (the store cut the session): stop commanding at once."""
        ...

    def release(self) -> None:
        """Let it go (another process may take it at once)."""
        ...

    def close(self) -> None:
        """Let it go and free what holding it needed."""
        ...


class MarketFeed(Protocol):
    """A source of market snapshots, one per interval, in time order."""

    @property
    def step(self) -> timedelta:
        """Length of one interval."""
        ...

    def next_snapshot(self) -> MarketSnapshot | None:
        """The snapshot of the next interval, or None when the source is exhausted."""
        ...


class WorkloadRepository(Protocol):
    def add(self, workload: Workload, change: StateChange) -> None: ...
    def add_many(self, items: Sequence[tuple[Workload, StateChange]]) -> list[int]:
        """Insert in bulk; returns each workload's 1-based queue position (0 if not queued)."""
        ...

    def get(self, workload_id: str) -> Workload | None: ...
    def find(
        self, *, customer_id: str | None, state: WorkloadState | None, limit: int, offset: int
    ) -> list[Workload]: ...
    def count(self, *, customer_id: str | None, state: WorkloadState | None) -> int: ...
    def save_transition(self, workload: Workload, change: StateChange) -> None:
        """Store the workload's new state and append `change` to its history."""
        ...

    def history(self, workload_id: str) -> list[StateChange]: ...
    def histories(self, workload_ids: Sequence[str]) -> dict[str, list[StateChange]]:
        """The history of each of many workloads, read at once (oldest change first)."""
        ...

    def max_prices(self, workload_ids: Sequence[str]) -> dict[str, Decimal]:
        """The max price per GPU-hour of each of these workloads that has one, read at once."""
        ...

    def queue_position(self, workload: Workload) -> int:
        """1-based place among queued workloads: higher classes first, then submission order."""
        ...

    def queued_by_priority(self) -> dict[int, int]: ...
    def save_progress(self, progress: Mapping[str, float]) -> None:
        """Set each workload's progress (by id), in one statement."""
        ...

    def save_checkpoints(self, checkpoints: Mapping[str, tuple[float, datetime]]) -> None:
        """Set each workload's last checkpoint known: its progress and when it was seen."""
        ...

    def release_gpus(self, workload_id: str) -> None:
        """Forget the GPUs an ended workload held (they have been stopped)."""
        ...

    def touched_since(self, since: datetime) -> list[Workload]:
        """Workloads holding GPUs now or changed since `since` (what metering must look at)."""
        ...

    def in_states(self, states: Sequence[WorkloadState]) -> list[Workload]:
        """Every workload in one of `states`, oldest submission first."""
        ...

    def holding_gpus(self, states: Sequence[WorkloadState]) -> list[Workload]:
        """The workloads in one of `states` that still hold GPUs, oldest submission first
        (ended ones whose GPUs were not yet released: few, however many ended)."""
        ...

    def add_preemption(self, record: PreemptionRecord) -> None: ...
    def preemptions(
        self, workload_id: str | None = None, limit: int = 100, customer_id: str | None = None
    ) -> list[PreemptionRecord]:
        """The most recent preemptions, newest first; only of `customer_id`'s workloads when
        it is given."""
        ...

    def gpus_in_use(self) -> int:
        """GPUs held by scheduled and running workloads."""
        ...


class CustomerRepository(Protocol):
    def add(self, customer: Customer) -> None: ...
    def update(self, customer: Customer) -> None:
        """Store a stored customer's name, fair-share weight and GPU quota as `customer`'s."""
        ...

    def get(self, customer_id: str) -> Customer | None: ...
    def all(self) -> list[Customer]: ...


class ApiKeyRepository(Protocol):
    def add(self, key: ApiKey) -> None: ...
    def by_hash(self, key_hash: str) -> ApiKey | None: ...
    def get(self, key_id: str) -> ApiKey | None: ...
    def all(self, customer_id: str | None = None) -> list[ApiKey]: ...
    def revoke(self, key_id: str, at: datetime) -> None: ...


class UserRepository(Protocol):
    def add(self, user: User) -> None: ...
    def update(self, user: User) -> None:
        """Store `user`'s password hash and disabled flag (its id, email and role stay)."""
        ...

    def get(self, user_id: str) -> User | None: ...
    def by_email(self, email: str) -> User | None: ...
    def all(self) -> list[User]: ...


class SessionRepository(Protocol):
    def add(self, session: BrowserSession) -> None: ...
    def get(self, session_id: str) -> BrowserSession | None: ...
    def delete(self, session_id: str) -> None: ...
    def delete_for_user(self, user_id: str) -> int:
        """End every session of `user_id`; how many there were."""
        ...


class FleetRepository(Protocol):
    def add_site(self, site: Site) -> None: ...
    def update_site(self, site: Site) -> None:
        """Set a stored site's name, node, MW limit and PUE to `site`'s (its contract stays)."""
        ...

    def add_rack(self, rack: Rack) -> None: ...
    def ensure_model(
        self, name: str, kind: DeviceKind, manufacturer: str, spec: dict[str, Any]
    ) -> None: ...
    def add_devices(self, devices: Sequence[Device]) -> None: ...
    def sites(self) -> list[Site]: ...
    def site(self, site_id: str) -> Site | None: ...
    def devices(
        self,
        *,
        site_id: str | None = None,
        kind: DeviceKind | None = None,
        state: str | None = None,
    ) -> list[Device]: ...
    def device(self, device_id: str) -> Device | None: ...
    def members(self, site_id: str, kind: DeviceKind | None = None) -> list[FleetMember]:
        """The site's devices (of `kind`) without their last status, by id: what each control
        tick reads."""
        ...

    def in_maintenance(self, site_id: str) -> dict[str, str]:
        """The site's devices in maintenance now: device id -> why (one light query, read
        again just before commands are planned)."""
        ...

    def update_statuses(self, statuses: Sequence[DeviceStatus]) -> None:
        """Store each device's latest status (state, health, profile, power, hashrate)."""
        ...

    def set_maintenance(
        self, device_id: str, reason: str | None, since: datetime | None, by: str | None
    ) -> bool:
        """Put a device in maintenance (`reason` set) or back in service (all None); False
        when no device has that id."""
        ...

    def set_addresses(self, addresses: Mapping[str, str]) -> None: ...
    def gpus_by_site_and_model(self) -> dict[tuple[str, str], int]:
        """How many GPUs of each model each site has: {(site_id, model_name): count}."""
        ...


class MarketRepository(Protocol):
    def add(self, snapshot: MarketSnapshot, source: str) -> None: ...
    def latest(self, until: datetime | None = None) -> MarketSnapshot | None:
        """The newest snapshot, of an interval starting at or before `until` when given."""
        ...

    def recent(self, since: datetime, limit: int = 10_000) -> list[MarketSnapshot]:
        """Snapshots from `since` on, oldest first."""
        ...


class PlanRepository(Protocol):
    def add(self, plan: SitePlan) -> None: ...
    def latest(self, site_id: str, until: datetime | None = None) -> SitePlan | None:
        """The site's newest plan, of an interval starting at or before `until` when given."""
        ...

    def recent(self, site_id: str, since: datetime) -> list[SitePlan]: ...


class BillingRepository(Protocol):
    def add_usage(self, records: Sequence[UsageRecord]) -> int:
        """Store records not stored yet; a stored key with different figures is a Conflict.
        Returns how many were new."""
        ...

    def usage(
        self, start: datetime, end: datetime, customer_id: str | None = None
    ) -> list[UsageRecord]: ...
    def unbilled_usage(
        self, start: datetime, end: datetime, customer_id: str | None = None
    ) -> list[UsageRecord]:
        """The records of `usage` no final invoice bills yet."""
        ...

    def bill_usage(self, invoice_id: str, customer_id: str, start: datetime, end: datetime) -> int:
        """Mark `customer_id`'s records in [start, end) that no final invoice bills yet as
        billed on the final invoice `invoice_id`; how many were marked."""
        ...

    def metered_until(self) -> datetime | None:
        """The end of the newest usage record (None before the first)."""
        ...

    def save_invoice(self, invoice: Invoice, created_at: datetime) -> Invoice | None:
        """Store or replace an invoice (its id is deterministic, so a rerun replaces it), and
        return None; a final invoice stored under its id (by an issue racing this one) is
        kept as it is, and returned instead."""
        ...

    def invoice(self, invoice_id: str) -> Invoice | None: ...
    def issue_dates(self, customer_id: str | None = None) -> list[tuple[str, str, datetime]]:
        """(customer id, month, issued at) of every invoice stored."""
        ...

    def set_price(self, workload_class: str, family: str, usd: Decimal, at: datetime) -> None: ...
    def price_changes(self) -> list[tuple[datetime, str, str, Decimal]]:
        """Every price set, oldest first: (effective from, class, GPU family, USD/GPU-hour)."""
        ...

    def invoices(self, customer_id: str | None = None) -> list[Invoice]: ...


class UnitOfWork(Protocol):
    """One transaction over every repository: nothing is stored until `commit`."""

    @property
    def workloads(self) -> WorkloadRepository: ...
    @property
    def customers(self) -> CustomerRepository: ...
    @property
    def api_keys(self) -> ApiKeyRepository: ...
    @property
    def users(self) -> UserRepository: ...
    @property
    def sessions(self) -> SessionRepository: ...
    @property
    def fleet(self) -> FleetRepository: ...
    @property
    def market(self) -> MarketRepository: ...
    @property
    def plans(self) -> PlanRepository: ...
    @property
    def billing(self) -> BillingRepository: ...

    def __enter__(self) -> UnitOfWork: ...
    def __exit__(self, *exc: object) -> None: ...
    def commit(self) -> None: ...
    def rollback(self) -> None: ...


UnitOfWorkFactory = Callable[[], UnitOfWork]


class WorkloadWriter(Protocol):
    """Stores new workloads durably; may group many callers into one transaction."""

    async def write(self, workload: Workload, change: StateChange) -> int:
        """Return the workload's queue position once its row is committed."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True, slots=True)
class StoredCommand:
    """A dispatch command as stored: what, to which device, why, and how it was judged (a
    miner's by telemetry; a GPU node's start, checkpoint or stop by the node agent's answer)."""

    id: str
    issued_at: datetime
    device_id: str
    address: str | None
    action: str
    profile: str | None
    reason: str
    attempt: int
    confirm_by: datetime | None
    status: str
    outcome_at: datetime | None
    detail: str | None


class GpuCommandLog(Protocol):
    def add(self, commands: Sequence[StoredCommand]) -> None:
        """Store commands already carried out (sent and answered), in one transaction."""
        ...


class DispatchMemoryStore(Protocol):
    """What one site's miner dispatcher remembers of each miner (`MinerMemory`: unhealthy
    spells, degradations, commands in flight and attempts, when it last slept and woke it),
    kept for the next process to lead the site (a restarted controller, a standby)."""

    def save(self, memories: Sequence[MinerMemory]) -> None:
        """Store these miners' memories in place of what was stored of them (blocking I/O;
        one statement, whatever their number)."""
        ...

    def load(self) -> list[MinerMemory]:
        """The memory last stored of each miner of the site (blocking I/O)."""
        ...


class DispatchLogReader(Protocol):
    def recent(self, limit: int = 100, device_id: str | None = None) -> list[StoredCommand]:
        """Newest first."""
        ...


@dataclass(frozen=True, slots=True)
class DispatchStatus:
    """A site's last tick of miner dispatch, as stored for every API process to read: the
    commands it planned and delivered, and what it left undone and why."""

    site_id: str
    at: datetime
    commands: int
    sent: int
    power_increase_w: float
    deferred: tuple[str, ...]
    """Miners whose wake or profile raise waits for room in the site's ramp, or for sleeps and
    profile cuts that did not get through to make room for it."""
    shortfall: Mapping[str, int]
    """Miners per model the plan wants that no healthy, manageable miner can run."""
    unhealthy: Mapping[str, str]
    """Miners put or held asleep for what is wrong with them (device id: why)."""
    degraded: Mapping[str, str]
    """Miners the dispatcher cannot manage now (device id: why)."""


class DispatchStatusStore(Protocol):
    def save(self, status: DispatchStatus) -> None:
        """Keep `status` as its site's latest, in place of the one before."""
        ...

    def latest(self, site_id: str | None = None) -> DispatchStatus | None:
        """The site's latest status; the newest of any site when `site_id` is None."""
        ...
