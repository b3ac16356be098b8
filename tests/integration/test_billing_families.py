"""The GPU family a workload's usage is billed at, from the GPUs each of its runs held, on a
site hosting two families, stored and metered alike on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import Engine

from hcp.adapters.clock import ManualClock
from hcp.adapters.db.engine import make_session_factory
from hcp.adapters.db.repositories import SqlUnitOfWork
from hcp.domain.devices import DeviceKind
from hcp.domain.fleet import Device, Rack, Site
from hcp.domain.identity import Customer, Principal, Role
from hcp.domain.workloads import (
    Requirements,
    StateChange,
    Workload,
    WorkloadClass,
    WorkloadEvent,
    WorkloadState,
)
from hcp.services.billing import BillingService

T0 = datetime(2025, 6, 2, 10, tzinfo=UTC)
SITE = "mixed"
H100S, A100S = ("h1", "h2"), ("a1", "a2")
ADMIN = Principal("a", Role.ADMIN, None)
BATCH = WorkloadClass.AI_INFERENCE_BATCH  # list prices: H100 2.75, A100 1.50 per GPU-hour


class Store:
    """A migrated database with a site of two H100s and two A100s, and one customer."""

    def __init__(self, engine: Engine) -> None:
        self.factory = make_session_factory(engine)
        self.clock = ManualClock(T0)
        self.billing = BillingService(self.uow, self.clock)
        with self.uow() as uow:
            uow.customers.add(Customer("cust-a", "A", T0))
            uow.fleet.add_site(Site(SITE, SITE, "HB_WEST", 1.0, 1.1))
            uow.fleet.add_rack(Rack(f"{SITE}-r1", SITE, "r1"))
            uow.fleet.ensure_model("H100 SXM", DeviceKind.GPU, "NVIDIA", {})
            uow.fleet.ensure_model("A100 SXM", DeviceKind.GPU, "NVIDIA", {})
            uow.fleet.add_devices(
                [
                    Device(g, SITE, f"{SITE}-r1", model, DeviceKind.GPU, "idle", T0)
                    for gpus, model in ((H100S, "H100 SXM"), (A100S, "A100 SXM"))
                    for g in gpus
                ]
            )
            uow.commit()

    def uow(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.factory)

    def submit(self, workload_id: str) -> Workload:
        """A workload asking for no GPU family."""
        w = Workload(
            workload_id, "cust-a", BATCH, WorkloadState.QUEUED,
            Requirements(None, 2, None, 4.0), T0, T0,
        )  # fmt: skip
        with self.uow() as uow:
            change = StateChange(w.id, T0, WorkloadEvent.SUBMIT, None, WorkloadState.QUEUED)
            uow.workloads.add(w, change)
            uow.commit()
        return w

    def move(
        self, w: Workload, event: WorkloadEvent, at: datetime, gpu_ids: tuple[str, ...] = ()
    ) -> Workload:
        """Store one transition as the scheduler does: a schedule places the workload on
        `gpu_ids`, a start records them, a run's end releases them."""
        to = {
            WorkloadEvent.SCHEDULE: WorkloadState.SCHEDULED,
            WorkloadEvent.START: WorkloadState.RUNNING,
            WorkloadEvent.PREEMPT: WorkloadState.PREEMPTED,
            WorkloadEvent.REQUEUE: WorkloadState.QUEUED,
            WorkloadEvent.COMPLETE: WorkloadState.COMPLETED,
        }[event]
        held = {
            WorkloadEvent.SCHEDULE: gpu_ids,
            WorkloadEvent.START: w.gpu_ids,
            WorkloadEvent.REQUEUE: (),
        }.get(event, ())
        moved = replace(w, state=to, updated_at=at, gpu_ids=held, site_id=SITE)
        started = held if event is WorkloadEvent.START else ()
        change = StateChange(w.id, at, event, w.state, to, gpu_ids=started)
        with self.uow() as uow:
            uow.workloads.save_transition(moved, change)
            uow.commit()
        return moved

    def run(self, w: Workload, gpu_ids: tuple[str, ...], start: datetime) -> Workload:
        scheduled = self.move(w, WorkloadEvent.SCHEDULE, start, gpu_ids)
        return self.move(scheduled, WorkloadEvent.START, start)


@pytest.fixture
def store(engine: Engine) -> Iterator[Store]:
    yield Store(engine)


def test_a_start_stores_the_gpus_its_run_began_on(store: Store) -> None:
    w = store.run(store.submit("w-1"), A100S, T0)
    store.move(w, WorkloadEvent.COMPLETE, T0 + timedelta(hours=1))
    with store.uow() as uow:
        history = uow.workloads.history("w-1")
        assert uow.workloads.histories(["w-1"]) == {"w-1": history}
    assert [(c.event, c.gpu_ids) for c in history] == [
        (WorkloadEvent.SUBMIT, ()),
        (WorkloadEvent.SCHEDULE, ()),
        (WorkloadEvent.START, A100S),
        (WorkloadEvent.COMPLETE, ()),
    ]


def test_a_finished_run_on_a100s_of_a_mixed_site_is_invoiced_at_the_a100_price(
    store: Store,
) -> None:
    """It released its GPUs as it finished, so the family was taken from its site, which
    hosts H100s and A100s: the hour on two A100s was invoiced at the H100 price."""
    w = store.run(store.submit("w-1"), A100S, T0)
    done = T0 + timedelta(hours=1)
    store.move(w, WorkloadEvent.COMPLETE, done)
    store.clock.advance(timedelta(hours=2))
    assert store.billing.meter(T0, done + timedelta(minutes=5), 30.0) == 1
    [record] = store.billing.usage(ADMIN, "2025-06")
    assert (record.gpu_family, record.gpu_hours) == ("A100", Decimal(2))
    assert store.billing.issue("cust-a", "2025-06").total == Decimal("3.00")  # 2 × 1.50


def test_a_workload_moved_off_a100s_onto_h100s_bills_each_run_at_its_own_family(
    store: Store,
) -> None:
    """Preempted off two A100s and resumed on two H100s inside one metered interval: each
    run is billed at its own family, the interval cut where the H100 run starts (a usage
    record is of one family)."""
    w = store.run(store.submit("w-1"), A100S, T0)
    preempted = store.move(w, WorkloadEvent.PREEMPT, T0 + timedelta(minutes=30))
    queued = store.move(preempted, WorkloadEvent.REQUEUE, T0 + timedelta(minutes=30))
    resumed = store.run(queued, H100S, T0 + timedelta(minutes=45))
    store.move(resumed, WorkloadEvent.COMPLETE, T0 + timedelta(minutes=75))
    store.clock.advance(timedelta(hours=2))
    assert store.billing.meter(T0, T0 + timedelta(hours=2), 30.0) == 2
    usage = store.billing.usage(ADMIN, "2025-06")
    assert [(r.gpu_family, r.interval_start, r.gpu_hours) for r in usage] == [
        ("A100", T0, Decimal(1)),
        ("H100", T0 + timedelta(minutes=45), Decimal(1)),
    ]
    assert store.billing.meter(T0, T0 + timedelta(hours=2), 30.0) == 0  # again: nothing more
    # 1 GPU-hour at 1.50 and 1 at 2.75
    assert store.billing.issue("cust-a", "2025-06").total == Decimal("4.25")
