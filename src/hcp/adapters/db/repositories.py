"""SQLAlchemy implementations of the repository ports, one small class per aggregate."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime
from decimal import Decimal
from typing import Any

from sqlalchemy import Text, and_, bindparam, cast, delete, func, insert, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.sql.expression import ColumnElement, Executable

from hcp.adapters.db.engine import chunked, conflict_insert
from hcp.adapters.db.tables import (
    AllocationRow,
    ApiKeyRow,
    Base,
    CustomerRow,
    DeviceModelRow,
    DeviceRow,
    InvoiceLineRow,
    InvoiceRow,
    MarketSnapshotRow,
    PlanRow,
    PreemptionRow,
    PriceChangeRow,
    QueueCounterRow,
    RackRow,
    SessionRow,
    SiteRow,
    UsageRecordRow,
    UserRow,
    WorkloadEventRow,
    WorkloadRow,
)
from hcp.billing import EnergySource, Invoice, InvoiceLine, Tier, UsageRecord
from hcp.billing.rounding import round_money, round_price, round_quantity
from hcp.domain.devices import DeviceKind
from hcp.domain.errors import Conflict, Duplicate, NotFound, StateChanged
from hcp.domain.fleet import Device, FleetMember, Rack, Site
from hcp.domain.identity import ApiKey, BrowserSession, Customer, Role, User
from hcp.domain.market import MarketSnapshot
from hcp.domain.plans import Allocation, SitePlan
from hcp.domain.status import DeviceStatus
from hcp.domain.workloads import (
    PreemptionRecord,
    Requirements,
    StateChange,
    Workload,
    WorkloadClass,
    WorkloadEvent,
    WorkloadState,
)


class SqlWorkloads:
    def __init__(self, session: Session) -> None:
        self._s = session
        # Rows read in this unit of work, held: the session keeps only weak references to
        # clean rows, so without this a `get` then `save_transition` loaded the row twice.
        self._rows: dict[str, WorkloadRow] = {}
        # Queued workloads gained (lost) per priority, written to the queue counters at commit
        # (`count_queued`): a transaction locks the workload rows it moves first and the
        # counters last, in one order, so a tick and a cancel never wait for each other both
        # ways (PostgreSQL ended one of them as a deadlock).
        self._queued: Counter[int] = Counter()

    def add(self, workload: Workload, change: StateChange) -> None:
        self.add_many([(workload, change)])

    def add_many(self, items: Sequence[tuple[Workload, StateChange]]) -> list[int]:
        """Insert workloads with their first event in bulk; each one's 1-based queue position
        (queued ones are last in their class; 0 for any not queued)."""
        if not items:
            return []
        # Core inserts (the tables, not the mapped classes): no ORM bookkeeping per row.
        workloads = [{"id": w.id, **_workload_columns(w)} for w, _ in items]
        self._s.execute(insert(Base.metadata.tables["workloads"]), workloads)
        self._s.execute(
            insert(Base.metadata.tables["workload_events"]), [_event_values(c) for _, c in items]
        )
        added = Counter(w.priority for w, _ in items if w.state is WorkloadState.QUEUED)
        for priority, n in added.items():
            self._bump(priority, n)
        return _positions([w for w, _ in items], self.queued_by_priority(), added)

    def _bump(self, priority: int, n: int) -> None:
        self._queued[priority] += n

    def count_queued(self) -> None:
        """Write the queued workloads gained and lost in this unit of work to the counters,
        lowest priority first (called just before its commit)."""
        counter = QueueCounterRow
        for priority, n in sorted(self._queued.items()):
            if n:
                self._s.execute(
                    update(counter)
                    .where(counter.priority == priority)
                    .values(queued=counter.queued + n)
                )
        self._queued.clear()

    def forget_counts(self) -> None:
        """Drop the counts not yet written (the transaction is rolled back)."""
        self._queued.clear()

    def get(self, workload_id: str) -> Workload | None:
        row = self._row(workload_id)
        return None if row is None else _workload(row)

    def _row(self, workload_id: str) -> WorkloadRow | None:
        row = self._rows.get(workload_id) or self._s.get(WorkloadRow, workload_id)
        if row is not None:
            self._rows[workload_id] = row
        return row

    def find(
        self, *, customer_id: str | None, state: WorkloadState | None, limit: int, offset: int
    ) -> list[Workload]:
        query = _filtered(select(WorkloadRow), customer_id, state)
        query = query.order_by(WorkloadRow.submitted_at.desc(), WorkloadRow.id).limit(limit)
        return [_workload(r) for r in self._s.scalars(query.offset(offset))]

    def count(self, *, customer_id: str | None, state: WorkloadState | None) -> int:
        query = _filtered(select(func.count()).select_from(WorkloadRow), customer_id, state)
        return int(self._s.scalar(query) or 0)

    def save_transition(self, workload: Workload, change: StateChange) -> None:
        row = self._row(workload.id)
        if row is None:
            raise KeyError(workload.id)
        if change.from_state is not None:
            self._claim(row, change.from_state)
        was_queued = row.state == WorkloadState.QUEUED.value
        for key, value in _workload_columns(workload).items():
            setattr(row, key, value)
        is_queued = workload.state is WorkloadState.QUEUED
        if was_queued != is_queued:
            self._bump(workload.priority, 1 if is_queued else -1)
        self._s.add(_event_row(change))

    def _claim(self, row: WorkloadRow, state: WorkloadState) -> None:
        """Lock the stored row while it is still in `state`; StateChanged (and `row` re-read)
        when another transaction moved it since it was read: a transition computed from the
        state read must not overwrite the one committed meanwhile (a cancel)."""
        self._s.flush()  # this transaction's own earlier changes of the row come first
        table = Base.metadata.tables["workloads"]
        claim = (
            update(table)
            .where(table.c.id == row.id, table.c.state == state.value)
            .values(state=state.value)
        )
        if self._s.connection().execute(claim).rowcount == 0:
            self._s.refresh(row)
            raise StateChanged(row.id, state.value, row.state)

    def history(self, workload_id: str) -> list[StateChange]:
        query = (
            select(WorkloadEventRow)
            .where(WorkloadEventRow.workload_id == workload_id)
            .order_by(WorkloadEventRow.id)
        )
        return [_change(r) for r in self._s.scalars(query)]

    def histories(self, workload_ids: Sequence[str]) -> dict[str, list[StateChange]]:
        found: dict[str, list[StateChange]] = {w: [] for w in workload_ids}
        for chunk in chunked(list(found)):
            query = (
                select(WorkloadEventRow)
                .where(WorkloadEventRow.workload_id.in_(chunk))
                .order_by(WorkloadEventRow.id)
            )
            for row in self._s.scalars(query):
                found[row.workload_id].append(_change(row))
        return found

    def max_prices(self, workload_ids: Sequence[str]) -> dict[str, Decimal]:
        found: dict[str, Decimal] = {}
        column = WorkloadRow.max_price_usd_per_gpu_hour
        for chunk in chunked(sorted(set(workload_ids))):
            query = select(WorkloadRow.id, column).where(
                WorkloadRow.id.in_(chunk), column.is_not(None)
            )
            found.update({row.id: row.max_price_usd_per_gpu_hour for row in self._s.execute(query)})
        return found

    def queue_position(self, workload: Workload) -> int:
        w = WorkloadRow
        ahead = or_(
            w.priority < workload.priority,
            and_(
                w.priority == workload.priority,
                or_(
                    w.submitted_at < workload.submitted_at,
                    and_(w.submitted_at == workload.submitted_at, w.id < workload.id),
                ),
            ),
        )
        query = select(func.count()).where(w.state == WorkloadState.QUEUED.value, ahead)
        return int(self._s.scalar(query) or 0) + 1

    def queued_by_priority(self) -> dict[int, int]:
        query = select(QueueCounterRow.priority, QueueCounterRow.queued)
        stored = {int(p): int(n) for p, n in self._s.execute(query)}
        return {p: n + self._queued[p] for p, n in stored.items()}  # with this unit's own

    def save_progress(self, progress: Mapping[str, float]) -> None:
        if progress:  # one executemany (ORM bulk update by primary key), not a statement each
            rows = [{"id": id_, "progress": value} for id_, value in progress.items()]
            self._s.execute(update(WorkloadRow), rows)

    def save_checkpoints(self, checkpoints: Mapping[str, tuple[float, datetime]]) -> None:
        if checkpoints:
            rows = [
                {"id": id_, "checkpoint_progress": value, "checkpointed_at": at}
                for id_, (value, at) in checkpoints.items()
            ]
            self._s.execute(update(WorkloadRow), rows)

    def release_gpus(self, workload_id: str) -> None:
        self._s.execute(
            update(WorkloadRow).where(WorkloadRow.id == workload_id).values(gpu_ids=None)
        )

    def touched_since(self, since: datetime) -> list[Workload]:
        active = (WorkloadState.SCHEDULED.value, WorkloadState.RUNNING.value)
        query = select(WorkloadRow).where(
            or_(WorkloadRow.state.in_(active), WorkloadRow.updated_at >= since)
        )
        return [_workload(r) for r in self._s.scalars(query.order_by(WorkloadRow.id))]

    def in_states(self, states: Sequence[WorkloadState]) -> list[Workload]:
        query = select(WorkloadRow).where(WorkloadRow.state.in_([st.value for st in states]))
        return [_workload(r) for r in self._s.scalars(query.order_by(WorkloadRow.submitted_at))]

    def holding_gpus(self, states: Sequence[WorkloadState]) -> list[Workload]:
        # No GPUs is stored as a JSON null (or SQL NULL, or an empty list): compared as text,
        # which reads the same on SQLite and PostgreSQL.
        held = cast(WorkloadRow.gpu_ids, Text)
        query = select(WorkloadRow).where(
            WorkloadRow.state.in_([st.value for st in states]),
            WorkloadRow.gpu_ids.is_not(None),
            held.not_in(["null", "[]"]),
        )
        return [_workload(r) for r in self._s.scalars(query.order_by(WorkloadRow.submitted_at))]

    def add_preemption(self, record: PreemptionRecord) -> None:
        self._s.add(
            PreemptionRow(
                at=record.at,
                workload_id=record.workload_id,
                reason=record.reason,
                action=record.action,
                lost_gpu_hours=record.lost_gpu_hours,
                gpu_ids=list(record.gpu_ids),
                for_workload_id=record.for_workload_id,
            )
        )

    def preemptions(
        self, workload_id: str | None = None, limit: int = 100, customer_id: str | None = None
    ) -> list[PreemptionRecord]:
        query = select(PreemptionRow).order_by(PreemptionRow.at.desc(), PreemptionRow.id.desc())
        if workload_id is not None:
            query = query.where(PreemptionRow.workload_id == workload_id)
        if customer_id is not None:
            owned = select(WorkloadRow.id).where(WorkloadRow.customer_id == customer_id)
            query = query.where(PreemptionRow.workload_id.in_(owned))
        return [
            PreemptionRecord(
                r.at,
                r.workload_id,
                r.reason,
                r.action,
                r.lost_gpu_hours,
                tuple(r.gpu_ids),
                r.for_workload_id,
            )
            for r in self._s.scalars(query.limit(limit))
        ]

    def gpus_in_use(self) -> int:
        active = (WorkloadState.SCHEDULED.value, WorkloadState.RUNNING.value)
        query = select(func.coalesce(func.sum(WorkloadRow.gpu_count), 0)).where(
            WorkloadRow.state.in_(active)
        )
        return int(self._s.scalar(query) or 0)


def _filtered(query: Any, customer_id: str | None, state: WorkloadState | None) -> Any:
    if customer_id is not None:
        query = query.where(WorkloadRow.customer_id == customer_id)
    if state is not None:
        query = query.where(WorkloadRow.state == state.value)
    return query


def _workload_columns(w: Workload) -> dict[str, Any]:
    req = w.requirements
    return {
        "customer_id": w.customer_id,
        "workload_class": w.workload_class.value,
        "priority": w.priority,
        "state": w.state.value,
        "gpu_type": req.gpu_type,
        "gpu_count": req.gpu_count,
        "memory_gb_per_gpu": req.memory_gb_per_gpu,
        "estimated_hours": req.estimated_hours,
        "deadline": w.deadline,
        "checkpointable": w.checkpointable,
        "max_price_usd_per_gpu_hour": w.max_price_usd_per_gpu_hour,
        "site_id": w.site_id,
        "progress": w.progress,
        "retries": w.retries,
        "submitted_at": w.submitted_at,
        "updated_at": w.updated_at,
        "gpu_ids": list(w.gpu_ids) or None,
        "started_at": w.started_at,
        "checkpoint_progress": w.checkpoint,
        "checkpointed_at": w.checkpointed_at,
        "interruptible": w.interruptible,
    }


def _workload(r: WorkloadRow) -> Workload:
    return Workload(
        id=r.id,
        customer_id=r.customer_id,
        workload_class=WorkloadClass(r.workload_class),
        state=WorkloadState(r.state),
        requirements=Requirements(
            gpu_type=r.gpu_type,
            gpu_count=r.gpu_count,
            memory_gb_per_gpu=r.memory_gb_per_gpu,
            estimated_hours=r.estimated_hours,
        ),
        submitted_at=r.submitted_at,
        updated_at=r.updated_at,
        deadline=r.deadline,
        checkpointable=r.checkpointable,
        max_price_usd_per_gpu_hour=r.max_price_usd_per_gpu_hour,
        site_id=r.site_id,
        progress=r.progress,
        retries=r.retries,
        gpu_ids=tuple(r.gpu_ids or ()),
        started_at=r.started_at,
        checkpoint=r.checkpoint_progress,
        checkpointed_at=r.checkpointed_at,
        interruptible=r.interruptible,
    )


def _positions(
    workloads: Sequence[Workload], queued: dict[int, int], added: Counter[int]
) -> list[int]:
    """Queue positions after a bulk insert: every queued workload of a higher class, then
    those of the same class that were there before, then this batch in order."""
    seen: Counter[int] = Counter()
    positions = []
    for w in workloads:
        if w.state is not WorkloadState.QUEUED:
            positions.append(0)
            continue
        seen[w.priority] += 1
        ahead = sum(n for p, n in queued.items() if p < w.priority)
        before_batch = queued.get(w.priority, 0) - added[w.priority]
        positions.append(ahead + before_batch + seen[w.priority])
    return positions


def _event_values(c: StateChange) -> dict[str, Any]:
    return {
        "workload_id": c.workload_id,
        "at": c.at,
        "event": c.event.value,
        "from_state": None if c.from_state is None else c.from_state.value,
        "to_state": c.to_state.value,
        "reason": c.reason,
        "gpu_ids": list(c.gpu_ids) or None,
    }


def _event_row(c: StateChange) -> WorkloadEventRow:
    return WorkloadEventRow(**_event_values(c))


def _change(r: WorkloadEventRow) -> StateChange:
    return StateChange(
        workload_id=r.workload_id,
        at=r.at,
        event=WorkloadEvent(r.event),
        from_state=None if r.from_state is None else WorkloadState(r.from_state),
        to_state=WorkloadState(r.to_state),
        reason=r.reason,
        gpu_ids=tuple(r.gpu_ids or ()),
    )


class SqlCustomers:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add(self, customer: Customer) -> None:
        self._s.add(
            CustomerRow(
                id=customer.id,
                name=customer.name,
                weight=customer.weight,
                gpu_quota=customer.gpu_quota,
                created_at=customer.created_at,
            )
        )
        _flush(self._s)  # keys and workloads reference the customer

    def update(self, customer: Customer) -> None:
        row = self._s.get(CustomerRow, customer.id)
        if row is None:
            raise NotFound("customer", customer.id)
        row.name, row.weight, row.gpu_quota = customer.name, customer.weight, customer.gpu_quota
        _flush(self._s)

    def get(self, customer_id: str) -> Customer | None:
        r = self._s.get(CustomerRow, customer_id)
        return None if r is None else _customer(r)

    def all(self) -> list[Customer]:
        return [_customer(r) for r in self._s.scalars(select(CustomerRow).order_by(CustomerRow.id))]


def _customer(r: CustomerRow) -> Customer:
    return Customer(r.id, r.name, r.created_at, r.weight, r.gpu_quota)


class SqlApiKeys:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add(self, key: ApiKey) -> None:
        self._s.add(
            ApiKeyRow(
                id=key.id,
                key_hash=key.key_hash,
                prefix=key.prefix,
                name=key.name,
                role=key.role.value,
                customer_id=key.customer_id,
                created_at=key.created_at,
                expires_at=key.expires_at,
                revoked_at=key.revoked_at,
            )
        )

    def by_hash(self, key_hash: str) -> ApiKey | None:
        row = self._s.scalar(select(ApiKeyRow).where(ApiKeyRow.key_hash == key_hash))
        return None if row is None else _api_key(row)

    def get(self, key_id: str) -> ApiKey | None:
        row = self._s.get(ApiKeyRow, key_id)
        return None if row is None else _api_key(row)

    def all(self, customer_id: str | None = None) -> list[ApiKey]:
        query = select(ApiKeyRow).order_by(ApiKeyRow.created_at, ApiKeyRow.id)
        if customer_id is not None:
            query = query.where(ApiKeyRow.customer_id == customer_id)
        return [_api_key(r) for r in self._s.scalars(query)]

    def revoke(self, key_id: str, at: datetime) -> None:
        row = self._s.get(ApiKeyRow, key_id)
        if row is not None and row.revoked_at is None:
            row.revoked_at = at


class SqlUsers:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add(self, user: User) -> None:
        self._s.add(
            UserRow(
                id=user.id,
                email=user.email,
                name=user.name,
                role=user.role.value,
                customer_id=user.customer_id,
                password_hash=user.password_hash,
                disabled=user.disabled,
                created_at=user.created_at,
            )
        )
        _flush(self._s)  # sessions reference the user

    def update(self, user: User) -> None:
        self._s.execute(
            update(UserRow)
            .where(UserRow.id == user.id)
            .values(password_hash=user.password_hash, disabled=user.disabled)
        )

    def get(self, user_id: str) -> User | None:
        row = self._s.get(UserRow, user_id)
        return None if row is None else _user(row)

    def by_email(self, email: str) -> User | None:
        row = self._s.scalar(select(UserRow).where(UserRow.email == email.lower()))
        return None if row is None else _user(row)

    def all(self) -> list[User]:
        return [_user(r) for r in self._s.scalars(select(UserRow).order_by(UserRow.email))]


def _user(r: UserRow) -> User:
    return User(
        id=r.id,
        email=r.email,
        name=r.name,
        role=Role(r.role),
        created_at=r.created_at,
        customer_id=r.customer_id,
        password_hash=r.password_hash,
        disabled=r.disabled,
    )


class SqlSessions:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add(self, session: BrowserSession) -> None:
        self._s.add(
            SessionRow(
                id=session.id,
                user_id=session.user_id,
                csrf_token=session.csrf_token,
                created_at=session.created_at,
                expires_at=session.expires_at,
            )
        )

    def get(self, session_id: str) -> BrowserSession | None:
        r = self._s.get(SessionRow, session_id)
        if r is None:
            return None
        return BrowserSession(r.id, r.user_id, r.csrf_token, r.created_at, r.expires_at)

    def delete(self, session_id: str) -> None:
        self._s.execute(delete(SessionRow).where(SessionRow.id == session_id))

    def delete_for_user(self, user_id: str) -> int:
        ended = self._s.execute(delete(SessionRow).where(SessionRow.user_id == user_id))
        return int(getattr(ended, "rowcount", 0) or 0)


def _api_key(r: ApiKeyRow) -> ApiKey:
    return ApiKey(
        id=r.id,
        key_hash=r.key_hash,
        prefix=r.prefix,
        name=r.name,
        role=Role(r.role),
        customer_id=r.customer_id,
        created_at=r.created_at,
        expires_at=r.expires_at,
        revoked_at=r.revoked_at,
    )


class SqlFleet:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add_site(self, site: Site) -> None:
        self._s.add(
            SiteRow(
                id=site.id,
                name=site.name,
                node=site.node,
                capacity_mw=site.capacity_mw,
                pue=site.pue,
                contract=dict(site.contract),
            )
        )

    def add_rack(self, rack: Rack) -> None:
        self._s.flush()  # the site first (foreign key)
        self._s.add(RackRow(id=rack.id, site_id=rack.site_id, name=rack.name))

    def ensure_model(
        self, name: str, kind: DeviceKind, manufacturer: str, spec: dict[str, Any]
    ) -> None:
        if self._s.get(DeviceModelRow, name) is None:
            self._s.add(
                DeviceModelRow(name=name, kind=kind.value, manufacturer=manufacturer, spec=spec)
            )
            self._s.flush()

    def add_devices(self, devices: Sequence[Device]) -> None:
        self._s.flush()  # no ORM relationships: the site and racks must be written first
        self._s.add_all(_device_row(d) for d in devices)

    def sites(self) -> list[Site]:
        return [_site(r) for r in self._s.scalars(select(SiteRow).order_by(SiteRow.id))]

    def update_site(self, site: Site) -> None:
        row = self._s.get(SiteRow, site.id)
        if row is None:
            raise NotFound("site", site.id)
        row.name, row.node, row.capacity_mw, row.pue = (
            site.name,
            site.node,
            site.capacity_mw,
            site.pue,
        )

    def site(self, site_id: str) -> Site | None:
        row = self._s.get(SiteRow, site_id)
        return None if row is None else _site(row)

    def devices(
        self,
        *,
        site_id: str | None = None,
        kind: DeviceKind | None = None,
        state: str | None = None,
    ) -> list[Device]:
        # Columns, not ORM objects: the control loop reads every device each tick, and at
        # 11,000 devices identity-mapped rows cost ten times as much.
        query = select(*_DEVICE_COLUMNS).order_by(DeviceRow.id)
        if site_id is not None:
            query = query.where(DeviceRow.site_id == site_id)
        if kind is not None:
            query = query.where(DeviceRow.kind == kind.value)
        if state is not None:
            query = query.where(DeviceRow.state == state)
        return [_device(row) for row in self._s.execute(query)]

    def device(self, device_id: str) -> Device | None:
        query = select(*_DEVICE_COLUMNS).where(DeviceRow.id == device_id)
        row = self._s.execute(query).first()
        return None if row is None else _device(row)

    def members(self, site_id: str, kind: DeviceKind | None = None) -> list[FleetMember]:
        query = select(*_MEMBER_COLUMNS).where(DeviceRow.site_id == site_id)
        if kind is not None:
            query = query.where(DeviceRow.kind == kind.value)
        rows = self._s.execute(query.order_by(DeviceRow.id))
        return [
            FleetMember(i, site, model, _KINDS[k], address, why)
            for i, site, model, k, address, why in rows
        ]

    def in_maintenance(self, site_id: str) -> dict[str, str]:
        query = select(DeviceRow.id, DeviceRow.maintenance).where(
            DeviceRow.site_id == site_id, DeviceRow.maintenance.is_not(None)
        )
        rows = self._s.execute(query)
        return {device_id: reason for device_id, reason in rows if reason is not None}

    def update_statuses(self, statuses: Sequence[DeviceStatus]) -> None:
        rows = [
            {
                "b_id": s.device_id,
                "state": s.state,
                "healthy": s.healthy,
                "profile": s.profile,
                "power_w": s.power_w,
                "hashrate_ths": s.hashrate_ths,
                "b_at": s.at,
                "problems": list(s.problems) or None,
            }
            for s in statuses
        ]
        table = Base.metadata.tables["devices"]
        # A status never replaces a newer one: a reading redelivered by the bus (after a failed
        # commit) may come after the next poll's.
        newer = bindparam("b_at", type_=table.c.updated_at.type)
        statement = (
            update(table)
            .where(table.c.id == bindparam("b_id"), table.c.updated_at <= newer)
            .values(
                state=bindparam("state"),
                healthy=bindparam("healthy"),
                profile=bindparam("profile"),
                power_w=bindparam("power_w"),
                hashrate_ths=bindparam("hashrate_ths"),
                updated_at=newer,
                problems=bindparam("problems"),
            )
        )
        self._s.connection().execute(statement, rows)

    def set_maintenance(
        self, device_id: str, reason: str | None, since: datetime | None, by: str | None
    ) -> bool:
        row = self._s.get(DeviceRow, device_id)
        if row is None:
            return False
        row.maintenance, row.maintenance_since, row.maintenance_by = reason, since, by
        return True

    def set_addresses(self, addresses: Mapping[str, str]) -> None:
        table = Base.metadata.tables["devices"]
        statement = (
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values(address=bindparam("address"))
        )
        rows = [{"b_id": d, "address": a} for d, a in addresses.items()]
        if rows:
            self._s.connection().execute(statement, rows)

    def gpus_by_site_and_model(self) -> dict[tuple[str, str], int]:
        query = (
            select(DeviceRow.site_id, DeviceRow.model_name, func.count())
            .where(DeviceRow.kind == DeviceKind.GPU.value)
            .group_by(DeviceRow.site_id, DeviceRow.model_name)
        )
        return {(s, m): int(n) for s, m, n in self._s.execute(query)}


def _site(r: SiteRow) -> Site:
    return Site(r.id, r.name, r.node, r.capacity_mw, r.pue, dict(r.contract))


def _device_row(d: Device) -> DeviceRow:
    return DeviceRow(
        id=d.id,
        site_id=d.site_id,
        rack_id=d.rack_id,
        model_name=d.model_name,
        kind=d.kind.value,
        address=d.address,
        state=d.state,
        healthy=d.healthy,
        profile=d.profile,
        power_w=d.power_w,
        hashrate_ths=d.hashrate_ths,
        updated_at=d.updated_at,
        maintenance=d.maintenance,
        maintenance_since=d.maintenance_since,
        maintenance_by=d.maintenance_by,
        problems=list(d.problems) or None,
    )


def _device(row: Sequence[Any]) -> Device:
    """A device from a row of `_DEVICE_COLUMNS`, which are in Device's field order (a test holds
    them so)."""
    i, site, rack, model, kind, *rest = row
    device = Device(i, site, rack, model, _KINDS[kind], *rest[:-1])
    problems = rest[-1]
    return replace(device, problems=tuple(problems)) if problems else device


_KINDS = {kind.value: kind for kind in DeviceKind}
_MEMBER_COLUMNS = (
    DeviceRow.id,
    DeviceRow.site_id,
    DeviceRow.model_name,
    DeviceRow.kind,
    DeviceRow.address,
    DeviceRow.maintenance,
)
_DEVICE_COLUMNS = (  # Device's fields, in order
    DeviceRow.id,
    DeviceRow.site_id,
    DeviceRow.rack_id,
    DeviceRow.model_name,
    DeviceRow.kind,
    DeviceRow.state,
    DeviceRow.updated_at,
    DeviceRow.address,
    DeviceRow.healthy,
    DeviceRow.profile,
    DeviceRow.power_w,
    DeviceRow.hashrate_ths,
    DeviceRow.maintenance,
    DeviceRow.maintenance_since,
    DeviceRow.maintenance_by,
    DeviceRow.problems,
)


class SqlMarket:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add(self, snapshot: MarketSnapshot, source: str) -> None:
        self._s.add(
            MarketSnapshotRow(
                at=snapshot.at,
                source=source,
                btc_usd=snapshot.btc_usd,
                difficulty=snapshot.difficulty,
                fees_btc_per_day=snapshot.fees_btc_per_day,
                electricity_usd_per_mwh=dict(snapshot.electricity_usd_per_mwh),
                day_ahead_usd_per_mwh=dict(snapshot.day_ahead_usd_per_mwh),
                gpu_spot_usd_per_gpu_hour=dict(snapshot.gpu_spot_usd_per_gpu_hour),
            )
        )

    def latest(self, until: datetime | None = None) -> MarketSnapshot | None:
        query = select(MarketSnapshotRow).order_by(
            MarketSnapshotRow.at.desc(), MarketSnapshotRow.id.desc()
        )
        if until is not None:
            query = query.where(MarketSnapshotRow.at <= until)
        row = self._s.scalar(query.limit(1))
        return None if row is None else _snapshot(row)

    def recent(self, since: datetime, limit: int = 10_000) -> list[MarketSnapshot]:
        query = (
            select(MarketSnapshotRow)
            .where(MarketSnapshotRow.at >= since)
            .order_by(MarketSnapshotRow.at, MarketSnapshotRow.id)
            .limit(limit)
        )
        return [_snapshot(r) for r in self._s.scalars(query)]


def _snapshot(row: MarketSnapshotRow) -> MarketSnapshot:
    return MarketSnapshot(
        at=row.at,
        electricity_usd_per_mwh=row.electricity_usd_per_mwh,
        btc_usd=row.btc_usd,
        difficulty=row.difficulty,
        fees_btc_per_day=row.fees_btc_per_day,
        gpu_spot_usd_per_gpu_hour=row.gpu_spot_usd_per_gpu_hour,
        day_ahead_usd_per_mwh=row.day_ahead_usd_per_mwh,
    )


class SqlPlans:
    def __init__(self, session: Session) -> None:
        self._s = session

    def add(self, plan: SitePlan) -> None:
        self._s.add(
            PlanRow(
                id=plan.id,
                site_id=plan.site_id,
                interval_start=plan.interval_start,
                strategy=plan.strategy,
                status=plan.status,
                reason=plan.reason,
                expected_profit_usd=plan.expected_profit_usd,
                created_at=plan.created_at,
            )
        )
        self._s.flush()
        self._s.add_all(
            AllocationRow(
                plan_id=plan.id,
                device_model=a.device_model,
                use=a.use,
                count=a.count,
                power_kw=a.power_kw,
            )
            for a in plan.allocations
        )

    def latest(self, site_id: str, until: datetime | None = None) -> SitePlan | None:
        query = (
            select(PlanRow)
            .where(PlanRow.site_id == site_id)
            .order_by(PlanRow.interval_start.desc(), PlanRow.created_at.desc())
            .limit(1)
        )
        if until is not None:
            query = query.where(PlanRow.interval_start <= until)
        row = self._s.scalar(query)
        return None if row is None else self._plan(row)

    def recent(self, site_id: str, since: datetime) -> list[SitePlan]:
        query = (
            select(PlanRow)
            .where(PlanRow.site_id == site_id, PlanRow.interval_start >= since)
            .order_by(PlanRow.interval_start)
        )
        return [self._plan(r) for r in self._s.scalars(query)]

    def _plan(self, row: PlanRow) -> SitePlan:
        query = (
            select(AllocationRow).where(AllocationRow.plan_id == row.id).order_by(AllocationRow.id)
        )
        allocations = tuple(
            Allocation(a.device_model, a.use, a.count, a.power_kw) for a in self._s.scalars(query)
        )
        return SitePlan(
            row.id,
            row.site_id,
            row.interval_start,
            row.strategy,
            row.status,
            row.reason,
            row.expected_profit_usd,
            row.created_at,
            allocations,
        )


def _usage_filter(
    start: datetime, end: datetime, customer_id: str | None, *, unbilled: bool
) -> list[ColumnElement[bool]]:
    """Usage records whose interval starts in [start, end), of `customer_id` (None: anyone's),
    and with `unbilled` only those no final invoice bills yet: what a read and the marking
    of a final invoice's usage both select."""
    u = UsageRecordRow
    found = [u.interval_start >= start, u.interval_start < end]
    if customer_id is not None:
        found.append(u.customer_id == customer_id)
    if unbilled:
        found.append(u.invoice_id.is_(None))
    return found


class SqlBilling:
    def __init__(self, session: Session) -> None:
        self._s = session

    def metered_until(self) -> datetime | None:
        return self._s.scalar(select(func.max(UsageRecordRow.interval_end)))

    def add_usage(self, records: Sequence[UsageRecord]) -> int:
        rows: list[dict[str, object]] = []
        known = self._stored_usages(records)
        for record in records:
            stored = known.get((record.workload_id, record.interval_start))
            if stored is None:
                rows.append(_usage_row(record))
            elif stored != record:
                raise Conflict(
                    f"usage of {record.workload_id} at {record.interval_start.isoformat()} "
                    "is stored with different figures; an interval is never billed twice"
                )
        if rows:  # one executemany (ORM bulk insert), not a flushed object and INSERT each
            self._s.execute(insert(UsageRecordRow), rows)
        return len(rows)

    def _stored_usages(
        self, records: Sequence[UsageRecord]
    ) -> dict[tuple[str, datetime], UsageRecord]:
        """The stored records of the same workloads and interval starts as `records`, read
        in one query per chunk of workloads rather than one per record."""
        starts = sorted({r.interval_start for r in records})
        found: dict[tuple[str, datetime], UsageRecord] = {}
        if not starts:
            return found
        u = UsageRecordRow
        for chunk in chunked(sorted({r.workload_id for r in records})):
            query = select(u).where(
                u.workload_id.in_(chunk), u.interval_start.between(starts[0], starts[-1])
            )
            for row in self._s.scalars(query):
                usage = _usage(row)
                found[usage.workload_id, usage.interval_start] = usage
        return found

    def usage(
        self, start: datetime, end: datetime, customer_id: str | None = None
    ) -> list[UsageRecord]:
        return self._usages(start, end, customer_id, unbilled=False)

    def unbilled_usage(
        self, start: datetime, end: datetime, customer_id: str | None = None
    ) -> list[UsageRecord]:
        return self._usages(start, end, customer_id, unbilled=True)

    def _usages(
        self, start: datetime, end: datetime, customer_id: str | None, *, unbilled: bool
    ) -> list[UsageRecord]:
        u = UsageRecordRow
        query = select(u).where(*_usage_filter(start, end, customer_id, unbilled=unbilled))
        return [_usage(r) for r in self._s.scalars(query.order_by(u.interval_start, u.workload_id))]

    def bill_usage(self, invoice_id: str, customer_id: str, start: datetime, end: datetime) -> int:
        unbilled = _usage_filter(start, end, customer_id, unbilled=True)
        mark = update(UsageRecordRow).where(*unbilled).values(invoice_id=invoice_id)
        return self._s.connection().execute(mark).rowcount

    def save_invoice(self, invoice: Invoice, created_at: datetime) -> Invoice | None:
        # The invoice's row is stored (unless it is already) and held before its lines are
        # replaced: an issue of the same invoice racing this one is waited for, and the lines
        # it stored are seen and replaced, never kept beside these; a final invoice it stored
        # is kept as it is.
        values: dict[str, object] = {"id": invoice.id, "customer_id": invoice.customer_id}
        values |= {"month": invoice.month, "total": invoice.total, "status": "issued"}
        values |= {"created_at": created_at, "currency": "USD"}
        inserted = self._s.connection().execute(
            _insert_unless_stored(self._s, InvoiceRow, values),
            execution_options={"preserve_rowcount": True},  # an INSERT's is not kept otherwise
        )
        row = self._s.get(InvoiceRow, invoice.id, with_for_update=True, populate_existing=True)
        if row is None:  # the month's invoice is stored under another id
            month = f"{invoice.customer_id}'s invoice for {invoice.month}"
            raise Conflict(f"{month} is stored under another id than {invoice.id}")
        if inserted.rowcount == 0:
            stored = self._invoice(row)
            if stored.final:
                return stored
        self._s.execute(delete(InvoiceLineRow).where(InvoiceLineRow.invoice_id == invoice.id))
        row.total, row.status, row.created_at, row.currency = (
            invoice.total,
            "issued",
            created_at,
            "USD",
        )
        self._s.flush()
        self._s.add_all(
            InvoiceLineRow(
                invoice_id=invoice.id,
                position=i,
                description=line.description,
                quantity=line.quantity,
                unit=line.unit,
                unit_price=line.unit_price,
                amount=line.amount,
                late_usage_month=line.late_usage_month,
            )
            for i, line in enumerate(invoice.lines)
        )
        return None

    def set_price(self, workload_class: str, family: str, usd: Decimal, at: datetime) -> None:
        change = PriceChangeRow(workload_class=workload_class, gpu_family=family)
        change.usd_per_gpu_hour, change.effective_at = usd, at
        self._s.add(change)

    def price_changes(self) -> list[tuple[datetime, str, str, Decimal]]:
        query = select(PriceChangeRow).order_by(PriceChangeRow.effective_at, PriceChangeRow.id)
        return [
            (r.effective_at, r.workload_class, r.gpu_family, round_price(r.usd_per_gpu_hour))
            for r in self._s.scalars(query)
        ]

    def invoice(self, invoice_id: str) -> Invoice | None:
        row = self._s.get(InvoiceRow, invoice_id)
        return None if row is None else self._invoice(row)

    def issue_dates(self, customer_id: str | None = None) -> list[tuple[str, str, datetime]]:
        i = InvoiceRow
        query = select(i.customer_id, i.month, i.created_at).order_by(i.customer_id, i.month)
        if customer_id is not None:
            query = query.where(i.customer_id == customer_id)
        return [(c, month, issued) for c, month, issued in self._s.execute(query)]

    def invoices(self, customer_id: str | None = None) -> list[Invoice]:
        query = select(InvoiceRow).order_by(InvoiceRow.month.desc(), InvoiceRow.customer_id)
        if customer_id is not None:
            query = query.where(InvoiceRow.customer_id == customer_id)
        return [self._invoice(r) for r in self._s.scalars(query)]

    def _invoice(self, row: InvoiceRow) -> Invoice:
        query = (
            select(InvoiceLineRow)
            .where(InvoiceLineRow.invoice_id == row.id)
            .order_by(InvoiceLineRow.position)
        )
        # Numeric(18, 6) returns every figure with six places: give each back its own step.
        lines = tuple(
            InvoiceLine(
                r.description,
                round_quantity(r.quantity),
                r.unit,
                round_price(r.unit_price),
                round_money(r.amount),
                r.late_usage_month,
            )
            for r in self._s.scalars(query)
        )
        total, issued_at = round_money(row.total), row.created_at
        return Invoice(row.id, row.customer_id, row.month, lines, total, issued_at)


def _insert_unless_stored(
    session: Session, table: type[Base], values: Mapping[str, object]
) -> Executable:
    """An INSERT of `values` that does nothing where a row with one of their unique keys is
    stored (after waiting for a racing transaction that is storing one)."""
    insert = conflict_insert(session.get_bind().dialect.name, table)
    statement: Executable = insert.values(values).on_conflict_do_nothing()
    return statement


def _usage_row(r: UsageRecord) -> dict[str, object]:
    """A usage record as the values of its row."""
    return {
        "workload_id": r.workload_id,
        "customer_id": r.customer_id,
        "workload_class": r.workload_class.value,
        "gpu_type": r.gpu_family,
        "tier": r.tier.value,
        "interval_start": r.interval_start,
        "interval_end": r.interval_end,
        "gpu_hours": r.gpu_hours,
        "energy_kwh": r.energy_kwh,
        "rt_price_usd_per_mwh": r.rt_price_usd_per_mwh,
        "energy_source": r.energy_source.value,
    }


def _usage(r: UsageRecordRow) -> UsageRecord:
    price = r.rt_price_usd_per_mwh
    return UsageRecord(
        workload_id=r.workload_id,
        customer_id=r.customer_id,
        workload_class=WorkloadClass(r.workload_class),
        gpu_family=r.gpu_type,
        tier=Tier(r.tier),
        interval_start=r.interval_start,
        interval_end=r.interval_end,
        gpu_hours=_exact(r.gpu_hours),
        energy_kwh=_exact(r.energy_kwh),
        rt_price_usd_per_mwh=None if price is None else _exact(price),
        energy_source=EnergySource(r.energy_source),
    )


def _exact(value: Decimal) -> Decimal:
    """A stored quantity at its 6-place step (SQLite may hand back fewer places)."""
    return round_quantity(value)


class SqlUnitOfWork:
    """One session, one transaction; rolled back on leaving unless committed."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory

    def __enter__(self) -> SqlUnitOfWork:
        self._session = self._factory()
        self.workloads = SqlWorkloads(self._session)
        self.customers = SqlCustomers(self._session)
        self.api_keys = SqlApiKeys(self._session)
        self.users = SqlUsers(self._session)
        self.sessions = SqlSessions(self._session)
        self.fleet = SqlFleet(self._session)
        self.market = SqlMarket(self._session)
        self.plans = SqlPlans(self._session)
        self.billing = SqlBilling(self._session)
        return self

    def __exit__(self, *exc: object) -> None:
        self._session.rollback()
        self._session.close()

    def commit(self) -> None:
        with _duplicates():
            self.workloads.count_queued()
            self._session.commit()

    def rollback(self) -> None:
        self.workloads.forget_counts()
        self._session.rollback()


@contextmanager
def _duplicates() -> Iterator[None]:
    """A unique-key violation raised inside, as the domain's `Duplicate`."""
    try:
        yield
    except IntegrityError as error:
        if not _duplicate_key(error):
            raise
        raise Duplicate(_reason_of(error)) from error


def _flush(session: Session) -> None:
    with _duplicates():
        session.flush()


def _duplicate_key(error: IntegrityError) -> bool:
    """Whether `error` is a unique-key violation (SQLSTATE 23505; SQLite's own words)."""
    if getattr(error.orig, "sqlstate", None) == "23505":
        return True
    return "UNIQUE constraint failed" in str(error.orig)


def _reason_of(error: IntegrityError) -> str:
    return (str(error.orig).strip().splitlines() or [type(error.orig).__name__])[0]
