"""Workload use cases: submit, list, show, cancel, and the queue's depth."""

from __future__ import annotations

import uuid
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from decimal import Decimal

from hcp.billing import BillingPriceSheet
from hcp.domain.catalog import gpu_families, gpu_model
from hcp.domain.errors import Forbidden, NotFound, StateChanged, ValidationError
from hcp.domain.identity import Principal, Role
from hcp.domain.workloads import (
    PRIORITIES,
    PreemptionRecord,
    Requirements,
    StateChange,
    Workload,
    WorkloadClass,
    WorkloadEvent,
    WorkloadState,
    transition,
)
from hcp.services.ports import Clock, UnitOfWork, UnitOfWorkFactory, WorkloadWriter

CAPACITY_TTL = timedelta(seconds=10)
"""How stale the fleet capacity behind `gpu_count` validation may be; fleets change slowly."""
MAX_DEADLINE_AHEAD = timedelta(days=366)
"""The latest deadline a submission may ask for, from its submission."""
CANCEL_ATTEMPTS = 3
"""Tries of a cancel whose workload the scheduler keeps moving while it is cancelled."""


@dataclass(frozen=True, slots=True)
class Submission:
    """A request to run a workload, as the API received it."""

    workload_class: WorkloadClass
    requirements: Requirements
    customer_id: str | None = None
    priority: int | None = None
    deadline: datetime | None = None
    checkpointable: bool = False
    max_price_usd_per_gpu_hour: Decimal | None = None
    interruptible: bool = False


@dataclass(frozen=True, slots=True)
class Submitted:
    workload: Workload
    queue_position: int


@dataclass(frozen=True, slots=True)
class QueueDepth:
    total_depth: int
    by_priority: dict[int, int]
    utilization_pct: float


Pools = Mapping[tuple[str, str], Sequence[tuple[int, int]]]
"""The GPUs of each (site, family) as (memory GB, count) per model: one placement takes its
GPUs from one of them."""


def check_submission(
    sub: Submission, pools: Pools, now: datetime, gpu_quota: int | None = None
) -> None:
    """Raise ValidationError naming the field when `sub` breaks a rule: among them a workload
    that no site could place (too many GPUs, or too few with the memory it asks for) or more
    GPUs than its customer's `gpu_quota` lets it hold, which would wait in the queue for ever.
    """
    if sub.priority is not None and sub.priority != sub.workload_class.priority:
        raise ValidationError(
            "priority",
            f"must be {sub.workload_class.priority} for {sub.workload_class.value} "
            f"(priorities {PRIORITIES} follow the workload class)",
        )
    req = sub.requirements
    families = gpu_families()
    if req.gpu_type is not None and req.gpu_type not in families:
        known = ", ".join(sorted(families))
        raise ValidationError(
            "requirements.gpu_type", f"unknown GPU type {req.gpu_type!r} (known: {known})"
        )
    if req.gpu_count < 1:
        raise ValidationError("requirements.gpu_count", "must be at least 1")
    if gpu_quota is not None and req.gpu_count > gpu_quota:
        raise ValidationError(
            "requirements.gpu_count",
            f"{req.gpu_count} exceeds the customer's GPU quota of {gpu_quota}",
        )
    most = most_at_one_site(pools, req.gpu_type)
    if req.gpu_count > most:
        kind = f"{req.gpu_type} GPUs" if req.gpu_type else "GPUs"
        raise ValidationError(
            "requirements.gpu_count",
            f"{req.gpu_count} exceeds the {most} {kind} any one site hosts",
        )
    wanted_gb = req.memory_gb_per_gpu
    if wanted_gb is not None:
        most = most_at_one_site(pools, req.gpu_type, wanted_gb)
        if most < req.gpu_count:
            kind = f"{req.gpu_type} GPUs" if req.gpu_type else "GPUs"
            raise ValidationError(
                "requirements.memory_gb",
                f"no site hosts {req.gpu_count} {kind} with at least {wanted_gb} GB each "
                f"(a site has at most {most})",
            )
    if sub.deadline is not None and sub.deadline <= now:
        raise ValidationError("deadline", "must be in the future")
    if sub.deadline is not None and sub.deadline > now + MAX_DEADLINE_AHEAD:
        raise ValidationError("deadline", f"must be within {MAX_DEADLINE_AHEAD.days} days")


def check_max_price(sub: Submission, sheet: BillingPriceSheet, families: Collection[str]) -> None:
    """Refuse a `max_price_usd_per_gpu_hour` that no GPU-hour of this workload can meet: below
    the list price (standard), or below the part of it always charged (interruptible, whose
    price rises with the real-time price up to the list price; invoices cap it at the max).
    `families` are those hosted; a workload without a GPU type takes the cheapest of them."""
    cap = sub.max_price_usd_per_gpu_hour
    if cap is None:
        return
    wanted = [sub.requirements.gpu_type] if sub.requirements.gpu_type else sorted(families)
    priced = sheet.usd_per_gpu_hour.get(sub.workload_class, {})
    prices = [priced[f] for f in wanted if f in priced]
    if not prices:
        return  # nothing to compare with; the GPU checks above speak for the families
    least = min(prices)
    floor = least * sheet.interruptible.base_share if sub.interruptible else least
    if cap < floor:
        tier = "the interruptible floor" if sub.interruptible else "the list price"
        raise ValidationError(
            "max_price_usd_per_gpu_hour",
            f"{cap} is below {tier} of {sub.workload_class.value}, {floor.normalize()} USD "
            "per GPU-hour",
        )


def gpu_pools(
    gpus_by_site_and_model: Mapping[tuple[str, str], int],
) -> dict[tuple[str, str], list[tuple[int, int]]]:
    """The GPUs of each (site, family): (memory GB, count) per model."""
    pools: dict[tuple[str, str], list[tuple[int, int]]] = {}
    for (site_id, model_name), count in gpus_by_site_and_model.items():
        model = gpu_model(model_name)
        pools.setdefault((site_id, model.family), []).append((model.memory_gb, count))
    return pools


def most_at_one_site(pools: Pools, gpu_type: str | None, memory_gb: int = 0) -> int:
    """The most GPUs of `gpu_type` (any family: None), each with at least `memory_gb`, that
    one site hosts in one family."""
    return max(
        (
            sum(count for memory, count in gpus if memory >= memory_gb)
            for (_site, family), gpus in pools.items()
            if gpu_type in (None, family)
        ),
        default=0,
    )


class WorkloadService:
    def __init__(
        self,
        uow: UnitOfWorkFactory,
        writer: WorkloadWriter,
        clock: Clock,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
        on_change: Callable[[StateChange], None] = lambda change: None,
        prices: Callable[[], BillingPriceSheet] | None = None,
    ) -> None:
        """`prices` gives the price sheet in force, against which a workload's max price is
        checked (not checked without it)."""
        self._uow = uow
        self._prices = prices
        self._writer = writer
        self._clock = clock
        self._new_id = new_id
        self._on_change = on_change
        self._known_customers: set[str] = set()
        self._pools: tuple[datetime, Pools] | None = None
        self._quotas: dict[str, tuple[datetime, int | None]] = {}

    def on_change(self, listener: Callable[[StateChange], None]) -> None:
        """Call `listener` with every transition this service stores (after it is committed)."""
        self._on_change = listener

    async def submit(self, principal: Principal, sub: Submission) -> Submitted:
        """Validate, store and queue a workload; returns it with its queue position once the
        row is committed."""
        now = self._clock.now()
        customer_id = self._customer_for(principal, sub.customer_id)
        pools = self._gpu_pools(now)
        check_submission(sub, pools, now, self._gpu_quota(customer_id, now))
        if self._prices is not None and sub.max_price_usd_per_gpu_hour is not None:
            hosted = {family for (_site, family), gpus in pools.items() if any(c for _, c in gpus)}
            check_max_price(sub, self._prices(), hosted)
        workload = Workload(
            id=self._new_id(),
            customer_id=customer_id,
            workload_class=sub.workload_class,
            state=WorkloadState.QUEUED,
            requirements=sub.requirements,
            submitted_at=now,
            updated_at=now,
            deadline=sub.deadline,
            checkpointable=sub.checkpointable,
            max_price_usd_per_gpu_hour=sub.max_price_usd_per_gpu_hour,
            interruptible=sub.interruptible,
        )
        change = StateChange(workload.id, now, WorkloadEvent.SUBMIT, None, WorkloadState.QUEUED)
        position = await self._writer.write(workload, change)
        self._on_change(change)
        return Submitted(workload, position)

    def _customer_for(self, principal: Principal, asked: str | None) -> str:
        if principal.role is Role.CUSTOMER:
            if asked is not None and asked != principal.customer_id:
                raise ValidationError("customer_id", "must be your own customer id, or omitted")
            assert principal.customer_id is not None
            return principal.customer_id
        if principal.role is not Role.ADMIN:
            raise Forbidden(f"an {principal.role.value} key cannot submit workloads")
        if asked is None:
            raise ValidationError("customer_id", "required when an admin key submits")
        if not self._customer_exists(asked):
            raise ValidationError("customer_id", f"unknown customer {asked!r}")
        return asked

    def _customer_exists(self, customer_id: str) -> bool:
        # Customers are never deleted, so a positive answer can be remembered.
        if customer_id not in self._known_customers:
            with self._uow() as uow:
                if uow.customers.get(customer_id) is None:
                    return False
            self._known_customers.add(customer_id)
        return True

    def _gpu_quota(self, customer_id: str, now: datetime) -> int | None:
        """The customer's GPU quota (None: none), re-read at most every CAPACITY_TTL."""
        known = self._quotas.get(customer_id)
        if known is None or now - known[0] > CAPACITY_TTL:
            with self._uow() as uow:
                customer = uow.customers.get(customer_id)
            known = (now, None if customer is None else customer.gpu_quota)
            self._quotas[customer_id] = known
        return known[1]

    def _gpu_pools(self, now: datetime) -> Pools:
        """Each site's GPUs per family with their memory, re-read at most every CAPACITY_TTL."""
        if self._pools is None or now - self._pools[0] > CAPACITY_TTL:
            with self._uow() as uow:
                self._pools = (now, gpu_pools(uow.fleet.gpus_by_site_and_model()))
        return self._pools[1]

    def find(
        self, principal: Principal, state: WorkloadState | None, limit: int, offset: int
    ) -> tuple[list[Workload], int]:
        """The caller's visible workloads, newest first, and how many match in all."""
        customer_id = None if principal.role.sees_everything else principal.customer_id
        with self._uow() as uow:
            items = uow.workloads.find(
                customer_id=customer_id, state=state, limit=limit, offset=offset
            )
            total = uow.workloads.count(customer_id=customer_id, state=state)
        return items, total

    def get(self, principal: Principal, workload_id: str) -> tuple[Workload, list[StateChange]]:
        """One workload and its history; NotFound also when the caller may not see it."""
        with self._uow() as uow:
            workload = self._visible(uow, principal, workload_id)
            return workload, uow.workloads.history(workload_id)

    def cancel(
        self, principal: Principal, workload_id: str, reason: str = "cancelled by caller"
    ) -> Workload:
        """Cancel a workload; cancelling a cancelled one again changes nothing (idempotent).
        One the scheduler moves meanwhile is cancelled from where it moved to (or refused
        when that has ended it)."""
        for _ in range(CANCEL_ATTEMPTS - 1):
            try:
                return self._cancel(principal, workload_id, reason)
            except StateChanged:
                continue
        return self._cancel(principal, workload_id, reason)

    def _cancel(self, principal: Principal, workload_id: str, reason: str) -> Workload:
        now = self._clock.now()
        with self._uow() as uow:
            workload = self._visible(uow, principal, workload_id)
            if not principal.may_act_for(workload.customer_id):
                raise Forbidden("only the workload's customer or an admin may cancel it")
            if workload.state is WorkloadState.CANCELLED:
                return workload
            new_state = transition(workload.state, WorkloadEvent.CANCEL)
            updated = replace(workload, state=new_state, updated_at=now)
            change = StateChange(
                workload_id, now, WorkloadEvent.CANCEL, workload.state, new_state, reason
            )
            uow.workloads.save_transition(updated, change)
            uow.commit()
        self._on_change(change)
        return updated

    def _visible(self, uow: UnitOfWork, principal: Principal, workload_id: str) -> Workload:
        workload = uow.workloads.get(workload_id)
        if workload is None or not principal.may_see(workload.customer_id):
            raise NotFound("workload", workload_id)
        return workload

    def preemptions(
        self, principal: Principal, workload_id: str | None = None, limit: int = 100
    ) -> list[PreemptionRecord]:
        """Recent preemptions the caller may see (its own workloads' for a customer)."""
        with self._uow() as uow:
            if workload_id is not None:
                self._visible(uow, principal, workload_id)
            if principal.role.sees_everything:
                return uow.workloads.preemptions(workload_id, limit=limit)
            if principal.customer_id is None:
                return []
            # Filtered in the store: a page cut before filtering missed a customer's own
            # preemptions behind other customers' newer ones.
            mine = uow.workloads.preemptions(
                workload_id, limit=limit, customer_id=principal.customer_id
            )
            return [self._as_seen_by(uow, principal, r) for r in mine]

    def _as_seen_by(
        self, uow: UnitOfWork, principal: Principal, record: PreemptionRecord
    ) -> PreemptionRecord:
        """`record` without the id of the workload it made room for when that one is another
        customer's: a customer learns it was preempted, not whose work took its GPUs."""
        if record.for_workload_id is None or self._owned(uow, principal, record.for_workload_id):
            return record
        return replace(record, for_workload_id=None)

    def _owned(self, uow: UnitOfWork, principal: Principal, workload_id: str) -> bool:
        w = uow.workloads.get(workload_id)
        return w is not None and principal.may_see(w.customer_id)

    def running(self, principal: Principal) -> list[Workload]:
        """Workloads holding GPUs now, the caller's own for a customer."""
        with self._uow() as uow:
            active = uow.workloads.in_states([WorkloadState.SCHEDULED, WorkloadState.RUNNING])
        return [w for w in active if principal.may_see(w.customer_id)]

    def queue_depth(self) -> QueueDepth:
        """Queued workloads by priority, and the share of GPUs busy (0-100)."""
        with self._uow() as uow:
            by_priority = uow.workloads.queued_by_priority()
            in_use = uow.workloads.gpus_in_use()
            total_gpus = sum(uow.fleet.gpus_by_site_and_model().values())
        counts = {p: by_priority.get(p, 0) for p in PRIORITIES}
        utilization = 100.0 * in_use / total_gpus if total_gpus else 0.0
        return QueueDepth(sum(counts.values()), counts, round(utilization, 2))
