"""The repository layer and migrations, run alike on SQLite and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, inspect

from hcp.adapters.db.engine import make_session_factory
from hcp.adapters.db.migrate import downgrade, is_current, upgrade
from hcp.adapters.db.repositories import SqlUnitOfWork
from hcp.adapters.db.tables import Base
from hcp.billing import DEFAULT_BILLING_SHEET, Tier, UsageRecord, build_invoice
from hcp.domain.errors import StateChanged
from hcp.domain.identity import Customer
from hcp.domain.workloads import (
    Requirements,
    StateChange,
    Workload,
    WorkloadClass,
    WorkloadEvent,
    WorkloadState,
)

T0 = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture
def uow(engine: Engine) -> Iterator[SqlUnitOfWork]:
    factory = make_session_factory(engine)
    with SqlUnitOfWork(factory) as setup:
        setup.customers.add(Customer("cust-a", "A", T0))
        setup.commit()
    with SqlUnitOfWork(factory) as unit:
        yield unit


def workload(n: int, kind: WorkloadClass = WorkloadClass.AI_TRAINING, **extra: object) -> Workload:
    at = T0 + timedelta(seconds=n)
    values: dict[str, object] = {
        "id": f"w-{n:03d}",
        "customer_id": "cust-a",
        "workload_class": kind,
        "state": WorkloadState.QUEUED,
        "requirements": Requirements("H100", 2, 80, 1.5),
        "submitted_at": at,
        "updated_at": at,
    }
    values.update(extra)
    return Workload(**values)  # type: ignore[arg-type]


def submitted(w: Workload) -> StateChange:
    return StateChange(w.id, w.submitted_at, WorkloadEvent.SUBMIT, None, WorkloadState.QUEUED)


def test_migrations_match_the_model_and_run_both_ways(engine: Engine) -> None:
    assert is_current(engine)
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []
    downgrade(engine, "base")
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
    upgrade(engine)
    assert set(Base.metadata.tables) <= set(inspect(engine).get_table_names())


def test_workload_round_trip_keeps_types(uow: SqlUnitOfWork) -> None:
    original = workload(
        1,
        deadline=T0 + timedelta(days=1),
        checkpointable=True,
        max_price_usd_per_gpu_hour=Decimal("3.250001"),
    )
    uow.workloads.add(original, submitted(original))
    uow.commit()
    loaded = uow.workloads.get("w-001")
    assert loaded == original
    assert loaded is not None and loaded.submitted_at.tzinfo is not None


def test_queue_position_and_depth(uow: SqlUnitOfWork) -> None:
    batch = workload(1, WorkloadClass.AI_INFERENCE_BATCH)
    training = workload(2, WorkloadClass.AI_TRAINING)
    realtime = workload(3, WorkloadClass.AI_INFERENCE_REALTIME)
    for w in (batch, training, realtime):
        uow.workloads.add(w, submitted(w))
    uow.commit()
    positions = [uow.workloads.queue_position(w) for w in (realtime, batch, training)]
    assert positions == [1, 2, 3]
    assert uow.workloads.queued_by_priority() == {1: 1, 2: 1, 3: 1}


def test_transitions_are_stored_in_order(uow: SqlUnitOfWork) -> None:
    w = workload(1)
    uow.workloads.add(w, submitted(w))
    later = T0 + timedelta(minutes=5)
    running = replace(w, state=WorkloadState.RUNNING, updated_at=later)
    # from the state stored (a transition from any other is refused as a lost update)
    change = StateChange(w.id, later, WorkloadEvent.START, w.state, WorkloadState.RUNNING)
    uow.workloads.save_transition(running, change)
    uow.commit()
    assert uow.workloads.get(w.id) == running
    assert [c.event for c in uow.workloads.history(w.id)] == [
        WorkloadEvent.SUBMIT,
        WorkloadEvent.START,
    ]
    assert uow.workloads.gpus_in_use() == 2


def test_histories_of_many_workloads_match_each_history(uow: SqlUnitOfWork) -> None:
    workloads = [workload(n) for n in range(1, 4)]
    for w in workloads:
        uow.workloads.add(w, submitted(w))
    later = T0 + timedelta(minutes=5)
    change = StateChange(
        "w-002", later, WorkloadEvent.SCHEDULE, WorkloadState.QUEUED, WorkloadState.SCHEDULED
    )
    uow.workloads.save_transition(replace(workloads[1], state=WorkloadState.SCHEDULED), change)
    uow.commit()
    found = uow.workloads.histories(["w-002", "w-001", "w-404"])
    assert found == {
        "w-002": uow.workloads.history("w-002"),
        "w-001": uow.workloads.history("w-001"),
        "w-404": [],
    }
    assert [c.event for c in found["w-002"]] == [WorkloadEvent.SUBMIT, WorkloadEvent.SCHEDULE]


def test_progress_of_many_workloads_is_saved_at_once(uow: SqlUnitOfWork) -> None:
    for w in (workload(n) for n in range(1, 4)):
        uow.workloads.add(w, submitted(w))
    uow.commit()
    uow.workloads.save_progress({"w-001": 0.25, "w-003": 0.75})
    uow.workloads.save_progress({})
    uow.commit()
    stored = [uow.workloads.get(f"w-00{n}") for n in range(1, 4)]
    assert [w.progress for w in stored if w is not None] == [0.25, 0.0, 0.75]


def test_checkpoints_of_many_workloads_are_saved_at_once(uow: SqlUnitOfWork) -> None:
    for w in (workload(n, checkpointable=True) for n in range(1, 3)):
        uow.workloads.add(w, submitted(w))
    uow.commit()
    uow.workloads.save_checkpoints({"w-002": (0.5, T0 + timedelta(hours=1))})
    uow.commit()
    first, second = (uow.workloads.get(f"w-00{n}") for n in (1, 2))
    assert first is not None and (first.checkpoint, first.checkpointed_at) == (0.0, None)
    assert second is not None
    assert (second.checkpoint, second.checkpointed_at) == (0.5, T0 + timedelta(hours=1))


def test_upgrading_to_checkpoints_keeps_a_waiting_runs_resume_point(engine: Engine) -> None:
    """Before migration 0013 a queued checkpointable workload's progress was where it resumes;
    a running one's progress is not a checkpoint."""
    factory = make_session_factory(engine)
    with SqlUnitOfWork(factory) as unit:
        unit.customers.add(Customer("cust-a", "A", T0))
        waiting = workload(1, checkpointable=True, progress=0.3)
        running = workload(2, checkpointable=True, progress=0.6, state=WorkloadState.RUNNING)
        plain = workload(3, progress=0.3)
        for w in (waiting, running, plain):
            unit.workloads.add(w, submitted(w))
        unit.commit()
    downgrade(engine, "0012")
    upgrade(engine)
    with SqlUnitOfWork(factory) as unit:
        stored = [unit.workloads.get(f"w-00{n}") for n in (1, 2, 3)]
    assert [w.checkpoint for w in stored if w is not None] == [0.3, 0.0, 0.0]


def test_upgrading_to_final_invoices_marks_the_usage_they_billed(engine: Engine) -> None:
    """Before migration 0015 no usage record said which invoice bills it: a month's usage is
    billed on its final invoice where it has one, and on none yet where its invoice is
    provisional."""
    factory = make_session_factory(engine)
    may, june = datetime(2025, 5, 31, 23, tzinfo=UTC), datetime(2025, 6, 2, tzinfo=UTC)
    w = workload(1)

    def record(start: datetime) -> UsageRecord:
        return UsageRecord(
            w.id, "cust-a", w.workload_class, "H100", Tier.STANDARD, start,
            start + timedelta(hours=1), Decimal(2), Decimal(1),
        )  # fmt: skip

    with SqlUnitOfWork(factory) as unit:
        unit.customers.add(Customer("cust-a", "A", T0))
        unit.workloads.add(w, submitted(w))
        unit.billing.add_usage([record(may - timedelta(days=3)), record(may), record(june)])
        for month, issued in (("2025-05", june), ("2025-06", june)):  # final, provisional
            built = build_invoice("cust-a", month, [], DEFAULT_BILLING_SHEET)
            assert unit.billing.save_invoice(built, issued) is None
        unit.commit()
    downgrade(engine, "0014")
    upgrade(engine)
    with SqlUnitOfWork(factory) as unit:
        assert unit.billing.unbilled_usage(T0, T0 + timedelta(days=365)) == [record(june)]
        assert (
            unit.billing.bill_usage("inv-2025-06-cust-a", "cust-a", june, june.replace(month=7))
            == 1
        )


def test_upgrading_to_run_gpus_gives_the_start_of_a_run_holding_gpus_its_gpus(
    engine: Engine,
) -> None:
    """Before migration 0016 a start kept no GPUs: a workload holding GPUs now (running, or
    cancelled before they were freed) began its latest run on them, the family billed; an
    earlier run's, a run not started since its placement, and an ended run's are unknown."""
    factory = make_session_factory(engine)
    E, S = WorkloadEvent, WorkloadState

    def stored(
        unit: SqlUnitOfWork, w: Workload, *events: tuple[WorkloadEvent, tuple[str, ...]]
    ) -> None:
        """`w`'s events (only what the migration reads: which, and the GPUs kept)."""
        for n, (event, gpu_ids) in enumerate(events, 1):
            at = w.submitted_at + timedelta(minutes=n)
            change = StateChange(w.id, at, event, None, w.state, gpu_ids=gpu_ids)
            unit.workloads.save_transition(w, change)

    with SqlUnitOfWork(factory) as unit:
        unit.customers.add(Customer("cust-a", "A", T0))
        resumed = workload(1, state=S.RUNNING, gpu_ids=("g3", "g4"))
        cancelled = workload(2, state=S.CANCELLED, gpu_ids=("g5", "g6"))
        placed = workload(3, state=S.SCHEDULED, gpu_ids=("g7", "g8"))
        ended = workload(4, state=S.COMPLETED)
        for w in (resumed, cancelled, placed, ended):
            unit.workloads.add(w, submitted(w))
        run = ((E.SCHEDULE, ()), (E.START, ("g1", "g2")))
        stored(unit, resumed, *run, (E.PREEMPT, ()), (E.REQUEUE, ()), *run)
        stored(unit, cancelled, *run, (E.CANCEL, ()))
        stored(unit, placed, *run, (E.PREEMPT, ()), (E.REQUEUE, ()), (E.SCHEDULE, ()))
        stored(unit, ended, *run, (E.COMPLETE, ()))
        unit.commit()
    downgrade(engine, "0015")
    upgrade(engine)
    with SqlUnitOfWork(factory) as unit:
        histories = unit.workloads.histories([f"w-00{n}" for n in (1, 2, 3, 4)])
    starts = {w: [c.gpu_ids for c in h if c.event is E.START] for w, h in histories.items()}
    assert starts == {
        "w-001": [(), ("g3", "g4")],
        "w-002": [("g5", "g6")],
        "w-003": [()],
        "w-004": [()],
    }


def test_uncommitted_work_is_rolled_back(engine: Engine) -> None:
    factory = make_session_factory(engine)
    with SqlUnitOfWork(factory) as unit:
        unit.customers.add(Customer("cust-b", "B", T0))
    with SqlUnitOfWork(factory) as unit:
        assert unit.customers.get("cust-b") is None


def test_the_device_columns_follow_the_device_fields() -> None:
    # FleetRepository.devices builds a Device from each row by position.
    from dataclasses import fields

    from hcp.adapters.db.repositories import _DEVICE_COLUMNS
    from hcp.domain.fleet import Device

    assert [column.key for column in _DEVICE_COLUMNS] == [f.name for f in fields(Device)]


def test_the_longest_command_id_is_stored(engine: Engine) -> None:
    """A profile command to a device of the longest site id, issued at a sub-second instant,
    as the dispatcher names it: PostgreSQL refused ids over 64 characters, and with them the
    whole batch of commands of that tick."""
    from hcp.adapters.db.dispatch_log import SqlCommandLog
    from hcp.dispatch import AsicTarget, MinerView, plan_commands
    from hcp.domain.catalog import asic_model
    from hcp.domain.telemetry import AsicReading, MinerState

    s21 = asic_model("S21")
    site = "s" * 48  # the longest site id the settings allow
    device = f"{site}-asic-00001"
    at = T0 + timedelta(microseconds=123_456)
    reading = AsicReading(
        device="127.0.0.1:4028",
        at=at - timedelta(seconds=5),
        state=MinerState.MINING,
        hashrate_ths=200.0,
        power_w=3500.0,
        temperature_c=70.0,
        profile=s21.stock_profile,
        accepted_shares=0,
        rejected_shares=0,
    )
    raised = max(s21.profiles, key=lambda p: p.power_w).name
    plan = plan_commands(
        AsicTarget({s21.name: {raised: 1}}),
        [MinerView(device, s21, "127.0.0.1:4028", reading)],
        at,
    )
    [command] = plan.commands
    assert len(command.id) > 64, command.id
    log = SqlCommandLog(engine, site)
    log.record(command)
    assert log.flush() == 1
    [stored] = log.recent()
    assert (stored.id, stored.action, stored.profile) == (command.id, "profile", raised)


def test_each_sites_latest_dispatch_status_replaces_the_one_before(engine: Engine) -> None:
    from hcp.adapters.db.dispatch_log import SqlDispatchStatus
    from hcp.services.ports import DispatchStatus

    store = SqlDispatchStatus(engine)
    assert store.latest() is None and store.latest("west") is None

    def status(site: str, at: datetime, sent: int) -> DispatchStatus:
        return DispatchStatus(
            site,
            at,
            commands=3,
            sent=sent,
            power_increase_w=7000.0,
            deferred=("west-asic-00002",),
            shortfall={"S21": 1},
            unhealthy={"west-asic-00003": "board 1 dead"},
            degraded={"west-asic-00004": "in maintenance: fan"},
        )

    store.save(status("west", T0, sent=0))
    store.save(status("west", T0, sent=3))  # the same tick, once its commands are out
    store.save(status("east", T0 - timedelta(minutes=5), sent=1))
    assert store.latest("west") == status("west", T0, sent=3)
    assert store.latest("east") == status("east", T0 - timedelta(minutes=5), sent=1)
    assert store.latest() == status("west", T0, sent=3)  # the newest of any site
    store.save(status("east", T0 + timedelta(minutes=5), sent=2))
    assert store.latest() == status("east", T0 + timedelta(minutes=5), sent=2)
    assert store.latest("nowhere") is None


def test_the_members_of_a_site_are_its_devices_without_their_status(uow: SqlUnitOfWork) -> None:
    """What each control tick reads: every device of the site (of a kind, when asked), by
    id, with where it answers and why it is in maintenance, as the whole devices read says."""
    from hcp.domain.devices import DeviceKind
    from hcp.domain.fleet import Device, FleetMember, Rack, Site

    for site in ("west", "east"):
        uow.fleet.add_site(Site(site, site, "HB_WEST", 1.0, 1.1))
        uow.fleet.add_rack(Rack(f"{site}-r1", site, "r1"))
    uow.fleet.ensure_model("S21", DeviceKind.ASIC, "Bitmain", {})
    uow.fleet.ensure_model("H100 SXM", DeviceKind.GPU, "NVIDIA", {})
    uow.fleet.add_devices(
        [
            Device("west-asic-2", "west", "west-r1", "S21", DeviceKind.ASIC, "mining", T0,
                   "10.0.0.2:4028", profile="stock", power_w=3_500.0, problems=("fan",)),
            Device("west-asic-1", "west", "west-r1", "S21", DeviceKind.ASIC, "sleeping", T0,
                   "10.0.0.1:4028"),
            Device("west-gpu-1", "west", "west-r1", "H100 SXM", DeviceKind.GPU, "idle", T0),
            Device("east-asic-1", "east", "east-r1", "S21", DeviceKind.ASIC, "mining", T0,
                   "10.0.1.1:4028"),
        ]
    )  # fmt: skip
    uow.commit()
    assert uow.fleet.set_maintenance("west-asic-2", "fan swap", T0, "op")
    uow.commit()

    members = uow.fleet.members("west")
    whole = uow.fleet.devices(site_id="west")
    assert members == [
        FleetMember(d.id, d.site_id, d.model_name, d.kind, d.address, d.maintenance) for d in whole
    ]
    assert [m.id for m in members] == ["west-asic-1", "west-asic-2", "west-gpu-1"]
    assert members[1].maintenance == "fan swap" and members[1].in_maintenance
    assert members[0].address == "10.0.0.1:4028" and not members[0].in_maintenance
    assert [m.id for m in uow.fleet.members("west", DeviceKind.GPU)] == ["west-gpu-1"]
    assert uow.fleet.members("nowhere") == []


def test_a_transition_from_a_state_the_row_has_left_is_refused(uow: SqlUnitOfWork) -> None:
    w = workload(1)
    uow.workloads.add(w, submitted(w))
    uow.commit()
    later = T0 + timedelta(minutes=5)
    stale = StateChange(
        w.id, later, WorkloadEvent.START, WorkloadState.SCHEDULED, WorkloadState.RUNNING
    )
    with pytest.raises(StateChanged, match="queued"):
        uow.workloads.save_transition(replace(w, state=WorkloadState.RUNNING), stale)
    assert uow.workloads.get(w.id) == w
    assert [c.event for c in uow.workloads.history(w.id)] == [WorkloadEvent.SUBMIT]


def test_only_ended_workloads_still_holding_gpus_are_read_for_release(uow: SqlUnitOfWork) -> None:
    """What the scheduler stops and frees each tick: the cancelled workloads whose GPUs were
    never released, not every workload ever cancelled."""
    gpus = ("g-1", "g-2")
    holding = workload(1, state=WorkloadState.CANCELLED, gpu_ids=gpus)
    released = workload(2, state=WorkloadState.CANCELLED, gpu_ids=("g-3",))
    never_placed = workload(3, state=WorkloadState.CANCELLED)
    running = workload(4, state=WorkloadState.RUNNING, gpu_ids=("g-4",))
    for w in (holding, released, never_placed, running):
        uow.workloads.add(w, submitted(w))
    uow.commit()
    uow.workloads.release_gpus(released.id)
    uow.commit()

    found = uow.workloads.holding_gpus([WorkloadState.CANCELLED])
    assert [(w.id, w.gpu_ids) for w in found] == [(holding.id, gpus)]
    both = uow.workloads.holding_gpus([WorkloadState.CANCELLED, WorkloadState.RUNNING])
    assert [w.id for w in both] == [holding.id, running.id]


@pytest.mark.parametrize("database_url", ["postgres"], indirect=True)
def test_a_cancel_racing_a_tick_that_places_its_workload_does_not_deadlock(
    engine: Engine,
) -> None:
    """A tick placing two queued workloads and a cancel of the second, in two transactions:
    each locks the workload rows it moves and the queue counter of their class. Counting
    as it moved each row, the tick held the counter while waiting for the row the cancel held,
    and the cancel held that row while waiting for the counter: PostgreSQL ended one of them
    (deadlock detected). The counters are now counted last, at commit."""
    import threading
    import time

    factory = make_session_factory(engine)
    with SqlUnitOfWork(factory) as setup:
        setup.customers.add(Customer("cust-a", "A", T0))
        for w in (workload(1), workload(2)):
            setup.workloads.add(w, submitted(w))
        setup.commit()
    first, second = workload(1), workload(2)
    later = T0 + timedelta(minutes=1)

    def moved(
        w: Workload, state: WorkloadState, event: WorkloadEvent
    ) -> tuple[Workload, StateChange]:
        return replace(w, state=state, updated_at=later), StateChange(
            w.id, later, event, WorkloadState.QUEUED, state
        )

    tick_moved_one = threading.Event()
    errors: list[BaseException] = []

    def cancel() -> None:
        try:
            tick_moved_one.wait(5)
            with SqlUnitOfWork(factory) as unit:
                unit.workloads.save_transition(
                    *moved(second, WorkloadState.CANCELLED, WorkloadEvent.CANCEL)
                )
                unit.commit()
        except BaseException as error:
            errors.append(error)

    canceller = threading.Thread(target=cancel)
    canceller.start()
    placed: list[str] = []
    try:
        with SqlUnitOfWork(factory) as tick:
            tick.workloads.save_transition(
                *moved(first, WorkloadState.SCHEDULED, WorkloadEvent.SCHEDULE)
            )
            placed.append(first.id)
            tick_moved_one.set()
            time.sleep(2.0)  # the cancel takes the second workload's row meanwhile
            try:
                tick.workloads.save_transition(
                    *moved(second, WorkloadState.SCHEDULED, WorkloadEvent.SCHEDULE)
                )
                placed.append(second.id)
            except StateChanged:
                pass  # cancelled first: the tick leaves it
            tick.commit()
    finally:
        tick_moved_one.set()
        canceller.join(30)
    assert errors == []
    with SqlUnitOfWork(factory) as unit:
        states = {w: unit.workloads.get(w).state for w in ("w-001", "w-002")}  # type: ignore[union-attr]
        counters = unit.workloads.queued_by_priority()
    assert placed == ["w-001"]
    assert states == {"w-001": WorkloadState.SCHEDULED, "w-002": WorkloadState.CANCELLED}
    assert sum(counters.values()) == 0


def test_an_older_status_never_replaces_a_newer_one(uow: SqlUnitOfWork) -> None:
    """A reading the bus delivers again (after a failed commit) can come after the next
    poll's: the device keeps the newer one."""
    from hcp.domain.devices import DeviceKind
    from hcp.domain.fleet import Device, Rack, Site
    from hcp.domain.status import DeviceStatus

    uow.fleet.add_site(Site("west", "west", "HB_WEST", 1.0, 1.1))
    uow.fleet.add_rack(Rack("west-r1", "west", "r1"))
    uow.fleet.ensure_model("S21", DeviceKind.ASIC, "Bitmain", {})
    uow.fleet.add_devices(
        [Device("asic-1", "west", "west-r1", "S21", DeviceKind.ASIC, "mining", T0, "10.0.0.1")]
    )
    uow.commit()
    newer = DeviceStatus("asic-1", "sleeping", True, T0 + timedelta(seconds=10), power_w=25.0)
    older = DeviceStatus("asic-1", "mining", True, T0 + timedelta(seconds=5), power_w=3_500.0)
    uow.fleet.update_statuses([newer])
    uow.fleet.update_statuses([older])
    uow.commit()
    device = uow.fleet.device("asic-1")
    assert device is not None
    assert (device.state, device.power_w, device.updated_at) == ("sleeping", 25.0, newer.at)
    again = DeviceStatus("asic-1", "mining", True, newer.at + timedelta(seconds=5), power_w=3_400.0)
    uow.fleet.update_statuses([again])
    uow.commit()
    device = uow.fleet.device("asic-1")
    assert device is not None and (device.state, device.power_w) == ("mining", 3_400.0)
